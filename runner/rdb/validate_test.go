package rdb_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestValidateAgreesWithTheServer gives every key of Redis's own test-suite RDB files (its
// corrupt_* files hold damaged ziplists, listpacks, empty collections) to rdb.Validate and to a
// Redis 8.0 with sanitize-dump-payload yes (RESTORE): the verdicts must be the same, key by
// key. Validate must refuse what the server refuses, and accept what it accepts.
func TestValidateAgreesWithTheServer(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(redistest.TestAssets(t), "*.rdb"))
	if len(files) == 0 {
		t.Fatal("no test-suite RDB files")
	}
	dst := redistest.Start(t, redistest.Redis80, redistest.WithConfig("sanitize-dump-payload", "yes"))
	checked, refused := 0, 0
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := rdb.NewReader(f)
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Logf("%s: %v", filepath.Base(path), err)
				break
			}
			verdict := rdb.Validate(e.Payload)
			if verdict != nil && !errors.Is(verdict, rdb.ErrCorrupt) {
				t.Errorf("%s: key %q: %v does not wrap ErrCorrupt", filepath.Base(path), e.Key, verdict)
			}
			server := dst.Client.Do(t.Context(), "RESTORE", e.Key, 0, e.Payload, "REPLACE").Err()
			if (verdict == nil) != (server == nil) {
				t.Errorf("%s: key %q (%s): Validate says %v, the server says %v", filepath.Base(path), e.Key, rdb.TypeName(e.Type), verdict, server)
			}
			checked++
			if verdict != nil {
				refused++
			}
		}
		f.Close()
	}
	t.Logf("%d keys of %d files checked, %d refused by both", checked, len(files), refused)
	if !dst.Alive() {
		t.Fatal("the server died")
	}
}

// TestValidateAcceptsEveryType validates the DUMP of every key of the fidelity dataset (every
// type and encoding a Redis 8.0 writes: listpacks, quicklists, intsets, streams with groups,
// hashes with field TTLs, vector sets): none may be refused.
func TestValidateAcceptsEveryType(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.Redis80)
	dataset.Fill(t, src)
	for db := range 16 {
		c := dataset.Client(src, db)
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			p, err := c.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if err := rdb.Validate([]byte(p)); err != nil {
				t.Errorf("db %d key %q: %v", db, k, err)
			}
		}
		c.Close()
	}
}
