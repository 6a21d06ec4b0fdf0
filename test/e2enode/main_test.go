// Package e2enode runs the system as it ships, on a real node (test/realnode): the images that
// hack/image packs, imported into containerd; stash-webhook installed with
// `kubectl stash install --image … --runner-image …` as its two-replica Deployment, called by the
// API server through its Service; Redis in Pods behind Services; the backup and restore Jobs
// running the runner image with the securityContext the controller sets.
//
// The runner image of the suite holds Debian's CA roots plus the suite's own test CA (the
// stand-in for a public CA, which a sandbox cannot reach): a store whose certificate that CA
// signed is trusted through the image's bundle alone.
package e2enode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/realnode"
)

var (
	cluster *realnode.Cluster
	// suiteCA signs the certificates of the stores the image's own roots must trust.
	suiteCA realnode.CertFiles
	// redisImage is Debian's redis-server packed as an image.
	redisImage string
)

const (
	webhookImage = "stash.dev/stash-webhook:realnode"
	runnerImage  = "stash.dev/stash-runner:realnode-suite-ca"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if err := realnode.Available(); err != nil {
		if os.Getenv("CI") != "" {
			fmt.Println("e2enode: CI must run the real node:", err)
			return 1
		}
		fmt.Println("e2enode: this machine cannot run a real node, so nothing here runs:", err)
		return 0
	}
	work, err := os.MkdirTemp("", "stash-e2enode-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	logs := os.Getenv("STASH_REALNODE_LOGS")
	if logs == "" {
		logs = filepath.Join(work, "logs")
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := binaries(ctx, filepath.Join(work, "bin"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cluster, err = realnode.Start(realnode.Options{BinDir: bin, LogDir: logs, Log: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	admin = cluster.AdminKubectl()
	if err := setUp(ctx, work, bin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		dumpLogs(logs)
		return 1
	}
	fmt.Fprintf(os.Stderr, "--- real node with the images installed in %s\n", time.Since(start).Round(time.Second))
	code := m.Run()
	if code != 0 {
		dumpLogs(logs)
	}
	return code
}

// binaries returns a directory with kubectl-stash for this machine and the runner and
// webhook for linux/<arch> under linux_<arch>/: `make build` and `make image` write them to
// bin/ (STASH_BIN_DIR); without it they are built here.
func binaries(ctx context.Context, dir string) (string, error) {
	if b := os.Getenv("STASH_BIN_DIR"); b != "" {
		if _, err := os.Stat(filepath.Join(b, "linux_"+runtime.GOARCH, "stash-runner")); err == nil {
			return b, nil
		}
	}
	plat := filepath.Join(dir, "linux_"+runtime.GOARCH)
	for out, pkg := range map[string]string{
		filepath.Join(dir, "kubectl-stash"):  "./cmd/kubectl-stash",
		filepath.Join(plat, "stash-runner"):  "./cmd/runner",
		filepath.Join(plat, "stash-webhook"): "./cmd/webhook",
	} {
		if err := realnode.BuildGo(ctx, pkg, out); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// setUp packs and imports the images, starts the two Redis images' prerequisites and installs
// the controller the way a user does.
func setUp(ctx context.Context, work, bin string) error {
	plat := filepath.Join(bin, "linux_"+runtime.GOARCH)
	var err error
	if suiteCA, err = realnode.WriteCerts(filepath.Join(work, "suite-ca"), "store", realnode.Gateway, "127.0.0.1"); err != nil {
		return err
	}
	roots, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(suiteCA.CAFile)
	if err != nil {
		return err
	}
	bundle := filepath.Join(work, "roots-with-suite-ca.pem")
	if err := os.WriteFile(bundle, append(roots, ca...), 0o644); err != nil {
		return err
	}
	images := filepath.Join(work, "images")
	specs := []realnode.ImageSpec{
		{Name: "stash-webhook", Tag: "realnode", Binary: filepath.Join(plat, "stash-webhook")},
		{Name: "stash-runner", Tag: "realnode-suite-ca", Binary: filepath.Join(plat, "stash-runner"), CABundle: bundle},
	}
	for _, s := range specs {
		archive, err := realnode.BuildImage(ctx, images, s)
		if err != nil {
			return err
		}
		if err := cluster.ImportImage(ctx, archive); err != nil {
			return err
		}
	}
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server: %w (hack/tools.sh redis)", err)
	}
	spec, archive, err := realnode.RedisImage(ctx, images, redis)
	if err != nil {
		return err
	}
	if err := cluster.ImportImage(ctx, archive); err != nil {
		return err
	}
	redisImage = spec.Ref()
	return install(ctx, work)
}

// install installs the controller the way a user does, with the suite's images, and waits
// until the API server calls its admission webhook.
func install(ctx context.Context, work string) error {
	for _, args := range [][]string{
		{"stash", "install", "--image", webhookImage, "--runner-image", runnerImage},
		{"rollout", "status", "deployment/stash-webhook", "-n", "stash-system", "--timeout", "4m"},
	} {
		if out, err := cluster.Kubectl(ctx, args...); err != nil {
			return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return waitWebhook(ctx, filepath.Join(work, "probe.yaml"))
}

// waitWebhook waits until the API server reaches the webhook through its Service; probe's
// directory receives the probe's manifest.
func waitWebhook(ctx context.Context, probe string) error {
	return cluster.AdminKubectl().WaitForWebhook(ctx, filepath.Dir(probe), 2*time.Minute)
}

func dumpLogs(dir string) {
	for _, f := range []string{"kubelet.log", "containerd.log", "kube-controller-manager.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 30 {
				lines = lines[len(lines)-30:]
			}
			fmt.Fprintf(os.Stderr, "=== last lines of %s\n%s\n", f, strings.Join(lines, "\n"))
		}
	}
	if cluster != nil {
		out, _ := cluster.Kubectl(context.Background(), "logs", "-n", "stash-system", "-l", "app.kubernetes.io/name=stash-webhook", "--tail=30", "--prefix")
		fmt.Fprintf(os.Stderr, "=== stash-webhook\n%s\n", out)
		out, _ = cluster.Kubectl(context.Background(), "get", "pods", "-A", "-o", "wide")
		fmt.Fprintf(os.Stderr, "=== pods\n%s\n", out)
	}
}
