package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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

// negative reports whether a rule of the policy is below zero; Forget refuses it, since Apply
// would keep nothing for it.
func (p Policy) negative() bool {
	return p.Last < 0 || p.Hourly < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 || p.Yearly < 0
}

// Apply splits snapshots into those to keep and those to remove, both newest first. A snapshot
// dated in the future (Manifest.InFuture: a runner with a wrong clock) is kept and counts for
// no rule, so that it cannot push every real backup out.
func (p Policy) Apply(snaps []Manifest) (keep, remove []Manifest) {
	now := time.Now()
	var s []Manifest
	for _, m := range snaps {
		if m.InFuture(now) {
			keep = append(keep, m)
		} else {
			s = append(s, m)
		}
	}
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
	slices.SortFunc(keep, func(a, b Manifest) int { return compareManifests(b, a) })
	return keep, remove
}

// ForgetResult lists what Forget kept and removed (or would remove, in a dry run).
type ForgetResult struct {
	Keep, Remove []Manifest
	// Chains are the journal chains (runner/journal) removed: those of the removed snapshots
	// and those whose base snapshot was already gone.
	Chains []string
	// Damaged are the snapshots whose manifests cannot be read; retention neither keeps nor
	// removes them (Damaged.RemoveHint says how).
	Damaged []Damaged
	// Future are the kept snapshots dated in the future (see Policy.Apply).
	Future []Manifest
}

// JournalPrefix is where runner/journal keeps the chains of continuous backup:
// journal/<base snapshot id>/<offset>.json (segment manifests) and .data (segment data). It is
// named here, not in runner/journal (which builds on this package), because retention and the
// encryption of objects need it too.
const JournalPrefix = "journal/"

// Forget applies the policy and deletes the snapshots it does not keep, unless dryRun. A base
// snapshot and its journal chain go together: the chain of a removed snapshot is deleted before
// the snapshot (so a chain is never left without its base), and the newest chain's base is
// always kept, because a follower may be extending it.
func (r *Repository) Forget(ctx context.Context, p Policy, dryRun bool) (ForgetResult, error) {
	if p.Empty() {
		return ForgetResult{}, errors.New("forget needs at least one retention rule; refusing to remove every snapshot")
	}
	if p.negative() {
		return ForgetResult{}, fmt.Errorf("forget policy %+v has a negative rule; refusing to remove every snapshot", p)
	}
	listing, err := r.ListAll(ctx)
	if err != nil {
		return ForgetResult{}, err
	}
	all := listing.Manifests
	chains, err := r.ListObjects(ctx, JournalPrefix, true)
	if err != nil {
		return ForgetResult{}, err
	}
	hasChain := map[string]bool{}
	for _, c := range chains {
		hasChain[strings.TrimSuffix(strings.TrimPrefix(c, JournalPrefix), "/")] = true
	}
	keep, remove := p.Apply(all)
	// The newest snapshot with a chain is the base a running follower may be extending.
	for i := len(all) - 1; i >= 0; i-- {
		if !hasChain[all[i].ID] {
			continue
		}
		if j := slices.IndexFunc(remove, func(m Manifest) bool { return m.ID == all[i].ID }); j >= 0 {
			keep = append(keep, remove[j])
			slices.SortFunc(keep, func(a, b Manifest) int { return compareManifests(b, a) })
			remove = slices.Delete(remove, j, j+1)
		}
		break
	}
	res := ForgetResult{Keep: keep, Remove: remove, Damaged: listing.Damaged}
	now := time.Now()
	for _, m := range keep {
		if m.InFuture(now) {
			res.Future = append(res.Future, m)
		}
	}
	kept := map[string]bool{}
	for _, m := range keep {
		kept[m.ID] = true
	}
	for _, m := range remove {
		if hasChain[m.ID] {
			res.Chains = append(res.Chains, m.ID)
		}
	}
	// Chains whose base is gone (removed by an older runner) cannot be restored.
	exists := map[string]bool{}
	for _, m := range all {
		exists[m.ID] = true
	}
	var orphans []string
	for c := range hasChain {
		if !exists[c] {
			orphans = append(orphans, c)
		}
	}
	slices.Sort(orphans)
	if dryRun {
		res.Chains = append(res.Chains, orphans...)
		return res, nil
	}
	for _, m := range remove {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if hasChain[m.ID] {
			if err := r.deleteChain(ctx, m.ID); err != nil {
				return res, err
			}
		}
		if err := r.Delete(ctx, m.ID); err != nil {
			return res, err
		}
	}
	for _, c := range orphans {
		// Checked again: a base is written before its chain's first segment, so a chain whose
		// base does not exist now never gets one.
		if _, err := r.Manifest(ctx, c); !errors.Is(err, ErrSnapshotNotFound) {
			continue
		}
		if err := r.deleteChain(ctx, c); err != nil {
			return res, err
		}
		res.Chains = append(res.Chains, c)
	}
	return res, nil
}

// Remove deletes the snapshots ids, whatever their manifests hold (a damaged one included), each
// with its journal chain: what `forget --id` does.
func (r *Repository) Remove(ctx context.Context, ids []string) error {
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
		if err := r.deleteChain(ctx, id); err != nil {
			return err
		}
		if err := r.Delete(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// deleteChain removes the journal chain of base id: every segment manifest first, so that no
// segment stays visible without its data, then the data objects and anything else under it.
func (r *Repository) deleteChain(ctx context.Context, id string) error {
	keys, err := r.ListObjects(ctx, JournalPrefix+id+"/", false)
	if err != nil {
		return err
	}
	for _, manifests := range []bool{true, false} {
		for _, k := range keys {
			if strings.HasSuffix(k, ".json") != manifests {
				continue
			}
			if err := r.DeleteObject(ctx, k); err != nil {
				return fmt.Errorf("delete journal chain %s: %w", id, err)
			}
		}
	}
	return nil
}
