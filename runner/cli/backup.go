package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/repo"
)

// BackupOptions are the flags of `stash-runner backup`.
type BackupOptions struct {
	g          *global
	redis      redisFlags
	resultFile string
	replica    bool
	method     string
	cut        bool
	cutPause   time.Duration
	cluster    clusterFlags
	opts       backup.Options // set in Complete
}

func newBackupCommand(g *global) *cobra.Command {
	o := &BackupOptions{g: g}
	cmd := &cobra.Command{
		Use:   "backup --redis URL --repository URL",
		Short: "Take a snapshot of a Redis server (creates the repository on first use)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cluster.session != "" {
				return o.cluster.runBackup(cmd.Context(), o.g)
			}
			return prepareThen(o.resultFile, "backup", func() error { return o.Run(cmd.Context()) }, o.Validate, o.Complete)
		},
	}
	o.redis.bind(cmd)
	o.cluster.bind(cmd)
	cmd.Flags().StringVar(&o.resultFile, "result-file", "", "write the result as JSON to this file")
	cmd.Flags().StringVar(&o.method, "method", backup.MethodAuto, "how to read the keys: replication (one full resync: a consistent snapshot), dump (SCAN + DUMP, no fork) or auto (replication where the server serves a replica, else dump)")
	cmd.Flags().BoolVar(&o.replica, "read-from-replica", false, "read from replicas: a replica of each cluster master, or (with --sentinel-master) a healthy replica")
	cmd.Flags().BoolVar(&o.cut, "consistent-cut", false, "cluster: back up every master at one instant (writes paused on every master until each has forked for a full resync)")
	cmd.Flags().DurationVar(&o.cutPause, "cut-pause", backup.DefaultCutPause, "with --consistent-cut: the longest writes may stay paused; a cut that needs longer fails and resumes writes")
	return cmd
}

// Validate checks the flags without I/O.
func (o *BackupOptions) Validate() error {
	if err := backup.CheckMethod(o.method); err != nil {
		return err
	}
	if o.cutPause <= 0 || o.cutPause > time.Minute {
		return fmt.Errorf("--cut-pause %s: give a duration above 0 and at most 1m", o.cutPause)
	}
	return o.g.validateRepository()
}

// Complete resolves the connection options.
func (o *BackupOptions) Complete() error {
	ro, err := o.redis.options(o.g)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	o.opts = backup.Options{Redis: ro, Databases: o.redis.databases, Workers: o.redis.workers, Hostname: host, RunnerVersion: o.g.version,
		Sentinel: o.redis.sentinel(o.g, ro), ReadFromReplica: o.replica, Method: o.method, ConsistentCut: o.cut, CutPause: o.cutPause,
		Logf: func(format string, args ...any) { fmt.Fprintf(o.g.ErrOut, format+"\n", args...) }}
	return nil
}

// Run takes the snapshot.
func (o *BackupOptions) Run(ctx context.Context) error {
	start := time.Now()
	res, err := o.run(ctx)
	return finish(o.resultFile, "backup", start, res, err)
}

func (o *BackupOptions) run(ctx context.Context) (backup.Result, error) {
	res, err := withProgress(ctx, o.g, "backup", unlockWhileStarting, func(r *repo.Repository, pr *progress.Counter) (backup.Result, error) {
		o.opts.Repository, o.opts.Progress = r, pr
		return backup.Run(ctx, o.opts)
	})
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.g.Out, "snapshot %s saved: %d keys in %d databases (%d skipped), %d function libraries, %s RESP, %s stored, %s, by %s\n",
		res.SnapshotID, res.Keys, len(res.Databases), res.Skipped, res.Functions, v1alpha1.HumanBytes(res.RawBytes), v1alpha1.HumanBytes(res.StoredBytes),
		res.Duration.Round(time.Millisecond), res.Method)
	return res, nil
}
