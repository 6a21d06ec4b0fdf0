package restore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/redistest"
)

func TestRoundTripGCS(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.Start(t, "stash-test")
	src := redistest.Start(t)
	fill(t, src, 200_000)
	r := openRepo(t, gcs.URL("redis/prod"), gcs.Env())
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	// A second handle, as a restore Job in another Pod would open it.
	r2 := openRepo(t, gcs.URL("redis/prod"), gcs.Env())
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r2, Snapshot: res.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	// Another prefix in the same bucket is another, empty repository.
	other := openRepo(t, gcs.URL("redis/other"), gcs.Env())
	if all, err := other.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("other prefix lists %v, %v", all, err)
	}
}

// TestKeysExpiringDuringDump: keys that expire between SCAN and DUMP are skipped and counted, keys
// that expire before the restore are not restored, and the result is still verified.
func TestKeysExpiringDuringDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	p := src.Client.Pipeline()
	for i := range 20000 {
		p.Set(ctx, "short:"+strconv.Itoa(i), "x", time.Duration(1+i%300)*time.Millisecond)
	}
	for i := range 2000 {
		p.Set(ctx, "long:"+strconv.Itoa(i), "y", time.Hour)
		p.Set(ctx, "forever:"+strconv.Itoa(i), "z", 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d keys, %d skipped", res.Keys, res.Skipped)
	if res.Skipped == 0 {
		t.Fatal("no key vanished between SCAN and DUMP: the skip path was not exercised")
	}
	if res.Keys < 4000 || res.Keys+res.Skipped > 24000 {
		t.Fatalf("backup: %d keys, %d skipped", res.Keys, res.Skipped)
	}
	time.Sleep(400 * time.Millisecond)
	dst := redistest.Start(t)
	rres, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if rres.Keys != 4000 || rres.Expired != res.Keys-4000 {
		t.Fatalf("restore: %d keys, %d expired; backup had %d", rres.Keys, rres.Expired, res.Keys)
	}
	// Evict the logically expired keys on the source (SCAN expires what it visits) before comparing.
	if err := src.Client.Scan(ctx, 0, "*", 100000).Err(); err != nil {
		t.Fatal(err)
	}
	for it := src.Client.Scan(ctx, 0, "*", 1000).Iterator(); it.Next(ctx); {
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
}

func assertNoSnapshot(t *testing.T, r *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	all, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Fatalf("a failed backup left %d snapshots: %+v", len(all), all)
	}
	dst := redistest.Start(t)
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: "latest"})
	if !errors.Is(err, repo.ErrSnapshotNotFound) {
		t.Fatalf("restore after failed backup: %v, want ErrSnapshotNotFound", err)
	}
}

func TestRedisKilledMidDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 300000, "key", 200).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := openRepo(t, "file://"+dir, nil)
	pc := &progress.Counter{}
	go func() {
		for pc.Keys.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		src.Kill()
	}()
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if err == nil {
		t.Fatal("backup succeeded although redis was killed")
	}
	t.Logf("backup error: %v", err)
	assertNoSnapshot(t, r)
	// The aborted upload left no file behind either (fileblob removes its temp file).
	files := 0
	_ = filepath.WalkDir(filepath.Join(dir, "snapshots"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
			t.Logf("left behind: %s", p)
		}
		return nil
	})
	if files != 0 {
		t.Fatalf("%d files left in snapshots/", files)
	}
}

func TestBackupCancelled(t *testing.T) {
	src := redistest.Start(t)
	if err := src.Client.Do(context.Background(), "DEBUG", "POPULATE", 300000, "key", 200).Err(); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	pc := &progress.Counter{}
	go func() {
		for pc.Keys.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel() // SIGTERM
	}()
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("backup: %v, want context.Canceled", err)
	}
	assertNoSnapshot(t, r)
}

