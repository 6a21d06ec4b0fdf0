// Command stash-runner backs up and restores Redis to an encrypted repository; see docs/runner.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd := cli.NewRootCommand(cli.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Getenv, version.Version)
	err := cmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
