package followfaults_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/redistest"
)

// backlog keeps what the writer writes while the follower is away (the default 1 MB would make
// a long absence a new chain, rightly, but these tests are about continuing one).
var backlog = redistest.WithConfig("repl-backlog-size", "64mb")

// TestFollowerKilledResumes: `stash-runner follow` SIGKILLed twice mid-stream (its open
// segment lost with it) and started again continues its chain with PSYNC <replid> <offset+1>:
// +CONTINUE, one base, one chain without a gap, and the counter restored at the end of the
// window equals the writes: nothing lost and nothing doubled.
func TestFollowerKilledResumes(t *testing.T) {
	src := redistest.Start(t, backlog)
	repoURL := "file://" + t.TempDir()
	r, f, w := followWriting(t, src, repoURL, nil)
	for range 2 {
		time.Sleep(time.Second)
		since := time.Now()
		f.waitLine("segment ", since, 10*time.Second) // mid-stream: segments are being written
		f.kill()
		time.Sleep(300 * time.Millisecond) // the writer goes on while no follower runs
		restarted := time.Now()
		f = follow(t, repoURL, nil, "--redis", src.URL())
		at := f.waitLine("continuing chain", restarted, 30*time.Second)
		t.Logf("restarted follower continued its chain %s after starting", at.Sub(restarted).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	n, segs := stopInOneChain(t, src, r, f, w)
	if f.count("saved:") != 0 {
		t.Fatalf("the restarted follower took a new base:\n%s", f.output())
	}
	t.Logf("%d writes, one chain of %d segments", n, len(segs))
}

// TestFollowerLinkFaults: the link between the follower and Redis, through a fault proxy, is
// cut (FIN), reset (RST) and stalled (open but silent). The follower notices a cut or a reset at
// once and a stall after --redis-read-timeout (the master pings its replicas every
// repl-ping-replica-period, so a silent link is a dead one), reconnects and continues its chain:
// one chain, no gap, the counter exact.
func TestFollowerLinkFaults(t *testing.T) {
	src := redistest.Start(t, backlog, redistest.WithConfig("repl-ping-replica-period", "1"))
	px, err := faultproxy.Start(src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	repoURL := "file://" + t.TempDir()
	const readTimeout = 3 * time.Second
	r, f, w := followWriting(t, src, repoURL, nil, "--redis", "redis://"+px.Addr(), "--redis-read-timeout", readTimeout.String())
	for _, kind := range []faultproxy.Kind{faultproxy.Cut, faultproxy.Reset, faultproxy.Stall} {
		time.Sleep(700 * time.Millisecond)
		since := time.Now()
		px.Set(faultproxy.Fault{Kind: kind, Dir: faultproxy.Both})
		detected := f.waitLine("reconnecting in", since, 20*time.Second)
		px.Clear()
		resumed := f.waitLine("continuing chain", since, 30*time.Second)
		took := detected.Sub(since)
		t.Logf("%s: detected after %s, chain continued after %s", kind, took.Round(time.Millisecond), resumed.Sub(since).Round(time.Millisecond))
		switch kind {
		case faultproxy.Stall:
			if took < readTimeout-time.Second || took > readTimeout+3*time.Second {
				t.Fatalf("a stalled link was detected after %s; want about --redis-read-timeout (%s)", took, readTimeout)
			}
		default:
			if took > 2*time.Second {
				t.Fatalf("a %s link was detected after %s", kind, took)
			}
		}
	}
	if n := f.count("stalled"); n == 0 {
		t.Fatalf("the follower did not say the link stalled:\n%s", f.output())
	}
	time.Sleep(500 * time.Millisecond)
	stopInOneChain(t, src, r, f, w)
	if f.count("saved:") != 1 {
		t.Fatalf("the follower took more than one base:\n%s", f.output())
	}
}

// TestFollowerMasterRestarted: the master is SIGKILLed and started again on the same port with
// the same (empty: it does not save) data directory, so with a new replication id and nothing
// of its history. The follower's PSYNC is answered with a full resynchronization: a new base
// starts a new chain, and `stash-runner snapshots` shows the gap between the two chains. Each
// chain restores to its end with its own counter.
func TestFollowerMasterRestarted(t *testing.T) {
	src := redistest.Start(t, backlog)
	repoURL := "file://" + t.TempDir()
	r, f, w := followWriting(t, src, repoURL, nil)
	time.Sleep(1500 * time.Millisecond)
	n1 := w.end(t)
	off1 := redistest.ReplOffset(t, src.Client)
	chain1 := waitJournal(t, r, off1, 30*time.Second)

	// The same configuration file: the same port and directory.
	killed := time.Now()
	src.Kill()
	src.Restart(t)
	detected := f.waitLine("reconnecting in", killed, 10*time.Second)
	newChain := f.waitLine("cannot continue chain", killed, 30*time.Second)
	f.waitLine("chain ", newChain, 30*time.Second)
	t.Logf("master killed: lost link reported after %s, new chain decided after %s", detected.Sub(killed).Round(time.Millisecond), newChain.Sub(killed).Round(time.Millisecond))
	w2 := startWriter(t, src.Addr)
	time.Sleep(time.Second)
	n2 := w2.end(t)
	off2 := redistest.ReplOffset(t, src.Client)
	chain2 := waitJournal(t, r, off2, 30*time.Second)
	f.stop()
	if chain2 == chain1 {
		t.Fatalf("the follower continued chain %s on a restarted master", chain1)
	}
	if cs := chainsOf(t, r); len(cs) != 2 || cs[0] != chain1 || cs[1] != chain2 {
		t.Fatalf("chains %v, want %s then %s", cs, chain1, chain2)
	}
	out := run(t, nil, "snapshots", "--repository", repoURL)
	gap := ""
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "gap") {
			gap = l
		}
	}
	if gap == "" || !strings.Contains(gap, "not recoverable") {
		t.Fatalf("snapshots shows no gap between the chains:\n%s", out)
	}
	t.Logf("snapshots:\n%s", out)
	assertChain(t, r, chain1)
	assertChain(t, r, chain2)
	restoreTo(t, r, chain1, off1, n1)
	dst := restoreTo(t, r, chain2, off2, n2)
	if got, want := dst.Digest(t), src.Digest(t); got != want {
		t.Fatalf("digest of the restore of chain %s: %s, source %s", chain2, got, want)
	}
	dataset.Same(t, src, dst)
}

// TestFollowerSentinelFailover: a follower given a Sentinel (--redis is the Sentinel,
// --sentinel-master the set) follows the master it names. After SENTINEL FAILOVER it sees the
// Sentinel name the promoted replica within its poll (a second), leaves the old master and asks
// the new one to continue: PSYNC2 lets the promoted replica accept the old replication id up
// to the offset it had, so the chain goes on. (Had the old master sent anything after the
// promotion, even a replication PING, the follower's history would be ahead of the new
// master's, which then answers with a full resynchronization: a new chain, the gap shown. The
// master here pings its replicas once a minute so that the test is about the first case; it
// checks the second one too if it happens.) The counter written on both masters is exact.
func TestFollowerSentinelFailover(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, backlog, redistest.WithConfig("repl-ping-replica-period", "60"))
	replica := redistest.StartReplica(t, master, backlog)
	sen := redistest.StartSentinel(t, master, "set1", 1)
	repoURL := "file://" + t.TempDir()
	r, f, w := followWriting(t, master, repoURL, nil, "--redis", sen.URL(), "--sentinel-master", "set1")
	time.Sleep(time.Second)
	n1 := w.end(t)
	// Both replicas (the real one and the follower) have every write before the failover.
	if n, err := master.Client.Do(ctx, "WAIT", 2, 10000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d %v", n, err)
	}
	since := time.Now()
	if err := sen.Sentinel.Failover(ctx, "set1").Err(); err != nil {
		t.Fatal(err)
	}
	switched := f.waitLine("sentinel: the master of set1 is now "+replica.Addr, since, 30*time.Second)
	resumed := f.waitLine("chain", switched, 30*time.Second)
	continued := f.count("continuing chain") > 0
	t.Logf("failover: the follower left the old master after %s; continued its chain: %v, after %s",
		switched.Sub(since).Round(time.Millisecond), continued, resumed.Sub(since).Round(time.Millisecond))
	w2 := startWriter(t, replica.Addr)
	time.Sleep(time.Second)
	n2 := w2.end(t)
	off := redistest.ReplOffset(t, replica.Client)
	chain := waitJournal(t, r, off, 30*time.Second)
	f.stop()
	cs := chainsOf(t, r)
	if continued {
		if len(cs) != 1 || cs[0] != chain || f.count("saved:") != 1 {
			t.Fatalf("chains %v, want only %s; output:\n%s", cs, chain, f.output())
		}
		segs := assertChain(t, r, chain)
		if first, last := segs[0].ReplID, segs[len(segs)-1].ReplID; first == last {
			t.Fatalf("the chain's segments all have replication id %s: the follower did not follow the new master", first)
		}
	} else {
		out := run(t, nil, "snapshots", "--windows", "--repository", repoURL)
		if len(cs) != 2 || cs[1] != chain || !strings.Contains(out, "\ngap ") {
			t.Fatalf("chains %v (want 2, the last %s), snapshots:\n%s", cs, chain, out)
		}
	}
	dst := restoreTo(t, r, chain, off, n1+n2)
	if a, b := replica.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest of the restore %s, new master %s", b, a)
	}
	dataset.Same(t, replica, dst)
}
