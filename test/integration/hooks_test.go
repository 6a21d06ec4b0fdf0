package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
	"stash.dev/redis/test/redistest"
)

// hookServer is the HTTP endpoint of the tests' hooks: it records each call (path and
// Authorization header) and what onCall returns for it, and answers with status.
type hookServer struct {
	mu     sync.Mutex
	calls  []string
	status int
	delay  time.Duration
	onCall func(path string) string
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	note := ""
	if h.onCall != nil {
		note = h.onCall(r.URL.Path)
	}
	h.calls = append(h.calls, strings.Join(strings.Fields(r.URL.Path+" "+r.Header.Get("Authorization")+" "+note), " "))
	status, delay := h.status, h.delay
	h.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	w.WriteHeader(status)
}

func (h *hookServer) took() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// localExec runs an exec hook's command as a local process, the way the node agent runs a
// Pod's command: what the hook does to Redis is real; the pods/exec transport is the real
// node's to test (test/e2enode).
type localExec struct{}

func (localExec) Exec(ctx context.Context, _, _, _ string, command []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

func condition(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return "none"
	}
	return string(c.Status) + "/" + c.Reason
}

// TestHooks: an exec preBackup hook writes a marker through redis-cli, which the snapshot
// holds; an httpPost postBackup hook with OnFailure, its token read from a Secret, is called
// for the failed session only; a failing preBackup fails the session before the source is
// touched; a slow hook times out; preRestore and postRestore run around the load. Conditions
// say what ran, and the token appears in no status and no log.
func TestHooks(t *testing.T) {
	ctx := context.Background()
	f := setup(t, "hooks")
	const token = "Bearer tok-9d2c71"
	if err := cluster.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: f.ns}, StringData: map[string]string{"token": token}}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	srv := &hookServer{status: http.StatusOK, onCall: func(path string) string {
		if strings.Contains(path, "restore") {
			return "dbsize=" + strconv.FormatInt(dst.Client.DBSize(ctx).Val(), 10)
		}
		return ""
	}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	host, portStr, _ := net.SplitHostPort(strings.TrimPrefix(hs.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	_, srcPort, _ := net.SplitHostPort(f.src.Addr)

	marker := &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "-h", "127.0.0.1", "-p", srcPort, "--no-auth-warning", "-a", "redis-secret", "SET", "marker", "written-by-prebackup"}}, ContainerName: "redis"}
	notify := &v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFailure, HookHandler: v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{
		Host: host, Port: intstr.FromInt(port), Path: "/backup-failed", Body: `{"text":"backup failed"}`,
		HTTPHeaders: []v1alpha1.HTTPHeader{{Name: "Authorization", ValueFrom: &v1alpha1.HeaderValueSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "chat"}, Key: "token"}}}},
	}}}
	setHooks := func(h *v1alpha1.BackupHooks) {
		t.Helper()
		bc := &v1alpha1.BackupConfiguration{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "nightly"}, bc); err != nil {
			t.Fatal(err)
		}
		bc.Spec.Hooks = h
		if err := cluster.Client.Update(ctx, bc); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	opts := session.Options{Log: &logs, Hooks: session.HookOptions{Pod: "redis-0", Exec: localExec{}}}
	statusJSON := func(s *v1alpha1.BackupSession) string { b, _ := json.Marshal(s.Status); return string(b) }

	// 1. A good backup: the marker is written first and is in the snapshot; OnFailure skips.
	setHooks(&v1alpha1.BackupHooks{PreBackup: marker, PostBackup: notify})
	first := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, first.Name, opts); err != nil {
		t.Fatalf("backup: %v\n%s", err, logs.String())
	}
	s := getSession(t, f.ns, first.Name)
	if s.Status.Phase != v1alpha1.SessionSucceeded || condition(s.Status.Conditions, v1alpha1.ConditionPreBackupHookSucceeded) != "True/Succeeded" ||
		condition(s.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded) != "Unknown/Skipped" {
		t.Fatalf("status after a good backup: %s", statusJSON(s))
	}
	if calls := srv.took(); len(calls) != 0 {
		t.Errorf("OnFailure hook called after a success: %v", calls)
	}

	// 2. preRestore and postRestore around the load: the first sees an empty target, the
	// second every key, the marker among them.
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "restore-hooks", Namespace: f.ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"}, Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: dst.Addr}},
		Hooks: &v1alpha1.RestoreHooks{
			PreRestore:  &v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{Host: host, Port: intstr.FromInt(port), Path: "/pre-restore"}},
			PostRestore: &v1alpha1.PostHook{HookHandler: v1alpha1.HookHandler{HTTPGet: &v1alpha1.HTTPGetHook{Host: host, Port: intstr.FromInt(port), Path: "/post-restore"}}},
		},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := session.RunRestore(ctx, cluster.Client, f.ns, rs.Name, opts); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
		t.Fatal(err)
	}
	dbsize := f.src.Client.DBSize(ctx).Val()
	want := []string{"/pre-restore dbsize=0", fmt.Sprintf("/post-restore dbsize=%d", dbsize)}
	if calls := srv.took(); strings.Join(calls, ",") != strings.Join(want, ",") {
		t.Errorf("restore hooks: %v, want %v", calls, want)
	}
	if rs.Status.Phase != v1alpha1.SessionSucceeded || condition(rs.Status.Conditions, v1alpha1.ConditionPreRestoreHookSucceeded) != "True/Succeeded" ||
		condition(rs.Status.Conditions, v1alpha1.ConditionPostRestoreHookSucceeded) != "True/Succeeded" {
		t.Errorf("restore status %+v", rs.Status)
	}
	if got := dst.Client.Get(ctx, "marker").Val(); got != "written-by-prebackup" {
		t.Errorf("marker in the snapshot: %q", got)
	}
	if a, b := f.src.Digest(t), dst.Digest(t); a != b {
		t.Errorf("digest mismatch: source %s restored %s", a, b)
	}

	// 3. A failed backup (the repository password changed): the OnFailure hook is called,
	// with the token; the token is in no status and no log.
	sec := &corev1.Secret{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "storage"}, sec); err != nil {
		t.Fatal(err)
	}
	good := sec.Data["RESTIC_PASSWORD"]
	sec.Data["RESTIC_PASSWORD"] = []byte("not-the-password")
	if err := cluster.Client.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	second := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, second.Name, opts); err == nil {
		t.Fatal("backup with a wrong password succeeded")
	}
	s = getSession(t, f.ns, second.Name)
	if calls := srv.took(); len(calls) != 3 || calls[2] != "/backup-failed "+token {
		t.Errorf("OnFailure hook: calls %v", calls)
	}
	if s.Status.Phase != v1alpha1.SessionFailed || condition(s.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded) != "True/Succeeded" {
		t.Errorf("status after a failed backup: %s", statusJSON(s))
	}
	sec.Data["RESTIC_PASSWORD"] = good
	if err := cluster.Client.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}

	// 4. A failing preBackup fails the session before the source is touched; the
	// OnFailure hook reports it.
	before := redistest.InfoField(t, f.src.Client, "stats", "total_connections_received")
	setHooks(&v1alpha1.BackupHooks{PreBackup: &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 7"}}}, PostBackup: notify})
	third := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, third.Name, opts); err == nil {
		t.Fatal("backup with a failing preBackup hook succeeded")
	}
	s = getSession(t, f.ns, third.Name)
	if s.Status.Phase != v1alpha1.SessionFailed || s.Status.Snapshot != "" ||
		!strings.Contains(s.Status.Error, `preBackup hook failed, so nothing was done: exec "sh" in pod redis-0: exit code 7`) ||
		condition(s.Status.Conditions, v1alpha1.ConditionPreBackupHookSucceeded) != "False/Failed" {
		t.Errorf("status after a failed preBackup: %s", statusJSON(s))
	}
	// The statistics' own connection is the only one since.
	if after := redistest.InfoField(t, f.src.Client, "stats", "total_connections_received"); after != before {
		t.Errorf("the source was contacted: connections %s → %s", before, after)
	}
	if calls := srv.took(); len(calls) != 4 {
		t.Errorf("OnFailure hook after a failed preBackup: calls %v", calls)
	}

	// 5. A hook slower than its timeout fails the session with "timed out".
	srv.mu.Lock()
	srv.delay = 20 * time.Second
	srv.mu.Unlock()
	setHooks(&v1alpha1.BackupHooks{PreBackup: &v1alpha1.HookHandler{HTTPGet: &v1alpha1.HTTPGetHook{Host: host, Port: intstr.FromInt(port), Path: "/slow"}, Timeout: "1s"}})
	fourth := f.backupSession(t)
	start := time.Now()
	_ = session.RunBackup(ctx, cluster.Client, f.ns, fourth.Name, opts)
	s = getSession(t, f.ns, fourth.Name)
	if took := time.Since(start); s.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(s.Status.Error, "timed out after 1s") || took > 10*time.Second {
		t.Errorf("slow hook: after %s, status %s", took, statusJSON(s))
	}

	// 6. A postBackup hook that fails (an HTTP 500) marks the session; it keeps its phase and
	// its snapshot.
	srv.mu.Lock()
	srv.delay, srv.status = 0, http.StatusInternalServerError
	srv.mu.Unlock()
	always := *notify
	always.ExecutionPolicy = v1alpha1.HookAlways
	setHooks(&v1alpha1.BackupHooks{PostBackup: &always})
	fifth := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, fifth.Name, opts); err != nil {
		t.Fatalf("backup with a failing postBackup hook: %v", err)
	}
	s = getSession(t, f.ns, fifth.Name)
	post := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded)
	if s.Status.Phase != v1alpha1.SessionSucceeded || !v1alpha1.SnapshotIDPattern.MatchString(s.Status.Snapshot) ||
		post == nil || post.Status != metav1.ConditionFalse || !strings.Contains(post.Message, "500 Internal Server Error") {
		t.Errorf("failing postBackup: %s", statusJSON(s))
	}

	for _, name := range []string{first.Name, second.Name, third.Name, fourth.Name, fifth.Name} {
		if st := statusJSON(getSession(t, f.ns, name)); strings.Contains(st, "tok-9d2c71") {
			t.Errorf("the token is in the status of %s: %s", name, st)
		}
	}
	if strings.Contains(logs.String(), "tok-9d2c71") {
		t.Errorf("the token is in the runner's log:\n%s", logs.String())
	}
}
