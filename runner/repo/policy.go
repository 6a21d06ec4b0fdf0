package repo

import (
	"fmt"

	"stash.dev/redis/api/v1alpha1"
)

// PolicyOf is the repository's form of the API's retention rules: each rule of
// v1alpha1.RetentionPolicy.Rules sets the count of its Period. An unset rule keeps nothing.
// stash-runner forget and a BackupSession's retention both come through here.
func PolicyOf(p *v1alpha1.RetentionPolicy) (Policy, error) {
	var policy Policy
	for _, r := range p.Rules() {
		v := r.Value()
		if v == nil {
			continue
		}
		n := policy.count(r.Period)
		if n == nil {
			return Policy{}, fmt.Errorf("retention rule %s keeps one snapshot per %q, which forget does not know", r.Field, r.Period)
		}
		*n = int(*v)
	}
	return policy, nil
}

// count is the field of the policy that keeps snapshots per period, or nil.
func (p *Policy) count(period v1alpha1.RetentionPeriod) *int {
	switch period {
	case v1alpha1.PeriodNone:
		return &p.Last
	case v1alpha1.PeriodHour:
		return &p.Hourly
	case v1alpha1.PeriodDay:
		return &p.Daily
	case v1alpha1.PeriodWeek:
		return &p.Weekly
	case v1alpha1.PeriodMonth:
		return &p.Monthly
	case v1alpha1.PeriodYear:
		return &p.Yearly
	}
	return nil
}
