package matrix

import (
	"context"
	"path/filepath"
	"testing"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestImport: the RDB file each server saves (SAVE) with every type it holds is imported with
// `stash-runner import` and restored, by replication and by RESTORE, into a server of the same
// program and version, equal by the oracle (and DEBUG DIGEST).
func TestImport(t *testing.T) {
	ctx := context.Background()
	for _, fl := range flavors {
		t.Run(fl.Name, func(t *testing.T) {
			dir := t.TempDir()
			src := redistest.Start(t, fl)
			dataset.FillKeys(t, src)
			if err := src.Client.Save(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			file, err := src.Client.ConfigGet(ctx, "dbfilename").Result()
			if err != nil {
				t.Fatal(err)
			}
			repo := "file://" + filepath.Join(dir, "repo")
			o := runner(dir, "import", filepath.Join(src.Dir, file["dbfilename"]), "--repository", repo)
			if o.err != nil {
				t.Fatalf("import of %s's RDB file: %s\n%s", fl.Name, o.message, tail(o.stderr))
			}
			dst := redistest.Start(t, fl)
			for _, method := range restoreMethods {
				if err := dst.Client.FlushAll(ctx).Err(); err != nil {
					t.Fatal(err)
				}
				o := runner(dir, "restore", "--redis", dst.URL(), "--repository", repo, "--snapshot", o.result.Result.SnapshotID, "--method", method)
				if o.err != nil {
					t.Errorf("restore by %s: %s\n%s", method, o.message, tail(o.stderr))
					continue
				}
				dataset.EqualInstances(t, dataset.Standalone(src), dataset.Standalone(dst), dataset.Options{})
			}
		})
	}
}
