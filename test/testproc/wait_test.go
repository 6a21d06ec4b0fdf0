package testproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	tries := 0
	if err := Poll(time.Second, "third try", func() error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || tries != 3 {
		t.Fatalf("Poll: %v after %d tries", err, tries)
	}

	last := errors.New("still 7 keys")
	err := Poll(50*time.Millisecond, "the target empties", func() error { return last })
	if !errors.Is(err, last) || !strings.Contains(err.Error(), "the target empties: not within 50ms: still 7 keys") {
		t.Fatalf("Poll past its timeout: %v", err)
	}

	exited := errors.New("exited")
	start := time.Now()
	err = Poll(time.Minute, "ready", func() error { return Abort(exited) })
	if !errors.Is(err, exited) || err.Error() != "ready: exited" || time.Since(start) > 10*time.Second {
		t.Fatalf("Poll with Abort: %v after %s", err, time.Since(start))
	}
}

// recorder is a testing.TB that keeps what a helper reports instead of failing the test.
type recorder struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper()                   {}
func (r *recorder) Error(args ...any)         { r.errors = append(r.errors, fmt.Sprint(args...)) }
func (r *recorder) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) { r.errors = append(r.errors, fmt.Sprintf(f, a...)) }

func (r *recorder) end() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

func TestWhen(t *testing.T) {
	var n atomic.Int64
	var ran atomic.Bool
	r := &recorder{TB: t}
	When(r, time.Minute, "n reaches 5", func() bool { return n.Load() >= 5 }, func() error { ran.Store(true); return nil })
	for range 5 {
		n.Add(1)
	}
	Poll(10*time.Second, "do runs", func() error {
		if !ran.Load() {
			return errors.New("not run")
		}
		return nil
	})
	r.end()
	if !ran.Load() || len(r.errors) != 0 {
		t.Fatalf("When with a condition that holds: ran %v, errors %q", ran.Load(), r.errors)
	}

	r = &recorder{TB: t}
	When(r, time.Minute, "never", func() bool { return false }, func() error { t.Error("do ran"); return nil })
	r.end()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "never: never happened before the test ended") {
		t.Fatalf("When with a condition that never holds: %q", r.errors)
	}

	r = &recorder{TB: t}
	When(r, 20*time.Millisecond, "never", func() bool { return false }, func() error { return nil })
	time.Sleep(100 * time.Millisecond)
	r.end()
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "never: not within 20ms") {
		t.Fatalf("When past its timeout: %q", r.errors)
	}

	r = &recorder{TB: t}
	When(r, time.Minute, "at once", func() bool { return true }, func() error { return errors.New("kill failed") })
	r.end()
	if len(r.errors) != 1 || r.errors[0] != "at once: kill failed" {
		t.Fatalf("When whose action fails: %q", r.errors)
	}
}

func TestKubectlCommand(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", "")
	k := Kubectl{Kubeconfig: "/admin.kubeconfig", PluginDir: "/plugins"}.WithEnv("A=1").WithStdin("pw\n")
	cmd := k.As("/other.kubeconfig").Command(context.Background(), "get", "ns")
	env := cmd.Environ()
	if !slices.Contains(env, "KUBECONFIG=/other.kubeconfig") || !slices.Contains(env, "A=1") ||
		!slices.Contains(env, "PATH=/plugins"+string(os.PathListSeparator)+os.Getenv("PATH")) {
		t.Errorf("environment: %q", env)
	}
	if in, _ := io.ReadAll(cmd.Stdin); string(in) != "pw\n" || !slices.Equal(cmd.Args[1:], []string{"get", "ns"}) {
		t.Errorf("stdin %q, args %q", in, cmd.Args)
	}
	if k.Kubeconfig != "/admin.kubeconfig" {
		t.Errorf("As changed the original: %q", k.Kubeconfig)
	}
}
