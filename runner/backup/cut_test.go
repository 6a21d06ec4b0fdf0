package backup_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestClusterConsistentCut: a writer increments {a}ctr on one master and then {b}ctr on
// another, in a loop. Every snapshot taken with --consistent-cut holds {a}ctr - {b}ctr in
// {0, 1}, as every instant of the cluster does; SCAN + DUMP of the masters in parallel (the
// default) reads the two masters at different instants, and the same check catches it.
func TestClusterConsistentCut(t *testing.T) {
	t.Parallel()
	for _, f := range []redistest.Flavor{redistest.Redis70, redistest.ValkeySid} {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			testConsistentCut(t, f)
		})
	}
}

func testConsistentCut(t *testing.T, f redistest.Flavor) {
	ctx := context.Background()
	src := redistest.StartCluster(t, 3, f)
	runnertest.FillCluster(t, src, 3000) // keys on every master, so that each SCAN takes a while
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var incs atomic.Int64
	go func() {
		for wctx.Err() == nil {
			if err := src.Client.Incr(wctx, "{a}ctr").Err(); err != nil {
				done <- err
				return
			}
			if err := src.Client.Incr(wctx, "{b}ctr").Err(); err != nil {
				done <- err
				return
			}
			incs.Add(1)
		}
		done <- nil
	}()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("writer: %v", err)
		}
	}()
	if err := testproc.Poll(10*time.Second, "the writer's first increments", func() error {
		if incs.Load() < 100 {
			return errors.New("fewer than 100")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Each counter is on the master that holds it without a redirection: not the same one.
	owner := func(key string) string {
		for _, m := range src.Masters {
			if n, err := m.Client.Exists(ctx, key).Result(); err == nil && n == 1 {
				return m.Addr
			}
		}
		t.Fatalf("no master holds %s", key)
		return ""
	}
	if owner("{a}ctr") == owner("{b}ctr") {
		t.Fatal("{a}ctr and {b}ctr are on the same master: the test needs two shards")
	}

	r := openRepo(t, "file://"+t.TempDir(), nil)
	dst := redistest.Start(t, f)
	// counters reads the two counters of a snapshot, restored into dst.
	counters := func(id string) (a, b int64) {
		t.Helper()
		if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Flush: true}); err != nil {
			t.Fatal(err)
		}
		a, _ = dst.Client.Get(ctx, "{a}ctr").Int64()
		b, _ = dst.Client.Get(ctx, "{b}ctr").Int64()
		return a, b
	}
	const bound = 2 * time.Second
	var maxPause time.Duration
	for i := range 20 {
		res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[i%3]), Repository: r, ConsistentCut: true, CutPause: bound})
		if err != nil {
			t.Fatalf("backup %d with the cut: %v", i, err)
		}
		m, err := r.Resolve(ctx, res.SnapshotID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Cluster == nil || m.Cluster.Cut == nil {
			t.Fatalf("backup %d: no cut in the manifest", i)
		}
		pause := time.Duration(m.Cluster.Cut.PauseMicros) * time.Microsecond
		if pause <= 0 || pause > bound || m.Cluster.Cut.BoundMicros != bound.Microseconds() {
			t.Errorf("backup %d: pause %s, bound %dµs; want a pause within %s", i, pause, m.Cluster.Cut.BoundMicros, bound)
		}
		maxPause = max(maxPause, pause)
		if res.Method != backup.MethodReplication || len(m.Cluster.Shards) != 3 || m.Cluster.Shards[0].ReplID == "" {
			t.Errorf("backup %d: method %s, shards %+v", i, res.Method, m.Cluster.Shards)
		}
		if a, b := counters(res.SnapshotID); a-b != 0 && a-b != 1 {
			t.Errorf("backup %d with the cut: {a}ctr %d, {b}ctr %d: not one instant", i, a, b)
		}
	}
	t.Logf("%s: longest pause %s of 20 cuts", f.Name, maxPause)

	// Without the cut the same check must be able to fail.
	broken := 0
	for i := 0; i < 20 && broken == 0; i++ {
		res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r, Method: backup.MethodDump, ScanCount: 10, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := counters(res.SnapshotID); a-b != 0 && a-b != 1 {
			broken++
			t.Logf("%s: without the cut, backup %d holds {a}ctr %d, {b}ctr %d", f.Name, i, a, b)
		}
	}
	if broken == 0 {
		t.Error("20 backups without the cut all held {a}ctr - {b}ctr in {0, 1}: the test cannot tell a cut from none")
	}

	// A bound no master can fork within fails the cut, leaves no snapshot and resumes writes.
	r2 := openRepo(t, "file://"+t.TempDir(), nil)
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src.Masters[0]), Repository: r2, ConsistentCut: true, CutPause: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "pause bound of 1ms") {
		t.Errorf("cut bounded to 1ms: %v", err)
	}
	assertNoSnapshot(t, r2)
	before := incs.Load()
	if err := testproc.Poll(5*time.Second, "writes after a failed cut", func() error {
		if incs.Load() < before+100 {
			return errors.New("the writer is stuck")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// A cut of a standalone server is refused.
	_, err = backup.Run(ctx, backup.Options{Redis: conn(t, dst), Repository: r, ConsistentCut: true})
	if err == nil || !strings.Contains(err.Error(), "not a cluster") {
		t.Errorf("--consistent-cut on a standalone server: %v", err)
	}
}
