package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
)

// RestoreOptions are the flags of `stash-runner restore`.
type RestoreOptions struct {
	g          *global
	redis      redisFlags
	resultFile string
	cluster    clusterFlags
	opts       restore.Options
	// toTime and toOffset ask for a restore to a point in time (set in Validate).
	toTime   string
	toOffset int64
	point    *restore.Point
	// snapshotSet says --snapshot was given: it pins the chain of a restore to a point.
	snapshotSet bool
}

func newRestoreCommand(g *global) *cobra.Command {
	o := &RestoreOptions{g: g}
	cmd := &cobra.Command{
		Use:   "restore --redis URL --repository URL [--snapshot ID]",
		Short: "Restore a snapshot into a Redis server and verify it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.snapshotSet = cmd.Flags().Changed("snapshot")
			if o.cluster.session != "" {
				return o.cluster.runRestore(cmd.Context(), o.g)
			}
			return prepareThen(o.resultFile, "restore", func() error { return o.Run(cmd.Context()) }, o.Validate, o.Complete)
		},
	}
	o.redis.bind(cmd)
	o.cluster.bind(cmd)
	f := cmd.Flags()
	f.StringVar(&o.opts.Snapshot, "snapshot", "latest", "snapshot id, unique id prefix, or latest")
	f.BoolVar(&o.opts.Flush, "flush", false, "empty each restored database first (FLUSHDB)")
	f.BoolVar(&o.opts.Replace, "replace", false, "overwrite existing keys")
	f.StringVar(&o.opts.KeyPattern, "key-pattern", "", "restore only keys matching this Redis glob pattern")
	f.BoolVar(&o.opts.VerifyFirst, "verify-first", false, "read and verify the whole snapshot before writing anything (reads it twice)")
	f.StringVar(&o.opts.Method, "method", restore.MethodAuto, "how keys are written: "+restore.MethodReplication+
		" (the target loads the snapshot as a replica of the runner: fast, all or nothing; needs an empty standalone target that can connect to the runner), "+
		restore.MethodRestore+" (pipelined RESTORE commands: any target), or "+restore.MethodAuto+" (replication when the target allows it)")
	f.BoolVar(&o.opts.AllowLossy, "allow-lossy", false, "into a server that cannot hold some values (hash field TTLs or vector sets into Valkey or an older Redis), restore the other keys and list the ones left out (default: refuse before writing anything)")
	f.BoolVar(&o.opts.AllowReplicaTarget, "allow-replica-target", false, "restore into a server that is a replica of another (default: refuse, since its master's next synchronization replaces what was restored)")
	f.StringVar(&o.opts.ListenHost, "listen-host", "", "address the target connects to for --method replication (default: the runner's address on its connection to the target)")
	f.StringVar(&o.resultFile, "result-file", "", "write the result as JSON to this file")
	f.StringVar(&o.toTime, "to-time", "", "restore the source as it was at this instant (RFC 3339): the newest base snapshot with a journal before it, then the journal up to it (see the windows in stash-runner snapshots)")
	f.Int64Var(&o.toOffset, "to-offset", -1, "restore the source as it was at this replication offset: a base snapshot with a journal, then the journal up to it")
	return cmd
}

// Validate checks the flags without I/O.
func (o *RestoreOptions) Validate() error {
	if err := restore.CheckMethod(o.opts.Method); err != nil {
		return fmt.Errorf("--method: %w", err)
	}
	switch {
	case o.toTime != "" && o.toOffset >= 0:
		return errors.New("give either --to-time or --to-offset, not both")
	case o.toTime != "":
		t, err := time.Parse(time.RFC3339Nano, o.toTime)
		if err != nil {
			return fmt.Errorf("--to-time %q: not an RFC 3339 time such as 2026-12-02T10:15:00Z: %w", o.toTime, err)
		}
		o.point = &restore.Point{Time: t}
	case o.toOffset >= 0:
		o.point = &restore.Point{Offset: o.toOffset, ByOffset: true}
	case o.toOffset < -1:
		return fmt.Errorf("--to-offset %d: a replication offset is not negative", o.toOffset)
	}
	if o.point != nil {
		// Refused here too, before the repository is opened; hintFor says which flags.
		if err := v1alpha1.CheckPointInTimeSelection(len(o.redis.databases), o.opts.KeyPattern); err != nil {
			return err
		}
	}
	return o.g.validateRepository()
}

