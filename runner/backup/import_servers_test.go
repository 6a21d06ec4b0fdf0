package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestImportEveryServer: the RDB file that SAVE writes on each server (Redis 7.0, 8.0 of trixie
// and of sid, Valkey 8.1 and 9.x, whose file starts VALKEY080 and which the import refused)
// becomes a snapshot whose manifest names the real product and version, and which restores
// into an empty server of the same kind equal, field TTLs included where the server has them.
func TestImportEveryServer(t *testing.T) {
	ctx := context.Background()
	for _, fl := range []redistest.Flavor{redistest.Redis70, redistest.Redis80, redistest.RedisSid, redistest.Valkey81, redistest.ValkeySid} {
		t.Run(fl.Name, func(t *testing.T) {
			t.Parallel()
			src := redistest.Start(t, fl)
			dataset.FillCommon(t, src)
			info, err := redisconn.Inspect(ctx, src.Client)
			if err != nil {
				t.Fatal(err)
			}
			// A feature, not a version: the server knows HPEXPIRE.
			cmd, err := src.Client.Do(ctx, "COMMAND", "INFO", "HPEXPIRE").Slice()
			if err != nil {
				t.Fatal(err)
			}
			hasFieldTTL := len(cmd) == 1 && cmd[0] != nil
			if hasFieldTTL {
				src.Client.HSet(ctx, "hfe", "a", "1", "b", "2")
				if err := src.Client.Do(ctx, "HPEXPIRE", "hfe", 3_600_000, "FIELDS", 1, "a").Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := src.Client.Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(src.Dir, "dump.rdb")
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := openRepo(t, "file://"+t.TempDir(), nil)
			res, err := backup.Import(ctx, backup.ImportOptions{RDB: f, Source: file, Repository: r})
			if err != nil {
				t.Fatal(err)
			}
			m, err := r.Resolve(ctx, res.SnapshotID)
			if err != nil {
				t.Fatal(err)
			}
			if m.Product != info.Product() || m.RedisVersion != info.ManifestVersion() {
				t.Errorf("manifest: product %q version %q; the server is %s", m.Product, m.RedisVersion, info.Name())
			}
			dst := redistest.Start(t, fl)
			if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
				t.Fatal(err)
			}
			dataset.Equal(t, src, dst)
			if hasFieldTTL {
				a := src.Client.Do(ctx, "HPEXPIRETIME", "hfe", "FIELDS", 2, "a", "b").String()
				b := dst.Client.Do(ctx, "HPEXPIRETIME", "hfe", "FIELDS", 2, "a", "b").String()
				if a != b {
					t.Errorf("field TTLs: source %s, restored %s", a, b)
				}
			}
			t.Logf("%s: %d keys, RDB version %d", info.Name(), res.Keys, m.RDBVersion)
		})
	}
}
