// Package localcluster starts the whole system on this machine, without a container
// runtime: etcd and kube-apiserver (envtest), the real kube-controller-manager (CronJob,
// Job, garbage-collector, service-account and namespace controllers), the test node agent
// that runs Pods as local processes, and stash-webhook as a local process, installed with
// `kubectl stash install --webhook-url`. The e2e tests and `make demo` use it.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/nodeagent"
	"stash.dev/redis/test/testproc"
)

// Options say where the binaries are and where to put state.
type Options struct {
	// BinDir holds kubectl-stash, stash-webhook and stash-runner (`make build` writes bin/).
	BinDir string
	// Dir receives the kubeconfig, logs and the node agent's work files.
	Dir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is a running local cluster.
type Cluster struct {
	Config      *rest.Config
	Kubeconfig  string
	MetricsURL  string
	Dir, BinDir string

	env     *envtest.Environment
	procs   []*exec.Cmd
	pids    map[string]int
	cancel  context.CancelFunc
	agentWG sync.WaitGroup
	log     io.Writer
}

// Controllers of kube-controller-manager that the flow needs.
var kcmControllers = []string{"cronjob-controller", "job-controller", "garbage-collector-controller", "serviceaccount-controller", "namespace-controller"}

// Start starts everything; Stop undoes it. KUBEBUILDER_ASSETS must name a directory with
// kube-apiserver, etcd, kube-controller-manager and kubectl (hack/envtest-assets.sh with
// WITH_CONTROLLER_MANAGER=1, which `make test` and `make demo` run).
func Start(o Options) (*Cluster, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run through `make test` or `make demo`")
	}
	for _, b := range []string{"kubectl-stash", "stash-webhook", "stash-runner"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make build`", b, o.BinDir)
		}
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	c := &Cluster{Dir: o.Dir, BinDir: o.BinDir, log: log}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	c.say("starting etcd and kube-apiserver")
	c.env = &envtest.Environment{}
	cfg, err := c.env.Start()
	if err != nil {
		return fail(fmt.Errorf("start control plane: %w", err))
	}
	c.Config = cfg
	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := clustertest.WriteKubeconfig(c.env, clustertest.Admin, c.Kubeconfig); err != nil {
		return fail(err)
	}

	c.say("starting kube-controller-manager (%s)", strings.Join(kcmControllers, ", "))
	if err := c.startProcess("kube-controller-manager", filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--controllers", strings.Join(kcmControllers, ","),
		"--leader-elect=false", "--secure-port=0", "--concurrent-cron-job-syncs=5", "--concurrent-job-syncs=5"); err != nil {
		return fail(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.say("starting the test node agent (Pods run as local processes from %s)", o.BinDir)
	agent := &nodeagent.Agent{Config: cfg, NodeName: "local-node", BinDir: o.BinDir, WorkDir: filepath.Join(o.Dir, "pods"), Log: log}
	c.agentWG.Add(1)
	go func() {
		defer c.agentWG.Done()
		if err := agent.Run(ctx); err != nil {
			fmt.Fprintln(log, "node agent:", err)
		}
	}()

	port, err := testproc.FreePort()
	if err != nil {
		return fail(err)
	}
	metrics, err := testproc.FreePort()
	if err != nil {
		return fail(err)
	}
	webhookURL := "https://localhost:" + strconv.Itoa(port)
	c.say("kubectl stash install --skip-deployment --webhook-url %s", webhookURL)
	if out, err := c.AdminKubectl().Run(ctx, "stash", "install", "--skip-deployment", "--webhook-url", webhookURL); err != nil {
		return fail(fmt.Errorf("kubectl stash install: %w\n%s", err, out))
	}
	c.MetricsURL = fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)
	c.say("starting stash-webhook on 127.0.0.1:%d (metrics on %s)", port, c.MetricsURL)
	if err := c.startProcess("stash-webhook", filepath.Join(o.BinDir, "stash-webhook"),
		"--kubeconfig", c.Kubeconfig, "--namespace", "stash-system", "--write-cert-files", "--cert-dir", filepath.Join(o.Dir, "certs"),
		"--cert-extra-names", "localhost", "--webhook-host", "127.0.0.1", "--webhook-port", strconv.Itoa(port),
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(metrics), "--health-probe-bind-address", "0",
		"--runner-image", "stash-runner"); err != nil {
		return fail(err)
	}
	if err := c.AdminKubectl().WaitForWebhook(ctx, o.Dir, 90*time.Second); err != nil {
		return fail(fmt.Errorf("%w (see %s)", err, filepath.Join(o.Dir, "stash-webhook.log")))
	}
	c.say("cluster ready: export KUBECONFIG=%s", c.Kubeconfig)
	return c, nil
}

func (c *Cluster) say(format string, args ...any) { fmt.Fprintf(c.log, "--- "+format+"\n", args...) }

func (c *Cluster) startProcess(name, bin string, args ...string) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(c.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs = append(c.procs, cmd)
	if c.pids == nil {
		c.pids = map[string]int{}
	}
	c.pids[name] = cmd.Process.Pid
	return nil
}

// Pid returns the process id of a process Start started (stash-webhook,
// kube-controller-manager), or 0: what a bench measures the controller's CPU and memory by.
func (c *Cluster) Pid(name string) int { return c.pids[name] }

// AdminKubectl is the real kubectl as the cluster's admin, with BinDir first on PATH.
func (c *Cluster) AdminKubectl() testproc.Kubectl {
	return testproc.Kubectl{Kubeconfig: c.Kubeconfig, PluginDir: c.BinDir}
}

// Metrics returns the controller's /metrics page.
func (c *Cluster) Metrics() (string, error) {
	resp, err := http.Get(c.MetricsURL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Stop stops everything Start started.
func (c *Cluster) Stop() {
	if c.cancel != nil {
		c.cancel()
		c.agentWG.Wait()
	}
	for i := len(c.procs) - 1; i >= 0; i-- {
		testproc.Interrupt(c.procs[i], 10*time.Second)
	}
	if c.env != nil {
		_ = c.env.Stop()
	}
}
