// Package realnode starts a real single-node Kubernetes cluster on this machine, for the
// end-to-end tests and `make demo`: etcd and kube-apiserver (through envtest),
// kube-controller-manager, kube-scheduler, containerd with runc, a kubelet, the bridge CNI
// plugin and kube-proxy in iptables mode, so that Pods run the project's real images and reach
// each other through Services. Images come from OCI archives imported into containerd; there
// is no registry. It needs root on Linux with cgroup v1 controllers, and the node pieces that
// hack/node-assets.sh builds (the README, "How the tests stand up a real cluster", says every setting and why).
//
// Everything it starts it stops, and everything it creates on the host has a fixed name
// (Bridge, CgroupName, a state file in /run), so a run that was killed is cleaned up by the next.
package realnode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/testproc"
)

// NodeName is the node's name.
const NodeName = "stash-node"

// PauseImage is the sandbox image containerd is configured with (Start imports it).
const PauseImage = "stash.dev/pause:realnode"

// Options say where the pieces are and where to put state.
type Options struct {
	// Assets is hack/node-assets.sh's directory (kubelet, kube-scheduler, kube-proxy,
	// containerd, ctr, containerd-shim-runc-v2); empty means $STASH_NODE_ASSETS.
	Assets string
	// BinDir is put first on kubectl's PATH: the directory holding kubectl-stash.
	BinDir string
	// LogDir receives the components' logs, which outlive the run; empty keeps them in the
	// run's directory, which Stop removes.
	LogDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is a running real node with its control plane.
type Cluster struct {
	Config     *rest.Config
	Kubeconfig string
	// Dir holds every file of the run: certificates, configs, logs, containerd's and the
	// kubelet's state.
	Dir    string
	BinDir string
	// LogDir holds kube-apiserver's neighbours' logs: <component>.log.
	LogDir string

	assets string
	env    *envtest.Environment
	procs  []*exec.Cmd
	state  *state
	lock   *os.File
	sock   string
	log    io.Writer
}

// Available says why this machine cannot run a real node, or nil when it can.
func Available() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("a real node needs Linux (this is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("a real node needs root (cgroups, a bridge, iptables, mounts)")
	}
	if _, err := cgroupControllers(); err != nil {
		return fmt.Errorf("a real node needs cgroup v1 controllers (kubelet 1.37 with failCgroupV1: false): %w", err)
	}
	return nil
}

// Start starts the cluster; Stop undoes it. KUBEBUILDER_ASSETS must name hack/envtest-assets.sh's
// directory (with WITH_CONTROLLER_MANAGER=1).
func Start(o Options) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	assets := o.Assets
	if assets == "" {
		assets = os.Getenv("STASH_NODE_ASSETS")
	}
	if assets == "" {
		return nil, errors.New("STASH_NODE_ASSETS is not set: run through `make test` (hack/node-assets.sh)")
	}
	envtestAssets := os.Getenv("KUBEBUILDER_ASSETS")
	if envtestAssets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run through `make test` (hack/envtest-assets.sh)")
	}
	for _, b := range []string{"kubelet", "kube-scheduler", "kube-proxy", "containerd", "ctr", "containerd-shim-runc-v2", "coredns"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run hack/node-assets.sh", b, assets)
		}
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	c := &Cluster{assets: assets, BinDir: o.BinDir, LogDir: o.LogDir, log: log}
	var err error
	if c.lock, err = lock(); err != nil {
		return nil, err
	}
	cleanStale(c.say)
	if c.Dir, err = os.MkdirTemp("", "stash-realnode-"); err != nil {
		c.lock.Close()
		return nil, err
	}
	if c.LogDir == "" {
		c.LogDir = c.Dir
	}
	fwd, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	c.state = &state{Dir: c.Dir, Proxy: filepath.Join(assets, "kube-proxy"), IPForward: strings.TrimSpace(string(fwd))}
	if err := c.state.save(); err != nil {
		return c.fail(err)
	}
	if err := c.start(envtestAssets); err != nil {
		return c.fail(err)
	}
	return c, nil
}

func (c *Cluster) fail(err error) (*Cluster, error) {
	c.Stop()
	return nil, err
}

