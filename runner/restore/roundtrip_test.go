package restore_test

import (
	"context"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// The runner's shared test helpers, by the short names this package's tests use.
var (
	openRepo = runnertest.OpenRepo
	conn     = runnertest.Conn
	fill     = runnertest.Fill
	ttls     = runnertest.TTLs
)

// TestRoundTripFile restores one backup with each method into an empty server.
func TestRoundTripFile(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, 1_000_000)
	r := openRepo(t, "file://"+t.TempDir(), nil)

	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, RunnerVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %+v", res)

	for _, method := range []string{restore.MethodRestore, restore.MethodReplication} {
		t.Run(method, func(t *testing.T) {
			dst := redistest.Start(t)
			rres, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: "latest", Method: method})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("restore: %+v", rres)
			if rres.Method != method {
				t.Fatalf("restored by %s, want %s", rres.Method, method)
			}
			if s, d := src.Digest(t), dst.Digest(t); s != d {
				t.Fatalf("digest: source %s, restored %s", s, d)
			}
			dataset.Same(t, src, dst)
			for _, db := range []int{0, 3, 15} {
				want, got := ttls(t, src, db), ttls(t, dst, db)
				if len(want) == 0 || len(want) != len(got) {
					t.Fatalf("db %d: %d keys with ttl in source, %d restored", db, len(want), len(got))
				}
				for k, w := range want {
					if d := got[k] - w; d < -1000 || d > 1000 {
						t.Errorf("db %d key %q: expiry %d, want %d", db, k, got[k], w)
					}
				}
			}
			if method == restore.MethodReplication {
				assertPromoted(t, dst, "", "disabled")
			}
		})
	}
}

// assertPromoted fails unless s is a master again with the masterauth and repl-diskless-load
// it had before a restore through replication.
func assertPromoted(t *testing.T, s *redistest.Server, masterauth, disklessLoad string) {
	t.Helper()
	ctx := context.Background()
	info := s.Client.Info(ctx, "replication").Val()
	if !strings.Contains(info, "role:master") {
		t.Errorf("target is not a master after the restore:\n%s", info)
	}
	cfg := s.Client.ConfigGet(ctx, "*").Val()
	if cfg["masterauth"] != masterauth || cfg["repl-diskless-load"] != disklessLoad {
		t.Errorf("masterauth %q, repl-diskless-load %q after the restore; want %q, %q", cfg["masterauth"], cfg["repl-diskless-load"], masterauth, disklessLoad)
	}
}

// roundTripThrough backs a filled server up into a repository in b and restores it from a
// second handle, as a restore Job in another Pod would open it: the digests are equal, and
// another prefix in the same bucket is another, empty repository.
func roundTripThrough(t *testing.T, b runnertest.Bucket, big int) {
	t.Helper()
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, big)
	r := openRepo(t, b.URL("redis/prod"), b.Env())
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	r2 := openRepo(t, b.URL("redis/prod"), b.Env())
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r2, Snapshot: res.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
	other := openRepo(t, b.URL("redis/other"), b.Env())
	if all, err := other.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("other prefix lists %v, %v", all, err)
	}
}
