package repo

import (
	"context"
	"errors"
	"io"
	"testing"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/store"
)

// TestBindingKeepsOldSnapshotsReadable: a data object without a binding (format version 1) is
// read as before under a version 1 manifest and refused under a version 2 one; a bound data
// object is checked under either, so copying a new snapshot's data over an old one is refused.
func TestBindingKeepsOldSnapshotsReadable(t *testing.T) {
	ctx := context.Background()
	b, err := store.Open(ctx, "file://"+t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, b, Options{Password: "pw", Create: true, WorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write := func(id string, bind bool) Manifest {
		w, err := r.newDataWriter(ctx, id, dataKey(id), 1, bind)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("the plaintext of " + id)); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		return Manifest{ID: id, StoredBytes: w.StoredBytes(), SHA256: w.SHA256()}
	}
	read := func(m Manifest) (string, error) {
		sr, err := r.OpenSnapshot(ctx, m)
		if err != nil {
			return "", err
		}
		defer sr.Close()
		got, err := io.ReadAll(sr)
		return string(got), err
	}
	old := write("20250101T000000Z-aaaaaa", false)
	old.FormatVersion = 1
	if got, err := read(old); err != nil || got != "the plaintext of "+old.ID {
		t.Fatalf("version 1 snapshot: %q, %v", got, err)
	}
	claimsNew := old
	claimsNew.FormatVersion = FormatVersion
	if _, err := read(claimsNew); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("unbound data under a version %d manifest: %v, want ErrIntegrity", FormatVersion, err)
	}
	cur := write("20250102T000000Z-bbbbbb", true)
	cur.FormatVersion = FormatVersion
	if got, err := read(cur); err != nil || got != "the plaintext of "+cur.ID {
		t.Fatalf("version %d snapshot: %q, %v", FormatVersion, got, err)
	}
	// The new snapshot's data under the old snapshot's id (as if copied over it, sizes and all).
	moved := cur
	moved.ID, moved.FormatVersion = old.ID, 1
	if err := r.bucket.Copy(ctx, dataKey(old.ID), dataKey(cur.ID), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := read(moved); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("bound data of another snapshot under a version 1 manifest: %v, want ErrIntegrity", err)
	}
}