func (c *Cluster) start(envtestAssets string) error {
	// Pods reach the host, and Services their endpoints, through forwarding.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	if err := makeBridge(); err != nil {
		return err
	}
	if err := makeCgroups(); err != nil {
		return err
	}

	c.say("starting etcd and kube-apiserver on %s", Gateway)
	certDir := filepath.Join(c.Dir, "apiserver")
	caFile, err := writeServingCerts(certDir)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	ctrllog.SetLogger(logr.Discard())
	c.env = &envtest.Environment{BinaryAssetsDirectory: envtestAssets}
	api := c.env.ControlPlane.GetAPIServer()
	api.CertDir = certDir
	// Pods reach the API server (the kubernetes Service's endpoint) at the node's address; envtest
	// keeps an address only when it is given a port too.
	apiPort, err := testproc.FreePort()
	if err != nil {
		return err
	}
	api.SecureServing.ListenAddr.Address, api.SecureServing.ListenAddr.Port = Gateway, strconv.Itoa(apiPort)
	api.SecureServing.CA = ca
	api.StartTimeout = time.Minute
	apiLog, err := os.Create(filepath.Join(c.LogDir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	defer apiLog.Close()
	api.Out, api.Err = apiLog, apiLog
	api.Configure().
		Set("advertise-address", Gateway).
		Set("authorization-mode", "Node,RBAC").
		Set("kubelet-preferred-address-types", "InternalIP").
		Set("service-cluster-ip-range", ServiceSubnet).
		Set("allow-privileged", "true")
	// envtest turns the ServiceAccount admission plugin off; Pods need their tokens.
	api.Configure().Disable("disable-admission-plugins")
	cfg, err := c.env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	c.Config = cfg
	if c.Kubeconfig, err = c.kubeconfig("admin", clustertest.Admin); err != nil {
		return err
	}
	kubeletKC, err := c.kubeconfig("kubelet", envtest.User{Name: "system:node:" + NodeName, Groups: []string{"system:nodes"}})
	if err != nil {
		return err
	}

	c.say("starting kube-controller-manager and kube-scheduler")
	if err := c.startProcess("kube-controller-manager", filepath.Join(envtestAssets, "kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--controllers=*", "--leader-elect=false", "--secure-port=0",
		"--root-ca-file", caFile, "--service-account-private-key-file", filepath.Join(certDir, "sa-signer.key"),
		"--use-service-account-credentials=false", "--concurrent-cron-job-syncs=5", "--concurrent-job-syncs=5"); err != nil {
		return err
	}
	schedPort, err := testproc.FreePort()
	if err != nil {
		return err
	}
	if err := c.startProcess("kube-scheduler", filepath.Join(c.assets, "kube-scheduler"),
		"--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port", strconv.Itoa(schedPort)); err != nil {
		return err
	}

	c.say("starting containerd")
	sock, err := c.startContainerd()
	if err != nil {
		return err
	}
	if err := c.ImportImage(context.Background(), filepath.Join(c.Dir, "images", "pause.tar")); err != nil {
		return err
	}

	c.say("starting the kubelet (node %s, IP %s) and kube-proxy", NodeName, Gateway)
	if err := c.startKubelet(kubeletKC, sock); err != nil {
		return err
	}
	if err := c.startKubeProxy(); err != nil {
		return err
	}
	if err := c.startCoreDNS(); err != nil {
		return err
	}
	return c.waitNodeReady()
}

// writeServingCerts writes the API server's CA, serving certificate and service-account key pair
// (envtest keeps the files it finds in its directory): the certificate names the node's address
// and the kubernetes Service's address and names, which in-cluster clients dial.
func writeServingCerts(dir string) (string, error) {
	files, err := WriteCerts(dir, "kube-apiserver", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "127.0.0.1", Gateway, "10.0.0.1")
	if err != nil {
		return "", err
	}
	for src, dst := range map[string]string{files.CertFile: "apiserver.crt", files.KeyFile: "apiserver.key"} {
		if err := os.Rename(src, filepath.Join(dir, dst)); err != nil {
			return "", err
		}
	}
	// The service-account tokens are signed with a key of their own.
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return "", err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return "", err
	}
	if err := testproc.WritePEM(filepath.Join(dir, "sa-signer.key"), "EC PRIVATE KEY", saDER); err != nil {
		return "", err
	}
	return files.CAFile, testproc.WritePEM(filepath.Join(dir, "sa-signer.crt"), "PUBLIC KEY", saPub)
}

// CertFiles are PEM files of a CA and a server certificate it signed.
type CertFiles struct{ CAFile, CertFile, KeyFile string }

// WriteCerts makes a fresh CA and a server certificate for hosts (IP addresses or DNS names)
// in dir: ca.crt, <name>.crt, <name>.key.
func WriteCerts(dir, name string, hosts ...string) (CertFiles, error) {
	ca, err := testproc.NewCA(dir, name+" CA")
	if err != nil {
		return CertFiles{}, err
	}
	f := CertFiles{CAFile: ca.File}
	f.CertFile, f.KeyFile, err = ca.Issue(name, x509.ExtKeyUsageServerAuth, hosts...)
	return f, err
}

// kubeconfig writes a kubeconfig for a user that envtest's authenticator knows.
func (c *Cluster) kubeconfig(name string, u envtest.User) (string, error) {
	path := filepath.Join(c.Dir, name+".kubeconfig")
	return path, clustertest.WriteKubeconfig(c.env, u, path)
}

func (c *Cluster) startContainerd() (string, error) {
	dir := filepath.Join(c.Dir, "containerd")
	cniConf := filepath.Join(c.Dir, "cni")
	for _, d := range []string{dir, cniConf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	sock := filepath.Join(dir, "containerd.sock")
	// restrict_oom_score_adj: without CAP_SYS_RESOURCE, runc fails every sandbox when it may
	// lower oom_score_adj. netns_mounts_under_state_dir keeps the Pods' network namespaces in
	// this run's directory, where Stop (or the next run) finds them.
	conf := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %[6]q
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = %[7]q
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "opt"), PauseImage, cniConf)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644); err != nil {
		return "", err
	}
	// The bridge exists already with the gateway address; host-local keeps its leases here.
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "stash-realnode", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": %q}}]}
`, Bridge, PodSubnet, Gateway, filepath.Join(c.Dir, "cni-ipam"))
	if err := os.WriteFile(filepath.Join(cniConf, "10-stash-realnode.conflist"), []byte(cni), 0o644); err != nil {
		return "", err
	}
	c.sock = sock
	if err := c.startProcess("containerd", filepath.Join(c.assets, "containerd"), "--config", filepath.Join(dir, "config.toml")); err != nil {
		return "", err
	}
	if err := testproc.Poll(30*time.Second, "containerd answers", func() error {
		_, err := c.ctr(context.Background(), "version")
		return err
	}); err != nil {
		return "", err
	}
	if err := c.packPause(); err != nil {
		return "", err
	}
	return sock, nil
}

func (c *Cluster) startKubelet(kubeconfig, sock string) error {
	ports := make([]int, 2)
	for i := range ports {
		p, err := testproc.FreePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	// Each setting answers a failure on these machines (the README, "How the tests stand up a real cluster").
	conf := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%s
failSwapOn: false
containerRuntimeEndpoint: unix://%s
address: %s
port: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
readOnlyPort: 0
clusterDNS: [%[6]s]
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
resolvConf: /etc/resolv.conf
serializeImagePulls: false
`, CgroupName, sock, Gateway, ports[0], ports[1], Gateway)
	path := filepath.Join(c.Dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	return c.startProcess("kubelet", filepath.Join(c.assets, "kubelet"),
		"--config", path, "--kubeconfig", kubeconfig, "--node-ip", Gateway, "--hostname-override", NodeName,
		"--root-dir", filepath.Join(c.Dir, "kubelet"), "--cert-dir", filepath.Join(c.Dir, "kubelet-pki"))
}

