package backup_test

import (
	"context"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// TestValkeyClusterBackup: a Valkey cluster (8.1 and 9.x) is recognised as a cluster although
// its INFO says so in server_mode, not redis_mode: the backup holds the keys of every master
// (it held one node's before), the manifest says cluster and the real Valkey version, and a
// restore into a Valkey cluster of another shape holds every key. Keys in a numbered database
// of a Valkey 9 cluster are refused before anything is read, naming the database.
func TestValkeyClusterBackup(t *testing.T) {
	ctx := context.Background()
	for _, fl := range []redistest.Flavor{redistest.Valkey81, redistest.ValkeySid} {
		t.Run(fl.Name, func(t *testing.T) {
			t.Parallel()
			opts := []redistest.Option{fl}
			if fl == redistest.ValkeySid {
				opts = append(opts, redistest.WithConfig("cluster-databases", "16"))
			}
			src := redistest.StartCluster(t, 3, opts...)
			runnertest.FillCluster(t, src, 300)
			want := src.Contents(t)
			r := openRepo(t, "file://"+t.TempDir(), nil)
			res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[1]), Repository: r, RunnerVersion: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Keys != int64(len(want)) {
				t.Fatalf("backup holds %d keys, the cluster %d", res.Keys, len(want))
			}
			m, err := r.Resolve(ctx, res.SnapshotID)
			if err != nil {
				t.Fatal(err)
			}
			if m.RedisMode != redisconn.ModeCluster || m.Cluster == nil || len(m.Cluster.Shards) != 3 ||
				m.Product != redisconn.ProductValkey || !strings.HasPrefix(m.RedisVersion, "valkey ") {
				t.Fatalf("manifest: mode %q, product %q, version %q, cluster %+v", m.RedisMode, m.Product, m.RedisVersion, m.Cluster)
			}
			dst := redistest.StartCluster(t, 4, fl)
			runnertest.RestoreCluster(t, r, conn(t, dst.Masters[0]), dst, want)

			if fl != redistest.ValkeySid {
				return
			}
			conn3 := runnertest.Conn(t, src.Masters[2])
			cl := conn3.Client(3)
			defer cl.Close()
			// A key of a slot this node owns, so that the node takes it.
			key := ""
			for k := range want {
				if cl.Do(ctx, "SET", k+"-db3", "x").Err() == nil {
					key = k + "-db3"
					break
				}
			}
			if key == "" {
				t.Fatal("no key could be written to database 3 of a master")
			}
			r2 := openRepo(t, "file://"+t.TempDir(), nil)
			_, err = backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r2})
			if err == nil || !strings.Contains(err.Error(), "databases other than 0: 3 (1 keys)") {
				t.Fatalf("backup of a cluster with keys in database 3: %v", err)
			}
			assertNoSnapshot(t, r2)
		})
	}
}
