package restore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// fillCluster writes n keys of every type through the cluster client, a third with expiry, and
// some sharing hash tags.
func fillCluster(t *testing.T, c *redistest.Cluster, n int) {
	t.Helper()
	ctx := context.Background()
	p := c.Client.Pipeline()
	for i := range n {
		k := fmt.Sprintf("k:%d", i)
		if i%5 == 0 {
			k = fmt.Sprintf("{user%d}:k:%d", i%17, i)
		}
		switch i % 5 {
		case 0:
			p.Set(ctx, k, strings.Repeat("v", i%300), 0)
		case 1:
			p.RPush(ctx, k, "a", i, "c")
		case 2:
			p.HSet(ctx, k, "f", i, "g", "h")
		case 3:
			p.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: "m"})
		case 4:
			p.SAdd(ctx, k, i, "x")
		}
		if i%3 == 0 {
			p.PExpireAt(ctx, k, time.Now().Add(time.Hour+time.Duration(i)*time.Millisecond))
		}
		if p.Len() >= 2000 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// fillSlot writes n keys with hash tag tag and returns their slot, the master that owns it and
// the next master, where a test may move it.
func fillSlot(t *testing.T, c *redistest.Cluster, tag string, n int) (slot int, owner, next *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	p := c.Client.Pipeline()
	for i := range n {
		p.Set(ctx, tag+strconv.Itoa(i), i, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	slot = cluster.Slot([]byte(tag))
	for i, m := range c.Masters {
		if k, _ := m.Client.ClusterCountKeysInSlot(ctx, slot).Result(); k > 0 {
			owner, next = m, c.Masters[(i+1)%len(c.Masters)]
		}
	}
	if owner == nil {
		t.Fatalf("no master owns the keys of %s", tag)
	}
	return slot, owner, next
}

// nodeID is the cluster node ID of s.
func nodeID(t *testing.T, s *redistest.Server) string {
	t.Helper()
	id, err := s.Client.Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func nodeConn(t *testing.T, s *redistest.Server) redisconn.Options {
	t.Helper()
	return conn(t, s)
}

func TestClusterRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartCluster(t, 3)
	fillCluster(t, src, 5000)
	want := src.Contents(t)
	if len(want) != 5000 {
		t.Fatalf("source has %d keys", len(want))
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	// Any node's address will do: the masters are discovered.
	res, err := backup.Run(ctx, backup.Options{Redis: nodeConn(t, src.Masters[1]), Repository: r, RunnerVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 5000 {
		t.Errorf("backup keys = %d, want 5000", res.Keys)
	}
	if _, err := backup.Run(ctx, backup.Options{Redis: nodeConn(t, src.Masters[0]), Repository: r, Mode: "standalone"}); err == nil ||
		!strings.Contains(err.Error(), "runs in cluster mode, but standalone mode was asked for") {
		t.Errorf("backup of a cluster as standalone: %v", err)
	}
	m, err := r.Resolve(ctx, res.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	if m.RedisMode != "cluster" || m.Cluster == nil || len(m.Cluster.Shards) != 3 {
		t.Fatalf("manifest: mode %q, cluster %+v", m.RedisMode, m.Cluster)
	}
	var sum int64
	slots := 0
	for _, sh := range m.Cluster.Shards {
		sum += sh.Keys
		for _, r := range sh.Slots {
			slots += r.End - r.Start + 1
		}
		if sh.Keys == 0 {
			t.Errorf("shard %s has no keys", sh.Addr)
		}
	}
	if sum != 5000 || slots != cluster.Slots {
		t.Errorf("shards hold %d keys and %d slots", sum, slots)
	}

	t.Run("into 3 masters", func(t *testing.T) {
		t.Parallel()
		dst := redistest.StartCluster(t, 3)
		restoreCluster(t, r, nodeConn(t, dst.Masters[0]), dst, want)
	})
	t.Run("into 4 masters", func(t *testing.T) {
		t.Parallel()
		dst := redistest.StartCluster(t, 4)
		restoreCluster(t, r, nodeConn(t, dst.Masters[2]), dst, want)
	})
	t.Run("into standalone", func(t *testing.T) {
		t.Parallel()
		dst := redistest.Start(t)
		if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, dst.Contents(t)); diff != "" {
			t.Errorf("standalone differs from the source cluster (-want +got):\n%.2000s", diff)
		}
	})
}

func restoreCluster(t *testing.T, r *repo.Repository, o redisconn.Options, dst *redistest.Cluster, want map[string]string) {
	t.Helper()
	res, err := restore.Run(context.Background(), restore.Options{Redis: o, Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != int64(len(want)) {
		t.Errorf("restored %d keys, want %d", res.Keys, len(want))
	}
	if n := dst.DBSize(t); n != int64(len(want)) {
		t.Errorf("DBSIZE over the masters = %d, want %d", n, len(want))
	}
	if diff := cmp.Diff(want, dst.Contents(t)); diff != "" {
		t.Errorf("restored cluster differs (-want +got):\n%.2000s", diff)
	}
	for _, m := range dst.Masters {
		if n, _ := m.Client.DBSize(context.Background()).Result(); n == 0 {
			t.Errorf("master %s got no keys", m.Addr)
		}
	}
}

func TestStandaloneSnapshotIntoCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, 0) // databases 0, 3 and 15
	r := openRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.StartCluster(t, 3)
	_, err := restore.Run(ctx, restore.Options{Redis: nodeConn(t, dst.Masters[0]), Repository: r})
	if err == nil || !strings.Contains(err.Error(), "database 3") || !strings.Contains(err.Error(), "--databases 0") {
		t.Fatalf("restore of databases 0,3,15 into a cluster: %v", err)
	}
	if n := dst.DBSize(t); n != 0 {
		t.Fatalf("refused restore wrote %d keys", n)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: nodeConn(t, dst.Masters[0]), Repository: r, Databases: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	want := src.Contents(t)
	if res.Keys != int64(len(want)) {
		t.Errorf("restored %d keys, want %d", res.Keys, len(want))
	}
	if diff := cmp.Diff(want, dst.Contents(t)); diff != "" {
		t.Errorf("cluster differs from database 0 (-want +got):\n%.2000s", diff)
	}
}

// TestClusterBackupDuringMigration moves the keys of one slot to another master while the
// backup runs; the snapshot must still hold every key.
func TestClusterBackupDuringMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartCluster(t, 3)
	fillCluster(t, src, 20000)
	// 3000 keys in one slot, which moves from its owner to the next master.
	slot, from, to := fillSlot(t, src, "{mig}", 3000)
	ids := map[*redistest.Server]string{}
	for _, m := range src.Masters {
		ids[m] = nodeID(t, m)
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
		res, err = backup.Run(ctx, backup.Options{Redis: nodeConn(t, src.Masters[0]), Repository: r, ScanCount: 100, Workers: 2})
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
	restoreCluster(t, r, nodeConn(t, dst.Masters[0]), dst, want)
}

func TestClusterReadFromReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartClusterWithReplicas(t, 3)
	fillCluster(t, src, 3000)
	for _, m := range src.Masters {
		if err := m.Client.Do(ctx, "WAIT", 1, 10000).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := src.Contents(t)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(ctx, backup.Options{Redis: nodeConn(t, src.Masters[0]), Repository: r, ReadFromReplica: true})
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
	if _, err := restore.Run(ctx, restore.Options{Redis: nodeConn(t, src.Masters[2]), Repository: r, Flush: true}); err != nil {
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

// TestClusterRestoreDuringMigration restores into a cluster whose slot is being migrated: the
// owner answers ASK for keys it does not have, and the restore follows to the importing node.
func TestClusterRestoreDuringMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.Start(t)
	p := src.Client.Pipeline()
	for i := range 2000 {
		p.Set(ctx, "{mig}"+strconv.Itoa(i), i, 0)
		p.Set(ctx, "other:"+strconv.Itoa(i), i, time.Hour)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.StartCluster(t, 3)
	slot := cluster.Slot([]byte("{mig}"))
	var from, to *redistest.Server
	for i, m := range dst.Masters {
		shards, err := m.Client.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range shards {
			if s.Start <= slot && slot <= s.End && strings.HasSuffix(s.Nodes[0].Addr, ":"+strconv.Itoa(m.Port)) {
				from, to = m, dst.Masters[(i+1)%3]
			}
		}
	}
	if from == nil {
		t.Fatal("no owner found for the slot")
	}
	if err := to.Client.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", nodeID(t, from)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := from.Client.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", nodeID(t, to)).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: nodeConn(t, dst.Masters[0]), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 4000 || dst.DBSize(t) != 4000 {
		t.Errorf("restored %d keys, cluster holds %d, want 4000", res.Keys, dst.DBSize(t))
	}
	if n, _ := to.Client.ClusterCountKeysInSlot(ctx, slot).Result(); n != 2000 {
		t.Errorf("the importing node holds %d keys of the migrating slot, want 2000 (ASK not followed?)", n)
	}
	for _, m := range dst.Masters { // finish the migration so that every key can be read
		if err := m.Client.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", nodeID(t, to)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(src.Contents(t), dst.Contents(t)); diff != "" {
		t.Errorf("cluster differs (-want +got):\n%.2000s", diff)
	}
}

// TestClusterReshardDuringBackup starts moving a slot that was stable when the backup began: the
// backup cannot know that it saw every key of it, so it must fail, not commit a partial snapshot.
func TestClusterReshardDuringBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := redistest.StartCluster(t, 3)
	fillCluster(t, src, 30000)
	slot, from, to := fillSlot(t, src, "{late}", 500)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	pc := &progress.Counter{}
	fromID, toID := nodeID(t, from), nodeID(t, to)
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
	_, err := backup.Run(ctx, backup.Options{Redis: nodeConn(t, src.Masters[0]), Repository: r, ScanCount: 50, Workers: 1, Progress: pc})
	if err == nil || !strings.Contains(err.Error(), "run the backup again") {
		t.Fatalf("backup during a resharding: %v, want an error asking to run it again", err)
	}
	t.Logf("backup error: %v", err)
	if all, err := r.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("snapshots after the failed backup: %v, %v", all, err)
	}
}
