package cli_test

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/runnertest"
)

// emptySnapshot is the snapshot stream of an empty database 0.
var emptySnapshot = []byte("SELECT 0\r\n")

// objectKeys lists the keys of a file:// repository under prefix.
func objectKeys(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var keys []string
	_ = filepath.WalkDir(filepath.Join(dir, prefix), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".attrs") {
			rel, _ := filepath.Rel(dir, p)
			keys = append(keys, filepath.ToSlash(rel))
		}
		return nil
	})
	slices.Sort(keys)
	return keys
}

// TestForgetJournal: forget deletes the journal chains of the bases it removes (and chains
// whose base is already gone), keeps those of the bases it keeps, and keeps the newest chain's
// base even when the policy alone would remove it, since a follower may be extending it. The
// object keys of the repository show it.
func TestForgetJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repoURL := "file://" + dir
	r := runnertest.OpenRepo(t, repoURL, nil)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	chain := func(id string, segs int) {
		t.Helper()
		off := int64(0)
		for range segs {
			w, err := journal.NewWriter(ctx, r, journal.Start{Chain: id, Offset: off})
			if err != nil {
				t.Fatal(err)
			}
			w.BeginCommand(time.Now())
			w.Write(resp.AppendCommand(nil, "SET", "a", "1"))
			m, err := w.Commit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			off = m.EndOffset
		}
	}
	ids := []string{"20261201T100000Z-aaaaaa", "20261201T110000Z-bbbbbb", "20261201T120000Z-cccccc", "20261201T130000Z-dddddd"}
	for i, id := range ids {
		runnertest.WriteSnapshot(t, r, repo.Manifest{ID: id, Time: t0.Add(time.Duration(i) * time.Hour)}, emptySnapshot)
	}
	chain(ids[0], 2)
	chain(ids[2], 3)
	chain("20261130T000000Z-eeeeee", 1) // its base is gone

	// Keep the newest snapshot: ids[3] by the policy and ids[2], the newest chain's base.
	dry := mustRun(t, nil, "forget", "--repository", repoURL, "--keep-last", "1", "--dry-run")
	if !strings.Contains(dry, "would remove 2 journal chains") || len(objectKeys(t, dir, "journal")) != 12 {
		t.Fatalf("forget --dry-run: %s\n%v", dry, objectKeys(t, dir, "journal"))
	}
	out := mustRun(t, nil, "forget", "--repository", repoURL, "--keep-last", "1")
	for _, want := range []string{"keep   " + ids[3], "keep   " + ids[2], "remove " + ids[0], "remove " + ids[1],
		"remove journal chain " + ids[0], "remove journal chain 20261130T000000Z-eeeeee", "kept 2 snapshots, removed 2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("forget output lacks %q:\n%s", want, out)
		}
	}
	want := []string{
		"journal/" + ids[2] + "/00000000000000000000.data", "journal/" + ids[2] + "/00000000000000000000.json",
		"journal/" + ids[2] + "/00000000000000000027.data", "journal/" + ids[2] + "/00000000000000000027.json",
		"journal/" + ids[2] + "/00000000000000000054.data", "journal/" + ids[2] + "/00000000000000000054.json",
	}
	if got := objectKeys(t, dir, "journal"); !slices.Equal(got, want) {
		t.Fatalf("journal objects after forget:\n%v\nwant\n%v", got, want)
	}
	snaps := objectKeys(t, dir, "snapshots")
	if len(snaps) != 4 || !strings.HasPrefix(snaps[0], "snapshots/"+ids[2]+"/") || !strings.HasPrefix(snaps[2], "snapshots/"+ids[3]+"/") {
		t.Fatalf("snapshot objects after forget: %v", snaps)
	}
	// The kept chain's window is listed; the chain is restorable.
	if list := mustRun(t, nil, "snapshots", "--repository", repoURL); !strings.Contains(list, ids[2]+"  ") || strings.Contains(list, "not restorable") {
		t.Fatalf("snapshots after forget:\n%s", list)
	}
}

// TestWindowsShowGaps: two chains of which the second does not continue the first's
// replication history are two windows with a gap between them; a time in the gap, before the
// first base or after the last segment is refused, naming the windows, before any connection.
func TestWindowsShowGaps(t *testing.T) {
	ctx := context.Background()
	repoURL := "file://" + t.TempDir()
	r := runnertest.OpenRepo(t, repoURL, nil)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	chain := func(id, replID string, off int64, at time.Time) {
		t.Helper()
		runnertest.WriteSnapshot(t, r, repo.Manifest{ID: id, Time: at, ReplID: replID, ReplOffset: off}, emptySnapshot)
		jw, err := journal.NewWriter(ctx, r, journal.Start{Chain: id, ReplID: replID, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			jw.BeginCommand(at.Add(time.Duration(i+1) * time.Minute))
			jw.Write(resp.AppendCommand(nil, "SET", "a", "1"))
		}
		if _, err := jw.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	a, c := "20261201T100000Z-aaaaaa", "20261201T110000Z-cccccc"
	chain(a, strings.Repeat("1", 40), 1000, t0)
	chain(c, strings.Repeat("2", 40), 50, t0.Add(time.Hour)) // a restarted source: a new history
	list := mustRun(t, nil, "snapshots", "--repository", repoURL)
	if !strings.Contains(list, "\ngap ") || !strings.Contains(list, a+"  ") || !strings.Contains(list, c+"  ") ||
		!strings.Contains(list, "2026-12-01T10:03:00Z") || !strings.Contains(list, "1000-1081") {
		t.Fatalf("snapshots:\n%s", list)
	}
	for _, tc := range []struct{ at, want string }{
		{"2026-12-01T10:30:00Z", "in the gap between chain " + a + " and chain " + c},
		{"2026-12-01T09:00:00Z", "outside every recoverable window"},
		{"2026-12-01T12:00:00Z", "outside every recoverable window"},
	} {
		_, _, err := run(t, nil, "restore", "--redis", "redis://127.0.0.1:1", "--repository", repoURL, "--to-time", tc.at)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
			t.Errorf("restore --to-time %s: %v, want %q", tc.at, err, tc.want)
		}
	}
}
