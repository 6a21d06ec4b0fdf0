// Package progress counts the keys and bytes of a running backup or restore and prints a status
// line periodically, so that a long job in a Pod log shows it is alive and when it will end.
package progress

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"stash.dev/redis/api/v1alpha1"
)

// Counter is updated by the dump and load code; safe for concurrent use.
type Counter struct {
	Keys  atomic.Int64
	Bytes atomic.Int64
	// Total is the expected number of keys (DBSIZE or the manifest), 0 if unknown.
	Total atomic.Int64
}

// Report prints a line to w every interval until ctx ends or the returned stop is called.
func Report(ctx context.Context, w io.Writer, label string, c *Counter, interval time.Duration) (stop func()) {
	if interval <= 0 || w == nil {
		return func() {}
	}
	start := time.Now()
	return Every(ctx, interval, func() {
		fmt.Fprintln(w, Line(label, c.Keys.Load(), c.Bytes.Load(), c.Total.Load(), time.Since(start)))
	})
}

// Every calls tick every interval (which must be positive) on a goroutine of its own until ctx
// ends or the returned stop is called; stop returns once no tick runs any more.
func Every(ctx context.Context, interval time.Duration, tick func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				tick()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// Line formats one status line.
func Line(label string, keys, bytes, total int64, elapsed time.Duration) string {
	rate := float64(keys) / max(elapsed.Seconds(), 0.001)
	s := fmt.Sprintf("%s: %d keys, %s, %.0f keys/s", label, keys, v1alpha1.HumanBytes(bytes), rate)
	if total > 0 {
		pct := 100 * float64(keys) / float64(total)
		s += fmt.Sprintf(", %.1f%% of %d", min(pct, 100), total)
		if rate > 0 && keys < total {
			eta := time.Duration(float64(total-keys) / rate * float64(time.Second))
			s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
		}
	}
	return s
}
