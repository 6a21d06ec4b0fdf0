package jobs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

func TestCronJobTimeZone(t *testing.T) {
	tests := []struct {
		name, timeZone string
		want           *string
	}{
		{"no time zone: the controller manager's", "", nil},
		{"Berlin", "Europe/Berlin", ptrTo("Europe/Berlin")},
		{"UTC", "UTC", ptrTo("UTC")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bc, _, _ := fixtures()
			bc.Spec.TimeZone = tc.timeZone
			cj := CronJob(bc, Options{RunnerImage: "runner"})
			if d := cmp.Diff(tc.want, cj.Spec.TimeZone); d != "" {
				t.Errorf("timeZone (-want +got):\n%s", d)
			}
			if cj.Spec.Schedule != bc.Spec.Schedule {
				t.Errorf("schedule %q", cj.Spec.Schedule)
			}
		})
	}
}

func ptrTo(s string) *string { return &s }

func TestHookPodAndRules(t *testing.T) {
	bc, s, repo := fixtures()
	j := WithHookPod(BackupJob(s, bc, repo, Options{}), "redis-0")
	if d := cmp.Diff([]string{"backup", "--session", "db/nightly-abcde", "--hook-pod", "redis-0"}, j.Spec.Template.Spec.Containers[0].Args); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	j = WithHookPod(BackupJob(s, bc, repo, Options{}), "")
	if len(j.Spec.Template.Spec.Containers[0].Args) != 3 {
		t.Errorf("no pod, yet args %v", j.Spec.Template.Spec.Containers[0].Args)
	}
	if rules := HookExecRules(nil); rules != nil {
		t.Errorf("no exec hook, yet rules %v", rules)
	}
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}, ResourceNames: []string{"redis-0"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}, ResourceNames: []string{"redis-0"}},
	}
	if d := cmp.Diff(want, HookExecRules([]string{"redis-0"})); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}
}