// Complete resolves the connection options.
func (o *RestoreOptions) Complete() error {
	ro, err := o.redis.options(o.g)
	if err != nil {
		return err
	}
	o.opts.Redis, o.opts.Databases, o.opts.Workers = ro, o.redis.databases, o.redis.workers
	o.opts.Warn = o.g.warn
	o.opts.Sentinel = o.redis.sentinel(o.g, ro)
	return nil
}

// Run restores and verifies.
func (o *RestoreOptions) Run(ctx context.Context) error {
	start := time.Now()
	if o.point != nil {
		res, err := o.runToPoint(ctx)
		return finish(o.resultFile, "restore", start, res, err)
	}
	res, err := o.run(ctx)
	return finish(o.resultFile, "restore", start, res, err)
}

// runToPoint restores a base and replays its journal up to the point. Without an explicit
// --snapshot the chain is chosen by the point.
func (o *RestoreOptions) runToPoint(ctx context.Context) (restore.PointResult, error) {
	if !o.snapshotSet {
		o.opts.Snapshot = ""
	}
	res, err := withProgress(ctx, o.g, "restore", existing, func(r *repo.Repository, pr *progress.Counter) (restore.PointResult, error) {
		o.opts.Repository, o.opts.Progress = r, pr
		return restore.ToPoint(ctx, o.opts, *o.point)
	})
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.g.Out, "restored to %s: base snapshot %s (offset %d, %d keys by %s) and %d journal segments, %d commands replayed; the target is at offset %d, received %s; %s\n",
		o.point, res.Chain, res.BaseOffset, res.Keys, res.Method, res.Segments, res.Commands, res.Offset,
		res.Time.UTC().Format(time.RFC3339), res.Duration.Round(time.Millisecond))
	return res, nil
}

func (o *RestoreOptions) run(ctx context.Context) (restore.Result, error) {
	res, err := withProgress(ctx, o.g, "restore", existing, func(r *repo.Repository, pr *progress.Counter) (restore.Result, error) {
		o.opts.Repository, o.opts.Progress = r, pr
		return restore.Run(ctx, o.opts)
	})
	if err != nil {
		return res, explainRestoreError(err)
	}
	for _, d := range res.DroppedKeys {
		o.g.warn(fmt.Sprintf("left out db %d key %q: %s", d.DB, d.Key, d.Reason))
	}
	if n := res.Dropped - int64(len(res.DroppedKeys)); n > 0 {
		o.g.warn(fmt.Sprintf("left out %d more keys the target cannot hold", n))
	}
	fmt.Fprintf(o.g.Out, "snapshot %s restored and verified: %d keys in %d databases (%d expired, %d filtered, %d left out), %d function libraries, by %s, %s\n",
		res.SnapshotID, res.Keys, len(res.Databases), res.Expired, res.Filtered, res.Dropped, res.Functions, res.Method, res.Duration.Round(time.Millisecond))
	return res, nil
}

// explainRestoreError adds the flag that changes the outcome to the errors of restore.Run that
// have one.
func explainRestoreError(err error) error {
	switch {
	case errors.Is(err, restore.ErrTargetIsReplica):
		return fmt.Errorf("%w (--allow-replica-target restores into it anyway)", err)
	case errors.Is(err, restore.ErrNothingMatched):
		return fmt.Errorf("%w (check --key-pattern and --databases: stash-runner cat shows the snapshot's keys)", err)
	}
	return err
}
