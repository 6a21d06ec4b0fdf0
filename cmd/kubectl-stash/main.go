// Command kubectl-stash is the `kubectl stash` plugin: it validates, creates and follows
// backups and restores of Redis.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	// The time zone database, so that spec.timeZone is checked (and the next run shown) the
	// same on a machine or image without one.
	_ "time/tzdata"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/plugin"
)

// signalGrace is how long the plugin may take to wind up after Ctrl-C or SIGTERM. Its commands
// end their requests with the context, but a read of standard input (`validate -f -` behind a
// pipe that never closes), an exec credential plugin or a DNS lookup does not listen to it.
const signalGrace = time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
		time.Sleep(signalGrace)
		fmt.Fprintln(os.Stderr, "error: interrupted")
		os.Exit(130)
	}()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := plugin.NewCmdStash(streams).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}
