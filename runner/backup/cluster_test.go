package backup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestClusterBackupDuringMigration moves the keys of one slot to another master while the
// backup runs; the snapshot must still hold every key.
func TestClusterBackupDuringMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartCluster(t, 3)
	runnertest.FillCluster(t, src, 20000)
	// 3000 keys in one slot, which moves from its owner to the next master.
	slot, from, to := runnertest.FillSlot(t, src, "{mig}", 3000)
	ids := map[*redistest.Server]string{}
	for _, m := range src.Masters {
		ids[m] = runnertest.NodeID(t, m)
	}
	want := src.Contents(t)
	must := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(to.Client, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from])
	must(from.Client, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])
	migrate := func(n int) (int, error) { // moves up to n keys, returns how many moved
		keys, err := from.Client.ClusterGetKeysInSlot(ctx, slot, n).Result()
		if err != nil || len(keys) == 0 {
			return 0, err
		}
		args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		return len(keys), from.Client.Do(ctx, args...).Err()
	}
	if _, err := migrate(1000); err != nil { // some keys have moved before the backup starts
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	var g errgroup.Group
	var res backup.Result
	g.Go(func() (err error) {
		res, err = backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r, ScanCount: 100, Workers: 2})
		return err
	})
	g.Go(func() error { // the rest move while it runs
		for {
			n, err := migrate(20)
			if err != nil || n == 0 {
				return err
			}
			time.Sleep(time.Millisecond)
		}
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range src.Masters {
		must(m.Client, "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
	}
	if res.Keys != int64(len(want)) {
		t.Errorf("backup holds %d keys, want %d", res.Keys, len(want))
	}
	m, err := r.Resolve(ctx, res.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{slot}, m.Cluster.MigratingSlots); diff != "" || m.Cluster.MigratingKeys != 3000 {
		t.Errorf("migrating slots (-want +got):\n%s; keys %d", diff, m.Cluster.MigratingKeys)
	}
	dst := redistest.StartCluster(t, 3)
	runnertest.RestoreCluster(t, r, conn(t, dst.Masters[0]), dst, want)
	dataset.EqualInstances(t, dataset.ClusterOf(src), dataset.ClusterOf(dst), dataset.Options{})
}

func TestClusterReadFromReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartClusterWithReplicas(t, 3)
	runnertest.FillCluster(t, src, 3000)
	for _, m := range src.Masters {
		if err := m.Client.Do(ctx, "WAIT", 1, 10000).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := src.Contents(t)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r, ReadFromReplica: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Resolve(ctx, res.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range m.Cluster.Shards {
		if sh.ReadFrom == "" || sh.ReadFrom == sh.Addr {
			t.Errorf("shard %s was read from %q, not a replica", sh.Addr, sh.ReadFrom)
		}
	}
	if res.Keys != 3000 {
		t.Errorf("backup holds %d keys", res.Keys)
	}
	// Restore over the source: --flush empties every master first.
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, src.Masters[2]), Repository: r, Flush: true}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, src.Contents(t)); diff != "" {
		t.Errorf("cluster after restore (-want +got):\n%.2000s", diff)
	}

	_, err = backup.Run(ctx, backup.Options{Redis: conn(t, redistest.Start(t)), Repository: r, ReadFromReplica: true})
	if err == nil || !strings.Contains(err.Error(), "not a cluster") {
		t.Errorf("--read-from-replica on a standalone server: %v", err)
	}
}

// TestClusterReshardDuringBackup starts moving a slot that was stable when the backup began: the
// backup cannot know that it saw every key of it, so it must fail, not commit a partial snapshot.
func TestClusterReshardDuringBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartCluster(t, 3)
	runnertest.FillCluster(t, src, 30000)
	slot, from, to := runnertest.FillSlot(t, src, "{late}", 500)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	pc := &progress.Counter{}
	fromID, toID := runnertest.NodeID(t, from), runnertest.NodeID(t, to)
	testproc.When(t, time.Minute, "the backup dumps 1000 keys", func() bool { return pc.Keys.Load() >= 1000 }, func() error {
		err := to.Client.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID).Err()
		if err == nil {
			err = from.Client.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID).Err()
		}
		if err == nil {
			keys, _ := from.Client.ClusterGetKeysInSlot(ctx, slot, 250).Result()
			args := []any{"MIGRATE", "127.0.0.1", to.Port, "", 0, 5000, "KEYS"}
			for _, k := range keys {
				args = append(args, k)
			}
			err = from.Client.Do(ctx, args...).Err()
		}
		return err
	})
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r, ScanCount: 50, Workers: 1, Progress: pc})
	if err == nil || !strings.Contains(err.Error(), "run the backup again") {
		t.Fatalf("backup during a resharding: %v, want an error asking to run it again", err)
	}
	t.Logf("backup error: %v", err)
	if all, err := r.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("snapshots after the failed backup: %v, %v", all, err)
	}
}
