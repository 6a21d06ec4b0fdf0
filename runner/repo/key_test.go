package repo_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/store"
)

// openDir opens the file:// repository in dir with a cheap KDF.
func openDir(t *testing.T, dir string, create bool) (*repo.Repository, error) {
	t.Helper()
	ctx := context.Background()
	b, err := store.Open(ctx, "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, b, repo.Options{Password: "pw", Create: create, WorkFactor: 10})
	if err != nil {
		b.Close()
		return nil, err
	}
	t.Cleanup(func() { r.Close() })
	return r, nil
}

// writeSnapshot commits a snapshot whose plaintext is data.
func writeSnapshot(t *testing.T, r *repo.Repository, id, data string) repo.Manifest {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewSnapshotWriter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	m := repo.Manifest{ID: id, Keys: 1, Databases: map[int]int64{0: 1}, RawBytes: w.RawBytes(), StoredBytes: w.StoredBytes(), SHA256: w.SHA256()}
	if err := r.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLostKeyIsNotReplaced: a repository whose keys/ was deleted but which still holds snapshots
// (or only an orphaned data object) is not given a new key, which would make every existing
// snapshot unreadable while backups kept succeeding; the error says what is wrong and what to do.
func TestLostKeyIsNotReplaced(t *testing.T) {
	for _, orphanOnly := range []bool{false, true} {
		name := "complete snapshot"
		if orphanOnly {
			name = "orphaned data only"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := openDir(t, dir, true)
			if err != nil {
				t.Fatal(err)
			}
			writeSnapshot(t, r, "20260101T000000Z-aaaaaa", "*1\r\n$4\r\nPING\r\n")
			if orphanOnly {
				os.Remove(filepath.Join(dir, "snapshots", "20260101T000000Z-aaaaaa", "manifest.json"))
			}
			if err := os.RemoveAll(filepath.Join(dir, "keys")); err != nil {
				t.Fatal(err)
			}
			for _, create := range []bool{true, false} {
				_, err := openDir(t, dir, create)
				if !errors.Is(err, repo.ErrKeyMissing) || !strings.Contains(err.Error(), "put back the keys/ objects") {
					t.Fatalf("open (create %v) of a repository that lost its key: %v", create, err)
				}
			}
			if ents, err := os.ReadDir(filepath.Join(dir, "keys")); err == nil && len(ents) > 0 {
				t.Fatalf("a new key was written: %v", ents)
			}
		})
	}
	// An empty repository is still initialized by the first backup.
	if _, err := openDir(t, t.TempDir(), true); err != nil {
		t.Fatalf("open of an empty repository with create: %v", err)
	}
}

// TestDataSizeCheckedBeforeReading: a data object whose size differs from its manifest (another
// snapshot's data copied over it, or a truncated object) is refused when it is opened, before
// a single byte reaches the caller.
func TestDataSizeCheckedBeforeReading(t *testing.T) {
	dir := t.TempDir()
	r, err := openDir(t, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	a := writeSnapshot(t, r, "20260101T000000Z-aaaaaa", strings.Repeat("a", 1000))
	b := writeSnapshot(t, r, "20260102T000000Z-bbbbbb", strings.Repeat("b", 100000)+"random-ish tail")
	data := func(m repo.Manifest) string {
		return filepath.Join(dir, "snapshots", m.ID, "data.resp.zst.age")
	}
	other, err := os.ReadFile(data(b))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(other)) == a.StoredBytes {
		t.Fatal("test data: both objects have the same size")
	}
	if err := os.WriteFile(data(a), other, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = r.OpenSnapshot(context.Background(), a)
	if !errors.Is(err, crypt.ErrIntegrity) || !strings.Contains(err.Error(), "manifest says") {
		t.Fatalf("open of a replaced data object: %v", err)
	}
	own, _ := os.ReadFile(data(b))
	if err := os.WriteFile(data(b), own[:len(own)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.OpenSnapshot(context.Background(), b); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("open of a truncated data object: %v", err)
	}
}
