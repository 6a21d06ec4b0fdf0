package testproc

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output is what a command running in the background writes (its stdout or stderr), for a test
// to read while it runs.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns all that was written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// WaitFor waits until the output contains s, and fails the test with the output when it does
// not within timeout.
func (o *Output) WaitFor(t testing.TB, timeout time.Duration, s string) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("the output shows %q", s), func() error {
		if out := o.String(); !strings.Contains(out, s) {
			return fmt.Errorf("output:\n%s", out)
		}
		return nil
	})
}
