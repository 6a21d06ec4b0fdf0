package realnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/testproc"
)

// ImageSpec is an image for hack/image to pack from a binary of this machine's platform.
type ImageSpec struct {
	// Name is the image's and the binary's name (its entrypoint is /usr/local/bin/<Name>).
	Name string
	// Tag is the image's tag: stash.dev/<Name>:<Tag>.
	Tag string
	// Binary is the file that becomes /usr/local/bin/<Name>.
	Binary string
	// CABundle is the file that becomes the image's CA roots; empty means the machine's.
	CABundle string
	// HostFiles are copied into the image at their own paths (shared libraries).
	HostFiles []string
}

// Ref is the image's name in containerd.
func (s ImageSpec) Ref() string { return "stash.dev/" + s.Name + ":" + s.Tag }

// BuildImage packs the image with hack/image (the same code as `make image`) into dir and
// returns the archive's path.
func BuildImage(ctx context.Context, dir string, s ImageSpec) (string, error) {
	bin := filepath.Join(dir, "bin-"+s.Name+"-"+s.Tag)
	target := filepath.Join(bin, runtime.GOOS+"_"+runtime.GOARCH, s.Name)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(s.Binary)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(target, b, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, s.Name+"-"+s.Tag)
	args := []string{"run", "./hack/image", "-binary-dir", bin, "-version", s.Tag, "-out", out,
		"-platforms", runtime.GOOS + "/" + runtime.GOARCH, "-images", s.Name}
	if s.CABundle != "" {
		args = append(args, "-ca-bundle", s.CABundle)
	}
	if len(s.HostFiles) > 0 {
		args = append(args, "-host-files", strings.Join(s.HostFiles, ","))
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = clustertest.RootDir()
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hack/image %s: %w\n%s", s.Ref(), err, o)
	}
	return filepath.Join(out, s.Name+".tar"), nil
}

// BuildGo compiles a main package of this module, statically, for this machine.
func BuildGo(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = clustertest.RootDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, o)
	}
	return nil
}

// packPause builds the sandbox image (test/realnode/pause) into the run's images directory.
func (c *Cluster) packPause() error {
	ctx := context.Background()
	dir := filepath.Join(c.Dir, "images")
	bin := filepath.Join(dir, "pause")
	if err := BuildGo(ctx, "./test/realnode/pause", bin); err != nil {
		return err
	}
	path, err := BuildImage(ctx, dir, ImageSpec{Name: "pause", Tag: "realnode", Binary: bin})
	if err != nil {
		return err
	}
	return os.Rename(path, filepath.Join(dir, "pause.tar"))
}

// RedisImage packs Debian's redis-server with the shared libraries it loads (as ldd lists
// them, and the dynamic loader) into an image: there is no registry to pull redis from. The
// redis-cli beside it goes in too, at its own path, for exec hooks that talk to the server.
func RedisImage(ctx context.Context, dir, redisServer string) (ImageSpec, string, error) {
	bins := []string{redisServer}
	if cli, err := exec.LookPath(filepath.Join(filepath.Dir(redisServer), "redis-cli")); err == nil {
		bins = append(bins, cli)
	}
	var files []string
	for _, b := range bins {
		out, err := exec.CommandContext(ctx, "ldd", b).Output()
		if err != nil {
			return ImageSpec{}, "", fmt.Errorf("ldd %s: %w", b, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(l) {
				if strings.HasPrefix(f, "/") && !slices.Contains(files, f) {
					files = append(files, f)
				}
			}
		}
	}
	files = append(files, bins[1:]...)
	spec := ImageSpec{Name: "redis-server", Tag: "realnode", Binary: redisServer, HostFiles: files}
	path, err := BuildImage(ctx, dir, spec)
	return spec, path, err
}

// ImportImage loads an OCI archive into containerd's k8s.io namespace, where the kubelet
// finds it (Pods use imagePullPolicy IfNotPresent or Never: there is no registry).
func (c *Cluster) ImportImage(ctx context.Context, archive string) error {
	if out, err := c.ctr(ctx, "-n", "k8s.io", "images", "import", "--platform", runtime.GOOS+"/"+runtime.GOARCH, archive); err != nil {
		return fmt.Errorf("import %s: %w\n%s", archive, err, out)
	}
	return nil
}

func (c *Cluster) ctr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.assets, "ctr"), append([]string{"--address", c.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AdminKubectl is the real kubectl as the cluster's admin, with BinDir first on PATH (for the
// kubectl-stash plugin).
func (c *Cluster) AdminKubectl() testproc.Kubectl {
	return testproc.Kubectl{Kubeconfig: c.Kubeconfig, PluginDir: c.BinDir}
}

// Kubectl runs AdminKubectl with args and returns combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.AdminKubectl().Run(ctx, args...)
}

// KubectlCommand returns the command Kubectl runs.
func (c *Cluster) KubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return c.AdminKubectl().Command(ctx, args...)
}
