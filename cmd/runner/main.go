// Command stash-runner backs up and restores Redis to an encrypted repository; see docs/runner.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/version"
)

// quietLogger drops go-redis' internal log lines (pool dial retries): every failure they describe
// is also returned as an error, which the runner reports once, with context.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
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
