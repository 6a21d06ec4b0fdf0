package session_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
)

// TestResolveTargetReadFromReplica: spec.target.readFromReplica reaches the runner's backup
// options, for an inline target and for an AppBinding alike.
func TestResolveTargetReadFromReplica(t *testing.T) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).Build()
	for _, fromReplica := range []bool{true, false} {
		got, err := session.ResolveTarget(context.Background(), c, "db", &v1alpha1.Target{ReadFromReplica: fromReplica,
			Redis: &v1alpha1.RedisTarget{Address: "redis-0.redis:6379", Mode: v1alpha1.RedisModeCluster}})
		if err != nil {
			t.Fatal(err)
		}
		if got.ReadFromReplica != fromReplica {
			t.Errorf("readFromReplica %v resolved to %v", fromReplica, got.ReadFromReplica)
		}
	}
}
