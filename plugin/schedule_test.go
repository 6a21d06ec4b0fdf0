package plugin

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"stash.dev/redis/api/v1alpha1"
)

func TestNextRun(t *testing.T) {
	tests := []struct {
		name, schedule, zone string
		paused               bool
		now                  time.Time
		want                 string
	}{
		{"Berlin in winter", "0 2 * * *", "Europe/Berlin", false, time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC), "2026-12-08 02:00 CET (Europe/Berlin), in 22h"},
		{"Berlin in summer: 02:00 local is 00:00 UTC", "0 2 * * *", "Europe/Berlin", false, time.Date(2026, 7, 1, 22, 30, 0, 0, time.UTC), "2026-07-02 02:00 CEST (Europe/Berlin), in 90m"},
		{"no zone is UTC", "0 2 * * *", "", false, time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC), "2026-12-08 02:00 UTC (UTC), in 23h"},
		{"paused", "0 2 * * *", "Europe/Berlin", true, time.Now(), "- (paused)"},
		{"unknown zone", "0 2 * * *", "Mars/Olympus_Mons", false, time.Now(), `- (unknown time zone "Mars/Olympus_Mons")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bc := &v1alpha1.BackupConfiguration{Spec: v1alpha1.BackupConfigurationSpec{Schedule: tc.schedule, TimeZone: tc.zone, Paused: tc.paused}}
			if got := nextRun(bc, tc.now); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribeHooks(t *testing.T) {
	got := describeHooks(&v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "SET", "m", "1"}}, ContainerName: "redis", Timeout: "30s"}, "preBackup",
		&v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFailure, HookHandler: v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{Host: "chat", Port: intstr.FromInt32(80), Path: "/x",
			Body: "secret-body", HTTPHeaders: []v1alpha1.HTTPHeader{{Name: "X-Trace", Value: "inline-value"}}}}}, "postBackup")
	want := []string{"preBackup: exec redis-cli SET m 1 in container redis, timeout 30s", "postBackup: httpPost chat:80/x (OnFailure)"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %q, want %q", got, want)
	}
}
