package session_test

import (
	"testing"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/session"
)

// Every rule of the API reaches the repository's policy, each into its own field; unset rules
// keep nothing.
func TestForgetPolicy(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	p := &v1alpha1.RetentionPolicy{KeepLast: i32(1), KeepHourly: i32(2), KeepDaily: i32(3), KeepWeekly: i32(4), KeepMonthly: i32(5), KeepYearly: i32(6)}
	if got, want := session.ForgetPolicy(p), (repo.Policy{Last: 1, Hourly: 2, Daily: 3, Weekly: 4, Monthly: 5, Yearly: 6}); got != want {
		t.Errorf("ForgetPolicy = %+v, want %+v", got, want)
	}
	if got, want := session.ForgetPolicy(&v1alpha1.RetentionPolicy{KeepDaily: i32(7)}), (repo.Policy{Daily: 7}); got != want {
		t.Errorf("ForgetPolicy(keepDaily 7) = %+v, want %+v", got, want)
	}
	if got := session.ForgetPolicy(&v1alpha1.RetentionPolicy{}); !got.Empty() {
		t.Errorf("ForgetPolicy of no rules = %+v, want empty", got)
	}
}
