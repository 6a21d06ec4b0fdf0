package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"stash.dev/redis/runner/store"
)

func openInternal(t *testing.T) (*Repository, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := store.Open(context.Background(), "file://"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(context.Background(), b, Options{Password: "pw", Create: true, WorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// commitSnapshot writes a snapshot dated at, bypassing WriteManifest's clock check when force.
func commitSnapshot(t *testing.T, r *Repository, at time.Time, force bool) Manifest {
	t.Helper()
	ctx := context.Background()
	id := NewID(at)
	w, err := r.NewSnapshotWriter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	m := Manifest{FormatVersion: FormatVersion, ID: id, Time: at, StoredBytes: w.StoredBytes(), SHA256: w.SHA256(), Databases: map[int]int64{}}
	if !force {
		if err := r.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	b, err := r.seal(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.bucket.WriteAll(ctx, manifestKey(id), b, &blob.WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLatestReadsOneManifest: with thousands of snapshots, latest and a unique id prefix read one
// manifest each, not all of them; the older snapshots here are not even valid, which a reader
// of every manifest would trip over.
//
// 3,000 rather than 10,000 keeps it fast: the file store lists a directory of 10,000 in pages
// of 1,000, each walking the whole directory again (seconds, whoever reads the manifests); what
// the test counts does not change with the number.
func TestLatestReadsOneManifest(t *testing.T) {
	const snapshots = 3000
	r, dir := openInternal(t)
	start := time.Now().Add(-30 * 24 * time.Hour).UTC()
	for i := range snapshots - 1 {
		id := NewID(start.Add(time.Duration(i) * time.Minute))
		d := filepath.Join(dir, "snapshots", id)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, manifestName), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newest := commitSnapshot(t, r, time.Now().Add(-time.Minute).UTC(), false)
	ctx := context.Background()
	for _, ref := range []string{"latest", newest.ID[:len(newest.ID)-2]} {
		r.manifestReads.Store(0)
		start := time.Now()
		m, err := r.Resolve(ctx, ref)
		if err != nil || m.ID != newest.ID {
			t.Fatalf("Resolve(%q) = %s, %v; want %s", ref, m.ID, err, newest.ID)
		}
		if n := r.manifestReads.Load(); n != 1 {
			t.Fatalf("Resolve(%q) read %d manifests of %d, want 1", ref, n, snapshots)
		}
		t.Logf("Resolve(%q): %s", ref, time.Since(start))
	}
}

// TestFutureSnapshot: a snapshot dated in the future (a runner with a wrong clock) is not
// committed; one that is there anyway (an older runner wrote it) is neither latest nor counted
// by retention, which keeps it and the real newest snapshot.
func TestFutureSnapshot(t *testing.T) {
	r, _ := openInternal(t)
	ctx := context.Background()
	id := NewID(time.Now().Add(48 * time.Hour))
	w, err := r.NewSnapshotWriter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	err = r.WriteManifest(ctx, Manifest{FormatVersion: FormatVersion, ID: id, Time: time.Now().Add(48 * time.Hour), StoredBytes: w.StoredBytes(), SHA256: w.SHA256()})
	if err == nil || !strings.Contains(err.Error(), "clock is wrong") {
		t.Fatalf("WriteManifest of a snapshot dated in two days: %v, want a refusal", err)
	}
	if _, err := r.Manifest(ctx, id); err == nil {
		t.Fatal("the snapshot dated in the future was committed")
	}

	old := commitSnapshot(t, r, time.Now().Add(-2*time.Hour), false)
	real := commitSnapshot(t, r, time.Now().Add(-time.Hour), false)
	future := commitSnapshot(t, r, time.Now().Add(365*24*time.Hour), true)
	if m, err := r.Resolve(ctx, "latest"); err != nil || m.ID != real.ID {
		t.Fatalf("latest = %s, %v; want %s, not the future %s", m.ID, err, real.ID, future.ID)
	}
	res, err := r.Forget(ctx, Policy{Last: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Remove) != 1 || res.Remove[0].ID != old.ID || len(res.Future) != 1 || res.Future[0].ID != future.ID {
		t.Fatalf("forget --keep-last 1: removed %v, future %v; want %s removed and %s named", res.Remove, res.Future, old.ID, future.ID)
	}
	if _, err := r.Manifest(ctx, real.ID); err != nil {
		t.Fatalf("forget --keep-last 1 removed the real newest snapshot: %v", err)
	}
}
