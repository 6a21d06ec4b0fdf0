package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestBackupThroughSentinelAppBinding backs up the master behind a real redis-sentinel named by
// an AppBinding as KubeDB makes one for a RedisSentinel (type kubedb.com/redissentinel: the
// Sentinel's endpoint and auth Secret, no master set). The BackupConfiguration's reference
// gives the master set and the data nodes' own auth Secret; the runner asks the Sentinel for
// the master and backs it up, and a restore into an empty server has the same digest.
func TestBackupThroughSentinelAppBinding(t *testing.T) {
	ctx := context.Background()
	ns := "runner-sentinel"
	if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	const dataPW, sentinelPW = "data-secret", "sentinel-secret"
	master := redistest.Start(t, redistest.WithPassword(dataPW))
	for _, cmd := range [][]any{{"DEBUG", "POPULATE", "3000", "key", "16"}, {"HSET", "h", "a", "1"}, {"SET", "ttl", "v", "PX", "600000"}} {
		if err := master.Client.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	sen := redistest.StartSentinel(t, master, "cache", 0, redistest.WithPassword(sentinelPW))
	repoDir := t.TempDir()

	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	ab.SetName("sen")
	ab.SetNamespace(ns)
	_ = unstructured.SetNestedField(ab.Object, "kubedb.com/redissentinel", "spec", "type")
	_ = unstructured.SetNestedField(ab.Object, "redis://"+sen.Addr, "spec", "clientConfig", "url")
	_ = unstructured.SetNestedField(ab.Object, "sen-auth", "spec", "secret", "name")
	ref := &v1alpha1.TargetRef{Name: "sen", MasterName: "cache", AuthSecret: &v1alpha1.AuthSecret{Name: "cache-auth"}}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": "repo-password"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sen-auth", Namespace: ns}, StringData: map[string]string{"password": sentinelPW}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cache-auth", Namespace: ns}, StringData: map[string]string{"password": dataPW}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: repoDir, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: repoDir}}},
		}}},
		ab,
		&v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
			Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"}, Target: v1alpha1.Target{Ref: ref},
		}},
	} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}

	s, err := session.Trigger(ctx, cluster.Client, ns, "nightly", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := session.RunBackup(ctx, cluster.Client, ns, s.Name, session.Options{}); err != nil {
		t.Fatalf("backup through the Sentinel's AppBinding: %v", err)
	}
	got := getSession(t, ns, s.Name)
	if want := master.Client.DBSize(ctx).Val(); got.Status.Phase != v1alpha1.SessionSucceeded || got.Status.Keys != want {
		t.Fatalf("status %+v, want Succeeded with %d keys", got.Status, want)
	}

	dst := redistest.Start(t)
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "restore", Namespace: ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: dst.Addr}},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := session.RunRestore(ctx, cluster.Client, ns, "restore", session.Options{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if a, b := master.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest: master %s, restored %s", a, b)
	}
	dataset.Same(t, master, dst)

	// Without the master set, the session fails and says what to set.
	bad := &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "no-master", Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
		Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"}, Target: v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "sen"}},
	}}
	if err := cluster.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	s2, err := session.Trigger(ctx, cluster.Client, ns, "no-master", false)
	if err != nil {
		t.Fatal(err)
	}
	err = session.RunBackup(ctx, cluster.Client, ns, s2.Name, session.Options{})
	if err == nil || !strings.Contains(err.Error(), "set target.ref.masterName") {
		t.Fatalf("backup without masterName: %v", err)
	}
}
