package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
)

// DefaultCutPause is the longest writes on a cluster are paused for a consistent cut unless
// Options.CutPause says otherwise.
const DefaultCutPause = 2 * time.Second

// runClusterCut backs up every master of the cluster at one instant: writes are paused on every
// master (CLIENT PAUSE WRITE, with the bound as its timeout, so that a runner that dies leaves
// no cluster paused for longer) while each master is asked for a full resynchronization, and
// resumed as soon as every master has forked (its RDB transfer has begun: for a diskless sync
// the fork streams it; for a disk-based one the file is written). No write lands between the
// first fork and the last, so the RDBs together are the cluster at one instant. The RDBs are
// then read one after the other, each master's fork waiting until its turn.
func runClusterCut(ctx context.Context, opts Options, p *clusterPlan, w *repo.SnapshotWriter) (dump.Stats, *repo.ClusterManifest, error) {
	st := dump.Stats{Keys: map[int]int64{}}
	bound := opts.CutPause
	if bound <= 0 {
		bound = DefaultCutPause
	}
	if opts.ReadFromReplica {
		return st, nil, errors.New("a consistent cut reads the masters themselves: a replica may lag behind its paused master, so it is not read from replicas")
	}
	if len(p.top.Migrations()) > 0 {
		return st, nil, fmt.Errorf("cluster has slots migrating (%v): a consistent cut needs every key on one master; run the backup once the migration is done", p.top.Migrations())
	}
	// The pause starts on every master before the first PSYNC.
	pausers := make([]func(), 0, len(p.nodes))
	unpause := func() {
		for _, u := range pausers {
			u()
		}
	}
	ms := strconv.FormatInt(bound.Milliseconds(), 10)
	start := time.Now()
	for _, o := range p.nodes {
		c := o.Client(0)
		if err := c.Do(ctx, "CLIENT", "PAUSE", ms, "WRITE").Err(); err != nil {
			c.Close()
			unpause()
			return st, nil, fmt.Errorf("consistent cut: pause writes on %s: %w", o.Addr, err)
		}
		pausers = append(pausers, func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = c.Do(uctx, "CLIENT", "UNPAUSE").Err()
			c.Close()
		})
	}
	// Every master is asked at once; each StartFullSync returns once its master has forked.
	type started struct {
		fs  *replication.FullSync
		err error
	}
	results := make([]chan started, len(p.nodes))
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, o := range p.nodes {
		results[i] = make(chan started, 1)
		go func() {
			fs, err := replication.StartFullSync(sctx, replication.SyncOptions{Redis: o, Logf: opts.Logf})
			results[i] <- started{fs, err}
		}()
	}
	syncs := make([]*replication.FullSync, len(p.nodes))
	defer func() {
		for _, fs := range syncs {
			if fs != nil {
				fs.Close()
			}
		}
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	var firstErr error
	for i := range p.nodes {
		select {
		case r := <-results[i]:
			syncs[i] = r.fs
			if r.err != nil && firstErr == nil {
				firstErr = fmt.Errorf("consistent cut: full resync of %s: %w", p.nodes[i].Addr, r.err)
				if errors.Is(r.err, replication.ErrSyncRefused) {
					firstErr = fmt.Errorf("%w (a consistent cut needs every master to serve a replica; without the cut the masters are read by SCAN and DUMP)", firstErr)
				}
			}
		case <-timer.C:
			if firstErr == nil {
				firstErr = fmt.Errorf("consistent cut: not every master had forked within the pause bound of %s (raise the pause bound; a master with repl-diskless-sync no starts its transfer only once its RDB is on disk, and one that keeps repl-diskless-sync-delay waits that long first)", bound)
			}
			cancel()
		}
		if firstErr != nil {
			break
		}
	}
	unpause()
	paused := time.Since(start)
	if firstErr != nil {
		// Late results are closed by the deferred loop only if received: drain the rest.
		cancel()
		for i := range p.nodes {
			if syncs[i] == nil {
				select {
				case r := <-results[i]:
					syncs[i] = r.fs
				default:
					go func(ch chan started) {
						if r := <-ch; r.fs != nil {
							r.fs.Close()
						}
					}(results[i])
				}
			}
		}
		return st, nil, firstErr
	}
	if paused > bound {
		// The server resumed writes by itself at the bound: the RDBs may differ by writes.
		return st, nil, fmt.Errorf("consistent cut: the masters forked after %s, past the pause bound of %s", paused.Round(time.Millisecond), bound)
	}
	opts.Logf("consistent cut: writes paused on %d masters for %s (bound %s)", len(p.nodes), paused.Round(time.Microsecond), bound)

	cm := &repo.ClusterManifest{Cut: &repo.ClusterCut{PauseMicros: paused.Microseconds(), BoundMicros: bound.Microseconds()}}
	for i, m := range p.masters {
		fs := syncs[i]
		s, err := writeRDB(ctx, fs.RDBReader(), p.dbs, w, opts.Progress, nil)
		if err == nil {
			err = fs.EndRDB()
		}
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			return st, nil, fmt.Errorf("read the RDB transfer of %s: %w", m.Addr, fs.Explain(ctx, err))
		}
		fs.Close()
		syncs[i] = nil
		for db, n := range s.Keys {
			st.Keys[db] += n
		}
		st.Total += s.Total
		st.Skipped += s.Skipped
		st.Bytes += s.Bytes
		if st.RDBVersion == 0 {
			st.RDBVersion = s.RDBVersion
		}
		// Every master holds the cluster's function libraries (FUNCTION LOAD is sent to each):
		// they are saved once, and masters that disagree are refused rather than half kept.
		if i == 0 {
			st.Functions = s.Functions
		} else if !slices.Equal(st.Functions, s.Functions) {
			return st, nil, fmt.Errorf("the masters %s and %s hold different function libraries: load the same libraries on every master", p.masters[0].Addr, m.Addr)
		}
		sh := repo.Shard{ID: m.ID, Addr: m.Addr, Keys: s.Total, ReplID: fs.ReplID, ReplOffset: fs.Offset}
		for _, r := range m.Slots {
			sh.Slots = append(sh.Slots, repo.SlotRange{Start: r.Start, End: r.End})
		}
		cm.Shards = append(cm.Shards, sh)
	}
	return st, cm, nil
}
