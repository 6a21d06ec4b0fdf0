package session_test

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
)

// TestResolveSentinelAppBinding: the AppBinding KubeDB makes for a RedisSentinel points at the
// Sentinel, not at Redis, and names no master set. Without target.ref.masterName resolving it
// says what to set rather than failing later on the Sentinel's port; with it, the Sentinel is
// asked for that master, with the AppBinding's Secret for the Sentinel and the reference's
// authSecret for the data nodes.
func TestResolveSentinelAppBinding(t *testing.T) {
	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	ab.SetNamespace("db")
	ab.SetName("sen-demo")
	_ = unstructured.SetNestedField(ab.Object, "kubedb.com/redissentinel", "spec", "type")
	_ = unstructured.SetNestedMap(ab.Object, map[string]any{"name": "sen-demo", "port": int64(26379), "scheme": "redis"}, "spec", "clientConfig", "service")
	_ = unstructured.SetNestedField(ab.Object, "sen-demo-auth", "spec", "secret", "name")
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ab,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sen-demo-auth", Namespace: "db"}, Data: map[string][]byte{"password": []byte("sentinel-pw")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "rd-demo-auth", Namespace: "db"}, Data: map[string][]byte{"username": []byte("default"), "password": []byte("data-pw")}},
	).Build()
	ctx := context.Background()
	_, err := session.ResolveTarget(ctx, c, "db", &v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "sen-demo"}})
	if err == nil || !strings.Contains(err.Error(), "AppBinding db/sen-demo is of a Redis Sentinel (type kubedb.com/redissentinel)") ||
		!strings.Contains(err.Error(), "set target.ref.masterName") {
		t.Fatalf("without masterName: %v", err)
	}
	got, err := session.ResolveTarget(ctx, c, "db", &v1alpha1.Target{Ref: &v1alpha1.TargetRef{
		Name: "sen-demo", MasterName: "rd-demo", AuthSecret: &v1alpha1.AuthSecret{Name: "rd-demo-auth"}}})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Sentinel; s == nil || s.MasterName != "rd-demo" || len(s.Addrs) != 1 || s.Addrs[0] != "sen-demo.db.svc:26379" || s.Password != "sentinel-pw" {
		t.Fatalf("sentinel %+v", got.Sentinel)
	}
	if got.Redis.Username != "default" || got.Redis.Password != "data-pw" {
		t.Fatalf("data nodes' credentials %q/%q, want the authSecret's", got.Redis.Username, got.Redis.Password)
	}
	// masterName on an AppBinding of a plain Redis is a mistake, said so.
	plain := ab.DeepCopy()
	plain.SetName("rd")
	plain.SetResourceVersion("")
	_ = unstructured.SetNestedField(plain.Object, "kubedb.com/redis", "spec", "type")
	if err := c.Create(ctx, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := session.ResolveTarget(ctx, c, "db", &v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "rd", MasterName: "x"}}); err == nil ||
		!strings.Contains(err.Error(), "applies only to one") {
		t.Fatalf("masterName on a Redis AppBinding: %v", err)
	}
}
