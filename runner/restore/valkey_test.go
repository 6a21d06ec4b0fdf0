package restore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// fieldTTLKeys writes hashes with field TTLs in every encoding (small, big, all fields
// expiring, integer fields) and returns their names.
func fieldTTLKeys(t *testing.T, c *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	var big []any
	for i := range 300 {
		big = append(big, fmt.Sprintf("f%d", i), strings.Repeat("v", i%70))
	}
	c.HSet(ctx, "hfe:small", "a", "1", "b", "two", "12", "34")
	c.HSet(ctx, "hfe:big", big...)
	c.HSet(ctx, "hfe:all", "x", "1", "y", "2")
	for _, cmd := range [][]any{
		{"HPEXPIRE", "hfe:small", 3_600_000, "FIELDS", 2, "a", "12"},
		{"HPEXPIRE", "hfe:big", 7_200_000, "FIELDS", 2, "f7", "f250"},
		{"HPEXPIRE", "hfe:all", 9_000_000, "FIELDS", 2, "x", "y"},
	} {
		if err := c.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	return []string{"hfe:small", "hfe:big", "hfe:all"}
}

// fieldTTLState is every field, value and field expiry of the hash key.
func fieldTTLState(t *testing.T, c *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	m, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for f := range m {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	var b strings.Builder
	for _, f := range fields {
		at := c.Do(ctx, "HPEXPIRETIME", key, "FIELDS", 1, f).String()
		fmt.Fprintf(&b, "%s=%s %s; ", f, m[f], at)
	}
	return b.String()
}

// TestValkey9RoundTrip: Valkey 9 and Redis 8.0 (sid), both with hashes with field TTLs, backed
// up by replication and by DUMP, restored into each other and themselves by replication and by
// RESTORE: every key, expiry, field TTL and stream group equal, and the target alive. Before,
// the backup of Valkey 9 by replication failed (the transfer was aborted), its restore into
// Valkey 9 by replication was refused (REDIS0080), and its restore into Redis 8 killed the
// server (Valkey's type 22 read as Redis's); a Redis 8 field-TTL hash was refused by Valkey 9.
func TestValkey9RoundTrip(t *testing.T) {
	ctx := context.Background()
	flavors := []redistest.Flavor{redistest.ValkeySid, redistest.RedisSid}
	for _, from := range flavors {
		src := redistest.Start(t, from)
		dataset.FillCommon(t, src)
		keys := fieldTTLKeys(t, src.Client)
		for _, bm := range []string{backup.MethodReplication, backup.MethodDump} {
			t.Run(from.Name+"/"+bm, func(t *testing.T) {
				r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
				res, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r, Method: bm})
				if err != nil {
					t.Fatal(err)
				}
				for _, to := range flavors {
					for _, rm := range []string{restore.MethodReplication, restore.MethodRestore} {
						t.Run(to.Name+"/"+rm, func(t *testing.T) {
							dst := redistest.Start(t, to)
							got, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: rm})
							if err != nil {
								t.Fatalf("%v\n%s", err, dst.Log())
							}
							if got.Method != rm || got.Keys != res.Keys || got.Dropped != 0 {
								t.Fatalf("restored %d of %d keys by %s, %d left out", got.Keys, res.Keys, got.Method, got.Dropped)
							}
							if err := dst.Client.Ping(ctx).Err(); err != nil {
								t.Fatalf("target after the restore: %v\n%s", err, dst.Log())
							}
							dataset.Equal(t, src, dst)
							for _, k := range keys {
								if a, b := fieldTTLState(t, src.Client, k), fieldTTLState(t, dst.Client, k); a != b {
									t.Errorf("%s:\nsource   %s\nrestored %s", k, a, b)
								}
							}
						})
					}
				}
			})
		}
	}
}

// TestValkey9Lossy: a Valkey 9 snapshot with hashes with field TTLs cannot be held by Valkey 8.1
// or Redis 7.0. The restore is refused before anything is written, naming the keys, by either
// method; with AllowLossy the other keys are restored and the target still answers.
func TestValkey9Lossy(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.ValkeySid)
	dataset.FillCommon(t, src)
	keys := fieldTTLKeys(t, src.Client)
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	for _, to := range []redistest.Flavor{redistest.Valkey81, redistest.Redis70} {
		for _, method := range []string{restore.MethodReplication, restore.MethodRestore} {
			t.Run(to.Name+"/"+method, func(t *testing.T) {
				dst := redistest.Start(t, to)
				_, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method})
				if !errors.Is(err, restore.ErrLossy) || !strings.Contains(err.Error(), "hfe:small") || !strings.Contains(err.Error(), "field TTLs") {
					t.Fatalf("restore of field TTLs into %s: %v", to.Name, err)
				}
				if n := dataset.Counts(t, dst); len(n) != 0 {
					t.Fatalf("a refused restore wrote keys: %v", n)
				}
				res, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method, AllowLossy: true})
				if err != nil {
					t.Fatal(err)
				}
				if res.Dropped != int64(len(keys)) {
					t.Fatalf("left out %d keys: %v", res.Dropped, res.DroppedKeys)
				}
				if err := dst.Client.Ping(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				dataset.EqualInstances(t, dataset.Standalone(src), dataset.Standalone(dst), dataset.Options{
					Skip: func(db int, k string) bool { return db == 0 && slices.Contains(keys, k) }})
			})
		}
	}
}
