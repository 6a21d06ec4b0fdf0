package rdb_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/redistest"
)

// TestRedisTestSuiteFiles reads every RDB file of Redis's own test suite and RESTOREs its keys
// into a Redis 8.0, the newest server here. The suite's corrupt files are corrupt inside
// values (a ziplist with a bad entry, empty collections) where the reader does not look: they
// parse, and the server is the one to refuse their values. (runner/backup's TestImportTestSuiteFiles
// imports and restores each sound file.)
func TestRedisTestSuiteFiles(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(redistest.TestAssets(t), "*.rdb"))
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
				entries = append(entries, e.Clone())
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

		})
	}
}
