// Package nodeagent stands in for the kubelet in tests and in `make demo`, where no
// container runtime exists: it registers a Node, binds pending Pods to it, runs each
// container's command as a local process (the image is ignored: a binary of the same name
// in BinDir stands in for it), and reports Pod status as the kubelet would: Running, then
// Succeeded or Failed with the exit code and termination message.
//
// The process gets the Pod's environment resolved (value, secretKeyRef, configMapKeyRef,
// fieldRef) and a kubeconfig holding a token of the Pod's service account, so it talks to
// the API server with exactly the rights its Pod would have. Volumes are not remapped:
// a hostPath volume must be mounted at its own path. It is a test tool and is not shipped.
package nodeagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// Agent runs the Pods scheduled to one Node.
type Agent struct {
	// Config reaches the API server as an administrator (to bind Pods and write status).
	Config *rest.Config
	// NodeName is the Node the agent registers.
	NodeName string
	// BinDir holds the binaries that stand in for container images, by command name.
	BinDir string
	// WorkDir receives the logs (NAMESPACE_POD_CONTAINER.log) and kubeconfigs of the Pods.
	WorkDir string
	// Log, when set, receives one line per Pod event.
	Log io.Writer

	client  kubernetes.Interface
	mu      sync.Mutex
	running map[types.UID]context.CancelFunc
	wg      sync.WaitGroup
}

// Run registers the Node and runs Pods until ctx ends; it then kills what still runs.
func (a *Agent) Run(ctx context.Context) error {
	c, err := kubernetes.NewForConfig(a.Config)
	if err != nil {
		return err
	}
	a.client, a.running = c, map[types.UID]context.CancelFunc{}
	if err := os.MkdirAll(a.WorkDir, 0o755); err != nil {
		return err
	}
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	defer a.wg.Wait()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	heartbeat := time.Now()
	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			for _, cancel := range a.running {
				cancel()
			}
			a.mu.Unlock()
			return nil
		case <-tick.C:
		}
		if err := a.sync(ctx); err != nil && ctx.Err() == nil {
			a.logf("sync: %v", err)
		}
		if time.Since(heartbeat) > 10*time.Second {
			heartbeat = time.Now()
			_ = a.markReady(ctx)
		}
	}
}

func (a *Agent) logf(format string, args ...any) {
	if a.Log != nil {
		fmt.Fprintf(a.Log, "node-agent: "+format+"\n", args...)
	}
}

func (a *Agent) registerNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.NodeName, Labels: map[string]string{"kubernetes.io/hostname": a.NodeName, "kubernetes.io/os": "linux"}}}
	if _, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node: %w", err)
	}
	return a.markReady(ctx)
}

func (a *Agent) markReady(ctx context.Context) error {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	node.Status.Capacity, node.Status.Allocatable = capacity, capacity
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "NodeAgentReady", Message: "test node agent", LastHeartbeatTime: now, LastTransitionTime: now}}
	_, err = a.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// sync binds unscheduled Pods and starts the ones bound here.
func (a *Agent) sync(ctx context.Context) error {
	pods, err := a.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	seen := map[types.UID]bool{}
	for i := range pods.Items {
		p := &pods.Items[i]
		seen[p.UID] = true
		switch {
		case p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			continue
		case p.Spec.NodeName == "":
			b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: a.NodeName}}
			if err := a.client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsConflict(err) {
				a.logf("bind %s/%s: %v", p.Namespace, p.Name, err)
			}
		case p.Spec.NodeName == a.NodeName && p.Status.Phase == corev1.PodPending:
			a.start(ctx, p.DeepCopy())
		}
	}
	// A deleted Pod (a Job past its deadline, say) loses its process.
	a.mu.Lock()
	for uid, cancel := range a.running {
		if !seen[uid] {
			cancel()
		}
	}
	a.mu.Unlock()
	for i := range pods.Items {
		if p := &pods.Items[i]; p.DeletionTimestamp != nil {
			a.mu.Lock()
			if cancel, ok := a.running[p.UID]; ok {
				cancel()
			}
			a.mu.Unlock()
		}
	}
	return nil
}

func (a *Agent) start(ctx context.Context, p *corev1.Pod) {
	a.mu.Lock()
	if _, ok := a.running[p.UID]; ok {
		a.mu.Unlock()
		return
	}
	pctx, cancel := context.WithCancel(ctx)
	a.running[p.UID] = cancel
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() {
			a.mu.Lock()
			delete(a.running, p.UID)
			a.mu.Unlock()
			cancel()
		}()
		a.runPod(pctx, ctx, p)
	}()
}

// runPod runs the Pod's containers one after the other and reports the outcome.
func (a *Agent) runPod(ctx, agentCtx context.Context, p *corev1.Pod) {
	start := metav1.Now()
	var statuses []corev1.ContainerStatus
	for _, c := range p.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}})
	}
	a.setStatus(agentCtx, p, corev1.PodRunning, start, statuses)
	a.logf("run %s/%s", p.Namespace, p.Name)
	phase := corev1.PodSucceeded
	for i, c := range p.Spec.Containers {
		code, msg := a.runContainer(ctx, p, &c)
		reason := "Completed"
		if code != 0 {
			phase, reason = corev1.PodFailed, "Error"
		}
		statuses[i].Ready, statuses[i].Started = false, ptr.To(false)
		statuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(code), Reason: reason, Message: msg, StartedAt: start, FinishedAt: metav1.Now()}}
		if code != 0 {
			break
		}
	}
	if ctx.Err() != nil && agentCtx.Err() == nil {
		a.logf("killed %s/%s (deleted)", p.Namespace, p.Name)
		return // the Pod is gone or going; nothing to report to
	}
	a.logf("%s/%s %s", p.Namespace, p.Name, phase)
	a.setStatus(agentCtx, p, phase, start, statuses)
}

