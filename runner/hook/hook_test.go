package hook_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/hook"
)

// recorder is an HTTP server that records each request and answers with status.
type recorder struct {
	mu       sync.Mutex
	requests []string
	status   int
	delay    time.Duration
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.requests = append(rec.requests, r.Method+" "+r.URL.Path+" auth="+r.Header.Get("Authorization")+" ct="+r.Header.Get("Content-Type")+" body="+string(b))
	status, delay := rec.status, rec.delay
	rec.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	w.WriteHeader(status)
}

func hostPort(t *testing.T, raw string) (string, int32) {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, p, _ := net.SplitHostPort(u.Host)
	n, _ := strconv.Atoi(p)
	return h, int32(n)
}

const token = "Bearer tok-4f9a"

func TestHTTPHooks(t *testing.T) {
	rec := &recorder{status: http.StatusOK}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	host, port := hostPort(t, srv.URL)
	var log bytes.Buffer
	r := &hook.Runner{Namespace: "db", DefaultHost: host, Log: &log, Secret: func(_ context.Context, name, key string) ([]byte, error) {
		if name == "chat" && key == "token" {
			return []byte(token + "\n"), nil
		}
		return nil, errors.New("Secret db/" + name + " has no key " + key)
	}}
	auth := v1alpha1.HTTPHeader{Name: "Authorization", ValueFrom: &v1alpha1.HeaderValueSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "chat"}, Key: "token"}}}
	post := &v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{Port: intstr.FromInt32(port), Path: "/notify", Body: `{"text":"x"}`,
		HTTPHeaders: []v1alpha1.HTTPHeader{{Name: "Content-Type", Value: "application/json"}, auth}}}
	if err := r.Run(context.Background(), post); err != nil {
		t.Fatalf("post: %v", err)
	}
	form := &v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{Host: host, Port: intstr.FromInt32(port), Path: "/form", Form: []v1alpha1.FormEntry{{Key: "a", Values: []string{"1", "2"}}}}}
	if err := r.Run(context.Background(), form); err != nil {
		t.Fatalf("form: %v", err)
	}
	get := &v1alpha1.HookHandler{HTTPGet: &v1alpha1.HTTPGetHook{Port: intstr.FromInt32(port), Path: "/get"}}
	if err := r.Run(context.Background(), get); err != nil {
		t.Fatalf("get: %v", err)
	}
	want := []string{
		`POST /notify auth=` + token + ` ct=application/json body={"text":"x"}`,
		`POST /form auth= ct=application/x-www-form-urlencoded body=a=1&a=2`,
		`GET /get auth= ct= body=`,
	}
	if strings.Join(rec.requests, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(rec.requests, "\n"), strings.Join(want, "\n"))
	}

	// A refusal fails the hook; the error names the request, not the header's value.
	rec.status = http.StatusForbidden
	err := r.Run(context.Background(), post)
	if err == nil || !strings.Contains(err.Error(), "POST http://"+host+":"+strconv.Itoa(int(port))+"/notify: 403 Forbidden") {
		t.Errorf("403: got %v", err)
	}
	// A missing Secret key fails before anything is sent.
	rec.requests = nil
	bad := *post.HTTPPost
	bad.HTTPHeaders = []v1alpha1.HTTPHeader{{Name: "Authorization", ValueFrom: &v1alpha1.HeaderValueSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "chat"}, Key: "nope"}}}}
	if err := r.Run(context.Background(), &v1alpha1.HookHandler{HTTPPost: &bad}); err == nil || !strings.Contains(err.Error(), "has no key nope") || len(rec.requests) != 0 {
		t.Errorf("missing key: %v, requests %v", err, rec.requests)
	}
	// A server slower than the timeout: the hook fails with "timed out" in about the timeout.
	rec.status, rec.delay = http.StatusOK, 10*time.Second
	slow := &v1alpha1.HookHandler{HTTPPost: post.HTTPPost, Timeout: "300ms"}
	start := time.Now()
	err = r.Run(context.Background(), slow)
	if took := time.Since(start); err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || took > 5*time.Second {
		t.Errorf("slow: %v after %s", err, took)
	}
	if strings.Contains(log.String(), "tok-4f9a") {
		t.Errorf("the log holds the token:\n%s", log.String())
	}
}

func TestTCPHook(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := int32(ln.Addr().(*net.TCPAddr).Port)
	r := &hook.Runner{DefaultHost: "127.0.0.1"}
	if err := r.Run(context.Background(), &v1alpha1.HookHandler{TCPSocket: &v1alpha1.TCPSocketHook{Port: intstr.FromInt32(port)}}); err != nil {
		t.Errorf("open port: %v", err)
	}
	ln.Close()
	err = r.Run(context.Background(), &v1alpha1.HookHandler{TCPSocket: &v1alpha1.TCPSocketHook{Port: intstr.FromInt32(port)}})
	if err == nil || !strings.Contains(err.Error(), "tcpSocket 127.0.0.1:"+strconv.Itoa(int(port))+": connect: connection refused") {
		t.Errorf("closed port: %v", err)
	}
}

// localExec runs a hook's command as a local process, as the node agent runs a Pod's: the
// transport of pods/exec is the real node's to test, the rest (command, exit code, output,
// timeout) is the same.
type localExec struct{ calls []string }

func (l *localExec) Exec(ctx context.Context, ns, pod, container string, command []string, stdout, stderr io.Writer) error {
	l.calls = append(l.calls, ns+"/"+pod+"/"+container)
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

func TestExecHook(t *testing.T) {
	var log bytes.Buffer
	ex := &localExec{}
	r := &hook.Runner{Namespace: "db", Pod: "redis-0", Exec: ex, Log: &log}
	if err := r.Run(context.Background(), &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo quiesced"}}, ContainerName: "redis"}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if len(ex.calls) != 1 || ex.calls[0] != "db/redis-0/redis" || !strings.Contains(log.String(), "quiesced") {
		t.Errorf("calls %v log %q", ex.calls, log.String())
	}
	err := r.Run(context.Background(), &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 3"}}})
	if err == nil || !strings.Contains(err.Error(), `exec "sh" in pod redis-0: exit code 3`) {
		t.Errorf("exit 3: %v", err)
	}
	err = r.Run(context.Background(), &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"sleep", "10"}}, Timeout: "200ms"})
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Errorf("timeout: %v", err)
	}
	noPod := &hook.Runner{Namespace: "db", Exec: ex}
	if err := noPod.Run(context.Background(), &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}); err == nil || !strings.Contains(err.Error(), "no Pod of the target") {
		t.Errorf("no pod: %v", err)
	}
}
