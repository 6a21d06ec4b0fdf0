package restore_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
)

// snapshotOf backs src up into a new file repository and returns it with the snapshot's id.
func snapshotOf(t *testing.T, src *redistest.Server) (*repo.Repository, string) {
	t.Helper()
	r := openRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(context.Background(), backup.Options{Redis: conn(t, src), Repository: r, Method: backup.MethodDump})
	if err != nil {
		t.Fatal(err)
	}
	return r, res.SnapshotID
}

// TestReplaceIntoEvictingTargetIsNotVerified restores with Replace into a target that already
// holds keys and evicts (maxmemory, volatile-lru: only the restored keys, which have TTLs, can be
// evicted): the target's key count stays above the snapshot's, yet restored keys are gone. The
// restore must fail naming the missing keys. Before, it was "verified".
func TestReplaceIntoEvictingTargetIsNotVerified(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	pipe := src.Client.Pipeline()
	for i := range 20000 {
		pipe.Set(ctx, "restored:"+strconv.Itoa(i), strings.Repeat("v", 100), time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r, id := snapshotOf(t, src)

	dst := redistest.Start(t)
	if err := dst.Client.Do(ctx, "DEBUG", "POPULATE", 30000, "existing", 10).Err(); err != nil {
		t.Fatal(err)
	}
	used, err := strconv.ParseInt(redistest.InfoField(t, dst.Client, "memory", "used_memory"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Client.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := dst.Client.ConfigSet(ctx, "maxmemory", strconv.FormatInt(used+1<<20, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Replace: true,
		Warn: func(s string) { warnings = append(warnings, s) }})
	n := dst.Client.DBSize(ctx).Val()
	t.Logf("target holds %d keys; restore: %v", n, err)
	if n < 20000 {
		t.Fatalf("the target holds %d keys: the test needs more than the snapshot's 20000 to hide the eviction from a key count", n)
	}
	if !errors.Is(err, restore.ErrKeyCount) || !strings.Contains(err.Error(), "restored:") {
		t.Fatalf("restore into an evicting target: %v, want ErrKeyCount naming restored keys", err)
	}
	if len(warnings) == 0 || !strings.Contains(strings.Join(warnings, "\n"), "volatile-lru") {
		t.Errorf("no warning about the evicting target: %q", warnings)
	}
}

// TestFlushWithEmptySnapshotEmptiesTheTarget restores a snapshot of an empty server with Flush:
// the target ends empty. Before, its keys stayed and the restore reported success.
func TestFlushWithEmptySnapshotEmptiesTheTarget(t *testing.T) {
	ctx := context.Background()
	r, id := snapshotOf(t, redistest.Start(t))
	dst := redistest.Start(t)
	for _, db := range []int{0, 3} {
		c := conn(t, dst).Client(db)
		if err := c.Set(ctx, "old", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Flush: true}); err != nil {
		t.Fatal(err)
	}
	for _, db := range []int{0, 3} {
		c := conn(t, dst).Client(db)
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil || n != 0 {
			t.Fatalf("database %d after a restore with Flush of an empty snapshot: %d keys (%v)", db, n, err)
		}
	}
}

// TestKeyPatternMatchingNothingFails restores with a key pattern that matches none of the
// snapshot's keys: ErrNothingMatched, nothing written. Before: success with 0 keys.
func TestKeyPatternMatchingNothingFails(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 100, "key").Err(); err != nil {
		t.Fatal(err)
	}
	r, id := snapshotOf(t, src)
	dst := redistest.Start(t)
	for _, method := range []string{restore.MethodRestore, restore.MethodReplication} {
		_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, KeyPattern: "nomatch:*", Method: method})
		if !errors.Is(err, restore.ErrNothingMatched) || !strings.Contains(err.Error(), "100 keys were left out") {
			t.Fatalf("restore by %s with a key pattern matching nothing: %v, want ErrNothingMatched", method, err)
		}
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("the target holds %d keys", n)
	}
}

// TestReplicaTargetIsRefused restores into a writable replica: refused before anything is
// written (its master's next sync would wipe the restore), unless AllowReplicaTarget. Before, the
// restore was verified and the keys were gone at the master's next synchronization.
func TestReplicaTargetIsRefused(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 100, "key").Err(); err != nil {
		t.Fatal(err)
	}
	r, id := snapshotOf(t, src)
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master, redistest.WithConfig("replica-read-only", "no"))
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, replica), Repository: r, Snapshot: id})
	if !errors.Is(err, restore.ErrTargetIsReplica) || !strings.Contains(err.Error(), master.Addr) {
		t.Fatalf("restore into a replica: %v, want ErrTargetIsReplica naming its master", err)
	}
	if n := replica.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("a refused restore wrote %d keys", n)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, replica), Repository: r, Snapshot: id, AllowReplicaTarget: true})
	if err != nil || res.Keys != 100 {
		t.Fatalf("restore into a replica when allowed: %+v, %v", res, err)
	}
}
