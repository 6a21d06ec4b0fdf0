package repo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/runnertest"
)

func TestPolicyApply(t *testing.T) {
	base := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	var snaps []repo.Manifest
	// One snapshot every 6 hours for 40 days, newest first in ids n0.. (n0 is newest).
	for i := range 160 {
		ts := base.Add(-time.Duration(i) * 6 * time.Hour)
		snaps = append(snaps, repo.Manifest{ID: repo.NewID(ts), Time: ts})
	}
	ids := func(ms []repo.Manifest) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, m.Time)
		}
		return out
	}
	day := func(d int) time.Time { return base.Add(-time.Duration(d) * 24 * time.Hour) }
	tests := []struct {
		name string
		p    repo.Policy
		want []time.Time
	}{
		{"last 3", repo.Policy{Last: 3}, []time.Time{base, base.Add(-6 * time.Hour), base.Add(-12 * time.Hour)}},
		{"daily 3: newest of each day", repo.Policy{Daily: 3}, []time.Time{base, day(1), day(2)}},
		{"last 1 + daily 2 overlap", repo.Policy{Last: 1, Daily: 2}, []time.Time{base, day(1)}},
		{"monthly 2", repo.Policy{Monthly: 2}, []time.Time{base, time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC)}},
		{"yearly 5: only one year has snapshots", repo.Policy{Yearly: 5}, []time.Time{base}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep, remove := tt.p.Apply(snaps)
			if diff := cmp.Diff(tt.want, ids(keep)); diff != "" {
				t.Errorf("keep (-want +got):\n%s", diff)
			}
			if len(keep)+len(remove) != len(snaps) {
				t.Errorf("keep %d + remove %d != %d", len(keep), len(remove), len(snaps))
			}
		})
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	url := "file://" + t.TempDir()
	open := func(pw string, create bool) (*repo.Repository, error) {
		b, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return repo.Open(ctx, b, repo.Options{Password: pw, Create: create, WorkFactor: 10})
	}
	if _, err := open("pw", false); !errors.Is(err, repo.ErrNotInitialized) {
		t.Fatalf("open of an empty repository: %v", err)
	}
	r, err := open("pw", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteManifest(ctx, repo.Manifest{ID: "20260101T000000Z-aaaaaa", Keys: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := open("wrong", true); !errors.Is(err, crypt.ErrWrongPassword) || err.Error() == "" {
		t.Fatalf("open with a wrong password: %v", err)
	}
	r2, err := open("pw", false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r2.Resolve(ctx, "2026")
	if err != nil || m.Keys != 7 {
		t.Fatalf("resolve by prefix: %+v, %v", m, err)
	}
	if _, err := r2.Resolve(ctx, "nope"); !errors.Is(err, repo.ErrSnapshotNotFound) {
		t.Fatalf("resolve of a missing snapshot: %v", err)
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	a := repo.NewID(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := repo.NewID(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	if !(a < b) || len(a) != len("20260102T030405Z-a1b2c3") || a[:17] != "20260102T030405Z-" {
		t.Fatalf("ids %q, %q", a, b)
	}
}

// TestIDsCannotEscapeSnapshots: an id is part of object keys, so a string that is not an id
// (nor, for Resolve, the start of one) is refused before any key is made of it: "../keys/x"
// must not read or delete an object outside snapshots/. The runner's pattern is the API's.
func TestIDsCannotEscapeSnapshots(t *testing.T) {
	if repo.IDPattern.String() != v1alpha1.SnapshotIDPattern.String() {
		t.Fatalf("runner id pattern %s, API pattern %s", repo.IDPattern, v1alpha1.SnapshotIDPattern)
	}
	ctx := context.Background()
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if err := r.WriteManifest(ctx, repo.Manifest{ID: "20260101T000000Z-aaaaaa", Keys: 7}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../keys/x", "..", "20260101T000000Z-aaaaaa/../../keys", "/etc/passwd", "a b"} {
		if _, err := r.Manifest(ctx, id); !errors.Is(err, repo.ErrInvalidID) {
			t.Errorf("Manifest(%q): %v", id, err)
		}
		if _, err := r.Resolve(ctx, id); !errors.Is(err, repo.ErrInvalidID) {
			t.Errorf("Resolve(%q): %v", id, err)
		}
		if err := r.Delete(ctx, id); !errors.Is(err, repo.ErrInvalidID) {
			t.Errorf("Delete(%q): %v", id, err)
		}
	}
	// A whole id and the start of one still resolve.
	for _, ref := range []string{"20260101T000000Z-aaaaaa", "20260101T", "latest"} {
		if m, err := r.Resolve(ctx, ref); err != nil || m.ID != "20260101T000000Z-aaaaaa" {
			t.Errorf("Resolve(%q) = %q, %v", ref, m.ID, err)
		}
	}
}

// TestUnlockInBackground: a snapshot written while the key is still being unlocked is held
// (compressed) until the key can encrypt it, then reads back whole; with a wrong password the
// writer fails with ErrWrongPassword and nothing is stored.
func TestUnlockInBackground(t *testing.T) {
	ctx := context.Background()
	url := "file://" + t.TempDir()
	openBG := func(pw string) *repo.Repository {
		b, err := store.Open(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Open(ctx, b, repo.Options{Password: pw, Create: true, WorkFactor: 14, UnlockInBackground: true})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	data := bytes.Repeat([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"), 200_000) // 6.4 MB
	write := func(r *repo.Repository, id string) (*repo.SnapshotWriter, error) {
		sw, err := r.NewSnapshotWriter(ctx, id)
		if err != nil {
			return nil, err
		}
		if _, err := sw.Write(data); err != nil {
			sw.Abort()
			return nil, err
		}
		return sw, sw.Commit()
	}

	r := openBG("pw")
	const id = "20260101T000000Z-aaaaaa"
	sw, err := write(r, id)
	if err != nil {
		t.Fatal(err)
	}
	m := repo.Manifest{ID: id, RawBytes: sw.RawBytes(), StoredBytes: sw.StoredBytes(), SHA256: sw.SHA256()}
	if err := r.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	r2 := openBG("pw")
	got, err := r2.Resolve(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := r2.OpenSnapshot(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(sr)
	sr.Close()
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(back), err, len(data))
	}

	bad := openBG("wrong")
	if _, err := write(bad, "20260101T000001Z-bbbbbb"); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("a snapshot written with a wrong password: %v, want ErrWrongPassword", err)
	}
	if err := bad.Ready(ctx); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("Ready with a wrong password: %v", err)
	}
	list, err := r2.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots after the failed write: %d (%v), want 1", len(list), err)
	}
	left, err := r2.ListObjects(ctx, "snapshots/20260101T000001Z-bbbbbb/", false)
	if err != nil || len(left) != 0 {
		t.Fatalf("objects left by the failed write: %v (%v)", left, err)
	}
}

// TestListWhileWriting: listings of a file:// repository while another writer commits objects
// (each written to a temporary file and renamed into place, as a follower writes its journal)
// never fail: an entry renamed away between reading the directory and looking at it is read
// again, not reported as an error.
func TestListWhileWriting(t *testing.T) {
	ctx := context.Background()
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := r.WriteSealed(ctx, fmt.Sprintf("journal/chain/%08d.json", i), i); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond) // a thousand objects a second: far more than a follower writes
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	lists := 0
	for ; time.Now().Before(deadline); lists++ {
		if _, err := r.ListObjects(ctx, "journal/chain/", false); err != nil {
			close(stop)
			<-done
			t.Fatalf("listing %d while a writer commits: %v", lists, err)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d listings", lists)
}
