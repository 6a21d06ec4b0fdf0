package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
)

// ErrTargetIsReplica is returned for a target that replicates a master (and
// Options.AllowReplicaTarget is not set): what is restored into a writable replica is wiped by
// its master's next synchronization, seconds after the restore was verified, and a read-only
// replica refuses the writes. Nothing has been written then.
var ErrTargetIsReplica = errors.New("the target is a replica of another server")

// ErrNothingMatched is returned when the key selection (databases and key pattern) matched no
// key of a snapshot that has keys: nothing was restored, which is a typo more often than a wish.
var ErrNothingMatched = errors.New("no key of the snapshot matched the selection")

// checkNotReplica fails with ErrTargetIsReplica when the target's INFO replication says it is a
// replica, naming its master.
func checkNotReplica(ctx context.Context, c *redis.Client, addr string) error {
	txt, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("read redis info replication: %w", err)
	}
	var role, host, port string
	for line := range strings.Lines(txt) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "role":
			role = v
		case "master_host":
			host = v
		case "master_port":
			port = v
		}
	}
	if role != "slave" {
		return nil
	}
	return fmt.Errorf("%w: %s replicates %s:%s, whose next synchronization would replace the restored keys; restore into the master, or make %s a master first (REPLICAOF NO ONE)",
		ErrTargetIsReplica, addr, host, port, addr)
}

// databasesToFlush returns the databases Flush empties: those restored, and, for a snapshot that
// has no database at all (an empty server was backed up), every database of the target that has
// keys, so that the target ends as the snapshot's source was. An explicit list of databases
// (Options.Databases) is taken as it is.
func databasesToFlush(restored, asked []int, info redisconn.ServerInfo, snapshotDatabases int) []int {
	if snapshotDatabases > 0 || len(asked) > 0 {
		return restored
	}
	var dbs []int
	for _, db := range slices.Sorted(maps.Keys(info.Keys)) {
		if info.Keys[db] > 0 {
			dbs = append(dbs, db)
		}
	}
	return dbs
}

// duplicateGuard returns a KeySet for a restore by replication of an imported snapshot, which
// a runner that did not check for keys appearing twice may have written (one sent twice stops
// the target); nil for a snapshot read from a server, which holds a key once.
func duplicateGuard(m repo.Manifest) *rdb.KeySet {
	if m.Method != "import" {
		return nil
	}
	return rdb.NewKeySet()
}

// sanitizePayloads turns on the targets' own deep check of RESTORE payloads
// (sanitize-dump-payload yes) for a restore by RESTORE commands, so that a damaged value is
// refused with an error ("Bad data format") instead of being stored and crashing the server
// later (when a command or DEBUG DIGEST reads it). It returns the function that puts each
// target's setting back. A target that does not let the runner change it (CONFIG renamed or
// not allowed) is restored without it, with a warning.
func sanitizePayloads(ctx context.Context, targets []redisconn.Options, warn func(string)) (putBack func()) {
	type changed struct {
		o   redisconn.Options
		was string
	}
	var undo []changed
	for _, o := range targets {
		c := o.Client(0)
		cfg, err := c.ConfigGet(ctx, "sanitize-dump-payload").Result()
		if err == nil && cfg["sanitize-dump-payload"] != "yes" {
			if err = c.ConfigSet(ctx, "sanitize-dump-payload", "yes").Err(); err == nil {
				undo = append(undo, changed{o, cfg["sanitize-dump-payload"]})
			}
		}
		c.Close()
		if err != nil {
			warn(fmt.Sprintf("could not turn on sanitize-dump-payload on %s for the restore (%v): it checks less of each value than the runner's import does", o.Addr, err))
		}
	}
	return func() {
		ctx := context.WithoutCancel(ctx)
		for _, u := range undo {
			c := u.o.Client(0)
			if err := c.ConfigSet(ctx, "sanitize-dump-payload", u.was).Err(); err != nil {
				warn(fmt.Sprintf("could not put back sanitize-dump-payload %s on %s: %v", u.was, u.o.Addr, err))
			}
			c.Close()
		}
	}
}
