package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/redistest"
)

// backupFile takes a small snapshot into a file repository and returns the repo, its manifest
// and the path of its data object.
func backupFile(t *testing.T) (*repo.Repository, repo.Manifest, string, string) {
	t.Helper()
	src := redistest.Start(t)
	if err := src.Client.Do(context.Background(), "DEBUG", "POPULATE", 20000, "key", 100).Err(); err != nil {
		t.Fatal(err)
	}
	return backupOf(t, src)
}

// backupOf is backupFile of src.
func backupOf(t *testing.T, src *redistest.Server) (*repo.Repository, repo.Manifest, string, string) {
	t.Helper()
	ctx := context.Background()
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
	// A listing goes around the foreign manifest (it names it as damaged) instead of taking it in.
	snaps, err := r.List(context.Background())
	if err != nil {
		t.Fatalf("list with a foreign manifest: %v", err)
	}
	for _, s := range snaps {
		if s.ID == m.ID {
			t.Fatalf("list took in the foreign manifest of %s", m.ID)
		}
	}
	if _, err := r.Manifest(context.Background(), m.ID); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("read a foreign manifest: %v, want integrity error", err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(manifest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Manifest(context.Background(), m.ID); err == nil {
		t.Fatal("tampered manifest accepted")
	}
}

// TestRoundTripGCS: a snapshot in a fake-gcs-server bucket restores with an equal digest.
func TestRoundTripGCS(t *testing.T) {
	roundTripThrough(t, gcstest.Start(t, "stash-test"), 200_000)
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
