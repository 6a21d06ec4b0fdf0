package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
)

// FromFullSync writes the RDB of fs, a full resynchronization the caller started and keeps
// open, as a snapshot of all databases: the same snapshot, manifest and commit as a backup by
// replication, so it lists and restores like any other. It reads the RDB to its end and leaves
// the link open, so that the caller can go on reading the replication stream that follows
// (the base of continuous backup, runner/follow). opts.Redis must name the source of fs; its
// Databases, Sentinel and dump settings are not used.
func FromFullSync(ctx context.Context, opts Options, fs *replication.FullSync) (Result, error) {
	start := time.Now()
	if opts.Repository == nil {
		return Result{}, errors.New("backup: no repository")
	}
	if fs.RDB == nil {
		return Result{}, errors.New("backup: the replication link has no RDB (a continued link)")
	}
	client := opts.Redis.Client(0)
	info, err := redisconn.Inspect(ctx, client)
	client.Close()
	if err != nil {
		return Result{}, err
	}
	id := repo.NewID(start)
	sw, err := opts.Repository.NewSnapshotWriter(ctx, id)
	if err != nil {
		return Result{}, err
	}
	st, err := writeRDB(ctx, fs.RDBReader(), nil, sw, opts.Progress, nil)
	if err != nil {
		sw.Abort()
		return Result{}, fmt.Errorf("backup of %s: read the source's RDB transfer: %w", opts.Redis.Addr, fs.Explain(ctx, err))
	}
	m := newManifest(id, start, opts, info)
	m.Method, m.ReplID, m.ReplOffset = MethodReplication, fs.ReplID, fs.Offset
	res, err := commit(ctx, opts.Repository, sw, m, st)
	if err != nil {
		return Result{}, fmt.Errorf("backup of %s: %w", opts.Redis.Addr, err)
	}
	return res, nil
}
