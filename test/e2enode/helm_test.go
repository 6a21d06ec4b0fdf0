package e2enode

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// TestHelmChartRunsABackup installs the controller from the Helm chart instead of
// `kubectl stash install` and runs a triggered backup and a restore through it: the chart's
// Deployment, RBAC, Service and webhook configurations work on a real node, not only render.
// It swaps the installation and puts the suite's back at the end, so it runs alone (no
// t.Parallel: parallel tests start only after every sequential one has returned). The CRDs
// stay (`uninstall --keep-crds`, `helm install --skip-crds`): the chart's crds/ are the same
// files, which test/plugin's TestChartRendersInstallObjects compares.
func TestHelmChartRunsABackup(t *testing.T) {
	ctx := context.Background()
	helmBin := testproc.Tool(t, "helm")
	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, helmBin, append(args, "--kubeconfig", cluster.Kubeconfig)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	start := time.Now()
	admin.Must(t, "stash", "uninstall", "--keep-crds")
	// uninstall deletes the stash-system Namespace; helm creates it again once it is gone.
	waitFor(t, 2*time.Minute, "namespace stash-system deleted", func() error {
		if _, err := admin.Try(t, "get", "namespace", "stash-system"); err == nil {
			return errors.New("still there")
		}
		return nil
	})
	t.Cleanup(func() {
		// Give the rest of the suite its `kubectl stash install` back.
		helm("uninstall", "stash-redis", "--namespace", "stash-system", "--wait", "--timeout", "2m")
		if err := install(context.Background(), t.TempDir()); err != nil {
			t.Fatalf("reinstall with kubectl stash install: %v", err)
		}
	})
	webhookRepo, webhookTag, _ := strings.Cut(webhookImage, ":")
	runnerRepo, runnerTag, _ := strings.Cut(runnerImage, ":")
	out := helm("install", "stash-redis", filepath.Join("..", "..", "charts", "stash-redis"),
		"--namespace", "stash-system", "--create-namespace", "--skip-crds",
		"--set", "image.repository="+webhookRepo, "--set", "image.tag="+webhookTag, "--set", "image.pullPolicy=IfNotPresent",
		"--set", "runner.image.repository="+runnerRepo, "--set", "runner.image.tag="+runnerTag)
	if !strings.Contains(out, "kubectl stash") {
		t.Errorf("the chart's NOTES do not say what to run next:\n%s", out)
	}
	admin.Must(t, "rollout", "status", "deployment/stash-webhook", "-n", "stash-system", "--timeout", "3m")
	if err := waitWebhook(ctx, filepath.Join(t.TempDir(), "probe.yaml")); err != nil {
		t.Fatal(err)
	}
	t.Logf("installed from the chart in %s", time.Since(start).Round(time.Second))
	if got := admin.Must(t, "get", "deployment", "stash-webhook", "-n", "stash-system", "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}"); got != "Helm" {
		t.Fatalf("stash-webhook is managed by %q, want Helm", got)
	}

	ns := "node-helm"
	namespace(t, ns)
	src, dst := redisPod(t, ns, "redis-src"), redisPod(t, ns, "redis-dst")
	loadSample(t, src, 20000)
	admin.Must(t, "stash", "create", "backupconfig", "nightly", "-n", ns, "--repo", "repo", "--redis-service", "redis-src", "--schedule", "@daily")
	backupAndRestore(t, "the chart's controller", ns, "nightly", "repo", "service/redis-dst", src, dst)
}
