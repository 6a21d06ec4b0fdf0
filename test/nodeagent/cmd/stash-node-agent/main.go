// Command stash-node-agent runs the test node agent (see package nodeagent) against the
// cluster of $KUBECONFIG, for `make demo`. It is a test tool and is not shipped.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/tools/clientcmd"

	"stash.dev/redis/test/nodeagent"
)

func main() {
	var a nodeagent.Agent
	flag.StringVar(&a.NodeName, "node-name", "local-node", "name of the Node to register")
	flag.StringVar(&a.BinDir, "bin-dir", "bin", "directory of the binaries that stand in for container images")
	flag.StringVar(&a.WorkDir, "work-dir", "/tmp/stash-node-agent", "directory for Pod logs and kubeconfigs")
	flag.Parse()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error: load kubeconfig:", err)
		os.Exit(1)
	}
	a.Config, a.Log = cfg, os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}
