// Package backup takes a snapshot of a Redis server into a repository. It is the library behind
// `stash-runner backup`, and what a controller calls in-process.
//
// It imports runner/dump for the SCAN + DUMP method (dump.Write, dump.WriteShards) and reports
// every method's counts as dump.Stats, the form the snapshot's manifest is written from; a
// backup by replication (replication.go) fills the same Stats.
package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
)

// Options configure Run.
type Options struct {
	Redis      redisconn.Options
	Repository *repo.Repository
	// Databases to back up; empty means every database that has keys.
	Databases []int
	// Workers and ScanCount tune the dump; 0 means the dump package's defaults.
	Workers, ScanCount int
	// Hostname and RunnerVersion are recorded in the manifest.
	Hostname, RunnerVersion string
	// Progress, if set, is updated while the backup runs.
	Progress *progress.Counter
	// ReadFromReplica reads from replicas, sparing the masters: a replica of each cluster master,
	// or a replica that the Sentinel reports healthy.
	ReadFromReplica bool
	// Sentinel, if set, finds the server through Redis Sentinel; Redis then carries only the
	// credentials and TLS settings of the data nodes.
	Sentinel *redisconn.Sentinel
	// Mode is the expected mode, "standalone" or "cluster"; empty means detect it from INFO.
	Mode string
	// Method is how the keys are read: MethodAuto (empty), MethodReplication or MethodDump.
	Method string
	// ConsistentCut backs up a cluster at one instant: writes paused on every master until
	// each has forked for a full resynchronization (see runClusterCut). CutPause bounds the
	// pause (0 means DefaultCutPause); a cut that needs longer fails.
	ConsistentCut bool
	CutPause      time.Duration
	// Logf, if set, is told what the backup chose and why (the method, a fallback).
	Logf func(format string, args ...any)
}

// Result describes a committed snapshot.
type Result struct {
	SnapshotID  string        `json:"snapshotID"`
	Keys        int64         `json:"keys"`
	Databases   map[int]int64 `json:"databases"`
	Skipped     int64         `json:"skipped"`
	RawBytes    int64         `json:"rawBytes"`
	StoredBytes int64         `json:"storedBytes"`
	SHA256      string        `json:"sha256"`
	// Functions is the number of function libraries saved.
	Functions int `json:"functions,omitempty"`
	// Method is how the keys were read: MethodReplication or MethodDump.
	Method string `json:"method"`
	// CutPauseMicros is how long writes were paused on every master for a consistent cut.
	CutPauseMicros int64         `json:"cutPauseMicros,omitempty"`
	Duration       time.Duration `json:"-"`
}

// Run dumps the server into a new snapshot. The snapshot becomes visible only when everything
// succeeded; on any error nothing that lists or restores is left behind.
//
// The repository may still be unlocking its key (repo.Options.UnlockInBackground): the backup then
// starts at once, and if the key cannot be unlocked (a wrong password) it stops as soon as
// that is known, with the repository's error, before anything was stored. A source that
// streams its RDB to replicas (repl-diskless-sync yes, the default) kills the save it forked
// when the runner drops the link, so a wrong password costs it one fork, no more.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Repository == nil {
		return Result{}, errors.New("backup: no repository")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if opts.Repository.Ready(ctx) != nil {
			cancel()
		}
	}()
	res, err := run(ctx, opts)
	if err != nil {
		if kerr := opts.Repository.KeyErr(); kerr != nil {
			return Result{}, kerr
		}
	}
	return res, err
}