func (a *Agent) setStatus(ctx context.Context, p *corev1.Pod, phase corev1.PodPhase, start metav1.Time, statuses []corev1.ContainerStatus) {
	for range 5 {
		cur, err := a.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return
		}
		cur.Status.Phase, cur.Status.StartTime, cur.Status.HostIP, cur.Status.PodIP = phase, &start, "127.0.0.1", "127.0.0.1"
		cur.Status.ContainerStatuses = statuses
		ready := corev1.ConditionFalse
		if phase == corev1.PodRunning {
			ready = corev1.ConditionTrue
		}
		cur.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: start},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()},
		}
		if _, err = a.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil || !apierrors.IsConflict(err) {
			if err != nil {
				a.logf("status of %s/%s: %v", p.Namespace, p.Name, err)
			}
			return
		}
	}
}

// runContainer runs one container's command and returns its exit code and termination message.
func (a *Agent) runContainer(ctx context.Context, p *corev1.Pod, c *corev1.Container) (int, string) {
	fail := func(format string, args ...any) (int, string) {
		msg := fmt.Sprintf(format, args...)
		a.logf("%s/%s: %s", p.Namespace, p.Name, msg)
		return 128, msg
	}
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return fail("container %s has no command: the node agent cannot run images", c.Name)
	}
	bin := filepath.Join(a.BinDir, filepath.Base(argv[0]))
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath(argv[0]); err != nil {
			return fail("no binary for command %q in %s or on PATH", argv[0], a.BinDir)
		}
	}
	env, err := a.environment(ctx, p, c)
	if err != nil {
		return fail("resolve environment: %v", err)
	}
	logPath := filepath.Join(a.WorkDir, fmt.Sprintf("%s_%s_%s.log", p.Namespace, p.Name, c.Name))
	logFile, err := os.Create(logPath)
	if err != nil {
		return fail("create log: %v", err)
	}
	defer logFile.Close()
	var tail tailBuffer
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Env, cmd.Dir = env, a.WorkDir
	cmd.Stdout, cmd.Stderr = io.MultiWriter(logFile, &tail), io.MultiWriter(logFile, &tail)
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
		if code < 0 {
			code = 137
		}
	case err != nil:
		return fail("run %s: %v", bin, err)
	}
	msg := ""
	if code != 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		msg = tail.String()
	}
	return code, msg
}

// environment resolves the container's env as the kubelet would, plus a kubeconfig with
// the service account's token.
func (a *Agent) environment(ctx context.Context, p *corev1.Pod, c *corev1.Container) ([]string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + a.WorkDir}
	if p.Spec.ServiceAccountName != "" {
		kc, err := a.serviceAccountKubeconfig(ctx, p)
		if err != nil {
			return nil, err
		}
		env = append(env, "KUBECONFIG="+kc)
	}
	for _, e := range c.Env {
		v, err := a.resolve(ctx, p, e)
		if err != nil {
			return nil, err
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func (a *Agent) resolve(ctx context.Context, p *corev1.Pod, e corev1.EnvVar) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	switch f := e.ValueFrom; {
	case f.SecretKeyRef != nil:
		s, err := a.client.CoreV1().Secrets(p.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil || s.Data[f.SecretKeyRef.Key] == nil {
			if ptr.Deref(f.SecretKeyRef.Optional, false) {
				return "", nil
			}
			return "", fmt.Errorf("env %s: secret %s key %s: %v", e.Name, f.SecretKeyRef.Name, f.SecretKeyRef.Key, err)
		}
		return string(s.Data[f.SecretKeyRef.Key]), nil
	case f.ConfigMapKeyRef != nil:
		cm, err := a.client.CoreV1().ConfigMaps(p.Namespace).Get(ctx, f.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			if ptr.Deref(f.ConfigMapKeyRef.Optional, false) {
				return "", nil
			}
			return "", fmt.Errorf("env %s: configmap %s: %w", e.Name, f.ConfigMapKeyRef.Name, err)
		}
		return cm.Data[f.ConfigMapKeyRef.Key], nil
	case f.FieldRef != nil:
		switch f.FieldRef.FieldPath {
		case "metadata.name":
			return p.Name, nil
		case "metadata.namespace":
			return p.Namespace, nil
		case "spec.nodeName":
			return a.NodeName, nil
		case "spec.serviceAccountName":
			return p.Spec.ServiceAccountName, nil
		}
		return "", fmt.Errorf("env %s: unsupported fieldRef %s", e.Name, f.FieldRef.FieldPath)
	}
	return "", fmt.Errorf("env %s: unsupported valueFrom", e.Name)
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the Pod's service
// account with a token bound to the Pod, as the projected token volume would.
func (a *Agent) serviceAccountKubeconfig(ctx context.Context, p *corev1.Pod) (string, error) {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
	}}
	tok, err := a.client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.Spec.ServiceAccountName, tr, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", p.Namespace, p.Spec.ServiceAccountName, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: a.Config.Host, CertificateAuthorityData: a.Config.CAData}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "sa", Namespace: p.Namespace}
	cfg.CurrentContext = "sa"
	path := filepath.Join(a.WorkDir, fmt.Sprintf("%s_%s.kubeconfig", p.Namespace, p.Name))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// tailBuffer keeps the last 4 KiB written, like the kubelet's termination message.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(b)
	if t.buf.Len() > 4096 {
		rest := t.buf.Bytes()[t.buf.Len()-4096:]
		t.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
