// Package clustertest starts a real Kubernetes control plane for tests: etcd and
// kube-apiserver through controller-runtime's envtest, our CRDs installed, and the
// stash-webhook admission webhooks served over TLS by an in-process manager.
//
// The binaries come from KUBEBUILDER_ASSETS, which `make test` fills with
// hack/envtest-assets.sh. Without it the tests fail with a message saying so: a test that
// skips because a binary is missing is a test that did not run.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"stash.dev/redis/test/testproc"
	stashwebhook "stash.dev/redis/webhook"
	"stash.dev/redis/webhook/controllers"
)

// Cluster is a running control plane with our webhooks.
type Cluster struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Client     client.Client
	Scheme     *k8sruntime.Scheme
	Kubeconfig string // admin kubeconfig file, for kubectl
	Manager    ctrl.Manager
	RootDir    string // the repository root
	dir        string
	kcm        *exec.Cmd
	cancel     context.CancelFunc
	done       chan error
}

// RootDir is the repository root, found from this file's location.
func RootDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start starts etcd, kube-apiserver and the webhook manager. setup, when not nil, may add
// controllers to the manager before it starts.
func Start(setup func(ctrl.Manager) error) (*Cluster, error) {
	return StartWith(Options{Setup: setup})
}

// StartWithPlugin starts a cluster as Start does and builds kubectl-stash into the cluster's
// own directory, which Stop removes, or takes `make build`'s (testproc.OurBinaries): what a
// suite that runs the plugin through the real kubectl needs. It returns the plugin's directory.
func StartWithPlugin() (*Cluster, string, error) {
	c, err := Start(nil)
	if err != nil {
		return nil, "", err
	}
	dir, err := testproc.OurBinaries(filepath.Join(c.dir, "plugin"), "kubectl-stash")
	if err != nil {
		c.Stop()
		return nil, "", err
	}
	return c, dir, nil
}

// Options shape the cluster StartWith starts.
type Options struct {
	// Setup, when not nil, adds controllers to the manager before it starts.
	Setup func(ctrl.Manager) error
	// MetricsAddr is where the manager serves /metrics; empty turns it off.
	MetricsAddr string
	// ControllerManager lists kube-controller-manager controllers to run (for example
	// garbage-collector-controller); empty runs none.
	ControllerManager []string
}

// StartWith starts the cluster with options.
func StartWith(o Options) (*Cluster, error) {
	setup := o.Setup
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	root := RootDir()
	c := &Cluster{RootDir: root, Scheme: stashwebhook.NewScheme()}
	c.Env = &envtest.Environment{
		Scheme:                c.Scheme,
		ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases"), filepath.Join(root, "config", "crd", "appcatalog")},
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
	}
	cfg, err := c.Env.Start()
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	c.Config = cfg
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: c.Scheme}); err != nil {
		return fail(err)
	}
	if c.dir, err = os.MkdirTemp("", "clustertest-"); err != nil {
		return fail(err)
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := WriteKubeconfig(c.Env, Admin, c.Kubeconfig); err != nil {
		return fail(err)
	}

	wo := &c.Env.WebhookInstallOptions
	c.Manager, err = ctrl.NewManager(cfg, ctrl.Options{
		Scheme:         c.Scheme,
		Client:         client.Options{Cache: controllers.ClientCacheOptions()},
		Metrics:        metricsserver.Options{BindAddress: firstNonEmpty(o.MetricsAddr, "0")},
		WebhookServer:  crwebhook.NewServer(crwebhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
		LeaderElection: false,
	})
	if err != nil {
		return fail(fmt.Errorf("create manager: %w", err))
	}
	if err := stashwebhook.Setup(c.Manager); err != nil {
		return fail(err)
	}
	if setup != nil {
		if err := setup(c.Manager); err != nil {
			return fail(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan error, 1)
	go func() { c.done <- c.Manager.Start(ctx) }()
	if err := testproc.Poll(30*time.Second, "the webhook server starts", func() error {
		return c.Manager.GetWebhookServer().StartedChecker()(nil)
	}); err != nil {
		return fail(err)
	}
	if len(o.ControllerManager) > 0 {
		if err := c.startControllerManager(o.ControllerManager); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// Admin is the user a test cluster's kubeconfig names: a member of system:masters.
var Admin = envtest.User{Name: "admin", Groups: []string{"system:masters"}}

// WriteKubeconfig makes env's API server know u and writes a kubeconfig for u to path.
func WriteKubeconfig(env *envtest.Environment, u envtest.User, path string) error {
	user, err := env.AddUser(u, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// startControllerManager runs the real kube-controller-manager (built by
// hack/envtest-assets.sh with WITH_CONTROLLER_MANAGER=1) with the given controllers.
func (c *Cluster) startControllerManager(controllers []string) error {
	bin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("kube-controller-manager not found in KUBEBUILDER_ASSETS: run `make test` (it builds it with WITH_CONTROLLER_MANAGER=1): %w", err)
	}
	log, err := os.Create(filepath.Join(c.dir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "--kubeconfig", c.Kubeconfig, "--controllers", strings.Join(controllers, ","),
		"--leader-elect=false", "--secure-port=0", "--concurrent-gc-syncs=5")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	c.kcm = cmd
	return nil
}

// Stop stops the manager and the control plane.
func (c *Cluster) Stop() {
	if c.kcm != nil {
		_ = c.kcm.Process.Kill()
		_ = c.kcm.Wait()
	}
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
	if c.Env != nil {
		_ = c.Env.Stop()
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// CreateNamespace creates a namespace with the given labels.
func (c *Cluster) CreateNamespace(ctx context.Context, name string, labels map[string]string) error {
	return c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
}

// KubectlFor is the real kubectl as the cluster's admin, with pluginDir first on PATH so
// that `kubectl stash` finds our kubectl-stash.
func (c *Cluster) AdminKubectl(pluginDir string) testproc.Kubectl {
	return testproc.Kubectl{Kubeconfig: c.Kubeconfig, PluginDir: pluginDir}
}

// Kubectl runs AdminKubectl(pluginDir) with args and returns combined output.
func (c *Cluster) Kubectl(ctx context.Context, pluginDir string, args ...string) (string, error) {
	return c.AdminKubectl(pluginDir).Run(ctx, args...)
}

// KubectlCommand returns the command Kubectl runs, for callers that want stdout alone.
func (c *Cluster) KubectlCommand(ctx context.Context, pluginDir string, args ...string) (*exec.Cmd, error) {
	cmd := c.AdminKubectl(pluginDir).Command(ctx, args...)
	return cmd, cmd.Err
}
