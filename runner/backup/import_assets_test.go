package backup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestImportTestSuiteFiles: every sound RDB file of Redis's own test suite (formats 3 to 9:
// zipmaps, ziplists, intsets, quicklists, scripts in AUX fields) is imported as a snapshot and
// restored into an empty Redis 8.0, whose DEBUG DIGEST must equal that of a server that loaded
// the file itself.
func TestImportTestSuiteFiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(redistest.TestAssets(t), "*.rdb"))
	for _, path := range files {
		name := filepath.Base(path)
		if strings.HasPrefix(name, "corrupt_") {
			continue // refused by the server, value by value (runner/rdb's TestRedisTestSuiteFiles)
		}
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := openRepo(t, "file://"+t.TempDir(), nil)
			if _, err := backup.Import(t.Context(), backup.ImportOptions{RDB: f, Source: path, Repository: r}); err != nil {
				t.Fatalf("import: %v", err)
			}
			dst := redistest.Start(t, redistest.Redis80)
			if _, err := restore.Run(t.Context(), restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
				t.Fatalf("restore of the imported snapshot: %v\n%s", err, dst.Log())
			}
			ref := redistest.Start(t, redistest.Redis80)
			if err := os.Link(path, filepath.Join(ref.Dir, "dump.rdb")); err != nil {
				t.Fatal(err)
			}
			if err := ref.Client.Do(t.Context(), "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
				t.Fatalf("the server's own load: %v", err)
			}
			if a, b := ref.Digest(t), dst.Digest(t); a != b {
				t.Errorf("DEBUG DIGEST: %s when the server loads the file, %s after import and restore", a, b)
			}
			dataset.Same(t, ref, dst)
		})
	}
}
