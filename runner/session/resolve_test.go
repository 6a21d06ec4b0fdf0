package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/session"
)

func TestResolveTargetModes(t *testing.T) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	secret := func(name string, data map[string]string) *corev1.Secret {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name}, Data: map[string][]byte{}}
		for k, v := range data {
			sec.Data[k] = []byte(v)
		}
		return sec
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		secret("auth", map[string]string{"password": "data-pw"}),
		secret("auth-sentinel", map[string]string{"password": "data-pw", session.SentinelPasswordKey: "sentinel-pw"}),
	).Build()
	tests := []struct {
		name         string
		target       v1alpha1.RedisTarget
		wantAddr     string
		wantSentinel *redisconn.Sentinel
		wantMode     string
		wantErr      string
	}{
		{name: "cluster: any node", target: v1alpha1.RedisTarget{Address: "redis-0.redis:6379", Mode: v1alpha1.RedisModeCluster},
			wantAddr: "redis-0.redis:6379", wantMode: "cluster"},
		{name: "sentinel with the same password",
			target: v1alpha1.RedisTarget{Service: &v1alpha1.ServiceTarget{Name: "sentinel", Port: 26379}, Mode: v1alpha1.RedisModeSentinel,
				MasterName: "mymaster", AuthSecret: &v1alpha1.AuthSecret{Name: "auth"}},
			wantAddr:     "sentinel.db.svc:26379",
			wantSentinel: &redisconn.Sentinel{Addrs: []string{"sentinel.db.svc:26379"}, MasterName: "mymaster", Password: "data-pw"}},
		{name: "sentinel with its own password",
			target: v1alpha1.RedisTarget{Address: "sentinel:26379", Mode: v1alpha1.RedisModeSentinel,
				MasterName: "mymaster", AuthSecret: &v1alpha1.AuthSecret{Name: "auth-sentinel"}},
			wantAddr:     "sentinel:26379",
			wantSentinel: &redisconn.Sentinel{Addrs: []string{"sentinel:26379"}, MasterName: "mymaster", Password: "sentinel-pw"}},
		{name: "sentinel without master name", target: v1alpha1.RedisTarget{Address: "sentinel:26379", Mode: v1alpha1.RedisModeSentinel},
			wantErr: "masterName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := session.ResolveTarget(context.Background(), c, "db", &v1alpha1.Target{Redis: &tt.target})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Redis.Addr != tt.wantAddr {
				t.Errorf("addr = %q, want %q", got.Redis.Addr, tt.wantAddr)
			}
			if got.Mode != tt.wantMode {
				t.Errorf("mode = %q, want %q", got.Mode, tt.wantMode)
			}
			if diff := cmp.Diff(tt.wantSentinel, got.Sentinel); diff != "" {
				t.Errorf("sentinel (-want +got):\n%s", diff)
			}
		})
	}
}
