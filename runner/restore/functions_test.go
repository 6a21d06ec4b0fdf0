package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

const library = "#!lua name=stashlib\nredis.register_function('hello', function() return 'hi' end)"

// TestFunctionLibrariesRoundTrip backs up a server with a function library by each method and
// by import of its RDB file, and restores each snapshot by each method into an empty server:
// the library is there with the same code, FCALL works, and the result counts it. Before, every
// backup method and import dropped it and the restore still said "verified". A target that
// already has the library with other code is refused before anything is written.
func TestFunctionLibrariesRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.FunctionLoad(ctx, library).Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	var ids []string
	for _, method := range []string{backup.MethodDump, backup.MethodReplication} {
		res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: method})
		if err != nil || res.Functions != 1 {
			t.Fatalf("backup by %s: %+v, %v; want 1 function library", method, res, err)
		}
		ids = append(ids, res.SnapshotID)
	}
	// The backup by replication's save may still be running.
	testproc.Eventually(t, 30*time.Second, "SAVE", func() error { return src.Client.Save(ctx).Err() })
	file, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Import(ctx, backup.ImportOptions{RDB: bytes.NewReader(file), Source: "dump.rdb", Repository: r})
	if err != nil || res.Functions != 1 {
		t.Fatalf("import: %+v, %v; want 1 function library", res, err)
	}
	ids = append(ids, res.SnapshotID)

	for _, id := range ids {
		for _, method := range []string{restore.MethodRestore, restore.MethodReplication} {
			dst := redistest.Start(t)
			res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Method: method})
			if err != nil || res.Functions != 1 || res.Keys != 1 {
				t.Fatalf("restore of %s by %s: %+v, %v", id, method, res, err)
			}
			libs, err := dst.Client.FunctionList(ctx, redis.FunctionListQuery{WithCode: true}).Result()
			if err != nil || len(libs) != 1 || libs[0].Code != library {
				t.Fatalf("libraries after the restore of %s by %s: %+v, %v", id, method, libs, err)
			}
			if got, err := dst.Client.FCall(ctx, "hello", nil).Text(); err != nil || got != "hi" {
				t.Fatalf("FCALL hello: %q, %v", got, err)
			}
		}
	}

	dst := redistest.Start(t)
	other := "#!lua name=stashlib\nredis.register_function('hello', function() return 'other' end)"
	if err := dst.Client.FunctionLoad(ctx, other).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: ids[0]})
	if !errors.Is(err, restore.ErrFunctions) {
		t.Fatalf("restore over another library of the same name: %v, want ErrFunctions", err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("a refused restore wrote %d keys", n)
	}
}
