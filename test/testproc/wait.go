package testproc

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Poll calls cond until it returns nil, or until timeout has passed: then it returns an error
// that names what was awaited and cond's last error. The pause after a failed try grows from
// 10 ms to half a second, so that a quick condition (a server's first PING) is seen at once
// and a slow one (a kubectl run, a CronJob's next minute) is not asked hundreds of times.
// A cond that returns Abort(err) ends the wait at once with err: what it waits for can no
// longer happen (the process exited).
func Poll(timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	pause := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var a aborted
		if errors.As(err, &a) {
			return fmt.Errorf("%s: %w", what, a.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		time.Sleep(pause)
		pause = min(pause*3/2, 500*time.Millisecond)
	}
}

// Abort wraps err so that Poll and Eventually stop waiting and report it.
func Abort(err error) error { return aborted{err} }

type aborted struct{ err error }

func (a aborted) Error() string { return a.err.Error() }
func (a aborted) Unwrap() error { return a.err }

// Eventually fails the test when cond has not returned nil within timeout (see Poll); the
// message names what and cond's last error.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// When runs do in the background as soon as cond holds, for a test that breaks something in
// the middle of an operation (kills the server once the backup has dumped its first keys).
// cond is asked every millisecond, so that the operation is still under way when do runs.
// The test fails when cond has not held within timeout or by the time the test ends (the
// test did not test what it meant to), or when do returns an error; the test ends only after
// do has returned.
func When(t testing.TB, timeout time.Duration, what string, cond func() bool, do func() error) {
	t.Helper()
	ended := make(chan struct{})
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		for !cond() {
			select {
			case <-ended:
				err = fmt.Errorf("%s: never happened before the test ended", what)
				return
			case <-deadline.C:
				err = fmt.Errorf("%s: not within %s", what, timeout)
				return
			case <-time.After(time.Millisecond):
			}
		}
		if derr := do(); derr != nil {
			err = fmt.Errorf("%s: %w", what, derr)
		}
	}()
	t.Cleanup(func() {
		close(ended)
		wg.Wait()
		if err != nil {
			t.Error(err)
		}
	})
}
