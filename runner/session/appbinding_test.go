package session_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
)

// TestResolveSentinelAppBinding: the AppBinding KubeDB makes for a RedisSentinel points at the
// Sentinel, not at Redis; resolving it says what to target instead rather than failing later
// on the Sentinel's port.
func TestResolveSentinelAppBinding(t *testing.T) {
	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	ab.SetNamespace("db")
	ab.SetName("sen-demo")
	_ = unstructured.SetNestedField(ab.Object, "kubedb.com/redissentinel", "spec", "type")
	_ = unstructured.SetNestedMap(ab.Object, map[string]any{"name": "sen-demo", "port": int64(26379), "scheme": "redis"}, "spec", "clientConfig", "service")
	c := fake.NewClientBuilder().WithScheme(runtime.NewScheme()).WithObjects(ab).Build()
	_, err := session.ResolveTarget(context.Background(), c, "db", &v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "sen-demo"}})
	if err == nil || !strings.Contains(err.Error(), "AppBinding db/sen-demo is of a Redis Sentinel (type kubedb.com/redissentinel)") ||
		!strings.Contains(err.Error(), "redis.mode sentinel") {
		t.Fatalf("got %v", err)
	}
}
