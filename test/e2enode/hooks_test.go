package e2enode

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/realnode"
)

// hookCalls is an HTTP server on the node's address, where the Pods reach it, that records
// each hook's path and Authorization header, and note(path) with it.
type hookCalls struct {
	mu    sync.Mutex
	calls []string
	note  func(path string) string
}

func (h *hookCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, strings.Join(strings.Fields(r.URL.Path+" "+r.Header.Get("Authorization")+" "+h.note(r.URL.Path)), " "))
}

func (h *hookCalls) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// TestHooks runs hooks with the images: an exec preBackup hook writes a marker with redis-cli
// inside the Redis Pod (through pods/exec, which the runner's Role allows on that Pod alone),
// the snapshot holds it; an httpPost postBackup hook with OnFailure and a token from a Secret
// is called only for the failed session; preRestore and postRestore run around the load.
func TestHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := "node-hooks"
	namespace(t, ns)
	src := redisPod(t, ns, "redis-src")
	dst := redisPod(t, ns, "redis-dst")
	loadSample(t, src, 2000)
	const token = "Bearer node-tok-5e1b"
	cmd := cluster.KubectlCommand(ctx, "create", "secret", "generic", "chat", "-n", ns, "--from-file=token=/dev/stdin")
	cmd.Stdin = strings.NewReader(token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create the token Secret: %v\n%s", err, out)
	}
	calls := &hookCalls{note: func(path string) string {
		if strings.Contains(path, "restore") {
			return "dbsize=" + strconv.FormatInt(dst.DBSize(ctx).Val(), 10)
		}
		return ""
	}}
	ln, err := net.Listen("tcp", net.JoinHostPort(realnode.Gateway, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: calls, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	bc := func(preBackup string) string {
		return fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: hooked, namespace: %[1]s}
spec:
  schedule: "@daily"
  timeZone: Europe/Berlin
  repository: {name: repo}
  target: {redis: {service: {name: redis-src}}}
  hooks:
    preBackup:
      exec: {command: [%[2]s]}
      containerName: redis
    postBackup:
      executionPolicy: OnFailure
      httpPost:
        host: %[3]s
        port: %[4]d
        path: /backup-failed
        body: '{"text": "backup failed"}'
        httpHeaders:
        - {name: Authorization, valueFrom: {secretKeyRef: {name: chat, key: token}}}
`, ns, preBackup, realnode.Gateway, port)
	}
	applyYAML(t, bc(`/usr/bin/redis-cli, SET, marker, written-in-the-pod`))
	c := apiClient(t)
	first := waitBackupSession(t, c, ns, triggeredSession(t, ns, "hooked"), 3*time.Minute)
	if first.Status.Phase != v1alpha1.SessionSucceeded || !meta.IsStatusConditionTrue(first.Status.Conditions, v1alpha1.ConditionPreBackupHookSucceeded) {
		t.Fatalf("backup with hooks: %+v\n%s", first.Status, admin.Must(t, "stash", "backup", "logs", first.Name, "-n", ns))
	}
	if cond := meta.FindStatusCondition(first.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded); cond == nil || cond.Reason != "Skipped" {
		t.Errorf("postBackup OnFailure after a success: %+v", cond)
	}
	if got := calls.list(); len(got) != 0 {
		t.Errorf("OnFailure hook called after a success: %v", got)
	}
	if args := strings.Join(sessionPod(t, c, ns, first.Name).Spec.Containers[0].Args, " "); !strings.Contains(args, "--hook-pod redis-src") {
		t.Errorf("runner args %q", args)
	}

	applyYAML(t, fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: RestoreSession
metadata: {name: hooked-restore, namespace: %[1]s}
spec:
  repository: {name: repo}
  target: {redis: {service: {name: redis-dst}}}
  hooks:
    preRestore: {httpPost: {host: %[2]s, port: %[3]d, path: /pre-restore}}
    postRestore: {httpGet: {host: %[2]s, port: %[3]d, path: /post-restore}}
`, ns, realnode.Gateway, port))
	rs := waitRestoreSession(t, c, ns, "hooked-restore", 3*time.Minute)
	keys := src.DBSize(ctx).Val()
	if want := []string{"/pre-restore dbsize=0", fmt.Sprintf("/post-restore dbsize=%d", keys)}; rs.Status.Phase != v1alpha1.SessionSucceeded ||
		strings.Join(calls.list(), ",") != strings.Join(want, ",") {
		t.Errorf("restore hooks: phase %s, calls %v, want %v", rs.Status.Phase, calls.list(), want)
	}
	if got := dst.Get(ctx, "marker").Val(); got != "written-in-the-pod" {
		t.Errorf("marker in the restored data: %q", got)
	}
	if a, b := digest(t, src), digest(t, dst); a != b {
		t.Errorf("digest mismatch: source %s, restored %s", a, b)
	}

	// A preBackup that fails (redis-cli to a port nobody serves): the session fails before
	// anything is read, and the OnFailure hook is called with the token.
	applyYAML(t, bc(`/usr/bin/redis-cli, -p, "1", PING`))
	failed := waitBackupSession(t, c, ns, triggeredSession(t, ns, "hooked"), 3*time.Minute)
	if failed.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(failed.Status.Error, "preBackup hook failed") {
		t.Errorf("failing preBackup: %+v", failed.Status)
	}
	waitFor(t, 30*time.Second, "the OnFailure hook is called", func() error {
		for _, call := range calls.list() {
			if call == "/backup-failed "+token {
				return nil
			}
		}
		return fmt.Errorf("calls %v", calls.list())
	})
	var logs string
	for _, s := range []string{first.Name, failed.Name} {
		logs += admin.Must(t, "stash", "backup", "logs", s, "-n", ns)
	}
	objects := admin.Must(t, "get", "backupsessions,restoresessions,events,jobs,pods", "-n", ns, "-o", "yaml")
	if strings.Contains(logs+objects, "node-tok-5e1b") {
		t.Errorf("the token shows in the runner's logs or the namespace's objects")
	}
}
