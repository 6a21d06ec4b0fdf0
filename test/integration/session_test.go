// Package integration tests the runner's in-cluster mode against a real API server
// (envtest) and real redis-server processes: the runner reads its session, its target
// (an AppBinding or an inline endpoint) and its repository through the API, moves the data,
// and writes the result into the session's status.
package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

var cluster *clustertest.Cluster

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if cluster, err = clustertest.Start(nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	return m.Run()
}

// fixture creates a namespace with a storage Secret, a local Repository in a temp dir, a
// password-protected source Redis with data, and an AppBinding pointing at it.
type fixture struct {
	ns   string
	src  *redistest.Server
	repo string // repository directory
}

func setup(t *testing.T, ns string) *fixture {
	t.Helper()
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	f := &fixture{ns: ns, src: redistest.Start(t, redistest.WithPassword("redis-secret")), repo: t.TempDir()}
	load := []string{
		"DEBUG POPULATE 2000 key 32",
		"HSET h a 1 b 2", "RPUSH l x y z", "SADD s m n", "ZADD z 1 one 2 two", "XADD st * f v",
		"SET ttl v PX 600000",
	}
	for _, cmd := range load {
		args := []any{}
		for _, a := range strings.Fields(cmd) {
			args = append(args, a)
		}
		if err := f.src.Client.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	ab.SetName("source")
	ab.SetNamespace(ns)
	_ = unstructured.SetNestedField(ab.Object, "redis://"+f.src.Addr, "spec", "clientConfig", "url")
	_ = unstructured.SetNestedField(ab.Object, "source-auth", "spec", "secret", "name")
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": "repo-password"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "source-auth", Namespace: ns}, StringData: map[string]string{"password": "redis-secret"}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: f.repo, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: f.repo}}},
		}}},
		ab,
		&v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
			Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"},
			Target:          v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "source"}},
			RetentionPolicy: &v1alpha1.RetentionPolicy{KeepLast: ptr.To[int32](1)},
		}},
	}
	for _, o := range objs {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	return f
}

func (f *fixture) backupSession(t *testing.T) *v1alpha1.BackupSession {
	t.Helper()
	s, err := session.Trigger(context.Background(), cluster.Client, f.ns, "nightly", false)
	if err != nil || s == nil {
		t.Fatalf("trigger: %v (session %v)", err, s)
	}
	return s
}

func getSession(t *testing.T, ns, name string) *v1alpha1.BackupSession {
	t.Helper()
	s := &v1alpha1.BackupSession{}
	if err := cluster.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// pushgateway records what is pushed to it.
type pushgateway struct {
	mu     sync.Mutex
	bodies []string
	paths  []string
}

func (p *pushgateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.bodies, p.paths = append(p.bodies, string(b)), append(p.paths, r.Method+" "+r.URL.Path)
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func TestBackupThroughAppBindingThenRestoreInline(t *testing.T) {
	ctx := context.Background()
	f := setup(t, "runner-ok")
	pg := &pushgateway{}
	srv := httptest.NewServer(pg)
	defer srv.Close()

	first := f.backupSession(t)
	if first.Labels[v1alpha1.LabelInvokerName] != "nightly" || metav1.GetControllerOf(first) != nil && metav1.GetControllerOf(first).Name != "nightly" || len(first.OwnerReferences) != 1 {
		t.Errorf("triggered session metadata: labels %v owners %v", first.Labels, first.OwnerReferences)
	}
	if err := session.RunBackup(ctx, cluster.Client, f.ns, first.Name, session.Options{PushgatewayURL: srv.URL}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	s := getSession(t, f.ns, first.Name)
	dbsize := f.src.Client.DBSize(ctx).Val()
	if s.Status.Phase != v1alpha1.SessionSucceeded || !v1alpha1.SnapshotIDPattern.MatchString(s.Status.Snapshot) ||
		s.Status.Keys != dbsize || s.Status.Bytes == 0 || s.Status.Repository == nil || s.Status.Repository.SnapshotCount != 1 {
		t.Fatalf("status after backup: %+v (dbsize %d)", s.Status, dbsize)
	}
	pg.mu.Lock()
	pushed := strings.Join(pg.bodies, "\n")
	paths := strings.Join(pg.paths, " ")
	pg.mu.Unlock()
	if !strings.Contains(paths, "/metrics/job/stash-backup") || !strings.Contains(pushed, "stash_appscode_com_backupsession_success") {
		t.Errorf("pushgateway got %q:\n%s", paths, pushed)
	}

	// A second backup: the retention policy (keepLast 1) removes the first snapshot.
	second := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, second.Name, session.Options{}); err != nil {
		t.Fatalf("second backup: %v", err)
	}
	s2 := getSession(t, f.ns, second.Name)
	if s2.Status.Repository == nil || s2.Status.Repository.SnapshotCount != 1 || s2.Status.Repository.SnapshotsRemoved != 1 ||
		!meta.IsStatusConditionTrue(s2.Status.Conditions, v1alpha1.ConditionRetentionPolicyApplied) {
		t.Errorf("retention: %+v", s2.Status)
	}

	// Restore into an empty Redis given inline, and compare digests.
	dst := redistest.Start(t)
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "restore", Namespace: f.ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: dst.Addr}},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := session.RunRestore(ctx, cluster.Client, f.ns, "restore", session.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
		t.Fatal(err)
	}
	// An empty standalone target is restored through replication.
	if rs.Status.Phase != v1alpha1.SessionSucceeded || rs.Status.KeysRestored != dbsize || rs.Status.Snapshot != s2.Status.Snapshot || rs.Status.Method != "replication" {
		t.Errorf("restore status %+v", rs.Status)
	}
	if a, b := f.src.Digest(t), dst.Digest(t); a != b {
		t.Errorf("digest mismatch: source %s restored %s", a, b)
	}
	dataset.Same(t, f.src, dst)
	if ttl := dst.Client.PTTL(ctx, "ttl").Val(); ttl <= 0 {
		t.Errorf("TTL lost: %v", ttl)
	}
}

