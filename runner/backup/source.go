package backup

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

// ErrReplicaNotInSync is returned for a source that is a replica whose link to its master is
// down or still in its initial synchronization: what it holds is stale or partial (a replica
// keeps serving its old dataset while it loads the master's), so a snapshot of it would look
// good and hold the wrong keys.
var ErrReplicaNotInSync = errors.New("the source is a replica that is not in sync with its master")

// checkReplicaInSync fails with ErrReplicaNotInSync when the server is a replica whose
// replication link is not up or whose initial sync is in progress (INFO replication:
// master_link_status, master_sync_in_progress). A master, and a replica in sync, pass.
func checkReplicaInSync(ctx context.Context, c *redis.Client, addr string) error {
	txt, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return fmt.Errorf("read redis info replication: %w", err)
	}
	f := map[string]string{}
	for line := range strings.Lines(txt) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			f[k] = v
		}
	}
	if f["role"] != "slave" {
		return nil
	}
	master := f["master_host"] + ":" + f["master_port"]
	var why string
	switch {
	case f["master_sync_in_progress"] == "1":
		why = "is in the middle of its initial sync (master_sync_in_progress:1): it still holds its old keys, or part of the new ones"
	case f["master_link_status"] != "up":
		why = fmt.Sprintf("has its link down (master_link_status:%s): its keys may be stale", f["master_link_status"])
	default:
		return nil
	}
	return fmt.Errorf("%w: redis %s is a replica of %s that %s; back up the master %s instead, or wait until INFO replication on %s says master_link_status:up and master_sync_in_progress:0",
		ErrReplicaNotInSync, addr, master, why, master, addr)
}

// checkDatabasesExist refuses databases the server does not have: a backup of database 99 of a
// 16-database server would save nothing and call it a success.
func checkDatabasesExist(addr string, want []int, info redisconn.ServerInfo) error {
	var missing []int
	for _, db := range want {
		if db >= info.Databases {
			missing = append(missing, db)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var withKeys []int
	for _, db := range slices.Sorted(maps.Keys(info.Keys)) {
		if info.Keys[db] > 0 {
			withKeys = append(withKeys, db)
		}
	}
	return fmt.Errorf("%w: redis %s has databases 0 to %d (keys in %s), not %s", ErrNoSuchDatabase, addr, info.Databases-1, intList(withKeys), intList(missing))
}

// ErrNoSuchDatabase is returned for a database the source does not have.
var ErrNoSuchDatabase = errors.New("no such database")

func intList(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
