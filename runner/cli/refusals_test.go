package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/repo"
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
