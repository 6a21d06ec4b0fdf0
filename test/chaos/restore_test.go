package chaos

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// fixture is a repository with one snapshot of the suite's dataset, and the source's digest.
type fixture struct {
	repoURL string
	digest  string
	src     *redistest.Server
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	src := source(t)
	repoURL := "file://" + t.TempDir()
	mustRun(t, "backup", "--redis", src.URL(), "--repository", repoURL)
	return fixture{repoURL: repoURL, digest: src.Digest(t), src: src}
}

func restoreArgs(redisAddr, repoURL, method string, extra ...string) []string {
	return append([]string{"restore", "--redis", "redis://" + redisAddr, "--repository", repoURL, "--method", method,
		"--redis-read-timeout", readTimeout.String()}, extra...)
}

// assertRestored fails unless dst holds the fixture's data and is an ordinary master again,
// with none of the settings a replication restore changes for its duration left behind.
func assertRestored(t *testing.T, fx fixture, dst *redistest.Server) {
	t.Helper()
	if d := dst.Digest(t); d != fx.digest {
		t.Fatalf("digest of the restored target %s, source %s", d, fx.digest)
	}
	dataset.Same(t, fx.src, dst)
	if info := dst.Client.Info(ctx, "replication").Val(); !strings.Contains(info, "role:master") {
		t.Fatalf("the target is not a master:\n%s", info)
	}
	cfg := dst.Client.ConfigGet(ctx, "master*").Val()
	load := dst.Client.ConfigGet(ctx, "repl-diskless-load").Val()
	if cfg["masterauth"] != "" || cfg["masteruser"] != "" || load["repl-diskless-load"] != "disabled" {
		t.Fatalf("left on the target: masterauth %q, masteruser %q, repl-diskless-load %q", cfg["masterauth"], cfg["masteruser"], load["repl-diskless-load"])
	}
}

// TestRestoreNetworkFaults: a stall, a cut and a reset of the link to the target fail a restore
// by RESTORE commands in bounded time, saying where and how many keys were written; the next
// restore with --flush gives the source's data. For a restore by replication the runner's
// control connection goes through the proxy (the target connects back to the runner's
// ephemeral port directly, out of the proxy's reach): a stall of it while the target loads
// fails the restore, and the next restore finds the target as it was left and puts it back;
// a reset of it is survived (the control client reconnects). Latency only slows them down.
func TestRestoreNetworkFaults(t *testing.T) {
	fx := newFixture(t)
	mid := faultproxy.Fault{Dir: faultproxy.ToServer, After: midStream}
	with := func(k faultproxy.Kind) faultproxy.Fault { f := mid; f.Kind = k; return f }
	latency := faultproxy.Fault{Kind: faultproxy.Latency, Dir: faultproxy.Both, Latency: 20 * time.Millisecond}
	cases := []struct {
		method, name string
		fault        faultproxy.Fault
		// duringLoad sets the fault once the target loads (replication), not before the run.
		duringLoad bool
		want       string // in the error; "" means the restore succeeds
	}{
		{"restore", "stall mid-stream (runner→target, after 2 MiB)", with(faultproxy.Stall), false, "(the server or the link to it stalled)"},
		{"restore", "cut mid-stream (after 2 MiB)", with(faultproxy.Cut), false, "closed the connection|reset the connection"},
		{"restore", "reset mid-stream (after 2 MiB)", with(faultproxy.Reset), false, "reset the connection|closed the connection"},
		{"restore", "latency 20 ms each way", latency, false, ""},
		{"replication", "control connection stalled while the target loads", faultproxy.Fault{Kind: faultproxy.Stall}, true, "(run REPLICAOF NO ONE on it)"},
		{"replication", "control connection reset while the target loads", faultproxy.Fault{Kind: faultproxy.Reset}, true, ""},
		{"replication", "latency 20 ms each way (control connection)", latency, false, ""},
	}
	for _, c := range cases {
		t.Run(c.method+"/"+c.name, func(t *testing.T) {
			t.Parallel()
			dst := redistest.Start(t)
			p := proxyTo(t, dst.Addr)
			if !c.duringLoad {
				p.Set(c.fault)
			}
			stop := make(chan struct{})
			at := activeAt(p, stop)
			pr := start(t, restoreArgs(p.Addr(), fx.repoURL, c.method)...)
			if c.duringLoad {
				waitLoading(t, dst, pr)
				p.Set(c.fault)
			}
			err := pr.wait(t)
			close(stop)
			op := "restore --method " + c.method
			msg := pr.message()
			if c.want == "" {
				if err != nil {
					t.Fatalf("restore with %s: %v\n%s", c.name, err, msg)
				}
				assertRestored(t, fx, dst)
				record(t, row{Op: op, Fault: c.name, Outcome: "succeeds", Detect: "took " + seconds(pr.end.Sub(pr.start)),
					Left: "the restored data", Next: "—"})
				return
			}
			if err == nil {
				t.Fatalf("restore with %s succeeded", c.name)
			}
			if !says(msg, c.want) || !strings.Contains(msg, p.Addr()) {
				t.Fatalf("restore with %s: the error does not say %q at %s: %s", c.name, c.want, p.Addr(), msg)
			}
			when := at()
			if when.IsZero() {
				t.Fatalf("the fault never took effect (%d bytes to the target)", p.Bytes(faultproxy.ToServer))
			}
			detect := pr.end.Sub(when)
			within(t, "failing after the "+c.fault.Kind.String(), detect, readTimeout*5+15*time.Second)
			p.Clear()
			left := targetState(t, dst)
			next := start(t, restoreArgs(p.Addr(), fx.repoURL, c.method, "--flush")...)
			if err := next.wait(t); err != nil {
				t.Fatalf("the next restore --flush: %v\n%s", err, next.errOut.String())
			}
			assertRestored(t, fx, dst)
			nextSays := "succeeds with --flush"
			if w := warning(next); w != "" {
				nextSays += ", saying " + excerpt(w)
			}
			record(t, row{Op: op, Fault: c.name, Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: nextSays})
		})
	}
}

