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
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
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
