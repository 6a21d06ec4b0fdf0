// Command stash-local-cluster starts the local cluster of package localcluster and keeps it
// running until interrupted; `make demo` drives it. It writes DIR/kubeconfig and then
// DIR/ready. It is a test tool and is not shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"stash.dev/redis/test/localcluster"
)

func main() {
	var o localcluster.Options
	flag.StringVar(&o.BinDir, "bin-dir", "bin", "directory of kubectl-stash, stash-webhook and stash-runner")
	flag.StringVar(&o.Dir, "dir", "", "directory for the kubeconfig, logs and Pod files")
	flag.Parse()
	if o.Dir == "" {
		fmt.Fprintln(os.Stderr, "error: --dir is required")
		os.Exit(2)
	}
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	o.BinDir, o.Log = bin, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := localcluster.Start(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "ready"), []byte(c.MetricsURL+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	<-ctx.Done()
	c.Stop()
}
