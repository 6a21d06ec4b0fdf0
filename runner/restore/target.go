package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/redisconn"
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
