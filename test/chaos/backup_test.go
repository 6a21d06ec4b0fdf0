package chaos

import (
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/redistest"
)

// keys is the size of every dataset: enough for a stream of about 20 MB in flight (a fault
// after 2 MB lands mid-stream), small enough to keep the suite to a few minutes on 2 cores.
const keys = 150000

// midStream is where a byte-triggered fault falls: well inside the transfer.
const midStream = 2 << 20

// source starts a redis-server holding the suite's dataset.
func source(t *testing.T) *redistest.Server {
	t.Helper()
	s := redistest.Start(t)
	if err := s.Client.Do(ctx, "DEBUG", "POPULATE", keys, "key", 100).Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// proxyTo starts a fault proxy in front of addr.
func proxyTo(t *testing.T, addr string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// activeAt returns a function that reports when p's fault took effect (zero if it did not).
func activeAt(p *faultproxy.Proxy, stop <-chan struct{}) func() time.Time {
	var at time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if p.Active() {
				at = time.Now()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() time.Time { <-done; return at }
}

func backupArgs(redisAddr, repoURL, method string) []string {
	return []string{"backup", "--redis", "redis://" + redisAddr, "--repository", repoURL, "--method", method,
		"--redis-read-timeout", readTimeout.String()}
}

var methods = []string{"replication", "dump"}

// What the error of a backup must say, by method (alternatives separated by "|", see says):
// every read of the source says which server closed, reset or stalled the connection
// (runner/redisconn). A cut may show as a reset: Linux answers with RST when a socket that
// still has unread bytes (commands, ACKs in flight) is closed.
var (
	stalled = map[string]string{"replication": "(the server or the link to it stalled)", "dump": "(the server or the link to it stalled)"}
	closed  = map[string]string{"replication": "closed the connection|reset the connection", "dump": "closed the connection|reset the connection"}
	// The first call after an RST gets ECONNRESET, a later one EPIPE ("closed"): which one
	// surfaces depends on which of the runner's goroutines touches the socket first.
	reset = map[string]string{"replication": "reset the connection|closed the connection", "dump": "reset the connection|closed the connection"}
)

// TestBackupNetworkFaults: a stall, a cut and a reset of the link to the source mid-stream fail
// the backup in bounded time, naming the server and what happened, with no snapshot left; the
// next backup succeeds. Added latency only slows the backup down.
func TestBackupNetworkFaults(t *testing.T) {
	faults := []struct {
		name  string
		fault faultproxy.Fault
		want  map[string]string // by method, in the error; none means the backup succeeds
	}{
		{"stall mid-stream (source→runner, after 2 MiB)", faultproxy.Fault{Kind: faultproxy.Stall, Dir: faultproxy.ToClient, After: midStream}, stalled},
		{"cut mid-stream (after 2 MiB)", faultproxy.Fault{Kind: faultproxy.Cut, Dir: faultproxy.ToClient, After: midStream}, closed},
		{"reset mid-stream (after 2 MiB)", faultproxy.Fault{Kind: faultproxy.Reset, Dir: faultproxy.ToClient, After: midStream}, reset},
		{"latency 20 ms each way", faultproxy.Fault{Kind: faultproxy.Latency, Dir: faultproxy.Both, Latency: 20 * time.Millisecond}, nil},
	}
	for _, method := range methods {
		for _, f := range faults {
			t.Run(method+"/"+f.fault.Kind.String(), func(t *testing.T) {
				t.Parallel()
				src := source(t)
				p := proxyTo(t, src.Addr)
				dir := t.TempDir()
				repoURL := "file://" + dir
				p.Set(f.fault)
				stop := make(chan struct{})
				at := activeAt(p, stop)
				pr, err := run(t, backupArgs(p.Addr(), repoURL, method)...)
				close(stop)
				op := "backup --method " + method
				want := f.want[method]
				if want == "" {
					if err != nil {
						t.Fatalf("backup with %s: %v\n%s", f.name, err, pr.message())
					}
					if ids := snapshots(t, repoURL); len(ids) != 1 {
						t.Fatalf("snapshots after the backup: %v", ids)
					}
					record(t, row{Op: op, Fault: f.name, Outcome: "succeeds", Detect: "took " + seconds(pr.end.Sub(pr.start)),
						Left: "a complete snapshot", Next: "—"})
					return
				}
				if err == nil {
					t.Fatalf("backup with %s succeeded", f.name)
				}
				msg := pr.message()
				if !says(msg, want) || !strings.Contains(msg, p.Addr()) {
					t.Fatalf("backup with %s: the error does not say %q at %s: %s", f.name, want, p.Addr(), msg)
				}
				when := at()
				if when.IsZero() {
					t.Fatalf("the fault never took effect (%d bytes to the runner): the dataset is too small", p.Bytes(faultproxy.ToClient))
				}
				detect := pr.end.Sub(when)
				within(t, "failing after the "+f.fault.Kind.String(), detect, readTimeout+15*time.Second)
				left := leftBehind(t, repoURL, dir)
				p.Clear()
				mustRun(t, backupArgs(p.Addr(), repoURL, method)...)
				if ids := snapshots(t, repoURL); len(ids) != 1 {
					t.Fatalf("snapshots after the next backup: %v", ids)
				}
				record(t, row{Op: op, Fault: f.name, Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: "succeeds"})
			})
		}
	}
}

// TestBackupSourceProcessFaults: the source SIGKILLed mid-backup fails the backup at once; the
// source SIGSTOPped (a hung server) fails it one read timeout later, saying it stalled. Neither
// leaves a snapshot, and the next backup (of the restarted, or continued, server) succeeds.
func TestBackupSourceProcessFaults(t *testing.T) {
	for _, method := range methods {
		for _, fault := range []string{"SIGKILL", "SIGSTOP"} {
			t.Run(method+"/"+fault, func(t *testing.T) {
				t.Parallel()
				src := source(t)
				thaw := func() {}
				p := proxyTo(t, src.Addr) // only to watch the bytes go by
				dir := t.TempDir()
				repoURL := "file://" + dir
				pr := start(t, backupArgs(p.Addr(), repoURL, method)...)
				for p.Bytes(faultproxy.ToClient) < midStream {
					if !pr.running() {
						t.Fatalf("the backup ended before %d bytes went by: %v\n%s", midStream, pr.err, pr.errOut.String())
					}
					time.Sleep(time.Millisecond)
				}
				at := time.Now()
				if fault == "SIGKILL" {
					src.Kill()
				} else {
					thaw = src.Freeze(t)
				}
				err := pr.wait(t)
				if err == nil {
					t.Fatalf("backup with the source %s succeeded", past(fault))
				}
				msg := pr.message()
				want := stalled[method]
				if fault == "SIGKILL" {
					want = closed[method]
				}
				if !says(msg, want) || !strings.Contains(msg, p.Addr()) {
					t.Fatalf("backup with the source %s: the error does not say %q at %s: %s", past(fault), want, p.Addr(), msg)
				}
				detect := pr.end.Sub(at)
				within(t, "failing after "+fault, detect, readTimeout+15*time.Second)
				left := leftBehind(t, repoURL, dir)
				next := "succeeds (after SIGCONT)"
				if fault == "SIGKILL" {
					src = source(t) // the server restarted (empty: save "" — so filled again)
					next = "succeeds (server restarted)"
				} else {
					thaw()
				}
				mustRun(t, backupArgs(src.Addr, repoURL, method)...)
				if ids := snapshots(t, repoURL); len(ids) != 1 {
					t.Fatalf("snapshots after the next backup: %v", ids)
				}
				record(t, row{Op: "backup --method " + method, Fault: "source redis-server " + past(fault) + " mid-stream",
					Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: next})
			})
		}
	}
}

// TestRunnerKilledDuringBackup: a runner SIGKILLed mid-backup (an OOM kill, a deleted Pod)
// leaves no snapshot; what it leaves in the repository is found by `check`, and the next
// backup succeeds.
func TestRunnerKilledDuringBackup(t *testing.T) {
	for _, method := range methods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			src := source(t)
			p := proxyTo(t, src.Addr) // only to watch the bytes go by
			dir := t.TempDir()
			repoURL := "file://" + dir
			pr := start(t, backupArgs(p.Addr(), repoURL, method)...)
			for p.Bytes(faultproxy.ToClient) < midStream {
				if !pr.running() {
					t.Fatalf("the backup ended before %d bytes went by: %v\n%s", midStream, pr.err, pr.errOut.String())
				}
				time.Sleep(time.Millisecond)
			}
			if err := pr.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-pr.done
			t.Logf("files after the kill: %v", files(t, dir))
			left := leftBehind(t, repoURL, dir)
			mustRun(t, backupArgs(src.Addr, repoURL, method)...)
			if ids := snapshots(t, repoURL); len(ids) != 1 {
				t.Fatalf("snapshots after the next backup: %v", ids)
			}
			record(t, row{Op: "backup --method " + method, Fault: "the runner SIGKILLed mid-stream",
				Outcome: "the runner dies; no snapshot is listed", Detect: "—", Left: left, Next: "succeeds"})
		})
	}
}
