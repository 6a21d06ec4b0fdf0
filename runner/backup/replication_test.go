package backup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestBackupByReplication: for each server flavor and for both transfer kinds (the RDB from the
// server's disk, and diskless), a backup by replication restores with equal DEBUG DIGEST and
// expiries, and the manifest names the method and the replication offset.
func TestBackupByReplication(t *testing.T) {
	ctx := context.Background()
	for _, fl := range redistest.Flavors {
		for _, diskless := range []string{"yes", "no"} {
			t.Run(fmt.Sprintf("%s/diskless=%s", fl.Name, diskless), func(t *testing.T) {
				src := redistest.Start(t, fl, redistest.WithConfig("repl-diskless-sync", diskless),
					redistest.WithConfig("repl-diskless-sync-delay", "5"))
				fill(t, src, 2000)
				r := openRepo(t, "file://"+t.TempDir(), nil)
				var logs []string
				start := time.Now()
				res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: backup.MethodReplication,
					Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > 4*time.Second {
					t.Fatalf("backup took %s: the 5 s diskless sync delay was not avoided", d)
				}
				m, err := r.Resolve(ctx, res.SnapshotID)
				if err != nil {
					t.Fatal(err)
				}
				if m.Method != backup.MethodReplication || len(m.ReplID) != 40 || res.Keys == 0 {
					t.Fatalf("manifest: method %q replid %q keys %d", m.Method, m.ReplID, res.Keys)
				}
				dst := redistest.Start(t, fl)
				if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
					t.Fatal(err)
				}
				if a, b := src.Digest(t), dst.Digest(t); a != b {
					t.Fatalf("digest %s after restore, source %s", b, a)
				}
				dataset.Same(t, src, dst)
				for _, db := range []int{0, 3, 15} {
					want, got := ttls(t, src, db), ttls(t, dst, db)
					if len(want) == 0 || fmt.Sprint(want) != fmt.Sprint(got) {
						t.Fatalf("db %d expiries: %d restored of %d", db, len(got), len(want))
					}
				}
				if n := src.Client.Do(ctx, "CONFIG", "GET", "repl-diskless-sync-delay").String(); !strings.Contains(n, "5") {
					t.Fatalf("repl-diskless-sync-delay not put back: %s", n)
				}
				t.Logf("%d keys, logs %q", res.Keys, logs)
			})
		}
	}
}

// TestBackupByReplicationFallsBack: PSYNC renamed away and an ACL user without +psync refuse a
// replica; auto reads the keys with SCAN + DUMP and says why, --method replication fails and
// says why, and neither leaves a snapshot behind. (A replica without its master is refused by
// every method: TestReplicaNotInSyncIsRefused.)
func TestBackupByReplicationFallsBack(t *testing.T) {
	ctx := context.Background()
	renamed := redistest.Start(t, redistest.WithConfig("rename-command", "PSYNC", ""))
	acl := redistest.Start(t, redistest.WithACLUser("backup on >pw ~* &* +@all -psync -sync"))
	// The server's own reason, which both the error and auto's line must pass on.
	why := map[string]string{"renamed": "unknown command 'PSYNC'", "acl": "NOPERM"}
	for name, s := range map[string]*redistest.Server{"renamed": renamed, "acl": acl} {
		t.Run(name, func(t *testing.T) {
			o := conn(t, s)
			if name == "acl" {
				o.Username, o.Password = "backup", "pw"
			}
			if err := s.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			r := openRepo(t, "file://"+t.TempDir(), nil)
			_, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r, Method: backup.MethodReplication})
			if !errors.Is(err, replication.ErrSyncRefused) || !strings.Contains(err.Error(), why[name]) {
				t.Fatalf("--method replication: %v (want the reason %q)", err, why[name])
			}
			t.Logf("refused: %v", err)
			assertNoSnapshot(t, r)
			var logs []string
			res, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r,
				Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != backup.MethodDump || len(logs) != 1 || !strings.Contains(logs[0], "SCAN + DUMP") || !strings.Contains(logs[0], why[name]) {
				t.Fatalf("auto: method %q, logs %q", res.Method, logs)
			}
			t.Logf("auto: %s", logs[0])
		})
	}
}

// TestBackupWhileTheKeyUnlocks: with the repository's key unlocked in the background (as the
// runner's backup command opens it), a backup by replication starts at once and its snapshot
// restores whole. With a wrong password the backup has already asked the source for its RDB
// (the source forked) when the key derivation fails: the backup fails with ErrWrongPassword,
// stores nothing, and the source kills the save it forked as soon as the runner drops the link.
func TestBackupWhileTheKeyUnlocks(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, 5000)
	url := "file://" + t.TempDir()
	b, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The default work factor, as the runner creates keys: the derivation takes about 0.1 s.
	created, err := repo.Open(ctx, b, repo.Options{Password: runnertest.Password, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	created.Close()
	open := func(password string) *repo.Repository {
		b, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Open(ctx, b, repo.Options{Password: password, UnlockInBackground: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}

	r := open(runnertest.Password)
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Method: backup.MethodReplication})
	if err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: res.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest %s after restore, source %s", b, a)
	}
	dataset.Same(t, src, dst)

	// A slow save (5,000 keys × 400 µs = 2 s) that the wrong password must cut short.
	if err := src.Client.ConfigSet(ctx, "rdb-key-save-delay", "400").Err(); err != nil {
		t.Fatal(err)
	}
	forks := func() string { return redistest.InfoField(t, src.Client, "stats", "total_forks") }
	before := forks()
	start := time.Now()
	_, err = backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: open("wrong"), Method: backup.MethodReplication})
	if !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("backup with a wrong password: %v, want ErrWrongPassword", err)
	}
	failed := time.Since(start)
	if forks() == before {
		t.Fatalf("the backup failed after %s without asking for the RDB: the key was not unlocked in the background", failed)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots after the failed backup: %d (%v), want the first one only", len(list), err)
	}
	testproc.Eventually(t, time.Second, "the source forgets the runner and kills its save", func() error {
		if n, saving := redistest.InfoField(t, src.Client, "replication", "connected_slaves"), redistest.InfoField(t, src.Client, "persistence", "rdb_bgsave_in_progress"); n != "0" || saving != "0" {
			return fmt.Errorf("connected_slaves:%s rdb_bgsave_in_progress:%s", n, saving)
		}
		return nil
	})
	t.Logf("wrong password: failed after %s, the source's save ended %s after the start", failed, time.Since(start))
}