// TestRestoreTargetKilled: the target SIGKILLed mid-restore fails the restore at once, saying
// how far it got; a restarted target is restored by the next run. The target SIGSTOPped fails a
// restore by replication one read timeout later (before: the runner waited forever in a write
// or for the load, runner/replication), and the next restore, after SIGCONT, finds what the
// failed one could not put back, puts it back and restores.
func TestRestoreTargetFaults(t *testing.T) {
	fx := newFixture(t)
	for _, method := range []string{"restore", "replication"} {
		for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
			if method == "restore" && fault == "SIGSTOP" {
				continue // runner/cli TestStalledTargetDuringRestore covers it
			}
			t.Run(method+"/"+fault, func(t *testing.T) {
				t.Parallel()
				dst := redistest.Start(t)
				thaw := func() {}
				p := proxyTo(t, dst.Addr) // only to watch the bytes go by
				pr := start(t, restoreArgs(p.Addr(), fx.repoURL, method)...)
				if method == "replication" {
					waitLoading(t, dst, pr)
				} else {
					// Keys written and acknowledged, so that the error has a count to give.
					for p.Bytes(faultproxy.ToServer) < midStream || dst.Client.DBSize(ctx).Val() < 10000 {
						if !pr.running() {
							t.Fatalf("the restore ended before %d bytes went by: %v\n%s", midStream, pr.err, pr.errOut.String())
						}
						time.Sleep(time.Millisecond)
					}
				}
				at := time.Now()
				if fault == "SIGKILL" {
					dst.Kill()
				} else {
					thaw = dst.Freeze(t)
				}
				err := pr.wait(t)
				if err == nil {
					t.Fatalf("restore with the target %s succeeded", past(fault))
				}
				msg := pr.message()
				var want string
				switch {
				case method == "restore":
					want = "keys written"
				case fault == "SIGKILL":
					want = "keys were sent"
				default:
					want = "stalled"
				}
				if !says(msg, want) || !strings.Contains(msg, p.Addr()) {
					t.Fatalf("restore with the target %s: the error does not say %q at %s: %s", past(fault), want, p.Addr(), msg)
				}
				detect := pr.end.Sub(at)
				within(t, "failing after "+fault, detect, readTimeout*5+15*time.Second)
				var left, next string
				if fault == "SIGKILL" {
					left = "a dead target"
					dst = redistest.Start(t) // restarted, empty (save "")
					next = "succeeds (target restarted)"
				} else {
					thaw()
					left = targetState(t, dst)
					next = "succeeds after SIGCONT"
				}
				np := start(t, restoreArgs(dst.Addr, fx.repoURL, method, "--flush")...)
				if err := np.wait(t); err != nil {
					t.Fatalf("the next restore: %v\n%s", err, np.errOut.String())
				}
				assertRestored(t, fx, dst)
				if w := warning(np); w != "" {
					next += ", saying " + excerpt(w)
				}
				record(t, row{Op: "restore --method " + method, Fault: "target redis-server " + past(fault) + " mid-restore",
					Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: next})
			})
		}
	}
}

