package journal

import (
	"context"
	"fmt"
	"strings"
	"time"

	"stash.dev/redis/runner/repo"
)

// WindowRetention is what KeepWithin kept and removed (or would remove, in a dry run).
type WindowRetention struct {
	// Since is the oldest instant kept reachable.
	Since time.Time `json:"since"`
	// Kept and Removed are chains (base snapshot ids), oldest first.
	Kept    []string `json:"kept"`
	Removed []string `json:"removed"`
	// KeptBytes is what the kept bases and their segments take in the repository.
	KeptBytes int64 `json:"keptBytes"`
	// Start is where the kept window now starts: the oldest kept chain's start.
	Start time.Time `json:"start"`
}

// KeepWithin keeps every base and segment a restore to any instant of the last d (before now)
// needs, and deletes the chains older than those, each with its base: its segment manifests
// first, then their data, then the base, so that no window ever shows what cannot be read. A
// restore to an instant starts from the newest base at or before it, so the oldest chain kept
// is the newest whose window starts at or before now − d; every chain after it is kept whole.
// Chains that cannot be restored (their base is gone) and snapshots that are no base are left
// to forget's other rules. The newest chain is never removed.
func KeepWithin(ctx context.Context, r *repo.Repository, d time.Duration, now time.Time, dryRun bool) (WindowRetention, error) {
	if d <= 0 {
		return WindowRetention{}, fmt.Errorf("keep within a window of %s: the window must be positive", d)
	}
	res := WindowRetention{Since: now.Add(-d)}
	wins, _, err := Windows(ctx, r)
	if err != nil {
		return res, err
	}
	var ok []Window
	for _, w := range wins {
		if w.Problem == "" {
			ok = append(ok, w)
		}
	}
	if len(ok) == 0 {
		return res, nil
	}
	oldest := 0
	for i, w := range ok {
		if !w.Start.After(res.Since) {
			oldest = i
		}
	}
	res.Start = ok[oldest].Start
	for _, w := range ok[oldest:] {
		res.Kept = append(res.Kept, w.Chain)
		if base, err := r.Manifest(ctx, w.Chain); err == nil {
			res.KeptBytes += base.StoredBytes
		}
		for _, m := range w.Manifests {
			res.KeptBytes += m.StoredBytes
		}
	}
	for _, w := range ok[:oldest] {
		res.Removed = append(res.Removed, w.Chain)
		if dryRun {
			continue
		}
		if err := deleteChain(ctx, r, w.Chain); err != nil {
			return res, err
		}
		if err := r.Delete(ctx, w.Chain); err != nil {
			return res, err
		}
	}
	return res, nil
}

// deleteChain removes a chain's objects: every segment manifest first, so that no segment stays
// visible without its data, then the rest.
func deleteChain(ctx context.Context, r *repo.Repository, chain string) error {
	keys, err := r.ListObjects(ctx, chainPrefix(chain), false)
	if err != nil {
		return err
	}
	for _, manifests := range []bool{true, false} {
		for _, k := range keys {
			if strings.HasSuffix(k, manifestName) != manifests {
				continue
			}
			if err := r.DeleteObject(ctx, k); err != nil {
				return fmt.Errorf("delete journal chain %s: %w", chain, err)
			}
		}
	}
	return nil
}
