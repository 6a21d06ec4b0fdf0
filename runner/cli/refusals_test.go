package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/repo"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// writeSnapshots writes n small snapshots an hour apart, the newest an hour ago, and returns
// their ids, oldest first.
func writeSnapshots(t *testing.T, r *repo.Repository, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		at := time.Now().UTC().Add(-time.Duration(n-i) * time.Hour)
		m := repo.Manifest{FormatVersion: repo.FormatVersion, ID: repo.NewID(at), Time: at}
		runnertest.WriteSnapshot(t, r, m, nil)
		ids = append(ids, m.ID)
	}
	return ids
}

func countSnapshots(t *testing.T, r *repo.Repository) int {
	t.Helper()
	all, err := r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(all)
}

// TestForgetRefusesNegativeKeep: a negative --keep-* keeps nothing, so it is refused before the
// repository is touched, as forget without any --keep-* is; every snapshot is still there.
func TestForgetRefusesNegativeKeep(t *testing.T) {
	repoURL := "file://" + t.TempDir()
	r := runnertest.OpenRepo(t, repoURL, nil)
	writeSnapshots(t, r, 3)
	for _, flag := range []string{"--keep-last", "--keep-daily", "--keep-yearly"} {
		_, _, err := run(t, nil, "forget", "--repository", repoURL, flag, "-1")
		if err == nil || !strings.Contains(err.Error(), flag+" -1") {
			t.Fatalf("forget %s -1: %v, want a refusal naming the flag", flag, err)
		}
		if n := countSnapshots(t, r); n != 3 {
			t.Fatalf("forget %s -1 left %d of 3 snapshots", flag, n)
		}
	}
	// The library refuses it too, whoever calls it.
	if _, err := r.Forget(context.Background(), repo.Policy{Last: 2, Daily: -1}, false); err == nil {
		t.Fatal("Forget with a negative rule succeeded")
	}
	if n := countSnapshots(t, r); n != 3 {
		t.Fatalf("Forget with a negative rule left %d of 3 snapshots", n)
	}
}

// TestSameSizeDataObjectOfAnotherSnapshotWritesNothing: another snapshot's data object of the
// very same size (two backups of the same data) copied over a snapshot's is refused before the
// first key is written, by both restore methods: the data object names its snapshot, under the
// repository key, at its start.
func TestSameSizeDataObjectOfAnotherSnapshotWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 20000, "k", 50)
	dir := t.TempDir()
	repoURL := "file://" + dir
	first := idRE.FindString(mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL))
	second := idRE.FindString(mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL))
	data := func(id string) string { return filepath.Join(dir, "snapshots", id, "data.resp.zst.age") }
	b, err := os.ReadFile(data(second))
	if err != nil {
		t.Fatal(err)
	}
	if a, err := os.Stat(data(first)); err != nil || a.Size() != int64(len(b)) {
		t.Fatalf("the two data objects differ in size (%v, %d): the test needs equal sizes", err, len(b))
	}
	if err := os.WriteFile(data(first), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"restore", "replication"} {
		dst := redistest.Start(t)
		_, _, err := run(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--snapshot", first, "--method", method)
		if err == nil || !strings.Contains(err.Error(), "belongs to snapshot "+second) {
			t.Fatalf("--method %s: restore of another snapshot's data object: %v", method, err)
		}
		if n := dbsize(t, dst, 0); n != 0 {
			t.Fatalf("--method %s: %d keys written before the mismatch was found", method, n)
		}
	}
	if _, _, err := run(t, nil, "check", "--repository", repoURL, "--read-data"); err == nil {
		t.Fatal("check --read-data passed a data object of another snapshot")
	}
}

// TestDamagedManifestDoesNotBlock: one damaged old manifest neither blocks snapshots, latest nor
// forget: each goes around it and names it with the way to remove it, retention leaves it
// alone, and forget --id removes it.
func TestDamagedManifestDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	repoURL := "file://" + dir
	r := runnertest.OpenRepo(t, repoURL, nil)
	ids := writeSnapshots(t, r, 3)
	manifest := filepath.Join(dir, "snapshots", ids[0], "manifest.json")
	if err := os.WriteFile(manifest, []byte(`{"version":1,"data":"AAAA","hmac":"AAAA"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := run(t, nil, "snapshots", "--repository", repoURL)
	if err != nil || strings.Contains(out, ids[0]) || !strings.Contains(out, ids[2]) ||
		!strings.Contains(errOut, ids[0]) || !strings.Contains(errOut, "forget --id "+ids[0]) {
		t.Fatalf("snapshots with a damaged manifest: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if _, _, err := run(t, nil, "cat", "--repository", repoURL, "--snapshot", "latest"); err != nil {
		t.Fatalf("cat latest with an old damaged manifest: %v", err)
	}
	out, errOut, err = run(t, nil, "forget", "--repository", repoURL, "--keep-last", "1")
	if err != nil || !strings.Contains(out, "remove "+ids[1]) || !strings.Contains(errOut, ids[0]) {
		t.Fatalf("forget with a damaged manifest: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if _, err := os.Stat(manifest); err != nil {
		t.Fatalf("retention removed the damaged snapshot it cannot judge: %v", err)
	}
	mustRun(t, nil, "forget", "--repository", repoURL, "--id", ids[0])
	if _, errOut, err := run(t, nil, "snapshots", "--repository", repoURL); err != nil || errOut != "" {
		t.Fatalf("snapshots after forget --id: %v, stderr %q", err, errOut)
	}
	if n := countSnapshots(t, r); n != 1 {
		t.Fatalf("%d snapshots left, want 1", n)
	}
}

// TestSecondFollowerRefused: a second `follow` on a repository that a follower is writing is
// refused, naming the first (its host and pid), and the journal stays one chain; once the first
// stops, a follower may start at once.
func TestSecondFollowerRefused(t *testing.T) {
	src := redistest.Start(t)
	repoURL := "file://" + t.TempDir()
	first := startFollow(t, "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "200ms")
	first.waitFor(t, "the base snapshot", func(out string) bool { return strings.Contains(out, "base snapshot ") })
	refused := startFollow(t, "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "200ms")
	var err error
	select {
	case err = <-refused.done:
	case <-time.After(10 * time.Second):
		refused.cancel()
		t.Fatalf("a second follower is running beside the first\nstdout: %s", refused.out.String())
	}
	if err == nil || !strings.Contains(err.Error(), "held by another process") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second follow: %v, want a refusal naming the first", err)
	}
	first.stop(t)
	second := startFollow(t, "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "200ms")
	// A segment on its stdout is the second follower writing the journal.
	second.waitFor(t, "the second follower to write", func(out string) bool {
		return strings.Contains(out, "segment ") || strings.Contains(out, "base snapshot ")
	})
	second.stop(t)
}
