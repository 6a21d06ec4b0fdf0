package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/follow"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
)

// FollowOptions are the flags of `stash-runner follow`.
type FollowOptions struct {
	g           *global
	redis       redisFlags
	interval    time.Duration
	size        string
	noReconnect bool
	opts        follow.Options // set in Complete
}

func newFollowCommand(g *global) *cobra.Command {
	o := &FollowOptions{g: g}
	cmd := &cobra.Command{
		Use:   "follow --redis URL --repository URL",
		Short: "Continuous backup: a base snapshot, then the replication stream into the repository's journal, until stopped",
		Long: `follow connects to a standalone Redis (or, with --sentinel-master, the master that the Sentinel
at --redis names, asked again at every reconnection) as a replica, takes a base snapshot from the full
resynchronization, then records the replication stream that follows into journal segments
(closed every --segment-interval or --segment-size, whichever comes first). It runs until
SIGTERM or SIGINT, which close the open segment. After a lost link, or when started again on the
same repository, it continues the newest chain where the source still has the stream
(PSYNC continue), and otherwise starts a new chain with a new base.

The source counts the follower as a replica (WAIT, min-replicas-to-write); it is named
stash-runner in CLIENT LIST. stash-runner restore --to-time or --to-offset restores to a point
of the recoverable window that stash-runner snapshots shows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.redis.bind(cmd)
	for _, name := range []string{"databases", "workers"} {
		_ = cmd.Flags().MarkHidden(name) // a follower records every database of one server
	}
	cmd.Flags().DurationVar(&o.interval, "segment-interval", follow.DefaultSegmentInterval, "close a journal segment this long after its first command")
	cmd.Flags().StringVar(&o.size, "segment-size", "8MiB", "close a journal segment when it holds this much of the stream (KiB, MiB, GiB)")
	cmd.Flags().DurationVar(&o.opts.BaseInterval, "base-interval", follow.DefaultBaseInterval, "take a new base (and start a new chain) this long after the chain's base, while the stream is still recorded; 0 never does")
	cmd.Flags().DurationVar(&o.opts.KeepWithinWindow, "keep-within-window", 0, "after each new base, remove the chains (with their bases) that no instant of this last stretch of time needs; 0 keeps them")
	cmd.Flags().BoolVar(&o.noReconnect, "no-reconnect", false, "exit with an error when the replication link is lost, instead of reconnecting")
	return cmd
}

// Validate checks the flags without I/O.
func (o *FollowOptions) Validate() error {
	if o.interval < 100*time.Millisecond {
		return fmt.Errorf("--segment-interval %s: must be at least 100ms", o.interval)
	}
	if o.opts.BaseInterval != 0 && o.opts.BaseInterval < time.Second {
		return fmt.Errorf("--base-interval %s: must be at least 1s (or 0: never)", o.opts.BaseInterval)
	}
	if o.opts.KeepWithinWindow < 0 {
		return fmt.Errorf("--keep-within-window %s: must not be negative", o.opts.KeepWithinWindow)
	}
	n, err := parseSize(o.size)
	if err != nil {
		return fmt.Errorf("--segment-size: %w", err)
	}
	if n < 4<<10 || n > 1<<30 {
		return fmt.Errorf("--segment-size %s: must be between 4KiB and 1GiB", o.size)
	}
	o.opts.SegmentSize = n
	if len(o.redis.databases) > 0 {
		return errors.New("follow records every database: --databases does not apply")
	}
	return o.g.validateRepository()
}

// Complete resolves the connection options.
func (o *FollowOptions) Complete() error {
	ro, err := o.redis.options(o.g)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	o.opts.Redis, o.opts.SegmentInterval, o.opts.Reconnect = ro, o.interval, !o.noReconnect
	// With --sentinel-master, --redis is the Sentinel, asked for the master at every
	// (re)connection: the follower follows the new master after a failover.
	o.opts.Sentinel = o.redis.sentinel(o.g, ro)
	o.opts.Hostname, o.opts.RunnerVersion = host, o.g.version
	o.opts.Logf = func(format string, args ...any) { fmt.Fprintf(o.g.ErrOut, format+"\n", args...) }
	return nil
}

// Run follows until ctx ends.
func (o *FollowOptions) Run(ctx context.Context) error {
	if err := o.refuseCluster(ctx); err != nil {
		return err
	}
	err := o.g.useRepository(ctx, orCreate, func(r *repo.Repository) error {
		o.opts.Repository = r
		return o.follow(ctx)
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(o.g.ErrOut, "follow stopped; the open segment was closed")
	return nil
}

// follow records until ctx ends, printing each base snapshot and segment as it is saved.
func (o *FollowOptions) follow(ctx context.Context) error {
	o.opts.OnBase = func(res backup.Result) {
		fmt.Fprintf(o.g.Out, "base snapshot %s saved: %d keys, %s stored\n", res.SnapshotID, res.Keys, v1alpha1.HumanBytes(res.StoredBytes))
	}
	o.opts.OnSegment = func(m journal.Manifest) {
		fmt.Fprintf(o.g.Out, "segment %s: offsets %d-%d, %d commands, %s to %s, %s stored\n", m.Name(), m.StartOffset, m.EndOffset,
			m.Commands, m.FirstTime.UTC().Format(time.RFC3339Nano), m.LastTime.UTC().Format(time.RFC3339Nano), v1alpha1.HumanBytes(m.StoredBytes))
	}
	return follow.Run(ctx, o.opts)
}

// refuseCluster fails for a node of a Redis Cluster, before the repository is opened: a
// follower is one replica of one server, so it would record the shard of that node only, and
// its window would restore a fraction of the keys as if it were the whole dataset. Clusters are
// backed up by snapshots (stash-runner backup), one per node, until they can be followed.
func (o *FollowOptions) refuseCluster(ctx context.Context) error {
	node, err := redisconn.Connect(ctx, redisconn.ConnectOptions{Redis: o.opts.Redis, Sentinel: o.opts.Sentinel})
	if err != nil {
		return err
	}
	node.Client.Close()
	if node.Info.Mode == redisconn.ModeCluster {
		return fmt.Errorf("redis %s is a node of a Redis Cluster: follow records one server's replication stream, so it would record this node's slots only; continuous backup of a cluster is not supported yet (take snapshots with stash-runner backup, which covers every node)", node.Redis.Addr)
	}
	return nil
}

// parseSize reads a byte count: a number, optionally followed by KiB, MiB or GiB (or K, M, G,
// KB, MB, GB, all powers of 1024).
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGiBkmgb")
	unit := strings.ToLower(strings.TrimPrefix(s, num))
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (use e.g. 8MiB)", s)
	}
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "kb": 10, "kib": 10, "m": 20, "mb": 20, "mib": 20, "g": 30, "gb": 30, "gib": 30}
	sh, ok := shift[unit]
	if !ok || n > 1<<(62-sh) {
		return 0, fmt.Errorf("invalid size %q (use e.g. 8MiB)", s)
	}
	return n << sh, nil
}
