package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"gocloud.dev/blob"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// ReadData downloads, decrypts, decompresses and hashes every snapshot.
	ReadData bool
	// PruneOrphans deletes snapshot directories without a manifest that are older than
	// OrphanMinAge (a younger one may be a backup still running).
	PruneOrphans bool
	OrphanMinAge time.Duration
	// Now is the current time; zero means time.Now.
	Now time.Time
}

// CheckResult is the outcome of Check. The repository is healthy when Problems is empty.
type CheckResult struct {
	Snapshots int      `json:"snapshots"`
	Problems  []string `json:"problems,omitempty"`
	Orphans   []string `json:"orphans,omitempty"`
	Pruned    []string `json:"pruned,omitempty"`
}

// Check verifies every manifest, that every data object exists with the recorded size, and with
// ReadData its content; it reports (and optionally prunes) orphaned snapshot directories.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (CheckResult, error) {
	var res CheckResult
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	ids, err := r.snapshotDirs(ctx)
	if err != nil {
		return res, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		m, err := r.Manifest(ctx, id)
		if errors.Is(err, ErrSnapshotNotFound) {
			res.Orphans = append(res.Orphans, id)
			if opts.PruneOrphans {
				pruned, err := r.pruneOrphan(ctx, id, now, opts.OrphanMinAge)
				if err != nil {
					return res, err
				}
				if pruned {
					res.Pruned = append(res.Pruned, id)
				}
			}
			continue
		}
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
			continue
		}
		res.Snapshots++
		attrs, err := r.bucket.Attributes(ctx, dataKey(id))
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("snapshot %s: data object: %v", id, err))
			continue
		}
		if attrs.Size != m.StoredBytes {
			res.Problems = append(res.Problems, fmt.Sprintf("snapshot %s: data object has %d bytes, manifest says %d", id, attrs.Size, m.StoredBytes))
			continue
		}
		if opts.ReadData {
			if err := r.readData(ctx, m); err != nil {
				res.Problems = append(res.Problems, err.Error())
			}
		}
	}
	return res, nil
}

// Verify reads a snapshot's data completely and checks it against its manifest (authenticated
// decryption, decompression, plaintext size, stored size and sha256) without restoring anything.
func (r *Repository) Verify(ctx context.Context, m Manifest) error { return r.readData(ctx, m) }

func (r *Repository) readData(ctx context.Context, m Manifest) error {
	sr, err := r.OpenSnapshot(ctx, m)
	if err != nil {
		return err
	}
	defer sr.Close()
	n, err := io.Copy(io.Discard, sr)
	if err != nil {
		return err
	}
	if n != m.RawBytes {
		return fmt.Errorf("snapshot %s: plaintext has %d bytes, manifest says %d", m.ID, n, m.RawBytes)
	}
	return nil
}

// pruneOrphan deletes the objects of an incomplete snapshot directory if all are old enough.
func (r *Repository) pruneOrphan(ctx context.Context, id string, now time.Time, minAge time.Duration) (bool, error) {
	var keys []string
	it := r.bucket.List(&blob.ListOptions{Prefix: snapshotsPrefix + id + "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("list orphan %s: %w", id, err)
		}
		if now.Sub(obj.ModTime) < minAge {
			return false, nil
		}
		keys = append(keys, obj.Key)
	}
	for _, k := range keys {
		if err := r.bucket.Delete(ctx, k); err != nil && !isNotFound(err) {
			return false, fmt.Errorf("delete orphan object %s: %w", k, err)
		}
	}
	return true, nil
}
