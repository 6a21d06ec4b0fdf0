package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy says which snapshots to keep, with restic's semantics: the newest Last snapshots, and for
// each of the last N hours/days/weeks/months/years that have snapshots, the newest one in it.
// A snapshot is kept if any rule keeps it. Periods are computed in UTC.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
}

// Empty reports whether the policy keeps nothing; Forget refuses it.
func (p Policy) Empty() bool { return p == Policy{} }

// Apply splits snapshots into those to keep and those to remove, both newest first.
func (p Policy) Apply(snaps []Manifest) (keep, remove []Manifest) {
	s := slices.Clone(snaps)
	slices.SortFunc(s, func(a, b Manifest) int { return compareManifests(b, a) })
	type rule struct {
		n      int
		bucket func(time.Time) string
		last   string
	}
	rules := []*rule{
		{n: p.Hourly, bucket: func(t time.Time) string { return t.Format("2006010215") }},
		{n: p.Daily, bucket: func(t time.Time) string { return t.Format("20060102") }},
		{n: p.Weekly, bucket: func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%02d", y, w) }},
		{n: p.Monthly, bucket: func(t time.Time) string { return t.Format("200601") }},
		{n: p.Yearly, bucket: func(t time.Time) string { return t.Format("2006") }},
	}
	last := p.Last
	for _, m := range s {
		k := false
		if last > 0 {
			last--
			k = true
		}
		t := m.Time.UTC()
		for _, r := range rules {
			if r.n <= 0 {
				continue
			}
			if b := r.bucket(t); b != r.last {
				r.last = b
				r.n--
				k = true
			}
		}
		if k {
			keep = append(keep, m)
		} else {
			remove = append(remove, m)
		}
	}
	return keep, remove
}

// ForgetResult lists what Forget kept and removed (or would remove, in a dry run).
type ForgetResult struct {
	Keep, Remove []Manifest
}

// Forget applies the policy and deletes the snapshots it does not keep, unless dryRun.
func (r *Repository) Forget(ctx context.Context, p Policy, dryRun bool) (ForgetResult, error) {
	if p.Empty() {
		return ForgetResult{}, errors.New("forget needs at least one --keep-* rule; refusing to remove every snapshot")
	}
	all, err := r.List(ctx)
	if err != nil {
		return ForgetResult{}, err
	}
	keep, remove := p.Apply(all)
	res := ForgetResult{Keep: keep, Remove: remove}
	if dryRun {
		return res, nil
	}
	for _, m := range remove {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := r.Delete(ctx, m.ID); err != nil {
			return res, err
		}
	}
	return res, nil
}