func TestWrongRepositoryPasswordFailsTheSession(t *testing.T) {
	ctx := context.Background()
	f := setup(t, "runner-badpw")
	first := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, first.Name, session.Options{}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	// Someone changes the password in the Secret: the next backup cannot unlock the repository.
	sec := &corev1.Secret{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "storage"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data["RESTIC_PASSWORD"] = []byte("not-the-password")
	if err := cluster.Client.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	second := f.backupSession(t)
	err := session.RunBackup(ctx, cluster.Client, f.ns, second.Name, session.Options{})
	if err == nil {
		t.Fatal("want an error")
	}
	s := getSession(t, f.ns, second.Name)
	if s.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(s.Status.Error, "wrong repository password") {
		t.Errorf("status: phase %q error %q", s.Status.Phase, s.Status.Error)
	}
}

func TestTriggerLeavesPausedConfigurationAlone(t *testing.T) {
	ctx := context.Background()
	f := setup(t, "runner-paused")
	bc := &v1alpha1.BackupConfiguration{}
	if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: f.ns, Name: "nightly"}, bc); err != nil {
		t.Fatal(err)
	}
	bc.Spec.Paused = true
	if err := cluster.Client.Update(ctx, bc); err != nil {
		t.Fatal(err)
	}
	if s, err := session.Trigger(ctx, cluster.Client, f.ns, "nightly", false); err != nil || s != nil {
		t.Errorf("paused: want no session, got %v, %v", s, err)
	}
	if s, err := session.Trigger(ctx, cluster.Client, f.ns, "nightly", true); err != nil || s == nil {
		t.Errorf("forced: want a session, got %v, %v", s, err)
	}
}

// TestRefusedRestoreSessionNamesItsFields: a RestoreSession into a target that holds keys fails
// before writing, says which of its fields act on it, and carries the reason a client phrases
// in its own words (kubectl stash restore: --flush).
func TestRefusedRestoreSessionNamesItsFields(t *testing.T) {
	ctx := context.Background()
	f := setup(t, "runner-refused")
	s := f.backupSession(t)
	if err := session.RunBackup(ctx, cluster.Client, f.ns, s.Name, session.Options{}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	dst := redistest.Start(t)
	dst.Client.Set(ctx, "there", "before", 0)
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "refused", Namespace: f.ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: dst.Addr}},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := session.RunRestore(ctx, cluster.Client, f.ns, rs.Name, session.Options{}); err == nil {
		t.Fatal("a restore over existing keys succeeded")
	}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(rs.Status.Conditions, v1alpha1.ConditionRestoreRefused)
	if rs.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(rs.Status.Error, "spec.flushBeforeRestore") || strings.Contains(rs.Status.Error, "--") ||
		c == nil || c.Reason != v1alpha1.ReasonTargetNotEmpty || strings.Contains(c.Message, "spec.") {
		t.Errorf("status %+v", rs.Status)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 1 {
		t.Errorf("the refused restore wrote: %d keys", n)
	}
}
