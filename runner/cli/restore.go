package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/restore"
)

// RestoreOptions are the flags of `stash-runner restore`.
type RestoreOptions struct {
	g          *global
	redis      redisFlags
	resultFile string
	cluster    clusterFlags
	opts       restore.Options
}

func newRestoreCommand(g *global) *cobra.Command {
	o := &RestoreOptions{g: g}
	cmd := &cobra.Command{
		Use:   "restore --redis URL --repository URL [--snapshot ID]",
		Short: "Restore a snapshot into a Redis server and verify it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cluster.session != "" {
				return o.cluster.runRestore(cmd.Context(), o.g)
			}
			// A run refused for its flags still writes the result file it promises.
			start := time.Now()
			if err := o.Validate(); err != nil {
				return finish(o.resultFile, "restore", start, nil, err)
			}
			if err := o.Complete(); err != nil {
				return finish(o.resultFile, "restore", start, nil, err)
			}
			return o.Run(cmd.Context())
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
	f.StringVar(&o.opts.ListenHost, "listen-host", "", "address the target connects to for --method replication (default: the runner's address on its connection to the target)")
	f.StringVar(&o.resultFile, "result-file", "", "write the result as JSON to this file")
	return cmd
}

// Validate checks the flags without I/O.
func (o *RestoreOptions) Validate() error {
	if err := restore.CheckMethod(o.opts.Method); err != nil {
		return fmt.Errorf("--method: %w", err)
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
	res, err := o.run(ctx)
	return finish(o.resultFile, "restore", start, res, err)
}

func (o *RestoreOptions) run(ctx context.Context) (restore.Result, error) {
	r, err := o.g.openRepo(ctx, false)
	if err != nil {
		return restore.Result{}, err
	}
	defer r.Close()
	o.opts.Repository = r
	o.opts.Progress = &progress.Counter{}
	stop := progress.Report(ctx, o.g.ErrOut, "restore", o.opts.Progress, o.g.progressInterval)
	res, err := restore.Run(ctx, o.opts)
	stop()
	if err != nil {
		return res, err
	}
	for _, d := range res.DroppedKeys {
		o.g.warn(fmt.Sprintf("left out db %d key %q: %s", d.DB, d.Key, d.Reason))
	}
	if n := res.Dropped - int64(len(res.DroppedKeys)); n > 0 {
		o.g.warn(fmt.Sprintf("left out %d more keys the target cannot hold", n))
	}
	fmt.Fprintf(o.g.Out, "snapshot %s restored and verified: %d keys in %d databases (%d expired, %d filtered, %d left out) by %s, %s\n",
		res.SnapshotID, res.Keys, len(res.Databases), res.Expired, res.Filtered, res.Dropped, res.Method, res.Duration.Round(time.Millisecond))
	return res, nil
}
