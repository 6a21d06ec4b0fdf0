package v1alpha1

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestConsistentCutValidation(t *testing.T) {
	cluster := &RedisTarget{Address: "redis:6379", Mode: RedisModeCluster}
	pause := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	for _, tt := range []struct {
		name   string
		target Target
		want   string // "" means valid
	}{
		{"cluster", Target{Redis: cluster, ConsistentCut: &ConsistentCut{Enabled: true}}, ""},
		{"cluster, 500ms", Target{Redis: cluster, ConsistentCut: &ConsistentCut{Enabled: true, MaxPause: pause(500 * time.Millisecond)}}, ""},
		{"appbinding (mode known at run time)", Target{Ref: &TargetRef{Name: "redis"}, ConsistentCut: &ConsistentCut{Enabled: true}}, ""},
		{"standalone", Target{Redis: &RedisTarget{Address: "redis:6379"}, ConsistentCut: &ConsistentCut{Enabled: true}},
			"spec.target.consistentCut.enabled: Invalid value: true: needs target.redis.mode cluster"},
		{"disabled on a standalone", Target{Redis: &RedisTarget{Address: "redis:6379"}, ConsistentCut: &ConsistentCut{}}, ""},
		{"with readFromReplica", Target{Redis: cluster, ReadFromReplica: true, ConsistentCut: &ConsistentCut{Enabled: true}},
			"spec.target.consistentCut.enabled: Forbidden: a consistent cut reads the paused masters"},
		{"zero pause", Target{Redis: cluster, ConsistentCut: &ConsistentCut{Enabled: true, MaxPause: pause(0)}},
			"spec.target.consistentCut.maxPause: Invalid value"},
		{"pause above 1m", Target{Redis: cluster, ConsistentCut: &ConsistentCut{Enabled: true, MaxPause: pause(2 * time.Minute)}},
			"spec.target.consistentCut.maxPause: Invalid value: \"2m0s\""},
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
	r.Spec.Target.ConsistentCut = &ConsistentCut{Enabled: true}
	if err := r.Validate().ToAggregate(); err == nil || !strings.Contains(err.Error(), "spec.target.consistentCut: Forbidden") {
		t.Errorf("restore with consistentCut: %v", err)
	}
}