// TestRunnerKilledDuringReplicationRestore: a runner SIGKILLed while the target loads leaves the
// target a replica of a runner that no longer exists, with the runner's masterauth and
// repl-diskless-load; every write to it fails with READONLY. The next restore, with no special
// flag but --flush (the target may hold the data it finished loading, which no runner
// verified), says what it found, puts the target back and restores it.
func TestRunnerKilledDuringReplicationRestore(t *testing.T) {
	fx := newFixture(t)
	dst := redistest.Start(t)
	pr := start(t, restoreArgs(dst.Addr, fx.repoURL, "replication")...)
	waitLoading(t, dst, pr)
	if err := pr.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-pr.done
	// What the dead runner left: a replica that cannot be written to.
	var info string
	testproc.Eventually(t, 10*time.Second, "the target drops the aborted load", func() error {
		info = dst.Client.Info(ctx, "replication", "persistence").Val()
		if strings.Contains(info, "loading:1") {
			return fmt.Errorf("still loading")
		}
		return nil
	})
	if !strings.Contains(info, "role:slave") {
		t.Fatalf("the target is not a replica after the runner was killed (it finished first: the dataset is too small):\n%s", info)
	}
	if err := dst.Client.Set(ctx, "x", "y", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("write to the left replica: %v", err)
	}
	// Killed mid-transfer, the target drops what it received; killed after the last byte was
	// sent, it finishes loading data that no runner verified. Either way it stays a replica.
	left := targetState(t, dst) + " (writes fail with READONLY; the runner's masterauth and repl-diskless-load on-empty-db)"

	np := start(t, "restore", "--redis", dst.URL(), "--repository", fx.repoURL, "--redis-read-timeout", readTimeout.String(), "--flush")
	if err := np.wait(t); err != nil {
		t.Fatalf("the next restore: %v\n%s", err, np.errOut.String())
	}
	w := warning(np)
	if !strings.Contains(w, "was left a replica of a runner at") || !strings.Contains(w, "REPLICAOF NO ONE") {
		t.Fatalf("the next restore did not say what it found: %q", np.errOut.String())
	}
	if !strings.Contains(np.out.String(), "by replication") {
		t.Fatalf("the next restore: %s", np.out.String())
	}
	assertRestored(t, fx, dst)
	record(t, row{Op: "restore --method replication", Fault: "the runner SIGKILLed while the target loads",
		Outcome: "the runner dies; the target discards the partial load", Detect: "—", Left: left,
		Next: "the next `restore --flush` (any method) succeeds, saying " + excerpt(w)})
}

// waitLoading waits until dst is loading the runner's RDB transfer (a restore by replication is
// mid-stream), failing if the restore ends first.
func waitLoading(t *testing.T, dst *redistest.Server, pr *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := dst.Client.Info(ctx, "persistence").Result()
		if strings.Contains(info, "loading:1") {
			return
		}
		if !pr.running() {
			t.Fatalf("the restore ended before the target was seen loading (the dataset is too small): %v\n%s", pr.err, pr.errOut.String())
		}
		if time.Now().After(deadline) {
			t.Fatal("the target did not start loading in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// targetState describes what a failed restore left on dst.
func targetState(t *testing.T, dst *redistest.Server) string {
	t.Helper()
	var info string
	// A target whose load was aborted may take a moment to drop it.
	testproc.Eventually(t, 10*time.Second, "the target answers", func() error {
		var err error
		info, err = dst.Client.Info(ctx, "replication", "persistence", "keyspace").Result()
		if err == nil && strings.Contains(info, "loading:1") {
			err = fmt.Errorf("still loading")
		}
		return err
	})
	n := dst.Client.DBSize(ctx).Val()
	var parts []string
	if strings.Contains(info, "role:slave") {
		parts = append(parts, "the target a replica of the gone runner")
	}
	if u := dst.Client.ConfigGet(ctx, "masteruser").Val()["masteruser"]; u != "" {
		parts = append(parts, "the runner's settings (marked)")
	}
	parts = append(parts, strconv.FormatInt(n, 10)+" keys in the target")
	return strings.Join(parts, "; ")
}

// warning returns the WARNING lines a run printed.
func warning(p *proc) string {
	var out []string
	for line := range strings.Lines(p.errOut.String()) {
		if w, ok := strings.CutPrefix(line, "WARNING: "); ok {
			out = append(out, strings.TrimSpace(w))
		}
	}
	return strings.Join(out, "; ")
}

func past(signal string) string {
	if signal == "SIGSTOP" {
		return "SIGSTOPped"
	}
	return signal + "ed"
}
