package backup_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestImport: the RDB file each server saves (every type and encoding it has) becomes a snapshot
// that restores into an empty server of the same kind with equal digest, expiries and field
// TTLs; a truncated file leaves no snapshot.
func TestImport(t *testing.T) {
	ctx := context.Background()
	for _, fl := range redistest.Flavors {
		t.Run(fl.Name, func(t *testing.T) {
			src := redistest.Start(t, fl)
			dataset.FillKeys(t, src)
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
			dst := redistest.Start(t, fl)
			if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
				t.Fatal(err)
			}
			dataset.Equal(t, src, dst)

			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r2 := openRepo(t, "file://"+t.TempDir(), nil)
			_, err = backup.Import(ctx, backup.ImportOptions{RDB: bytes.NewReader(data[:len(data)-20]), Source: "cut.rdb", Repository: r2})
			if !errors.Is(err, rdb.ErrFormat) {
				t.Fatalf("import of a truncated file: %v", err)
			}
			assertNoSnapshot(t, r2)
			t.Logf("%d keys imported in %s", res.Keys, res.Duration)
		})
	}
}
