package testproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Kubectl runs the real kubectl as one user of one test cluster, with the directory that
// holds our kubectl-stash first on PATH, so that `kubectl stash` runs the build under test.
// It is a value: With... return a changed copy.
type Kubectl struct {
	// Kubeconfig is the file kubectl reads (KUBECONFIG).
	Kubeconfig string
	// PluginDir holds kubectl-stash; empty leaves PATH as it is.
	PluginDir string
	// Env is added to every run's environment, after KUBECONFIG and PATH (a later value wins).
	Env []string
	// Stdin, when not empty, is every run's standard input (a password for --password-stdin).
	Stdin string
	// Timeout bounds each run of Try and Must; zero means four minutes.
	Timeout time.Duration
}

// kubectlBinary is the kubectl that hack/envtest-assets.sh provides in KUBEBUILDER_ASSETS
// (which `make test` sets), or else the one on PATH.
func kubectlBinary() string {
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" {
		if p := filepath.Join(assets, "kubectl"); fileExists(p) {
			return p
		}
	}
	return "kubectl"
}

// WithEnv returns k with env added to every run's environment.
func (k Kubectl) WithEnv(env ...string) Kubectl {
	k.Env = append(append([]string(nil), k.Env...), env...)
	return k
}

// WithStdin returns k with stdin as every run's standard input.
func (k Kubectl) WithStdin(stdin string) Kubectl {
	k.Stdin = stdin
	return k
}

// As returns k running as the user of another kubeconfig.
func (k Kubectl) As(kubeconfig string) Kubectl {
	k.Kubeconfig = kubeconfig
	return k
}

// Command returns the command that runs kubectl with args, for callers that want stdout
// alone or run it in the background. A missing kubectl shows when it runs.
func (k Kubectl) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, kubectlBinary(), args...)
	path := os.Getenv("PATH")
	if k.PluginDir != "" {
		path = k.PluginDir + string(os.PathListSeparator) + path
	}
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+k.Kubeconfig, "PATH="+path), k.Env...)
	if k.Stdin != "" {
		cmd.Stdin = strings.NewReader(k.Stdin)
	}
	return cmd
}

// Run runs kubectl with args and returns what it wrote to stdout and stderr together.
func (k Kubectl) Run(ctx context.Context, args ...string) (string, error) {
	out, err := k.Command(ctx, args...).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("kubectl not found in KUBEBUILDER_ASSETS or on PATH: run `make test`, which provides it: %w", err)
	}
	return string(out), err
}

// Try is Run for a test, bounded by k.Timeout.
func (k Kubectl) Try(t testing.TB, args ...string) (string, error) {
	t.Helper()
	timeout := k.Timeout
	if timeout == 0 {
		timeout = 4 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return k.Run(ctx, args...)
}

// Must is Try that fails the test, with kubectl's output, when kubectl fails.
func (k Kubectl) Must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := k.Try(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// WaitForWebhook waits until the API server reaches our admission webhook (its certificate
// made and its CA injected): a valid Repository passes a server-side dry run. dir receives
// the probe's manifest.
func (k Kubectl) WaitForWebhook(ctx context.Context, dir string, timeout time.Duration) error {
	probe := filepath.Join(dir, "webhook-probe.yaml")
	if err := os.WriteFile(probe, []byte(`apiVersion: stash.dev/v1alpha1
kind: Repository
metadata: {name: probe, namespace: default}
spec:
  backend: {storageSecretName: probe, gcs: {bucket: probe-bucket}}
`), 0o644); err != nil {
		return err
	}
	return Poll(timeout, "the webhook answers", func() error {
		out, err := k.Run(ctx, "apply", "--dry-run=server", "-f", probe)
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	})
}

// BackupSessionPhases lists the phases of the BackupSessions in ns, by name.
func (k Kubectl) BackupSessionPhases(t testing.TB, ns string) map[string]string {
	t.Helper()
	out := k.Must(t, "get", "backupsessions", "-n", ns, "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}`)
	m := map[string]string{}
	for _, l := range strings.Fields(out) {
		name, phase, _ := strings.Cut(l, "=")
		m[name] = phase
	}
	return m
}
