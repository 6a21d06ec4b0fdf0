package repo_test

import (
	"slices"
	"testing"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/repo"
)

// Every rule of the API reaches the repository's policy, each into its own field (a rule
// added to RetentionPolicy.Rules with a period forget does not know fails here); unset rules
// keep nothing.
func TestPolicyOf(t *testing.T) {
	var p v1alpha1.RetentionPolicy
	rules := p.Rules()
	for i, r := range rules {
		r.Set(int32(i + 1))
	}
	got, err := repo.PolicyOf(&p)
	if err != nil {
		t.Fatal(err)
	}
	counts := []int{got.Last, got.Hourly, got.Daily, got.Weekly, got.Monthly, got.Yearly}
	slices.Sort(counts)
	if len(rules) != len(counts) || !slices.Equal(counts, []int{1, 2, 3, 4, 5, 6}) {
		t.Errorf("PolicyOf of %d rules = %+v: each rule must set its own count", len(rules), got)
	}
	i32 := func(v int32) *int32 { return &v }
	if got, err := repo.PolicyOf(&v1alpha1.RetentionPolicy{KeepDaily: i32(7)}); err != nil || got != (repo.Policy{Daily: 7}) {
		t.Errorf("PolicyOf(keepDaily 7) = %+v, %v", got, err)
	}
	if got, err := repo.PolicyOf(&v1alpha1.RetentionPolicy{}); err != nil || !got.Empty() {
		t.Errorf("PolicyOf of no rules = %+v, %v, want empty", got, err)
	}
}
