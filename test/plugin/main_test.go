// Package plugin_test runs the real kubectl, which finds our kubectl-stash on PATH, against
// a real API server (envtest) with our CRDs and admission webhook. No controller runs: the
// tests move session status themselves, as the runner would.
package plugin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/testproc"
)

var (
	cluster *clustertest.Cluster
	// kubectl is the real kubectl as the cluster's admin, with our kubectl-stash on PATH.
	kubectl   testproc.Kubectl
	pluginDir string
	root      = clustertest.RootDir()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	var err error
	if cluster, pluginDir, err = clustertest.StartWithPlugin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	kubectl = cluster.AdminKubectl(pluginDir)
	kubectl.Timeout = 60 * time.Second
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, "demo", nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if out, err := cluster.Kubectl(ctx, pluginDir, "apply", "-f", filepath.Join(root, "test", "fixtures", "cluster", "prereqs.yaml")); err != nil {
		fmt.Fprintf(os.Stderr, "apply prerequisites: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// addUser writes a kubeconfig for a user with the given groups and returns its path.
func addUser(t *testing.T, env *envtest.Environment, name string, groups ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clustertest.WriteKubeconfig(env, envtest.User{Name: name, Groups: groups}, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// exitCode returns the exit status of a failed command, or 0.
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