func TestStorageKilledMidUpload(t *testing.T) {
	ctx := context.Background()
	gcs := gcstest.StartPersistent(t, "stash-fail")
	src := redistest.Start(t)
	// Incompressible values, so that the stored object is larger than one upload chunk (16 MiB).
	p := src.Client.Pipeline()
	for i := range 2000 {
		v := make([]byte, 20000)
		rand.Read(v)
		p.Set(ctx, "rnd:"+strconv.Itoa(i), v, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, gcs.URL("fail")+"?chunk_retry_deadline=1s", gcs.Env())
	pc := &progress.Counter{}
	go func() {
		for pc.Bytes.Load() < 20<<20 {
			time.Sleep(time.Millisecond)
		}
		gcs.Kill()
	}()
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if err == nil {
		t.Fatal("backup succeeded although storage was killed")
	}
	t.Logf("backup error: %v", err)
	gcs.Restart(t)
	assertNoSnapshot(t, openRepo(t, gcs.URL("fail"), gcs.Env()))
}

// backupFile takes a small snapshot into a file repository and returns the repo, its manifest
// and the path of its data object.
func backupFile(t *testing.T) (*repo.Repository, repo.Manifest, string, string) {
	t.Helper()
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 20000, "key", 100).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := openRepo(t, "file://"+dir, nil)
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Resolve(ctx, res.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	return r, m, filepath.Join(dir, "snapshots", m.ID, "data.resp.zst.age"), filepath.Join(dir, "snapshots", m.ID, "manifest.json")
}

func TestCorruptData(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, data []byte) []byte
	}{
		{"flipped byte in the middle", func(t *testing.T, b []byte) []byte { b[len(b)/2] ^= 0x01; return b }},
		{"flipped byte in the last chunk", func(t *testing.T, b []byte) []byte { b[len(b)-5] ^= 0x80; return b }},
		{"flipped byte in the header", func(t *testing.T, b []byte) []byte { b[40] ^= 0x01; return b }},
		{"truncated to half", func(t *testing.T, b []byte) []byte { return b[:len(b)/2] }},
		{"truncated last byte", func(t *testing.T, b []byte) []byte { return b[:len(b)-1] }},
		{"appended garbage", func(t *testing.T, b []byte) []byte { return append(b, "garbage"...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r, m, data, _ := backupFile(t)
			b, err := os.ReadFile(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(data, tt.damage(t, b), 0o600); err != nil {
				t.Fatal(err)
			}
			// Through replication the load is all or nothing: the target stays empty.
			dst := redistest.Start(t)
			_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: m.ID, Method: restore.MethodReplication})
			if !errors.Is(err, crypt.ErrIntegrity) {
				t.Fatalf("restore of damaged data through replication: %v, want an integrity error", err)
			}
			t.Logf("restore error (replication): %v", err)
			if n := dst.Client.DBSize(ctx).Val(); n != 0 {
				t.Fatalf("failed restore through replication left %d keys", n)
			}
			assertPromoted(t, dst, "", "disabled")
			// With RESTORE commands the error says how far it got.
			_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: m.ID, Method: restore.MethodRestore})
			if !errors.Is(err, crypt.ErrIntegrity) {
				t.Fatalf("restore of damaged data: %v, want an integrity error", err)
			}
			t.Logf("restore error: %v", err)
			before := dst.Client.DBSize(ctx).Val()
			_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: m.ID, VerifyFirst: true, Flush: true})
			if !errors.Is(err, crypt.ErrIntegrity) || !strings.Contains(err.Error(), "before restoring") {
				t.Fatalf("restore --verify-first of damaged data: %v", err)
			}
			if after := dst.Client.DBSize(ctx).Val(); after != before {
				t.Fatalf("restore --verify-first changed the target: %d keys, before %d", after, before)
			}
			res, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
			if err != nil || len(res.Problems) != 1 {
				t.Fatalf("check --read-data: %+v, %v; want one problem", res, err)
			}
		})
	}
}

func TestTamperedManifest(t *testing.T) {
	r, m, _, manifest := backupFile(t)
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	// Swap in a manifest produced with another repository key (as someone who knows only the
	// public recipient, or has write access to the bucket but not the password, could).
	other, om, _, omanifest := backupFile(t)
	_ = other
	ob, err := os.ReadFile(omanifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, []byte(strings.ReplaceAll(string(ob), om.ID, m.ID)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.List(context.Background()); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("list with a foreign manifest: %v, want integrity error", err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(manifest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(context.Background(), m.ID); err == nil {
		t.Fatal("tampered manifest accepted")
	}
}

func TestACLUserWithoutDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.WithACLUser("nodump on >secret ~* &* +@all -dump"))
	src.Client.Set(ctx, "k", "v", 0)
	o := conn(t, src)
	o.Username, o.Password = "nodump", "secret"
	r := openRepo(t, "file://"+t.TempDir(), nil)
	_, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r, Method: backup.MethodDump})
	if err == nil || !strings.Contains(err.Error(), "lacks a permission") || !strings.Contains(err.Error(), "dump") {
		t.Fatalf("backup as a user without DUMP: %v", err)
	}
	t.Logf("error: %v", err)
	assertNoSnapshot(t, r)

	o.Password = "wrong"
	if _, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r}); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("backup with a wrong redis password: %v", err)
	}
}

func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	ctx := context.Background()
	r, m, _, _ := backupFile(t)
	dst := redistest.Start(t)
	dst.Client.Set(ctx, "key:7", "existing", 0)
	dst.Client.Set(ctx, "unrelated", "x", 0)
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("restore into non-empty db: %v", err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 2 {
		t.Fatalf("refused restore changed the target: %d keys", n)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != m.Keys+1 || res.Keys != m.Keys {
		t.Fatalf("after --replace: %d keys, restored %d", n, res.Keys)
	}
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Flush: true}); err != nil {
		t.Fatal(err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != m.Keys {
		t.Fatalf("after --flush: %d keys", n)
	}
}

func TestRestoreFilters(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, 0)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Databases: []int{3}, KeyPattern: "db3:1*:str"})
	if err != nil {
		t.Fatal(err)
	}
	// db3:1*:str: keys 1,10..19,100..199 with i%7==0: 14, 105, 112, 119, 126, 133, 140, 147, 154, 161, 168, 175, 182, 189, 196
	if res.Keys != 15 || dst.Client.DBSize(ctx).Val() != 0 {
		t.Fatalf("filtered restore: %+v", res)
	}
}

// TestKeyCountMismatch: a target that loses keys while they are restored (here: eviction under
// maxmemory) fails the restore instead of reporting success.
func TestKeyCountMismatch(t *testing.T) {
	ctx := context.Background()
	r, _, _, _ := backupFile(t)
	dst := redistest.Start(t, redistest.WithConfig("maxmemory", "3mb"), redistest.WithConfig("maxmemory-policy", "allkeys-random"))
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodRestore})
	if !errors.Is(err, restore.ErrKeyCount) {
		t.Fatalf("restore into a server that evicts: %v, want ErrKeyCount", err)
	}
	t.Logf("error: %v", err)
	// A replica loads regardless of maxmemory; the promoted server would then evict.
	dst = redistest.Start(t, redistest.WithConfig("maxmemory", "3mb"), redistest.WithConfig("maxmemory-policy", "allkeys-random"))
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication})
	if err == nil || !strings.Contains(err.Error(), "more than maxmemory") {
		t.Fatalf("restore through replication into a server that evicts: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestEmptyServer(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil || res.Keys != 0 {
		t.Fatalf("backup of an empty server: %+v, %v", res, err)
	}
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r}); err != nil {
		t.Fatal(err)
	}
}
