package backup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestValkeyClusterBackup: a Valkey cluster (8.1 and 9.x) is recognised as a cluster although
// its INFO says so in server_mode, not redis_mode: the backup holds the keys of every master
// (it held one node's before), the manifest says cluster and the real Valkey version, and a
// restore into a Valkey cluster of another shape holds every key. The numbered databases of a
// Valkey 9 cluster (cluster-databases) are backed up and restored into a cluster that has them;
// one that has not refuses them before anything is written.
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
			dataset.EqualInstances(t, dataset.ClusterOf(src), dataset.ClusterOf(dst), dataset.Options{})

			if fl != redistest.ValkeySid {
				return
			}
			// Valkey 9's numbered cluster databases: keys in database 3 of every master.
			db3 := map[string]bool{}
			for _, m := range src.Masters {
				c := runnertest.Conn(t, m).Client(3)
				for k := range want {
					if len(db3) < 100 && c.Set(ctx, "db3:"+k, "x", 0).Err() == nil { // MOVED unless the node owns the slot
						db3["db3:"+k] = true
					}
				}
				c.Close()
			}
			r3 := openRepo(t, "file://"+t.TempDir(), nil)
			res3, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r3})
			if err != nil {
				t.Fatal(err)
			}
			if res3.Databases[3] != int64(len(db3)) || res3.Databases[0] != int64(len(want)) {
				t.Fatalf("backup of a cluster with database 3: %v, want %d and %d keys", res3.Databases, len(want), len(db3))
			}
			dst3 := redistest.StartCluster(t, 3, fl, redistest.WithConfig("cluster-databases", "16"))
			if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst3.Masters[0]), Repository: r3}); err != nil {
				t.Fatal(err)
			}
			var n3 int64
			for _, m := range dst3.Masters {
				c := runnertest.Conn(t, m).Client(3)
				n3 += c.DBSize(ctx).Val()
				c.Close()
			}
			if n3 != int64(len(db3)) || dst3.DBSize(t) != int64(len(want)) {
				t.Fatalf("restored %d keys in database 3 and %d in 0, want %d and %d", n3, dst3.DBSize(t), len(db3), len(want))
			}
			// A cluster of one database cannot hold them: refused before anything is written.
			_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst.Masters[0]), Repository: r3, Flush: true})
			if err == nil || !strings.Contains(err.Error(), "has keys in database 3") {
				t.Fatalf("restore of database 3 into a cluster of one database: %v", err)
			}
			if got := dst.Contents(t); len(got) != len(want) {
				t.Fatalf("a refused restore changed the target: %d keys", len(got))
			}
		})
	}
}

// TestBackupFallsBackWhenTheSourceAborts: a transfer that the source ends before the end of the
// file while it still answers (here: it drops its replica client mid-transfer, as Valkey 9 does
// for a key the announced RDB version cannot hold) is reported as aborted by the source, and
// --method auto takes the snapshot with SCAN + DUMP instead, with a warning; the snapshot holds
// every key once. --method replication fails with the reason.
func TestBackupFallsBackWhenTheSourceAborts(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.ValkeySid)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", "3000", "key", "20").Err(); err != nil {
		t.Fatal(err)
	}
	// 3,000 keys × 1 ms: a transfer that lasts long enough to be cut.
	if err := src.Client.ConfigSet(ctx, "rdb-key-save-delay", "1000").Err(); err != nil {
		t.Fatal(err)
	}
	killReplica := func() {
		testproc.Eventually(t, 10*time.Second, "the runner connected as a replica", func() error {
			n, err := src.Client.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Int()
			if err == nil && n == 0 {
				err = errors.New("no replica yet")
			}
			return err
		})
	}
	for _, method := range []string{backup.MethodAuto, backup.MethodReplication} {
		t.Run(method, func(t *testing.T) {
			r := openRepo(t, "file://"+t.TempDir(), nil)
			var logs []string
			var mu sync.Mutex
			done := make(chan struct{})
			var res backup.Result
			var err error
			go func() {
				defer close(done)
				res, err = backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: method,
					Logf: func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }})
			}()
			killReplica()
			<-done
			if method == backup.MethodReplication {
				if !errors.Is(err, replication.ErrTransferAborted) {
					t.Fatalf("backup by replication of a source that aborts: %v", err)
				}
				assertNoSnapshot(t, r)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if res.Method != backup.MethodDump || res.Keys != 3000 || !strings.Contains(strings.Join(logs, "\n"), "warning: backup by replication failed") {
				t.Fatalf("method %s, %d keys; log %q", res.Method, res.Keys, logs)
			}
			snaps, err := r.List(ctx)
			if err != nil || len(snaps) != 1 {
				t.Fatalf("snapshots after the fallback: %v, %v", snaps, err)
			}
		})
	}
}