// startKubeProxy runs kube-proxy in iptables mode. --masquerade-all: a Pod that reaches a
// Service whose endpoint is on the same bridge gets the answer back through the host, which
// undoes the DNAT (there is no br_netfilter to see bridged replies).
func (c *Cluster) startKubeProxy() error {
	metrics, err := testproc.FreePort()
	if err != nil {
		return err
	}
	healthz, err := testproc.FreePort()
	if err != nil {
		return err
	}
	return c.startProcess("kube-proxy", filepath.Join(c.assets, "kube-proxy"),
		"--kubeconfig", c.Kubeconfig, "--proxy-mode=iptables", "--hostname-override", NodeName,
		"--cluster-cidr", PodSubnet, "--masquerade-all", "--conntrack-max-per-core=0",
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(metrics), "--healthz-bind-address", "127.0.0.1:"+strconv.Itoa(healthz))
}

// startCoreDNS serves cluster DNS (Services and Pods by name) on the node's address, which the
// kubelet writes into every Pod's resolv.conf. It runs beside the kubelet rather than as a Pod:
// the same server, without an image and a Deployment to wait for. Other names get NXDOMAIN.
func (c *Cluster) startCoreDNS() error {
	conf := fmt.Sprintf(`.:53 {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, Gateway, c.Kubeconfig)
	path := filepath.Join(c.Dir, "Corefile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return err
	}
	return c.startProcess("coredns", filepath.Join(c.assets, "coredns"), "-conf", path)
}

func (c *Cluster) waitNodeReady() error {
	return testproc.Poll(2*time.Minute, "node "+NodeName+" Ready", func() error {
		out, err := c.Kubectl(context.Background(), "get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || strings.TrimSpace(out) != "True" {
			return fmt.Errorf("ready=%q %v (see %s)", out, err, filepath.Join(c.LogDir, "kubelet.log"))
		}
		return nil
	})
}

func (c *Cluster) say(format string, args ...any) { fmt.Fprintf(c.log, "--- "+format+"\n", args...) }

func (c *Cluster) startProcess(name, bin string, args ...string) error {
	logFile, err := os.Create(filepath.Join(c.LogDir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// containerd finds the shim and runc on PATH.
	cmd.Env = append(os.Environ(), "PATH="+c.assets+":/usr/sbin:/usr/bin:/sbin:/bin")
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	logFile.Close()
	c.procs = append(c.procs, cmd)
	c.state.PIDs = append(c.state.PIDs, cmd.Process.Pid)
	c.state.Exes = append(c.state.Exes, bin)
	return c.state.save()
}

// Stop stops everything Start started and removes what it created on the host.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		testproc.Interrupt(c.procs[i], 10*time.Second)
	}
	if c.env != nil {
		_ = c.env.Stop()
	}
	if c.state != nil {
		c.state.teardown(c.say)
	}
	if c.lock != nil {
		c.lock.Close()
	}
}
