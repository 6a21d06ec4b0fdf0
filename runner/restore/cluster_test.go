package restore_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// The cluster helpers of runnertest, by the short names this package's tests use.
var (
	fillCluster    = runnertest.FillCluster
	nodeID         = runnertest.NodeID
	restoreCluster = runnertest.RestoreCluster
)

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
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[1]), Repository: r, RunnerVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 5000 {
		t.Errorf("backup keys = %d, want 5000", res.Keys)
	}
	if _, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r, Mode: "standalone"}); err == nil ||
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
		restoreCluster(t, r, conn(t, dst.Masters[0]), dst, want)
		dataset.EqualInstances(t, dataset.ClusterOf(src), dataset.ClusterOf(dst), dataset.Options{})
	})
	t.Run("into 4 masters", func(t *testing.T) {
		t.Parallel()
		dst := redistest.StartCluster(t, 4)
		restoreCluster(t, r, conn(t, dst.Masters[2]), dst, want)
		dataset.EqualInstances(t, dataset.ClusterOf(src), dataset.ClusterOf(dst), dataset.Options{})
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
		dataset.EqualInstances(t, dataset.ClusterOf(src), dataset.Standalone(dst), dataset.Options{})
	})
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
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst.Masters[0]), Repository: r})
	var dbErr *v1alpha1.ClusterDatabaseError
	if !errors.As(err, &dbErr) || dbErr.DB != 3 {
		t.Fatalf("restore of databases 0,3,15 into a cluster: %v", err)
	}
	if n := dst.DBSize(t); n != 0 {
		t.Fatalf("refused restore wrote %d keys", n)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst.Masters[0]), Repository: r, Databases: []int{0}})
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
	dataset.EqualInstances(t, dataset.Standalone(src), dataset.ClusterOf(dst), dataset.Options{DBs: []int{0}})
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
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst.Masters[0]), Repository: r})
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
	dataset.EqualInstances(t, dataset.Standalone(src), dataset.ClusterOf(dst), dataset.Options{})
}
