package rdb_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// testAssets returns the directory of Redis's own test suite RDB files, which `hack/tools.sh
// redis-test-assets` unpacks from Debian's redis source package.
func testAssets(t *testing.T) string {
	dir := os.Getenv("STASH_REDIS_TEST_ASSETS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "kubectl-stash", "redis-src", "tests", "assets")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rdb"))
	if len(files) == 0 {
		t.Fatalf("no redis test RDB files in %s: run `make tools` or `hack/tools.sh redis-test-assets`", dir)
	}
	return dir
}

// TestRedisTestSuiteFiles reads every RDB file of Redis's own test suite and RESTOREs its keys
// into a Redis 8.0, the newest server here. The suite's corrupt files are corrupt inside
// values (a ziplist with a bad entry, empty collections) where the reader does not look: they
// parse, and the server is the one to refuse their values. Each sound file is also imported
// as a snapshot and restored into an empty server, whose DEBUG DIGEST must equal that of a
// server that loaded the file itself.
func TestRedisTestSuiteFiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testAssets(t), "*.rdb"))
	dst := redistest.Start(t, redistest.Redis80, redistest.WithConfig("sanitize-dump-payload", "yes"))
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r := rdb.NewReader(f)
			h, err := r.Header()
			if err != nil {
				t.Fatal(err)
			}
			var entries []*rdb.Entry
			for {
				e, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, e)
			}
			if len(entries) == 0 && len(h.Aux) == 0 {
				t.Fatal("no keys and no AUX fields")
			}
			dst.Client.FlushAll(t.Context())
			refused := 0
			for _, e := range entries {
				c := dst.Client
				if e.DB != 0 {
					t.Fatalf("key %q in db %d", e.Key, e.DB)
				}
				if err := c.Do(t.Context(), "RESTORE", e.Key, 0, e.Payload).Err(); err != nil {
					refused++
					t.Logf("RESTORE %q (%s): %v", e.Key, rdb.TypeName(e.Type), err)
				}
			}
			t.Logf("RDB version %d, %d keys (%d refused by the server), aux %v", h.Version, len(entries), refused, h.Aux)
			if strings.HasPrefix(name, "corrupt_") {
				return
			}
			if refused > 0 {
				t.Errorf("%d keys of a sound file refused", refused)
			}
			imported := importAndRestore(t, path)
			ref := redistest.Start(t, redistest.Redis80)
			if err := os.Link(path, filepath.Join(ref.Dir, "dump.rdb")); err != nil {
				t.Fatal(err)
			}
			if err := ref.Client.Do(t.Context(), "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
				t.Fatalf("the server's own load: %v", err)
			}
			if a, b := ref.Digest(t), imported.Digest(t); a != b {
				t.Errorf("DEBUG DIGEST: %s when the server loads the file, %s after import and restore", a, b)
			}
		})
	}
}

// importAndRestore imports the RDB file at path into a new repository with backup.Import and
// restores the snapshot into a new Redis 8.0.
func importAndRestore(t *testing.T, path string) *redistest.Server {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Import(t.Context(), backup.ImportOptions{RDB: f, Source: path, Repository: r}); err != nil {
		t.Fatalf("import: %v", err)
	}
	dst := redistest.Start(t, redistest.Redis80)
	if _, err := restore.Run(t.Context(), restore.Options{Redis: runnertest.Conn(t, dst), Repository: r}); err != nil {
		t.Fatalf("restore of the imported snapshot: %v\n%s", err, dst.Log())
	}
	return dst
}
