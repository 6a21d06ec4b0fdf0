package v1alpha1

import (
	"strings"
	"testing"
)

func TestReadFromReplicaValidation(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target Target
		want   string // "" means valid
	}{
		{"cluster", Target{ReadFromReplica: true, Redis: &RedisTarget{Address: "redis:6379", Mode: RedisModeCluster}}, ""},
		{"sentinel", Target{ReadFromReplica: true, Redis: &RedisTarget{Address: "sentinel:26379", Mode: RedisModeSentinel, MasterName: "mymaster"}}, ""},
		{"appbinding (mode known at run time)", Target{ReadFromReplica: true, Ref: &TargetRef{Name: "redis"}}, ""},
		{"standalone", Target{ReadFromReplica: true, Redis: &RedisTarget{Address: "redis:6379"}},
			"spec.target.readFromReplica: Invalid value: true: needs target.redis.mode cluster or sentinel"},
	} {
		b := backupConfig()
		b.Spec.Target = tt.target
		got := b.Validate().ToAggregate()
		switch {
		case tt.want == "" && got != nil:
			t.Errorf("%s: %v", tt.name, got)
		case tt.want != "" && (got == nil || !strings.Contains(got.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, got, tt.want)
		}
	}
	r := restoreSession()
	r.Spec.Target.ReadFromReplica = true
	if err := r.Validate().ToAggregate(); err == nil || !strings.Contains(err.Error(), "spec.target.readFromReplica: Forbidden: a restore writes to the masters") {
		t.Errorf("restore with readFromReplica: %v", err)
	}
}
