package rdb_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/redistest"
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
// parse, and the server is the one to refuse their values.
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
			if refused > 0 && name[:8] != "corrupt_" {
				t.Errorf("%d keys of a sound file refused", refused)
			}
		})
	}
}
