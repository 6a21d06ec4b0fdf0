package followfaults_test

import (
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/redistest"
)

// TestFollowerStorageOutage: the repository's storage (MinIO) is down for 30 s while a writer
// goes on. The follower does not drop what it cannot store: the commit of its open segment
// fails, and it exits non-zero naming the storage error, within the storage calls' deadlines.
// Started again once the storage is back, it continues its chain from the last segment it
// committed (the source's backlog held the rest): one chain, no gap, the counter exact.
func TestFollowerStorageOutage(t *testing.T) {
	src := redistest.Start(t, backlog)
	s3 := miniotest.Start(t, "journal")
	repoURL := s3.URL("prod") + "&max_attempts=2"
	r, f, w := followWriting(t, src, repoURL, s3.Env())
	f.waitLine("segment ", time.Now(), 10*time.Second)

	down := time.Now()
	s3.Kill()
	select {
	case <-f.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the follower kept running for 90 s with its storage down:\n%s", f.output())
	}
	detected := time.Since(down)
	if f.err == nil {
		t.Fatalf("the follower exited 0 with its storage down:\n%s", f.output())
	}
	out := f.output()
	if !strings.Contains(out, "error: journal segment") || !strings.Contains(out, "upload") {
		t.Fatalf("the follower's error does not say what failed:\n%s", out)
	}
	t.Logf("storage down: the follower failed after %s (%v)", detected.Round(time.Millisecond), f.err)
	if wait := 30*time.Second - time.Since(down); wait > 0 {
		time.Sleep(wait)
	}
	s3.Restart(t)
	restarted := time.Now()
	f = follow(t, repoURL, s3.Env(), "--redis", src.URL())
	f.waitLine("continuing chain", restarted, 30*time.Second)
	time.Sleep(time.Second)
	n, segs := stopInOneChain(t, src, r, f, w)
	t.Logf("%d writes, one chain of %d segments across a 30 s storage outage", n, len(segs))
}
