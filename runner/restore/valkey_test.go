package restore_test

import (
	"context"
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
							if from == to {
								dataset.Equal(t, src, dst)
							} else {
								// Redis's digest of a hash counts its field TTLs, Valkey's does not:
								// those hashes are compared by fieldTTLState alone.
								equalExcept(t, src, dst, keys)
							}
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

// equalExcept fails unless dst holds what src holds, key by key (DEBUG DIGEST-VALUE, PEXPIRETIME,
// stream groups, consumers and pending entries, which Valkey 9's digest leaves out), except the
// keys skip.
func equalExcept(t *testing.T, src, dst *redistest.Server, skip []string) {
	t.Helper()
	ctx := context.Background()
	counts := dataset.Counts(t, src)
	if a, b := counts, dataset.Counts(t, dst); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("keys per database: source %v, restored %v", a, b)
	}
	for db := range counts {
		sc, dc := dataset.Client(src, db), dataset.Client(dst, db)
		defer sc.Close()
		defer dc.Close()
		keys, err := sc.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if slices.Contains(skip, k) && db == 0 {
				continue
			}
			cmds := [][]any{{"DEBUG", "DIGEST-VALUE", k}, {"PEXPIRETIME", k}}
			if sc.Type(ctx, k).Val() == "stream" {
				cmds = append(cmds, []any{"XINFO", "STREAM", k, "FULL"})
			}
			for _, cmd := range cmds {
				if a, b := sc.Do(ctx, cmd...).String(), dc.Do(ctx, cmd...).String(); a != b {
					t.Errorf("db %d key %.40q: %v: source %.300s, restored %.300s", db, k, cmd[0], a, b)
				}
			}
		}
	}
}
