package backup_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// TestBackupByReplicationEveryType: on each server, every type and encoding it has (streams
// with groups and pending entries, keys of a million elements, TTLs, several databases, and on
// Redis 8.0 hash field TTLs and vector sets) survives a backup by replication and a restore with
// equal DEBUG DIGEST, expiries and field TTLs.
func TestBackupByReplicationEveryType(t *testing.T) {
	ctx := context.Background()
	for _, fl := range redistest.Flavors {
		t.Run(fl.Name, func(t *testing.T) {
			src := redistest.Start(t, fl)
			dataset.FillKeys(t, src)
			dataset.FillBig(t, src, 1_000_000)
			r := openRepo(t, "file://"+t.TempDir(), nil)
			res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: backup.MethodReplication})
			if err != nil {
				t.Fatal(err)
			}
			dst := redistest.Start(t, fl)
			if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
				t.Fatal(err)
			}
			dataset.Equal(t, src, dst)
			t.Logf("%d keys, %d bytes stored", res.Keys, res.StoredBytes)
		})
	}
}

// TestBackupByReplicationUnderLoad: while redis-benchmark writes at full speed and a writer
// adds a key and increments a counter in one MULTI, a backup by replication of each server
// holds exactly as many of the writer's keys as its counter says: the dataset at the
// replication offset the manifest records, not a mix of instants.
func TestBackupByReplicationUnderLoad(t *testing.T) {
	ctx := context.Background()
	bench := testproc.Binary(t, "redis-benchmark", "hack/tools.sh redis")
	for _, fl := range redistest.Flavors {
		t.Run(fl.Name, func(t *testing.T) {
			src := redistest.Start(t, fl)
			if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 100000, "bulk", 64).Err(); err != nil {
				t.Fatal(err)
			}
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			load := exec.CommandContext(wctx, bench, "-h", "127.0.0.1", "-p", strconv.Itoa(src.Port),
				"-t", "set,incr,lpush,hset", "-r", "100000", "-n", "100000000", "-c", "8", "-P", "16", "-q")
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			defer load.Wait()
			var written atomic.Int64
			done := make(chan error, 1)
			go func() {
				c := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, DisableIdentity: true})
				defer c.Close()
				for i := 0; wctx.Err() == nil; i++ {
					_, err := c.TxPipelined(wctx, func(p redis.Pipeliner) error {
						p.Set(wctx, "w:"+strconv.Itoa(i), i, 0)
						p.Incr(wctx, "counter")
						return nil
					})
					if err != nil && wctx.Err() == nil {
						done <- err
						return
					}
					written.Add(1)
				}
				done <- nil
			}()
			testproc.Eventually(t, 30*time.Second, "the writer and redis-benchmark have written", func() error {
				n, _ := src.Client.Get(ctx, "counter").Int64()
				if size := src.Client.DBSize(ctx).Val(); n < 100 || size < 100100 {
					return fmt.Errorf("counter %d, %d keys", n, size)
				}
				return nil
			})
			r := openRepo(t, "file://"+t.TempDir(), nil)
			res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: backup.MethodReplication})
			if err != nil {
				t.Fatal(err)
			}
			after := written.Load()
			testproc.Eventually(t, 30*time.Second, "more writes after the backup", func() error {
				if n := written.Load(); n < after+10 {
					return fmt.Errorf("%d writes", n)
				}
				return nil
			})
			stop()
			if werr := <-done; werr != nil {
				t.Fatal(werr)
			}
			m, err := r.Resolve(ctx, res.SnapshotID)
			if err != nil {
				t.Fatal(err)
			}
			dst := redistest.Start(t, fl)
			if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
				t.Fatal(err)
			}
			counter, _ := dst.Client.Get(ctx, "counter").Int64()
			var keys int64
			iter := dst.Client.Scan(ctx, 0, "w:*", 10000).Iterator()
			for iter.Next(ctx) {
				keys++
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			final, _ := src.Client.Get(ctx, "counter").Int64()
			if counter == 0 || keys != counter || counter >= final {
				t.Fatalf("snapshot at offset %d: counter %d, %d w:* keys; the source's counter is now %d", m.ReplOffset, counter, keys, final)
			}
			t.Logf("snapshot at offset %d: %d of %d writes, %d keys in all", m.ReplOffset, counter, final, res.Keys)
		})
	}
}
