package rdb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// targetOf is the rdb.Target of a running server, from its INFO.
func targetOf(t *testing.T, s *redistest.Server) rdb.Target {
	t.Helper()
	info := s.Client.Info(context.Background(), "server").Val()
	var redisVer, valkeyVer string
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "redis_version":
			redisVer = v
		case "valkey_version":
			valkeyVer = v
		}
	}
	return rdb.TargetOf(redisVer, valkeyVer)
}

// fieldTTLHashes writes hashes with field TTLs in every encoding the server has: small ones
// (a listpack in Redis), big ones (a hash table), one whose fields all have TTLs, integers as
// fields and values.
func fieldTTLHashes(t *testing.T, c *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	var big []any
	for i := range 300 {
		big = append(big, fmt.Sprintf("f%d", i), strings.Repeat("v", i%70))
	}
	c.HSet(ctx, "small", "a", "1", "b", "two", "12", "34")
	c.HSet(ctx, "big", big...)
	c.HSet(ctx, "all", "x", "1", "y", "2")
	for _, k := range []string{"small", "big"} {
		if err := c.Do(ctx, "HPEXPIRE", k, 3_600_000, "FIELDS", 2, "a", "f7").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, "HPEXPIRE", k, 7_200_000, "FIELDS", 2, "12", "f250").Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(ctx, "HPEXPIRE", "all", 9_000_000, "FIELDS", 2, "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	return []string{"small", "big", "all"}
}

// hashState is every field, value and field expiry of a hash.
func hashState(t *testing.T, c *redis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	m, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields := slices.Sorted(func(yield func(string) bool) {
		for f := range m {
			if !yield(f) {
				return
			}
		}
	})
	var b strings.Builder
	for _, f := range fields {
		at, err := c.Do(ctx, "HPEXPIRETIME", key, "FIELDS", 1, f).Slice()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s=%s@%v ", f, m[f], at[0])
	}
	return b.String()
}

// TestConvertFieldTTLHashes: a hash with field TTLs of Valkey 9 becomes one of Redis 8 and the
// other way round, by RESTORE and inside an RDB file the target loads, with every field, value
// and field expiry; a server without field TTLs is refused as lossy. Without the conversion,
// Valkey's type 22 reached Redis as its own type 22 (a different layout) and the server exited.
func TestConvertFieldTTLHashes(t *testing.T) {
	ctx := context.Background()
	valkey := redistest.Start(t, redistest.ValkeySid)
	redisSid := redistest.Start(t, redistest.RedisSid)
	pairs := []struct{ src, dst *redistest.Server }{{valkey, redisSid}, {redisSid, valkey}}
	for _, p := range pairs {
		t.Run(p.src.Flavor.Name+"-to-"+p.dst.Flavor.Name, func(t *testing.T) {
			p.src.Client.FlushAll(ctx)
			keys := fieldTTLHashes(t, p.src.Client)
			target := targetOf(t, p.dst)
			var converted [][]byte
			for _, k := range keys {
				payload, err := p.src.Client.Dump(ctx, k).Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := rdb.FormatVersion(payload); target.Reads(v) {
					t.Fatalf("%s reads format %d: nothing to convert", target.Name, v)
				}
				out, err := target.Convert(nil, slices.Clone(payload))
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				converted = append(converted, out)
				p.dst.Client.Del(ctx, k)
				if err := p.dst.Client.Restore(ctx, k, 0, string(out)).Err(); err != nil {
					t.Fatalf("RESTORE %s into %s: %v", k, target.Name, err)
				}
				if a, b := hashState(t, p.src.Client, k), hashState(t, p.dst.Client, k); a != b {
					t.Errorf("%s by RESTORE:\nsource %s\ntarget %s", k, a, b)
				}
			}

			// The same payloads in an RDB file of the target's format, loaded at start.
			var buf bytes.Buffer
			w, err := rdb.NewWriter(&buf, target.WriteVersion())
			if err != nil {
				t.Fatal(err)
			}
			if err := w.SelectDB(0, int64(len(keys)), 0); err != nil {
				t.Fatal(err)
			}
			for i, k := range keys {
				if err := w.Add([]byte(k), 0, converted[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "x.rdb"), buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			loaded := redistest.Start(t, p.dst.Flavor, redistest.WithConfig("dir", dir), redistest.WithConfig("dbfilename", "x.rdb"))
			for _, k := range keys {
				if a, b := hashState(t, p.src.Client, k), hashState(t, loaded.Client, k); a != b {
					t.Errorf("%s from the RDB file:\nsource %s\ntarget %s", k, a, b)
				}
			}
		})
	}

	// Neither Valkey 8 nor Redis 7.0 has field TTLs.
	payload, err := valkey.Client.Dump(ctx, "small").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	for _, old := range []rdb.Target{rdb.TargetOf("7.2.4", "8.1.1"), rdb.TargetOf("7.0.15", "")} {
		if _, err := old.Convert(nil, slices.Clone(payload)); !errors.Is(err, rdb.ErrLossy) {
			t.Errorf("%s: %v, want ErrLossy", old.Name, err)
		}
	}
}

// TestReadValkey9RDB: the file Valkey 9 saves (magic VALKEY080, format 80, its own type 22 for
// hashes with field TTLs) is read key by key and restores into an empty Valkey 9 equal, field
// TTLs included. The reader used to refuse it ("no REDIS magic").
func TestReadValkey9RDB(t *testing.T) {
	src := redistest.Start(t, redistest.ValkeySid)
	dataset.Fill(t, src)
	keys := fieldTTLHashes(t, src.Client)
	h, entries := readAll(t, saveRDB(t, src))
	if h.Version != rdb.ValkeyFormat {
		t.Fatalf("Valkey 9 saved format %d, want %d", h.Version, rdb.ValkeyFormat)
	}
	dst := redistest.Start(t, redistest.ValkeySid)
	restoreAll(t, dst, h, entries)
	dataset.Equal(t, src, dst)
	for _, k := range keys {
		if a, b := hashState(t, src.Client, k), hashState(t, dst.Client, k); a != b {
			t.Errorf("%s:\nsource %s\nrestored %s", k, a, b)
		}
	}
}
