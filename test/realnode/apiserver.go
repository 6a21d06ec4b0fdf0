package realnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// APIServerOutage is when a RestartAPIServer took the API server away and gave it back.
type APIServerOutage struct {
	// Stopping is when the stop began (SIGTERM): from then on new connections are refused.
	Stopping time.Time
	// Stopped is when the process had exited.
	Stopped time.Time
	// Killed says it had not exited StopGrace after SIGTERM and was SIGKILLed.
	Killed bool
	// Starting is when the new process was started.
	Starting time.Time
	// Serving is when the new process answered /healthz.
	Serving time.Time
}

// Down is how long the API server did not serve: from the stop to /healthz answering again.
func (o APIServerOutage) Down() time.Duration { return o.Serving.Sub(o.Stopping) }

func (o APIServerOutage) String() string {
	how := "exited"
	if o.Killed {
		how = "SIGKILLed"
	}
	return fmt.Sprintf("down %s (%s %s after SIGTERM, kept down %s, serving %s after its start)",
		o.Down().Round(time.Millisecond), how, o.Stopped.Sub(o.Stopping).Round(time.Millisecond),
		o.Starting.Sub(o.Stopped).Round(time.Millisecond), o.Serving.Sub(o.Starting).Round(time.Millisecond))
}

// RestartAPIServer stops kube-apiserver (SIGTERM, as a restart or an upgrade of the control
// plane does), keeps it stopped while whileDown runs (the caller's wait: a fixed time, or a
// state to reach during the outage), and starts a new process on the same address and
// port, with the same serving certificate, client CA, service-account keys and etcd: every
// client (the kubelet, kube-controller-manager, kube-proxy, CoreDNS, the Pods' service-account
// tokens, Config and the kubeconfigs) stays valid and meets a refused connection while it is
// down. It returns once the new process answers /healthz.
//
// envtest supports this: APIServer.Stop keeps a CertDir it did not create (ours, from
// writeServingCerts), Start finds apiserver.crt there and keeps it, and the client-certificate
// CA (SecureServing.Authn) lives in the APIServer value, which outlives the process.
func (c *Cluster) RestartAPIServer(whileDown func()) (APIServerOutage, error) {
	var o APIServerOutage
	if c.env == nil {
		return o, errors.New("the control plane is not running")
	}
	api := c.env.ControlPlane.GetAPIServer()
	pid, err := apiServerPID(api.SecureServing.Port)
	if err != nil {
		return o, err
	}
	c.say("stopping kube-apiserver (pid %d)", pid)
	o.Stopping = time.Now()
	// SIGTERM: it stops listening at once and then waits for the requests it still serves
	// (watches, webhook calls), which can take longer than envtest's 20 s; past StopGrace it
	// is SIGKILLed, as the kubelet does to a static Pod at the end of its grace period.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return o, fmt.Errorf("stop kube-apiserver: %w", err)
	}
	if !gone(pid, StopGrace) {
		o.Killed = true
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !gone(pid, 10*time.Second) {
			return o, fmt.Errorf("kube-apiserver (pid %d) still runs 10 s after SIGKILL", pid)
		}
	}
	o.Stopped = time.Now()
	// envtest sees its process gone and only tidies up, once its own wait has noted the exit
	// (until then it signals a process that no longer exists). The start below needs nothing
	// of it: it makes a new process state.
	for i := 0; ; i++ {
		err := api.Stop()
		if err == nil {
			break
		}
		if i == 100 {
			c.say("envtest's stop of the gone kube-apiserver: %v", err)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	whileDown()
	// The log continues in the same file.
	log, err := os.OpenFile(filepath.Join(c.LogDir, "kube-apiserver.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return o, err
	}
	defer log.Close()
	fmt.Fprintf(log, "--- restarted by the test after %s down\n", time.Since(o.Stopping).Round(time.Millisecond))
	api.Out, api.Err = log, log
	c.say("starting kube-apiserver again")
	o.Starting = time.Now()
	if err := api.Start(); err != nil {
		return o, fmt.Errorf("start kube-apiserver again: %w (see %s)", err, log.Name())
	}
	o.Serving = time.Now()
	c.say("kube-apiserver serves again: %s", o)
	return o, nil
}

// StopGrace is how long RestartAPIServer lets kube-apiserver finish after SIGTERM.
const StopGrace = 5 * time.Second

// apiServerPID finds the kube-apiserver process that serves on port.
func apiServerPID(port string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, "--secure-port="+port) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with --secure-port=%s", port)
}

// gone waits up to timeout for process pid to have exited and been reaped.
func gone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); os.IsNotExist(err) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
