// Command stash-runner backs up and restores Redis to an encrypted repository; see docs/runner.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	// The time zone database, so that spec.timeZone is checked (and the next run shown) the
	// same on a machine or image without one.
	_ "time/tzdata"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/version"
)

// quietLogger drops go-redis' internal log lines (pool dial retries): every failure they describe
// is also returned as an error, which the runner reports once, with context.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// defaultMemoryLimit is the runner's soft memory limit unless GOMEMLIMIT sets another. Its live
// heap is a few tens of MiB (the scrypt KDF, the zstd window, the largest keys in flight); without
// a limit the collector lets garbage grow the heap to twice that, which a Job with a memory limit
// pays for. Measured in bench/README.md: peak RSS 170 MB without, 131 MB with, at the same speed.
const defaultMemoryLimit = 80 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := cli.NewRootCommand(cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv, version.Version)
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
