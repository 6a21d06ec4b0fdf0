// Command stash-real-node starts the real node of package realnode, imports the project's
// images and installs the controller with `kubectl stash install --image … --runner-image …`,
// then keeps it all running until interrupted; `make demo` drives it on a root Linux machine.
// It writes DIR/kubeconfig, DIR/redis-image (Debian's redis-server packed as an image, for the
// demo's Redis Pods) and then DIR/ready. With -check it only says whether this machine can run
// a real node (exit 0) or why not (exit 1). It is a test tool and is not shipped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"stash.dev/redis/test/realnode"
)

func main() {
	binDir := flag.String("bin-dir", "bin", "directory of kubectl-stash, stash-webhook and stash-runner (make build)")
	dir := flag.String("dir", "", "directory for the kubeconfig, images and logs")
	check := flag.Bool("check", false, "only say whether this machine can run a real node")
	flag.Parse()
	if *check {
		if err := realnode.Available(); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		return
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "error: --dir is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *binDir, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, binDir, dir string) error {
	bin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	c, err := realnode.Start(realnode.Options{BinDir: bin, LogDir: logs, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer c.Stop()
	setup, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	redisImage, err := install(setup, c, bin, filepath.Join(dir, "images"))
	if err != nil {
		return fmt.Errorf("%w (logs in %s)", err, logs)
	}
	kc, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"kubeconfig": kc, "redis-image": []byte(redisImage + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// install packs and imports the webhook, runner and redis-server images and installs the
// controller as a user does; it returns the redis-server image's name.
func install(ctx context.Context, c *realnode.Cluster, bin, images string) (string, error) {
	fmt.Fprintln(os.Stderr, "--- packing and importing the images: stash-webhook, stash-runner, redis-server")
	var refs []string
	for _, name := range []string{"stash-webhook", "stash-runner"} {
		spec := realnode.ImageSpec{Name: name, Tag: "demo", Binary: filepath.Join(bin, name)}
		archive, err := realnode.BuildImage(ctx, images, spec)
		if err != nil {
			return "", err
		}
		if err := c.ImportImage(ctx, archive); err != nil {
			return "", err
		}
		refs = append(refs, spec.Ref())
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server: %w (hack/tools.sh redis)", err)
	}
	spec, archive, err := realnode.RedisImage(ctx, images, server)
	if err != nil {
		return "", err
	}
	if err := c.ImportImage(ctx, archive); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "--- kubectl stash install --image %s --runner-image %s\n", refs[0], refs[1])
	for _, args := range [][]string{
		{"stash", "install", "--image", refs[0], "--runner-image", refs[1]},
		{"rollout", "status", "deployment/stash-webhook", "-n", "stash-system", "--timeout", "4m"},
	} {
		if out, err := c.Kubectl(ctx, args...); err != nil {
			return "", fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The webhook answers once its certificate is made and its CA injected.
	probe := `{"apiVersion": "stash.dev/v1alpha1", "kind": "Repository", "metadata": {"name": "probe", "namespace": "default"},
  "spec": {"backend": {"storageSecretName": "probe", "gcs": {"bucket": "probe-bucket"}}}}`
	for {
		cmd := c.KubectlCommand(ctx, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(probe)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return spec.Ref(), nil
		}
		select {
		case <-ctx.Done():
			return "", errors.Join(fmt.Errorf("the webhook did not answer: %s", out), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