func run(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	if err := CheckMethod(opts.Method); err != nil {
		return Result{}, err
	}
	if opts.Method == "" {
		opts.Method = MethodAuto
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	node, err := redisconn.Connect(ctx, redisconn.ConnectOptions{Redis: opts.Redis, Sentinel: opts.Sentinel, Replica: opts.ReadFromReplica, Mode: opts.Mode})
	if err != nil {
		return Result{}, err
	}
	opts.Redis = node.Redis
	client, info := node.Client, node.Info
	defer client.Close()
	var plan *clusterPlan
	if info.IsCluster() {
		if plan, err = planCluster(ctx, opts, client, info); err != nil {
			return Result{}, err
		}
		if opts.Progress != nil {
			opts.Progress.Total.Store(plan.total)
		}
	} else if opts.ConsistentCut {
		return Result{}, fmt.Errorf("redis %s is not a cluster: a consistent cut applies to clusters (a standalone backup by replication is already one instant)", opts.Redis.Addr)
	} else if opts.ReadFromReplica && opts.Sentinel == nil {
		return Result{}, &NotClusterError{Addr: opts.Redis.Addr}
	}
	if plan == nil {
		if err := checkReplicaInSync(ctx, client, opts.Redis.Addr); err != nil {
			return Result{}, err
		}
		if err := checkDatabasesExist(opts.Redis.Addr, opts.Databases, info); err != nil {
			return Result{}, err
		}
	}
	dbs := opts.Databases
	if len(dbs) == 0 {
		for db, n := range info.Keys {
			if n > 0 {
				dbs = append(dbs, db)
			}
		}
	}
	slices.Sort(dbs)
	if opts.Progress != nil && plan == nil {
		var total int64
		for _, db := range dbs {
			total += info.Keys[db]
		}
		opts.Progress.Total.Store(total)
	}

	id := repo.NewID(start)
	sw, err := opts.Repository.NewSnapshotWriter(ctx, id)
	if err != nil {
		return Result{}, err
	}
	usePTTL := !info.HasPExpireTime()
	var st dump.Stats
	var cm *repo.ClusterManifest
	var point replicationPoint
	method := MethodDump
	switch {
	case plan != nil && opts.ConsistentCut:
		if opts.Method == MethodDump {
			sw.Abort()
			return Result{}, fmt.Errorf("backup of %s: a consistent cut reads every master by replication, not by dump", opts.Redis.Addr)
		}
		method = MethodReplication
		st, cm, err = runClusterCut(ctx, opts, plan, sw)
	case plan != nil && opts.Method == MethodReplication:
		sw.Abort()
		return Result{}, &ClusterMethodError{Addr: opts.Redis.Addr, Method: MethodReplication}
	case plan != nil:
		st, cm, err = runCluster(ctx, opts, client, plan, usePTTL, sw)
	default:
		if opts.Method != MethodDump {
			method = MethodReplication
			st, point, err = dumpByReplication(ctx, opts, info, opts.Databases, sw)
			switch {
			case opts.Method != MethodAuto:
			case errors.Is(err, replication.ErrSyncRefused):
				opts.Logf("backup by replication is not available (%v): reading the keys with SCAN + DUMP instead", err)
				method, err = MethodDump, nil
			case errors.Is(err, replication.ErrTransferAborted):
				// Part of the transfer is in sw: the snapshot starts again in a writer of its own.
				opts.Logf("warning: backup by replication failed (%v): reading the keys with SCAN + DUMP instead", err)
				sw.Abort()
				id = repo.NewID(time.Now())
				if sw, err = opts.Repository.NewSnapshotWriter(ctx, id); err != nil {
					return Result{}, err
				}
				if opts.Progress != nil {
					opts.Progress.Keys.Store(0)
					opts.Progress.Bytes.Store(0)
				}
				method = MethodDump
			}
		}
		if method == MethodDump && err == nil {
			st, err = dump.Write(ctx, dump.Options{
				Redis: opts.Redis, Databases: dbs, Workers: opts.Workers, ScanCount: opts.ScanCount,
				UsePTTL: usePTTL, Progress: opts.Progress,
			}, sw)
		}
	}
	if err == nil && method == MethodDump {
		// By replication the RDB carried them; SCAN and DUMP do not see them.
		st.Functions, err = readFunctions(ctx, opts, client, plan)
	}
	if err != nil {
		sw.Abort()
		return Result{}, fmt.Errorf("backup of %s: %w", opts.Redis.Addr, err)
	}
	m := newManifest(id, start, opts, info)
	m.Cluster, m.Method, m.ReplID, m.ReplOffset = cm, method, point.ReplID, point.Offset
	if opts.Sentinel != nil {
		m.SentinelMaster = opts.Sentinel.MasterName
	}
	res, err := commit(ctx, opts.Repository, sw, m, st)
	if err != nil {
		return Result{}, fmt.Errorf("backup of %s: %w", opts.Redis.Addr, err)
	}
	if cm != nil && cm.Cut != nil {
		res.CutPauseMicros = cm.Cut.PauseMicros
	}
	return res, nil
}

// commit finishes the data object of sw and then writes m, completed with what the data holds,
// as the snapshot's manifest: the snapshot exists only once both are stored.
func commit(ctx context.Context, r *repo.Repository, sw *repo.SnapshotWriter, m repo.Manifest, st dump.Stats) (Result, error) {
	if err := sw.Commit(); err != nil {
		return Result{}, err
	}
	m.FormatVersion = repo.FormatVersion
	m.Duration = time.Since(m.Time)
	m.RDBVersion = st.RDBVersion
	m.Databases, m.Keys, m.Skipped = st.Keys, st.Total, st.Skipped
	m.Functions = st.Functions
	m.RawBytes, m.StoredBytes, m.SHA256 = sw.RawBytes(), sw.StoredBytes(), sw.SHA256()
	m.Compression, m.Encryption = "zstd", "age-x25519"
	if err := r.WriteManifest(ctx, m); err != nil {
		// Without a manifest the data object is an invisible orphan; remove it if we can.
		_ = r.Delete(context.WithoutCancel(ctx), m.ID)
		return Result{}, err
	}
	return Result{
		SnapshotID: m.ID, Keys: st.Total, Databases: st.Keys, Skipped: st.Skipped, Functions: len(m.Functions),
		RawBytes: m.RawBytes, StoredBytes: m.StoredBytes, SHA256: m.SHA256, Method: m.Method, Duration: m.Duration,
	}, nil
}

// newManifest is the manifest of snapshot id with what every way of backing up records: when,
// by which runner on which host, of which server.
func newManifest(id string, start time.Time, opts Options, info redisconn.ServerInfo) repo.Manifest {
	return repo.Manifest{
		ID:            id,
		Time:          start.UTC(),
		Hostname:      opts.Hostname,
		Source:        opts.Redis.Addr,
		Product:       info.Product(),
		RedisVersion:  info.ManifestVersion(),
		RedisMode:     info.Mode,
		RunnerVersion: opts.RunnerVersion,
	}
}
