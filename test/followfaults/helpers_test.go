// Package followfaults_test runs `stash-runner follow` (the real binary) against real
// redis-server processes and injects the faults of a long-running follower: the follower killed,
// the link cut, reset or stalled, the master restarted, a Sentinel failover, the storage gone.
// Every test counts the writes of a writer (MULTI; SET t:<n>; INCR counter; EXEC) and restores
// the end of the recorded window: the counter must equal the writes the window holds, the
// digest the source's. A lost or a doubled command would change both.
package followfaults_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

var runnerBin string

// TestMain builds stash-runner once (or takes the one `make build` left in $STASH_BIN_DIR).
func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "followfaults")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if runnerBin, err = testproc.OurBinary(dir, "stash-runner"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// line is one line a runner printed, with the time the test read it.
type line struct {
	at   time.Time
	text string
}

// proc is a running stash-runner.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []line
	done  chan struct{}
	err   error
}

// runnerEnv is the environment of every stash-runner the tests start: the repository password
// and, for S3, the storage credentials.
func runnerEnv(storage map[string]string) []string {
	env := append(os.Environ(), cli.EnvResticPassword+"="+runnertest.Password)
	for k, v := range storage {
		env = append(env, k+"="+v)
	}
	return env
}

// startRunner starts stash-runner with args; its stdout and stderr lines are kept (and logged).
func startRunner(t *testing.T, storage map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(runnerBin, args...), done: make(chan struct{})}
	p.cmd.Env = runnerEnv(storage)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				p.mu.Lock()
				p.lines = append(p.lines, line{time.Now(), sc.Text()})
				p.mu.Unlock()
			}
		}()
	}
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			t.Logf("stash-runner %s: %s", l.at.Format("15:04:05.000"), l.text)
		}
	})
	return p
}

// follow starts `stash-runner follow` with short segments.
func follow(t *testing.T, repoURL string, storage map[string]string, args ...string) *proc {
	t.Helper()
	return startRunner(t, storage, append([]string{"follow", "--repository", repoURL, "--segment-interval", "200ms",
		"--progress-interval", "0"}, args...)...)
}

// followWriting opens the repository at repoURL, starts a follower of src into it (args say how
// it reaches src; by default --redis src.URL()) and, once the base snapshot is saved, a writer
// to src: where every fault test begins.
func followWriting(t *testing.T, src *redistest.Server, repoURL string, storage map[string]string, args ...string) (*repo.Repository, *proc, *writer) {
	t.Helper()
	r := runnertest.OpenRepo(t, repoURL, storage)
	if len(args) == 0 {
		args = []string{"--redis", src.URL()}
	}
	f := follow(t, repoURL, storage, args...)
	f.waitLine("base snapshot", time.Time{}, 30*time.Second)
	return r, f, startWriter(t, src.Addr)
}

// waitLine waits for a line containing s printed after since, and returns when it was read.
func (p *proc) waitLine(s string, since time.Time, timeout time.Duration) time.Time {
	p.t.Helper()
	var at time.Time
	testproc.Eventually(p.t, timeout, fmt.Sprintf("stash-runner prints %q", s), func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			if !l.at.Before(since) && strings.Contains(l.text, s) {
				at = l.at
				return nil
			}
		}
		select {
		case <-p.done:
			return testproc.Abort(fmt.Errorf("stash-runner exited (%v) before printing it", p.err))
		default:
			return errors.New("not printed")
		}
	})
	return at
}

// count returns how many lines contain s.
func (p *proc) count(s string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l.text, s) {
			n++
		}
	}
	return n
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		b.WriteString(l.text + "\n")
	}
	return b.String()
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM (the open segment is closed) and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("stash-runner did not exit within 30 s of SIGTERM")
	}
	if p.err != nil {
		p.t.Fatalf("stash-runner follow after SIGTERM: %v\n%s", p.err, p.output())
	}
}

// run runs stash-runner to its end and returns its output.
func run(t *testing.T, storage map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(runnerBin, args...)
	cmd.Env = runnerEnv(storage)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stash-runner %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writer runs MULTI; SET t:<writer>:<n> <ms>; INCR counter; EXEC in a loop against one server and
// counts the transactions the server acknowledged.
type writer struct {
	n    atomic.Int64
	stop context.CancelFunc
	done chan error
}

func startWriter(t *testing.T, addr string) *writer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{stop: cancel, done: make(chan error, 1)}
	// Keys of writers one after the other must not overwrite each other: the restore counts them.
	prefix := "t:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	go func() {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		for ctx.Err() == nil {
			n := w.n.Load()
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, prefix+strconv.FormatInt(n, 10), time.Now().UnixMilli(), 0)
				p.Incr(ctx, "counter")
				return nil
			})
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				w.done <- fmt.Errorf("writer: transaction %d: %w", n, err)
				return
			}
			w.n.Add(1)
			time.Sleep(2 * time.Millisecond) // about 300 a second: the replay at the end stays short
		}
		w.done <- nil
	}()
	t.Cleanup(cancel)
	return w
}

// end stops the writer and returns how many transactions it wrote.
func (w *writer) end(t *testing.T) int64 {
	t.Helper()
	w.stop()
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
	return w.n.Load()
}

// waitJournal waits until the newest chain's last segment reaches offset, and returns the chain.
func waitJournal(t *testing.T, r *repo.Repository, offset int64, timeout time.Duration) string {
	t.Helper()
	ctx := context.Background()
	var chain string
	testproc.Eventually(t, timeout, fmt.Sprintf("the journal reaches offset %d", offset), func() error {
		chains, err := journal.Chains(ctx, r)
		if err != nil {
			return testproc.Abort(err)
		}
		if len(chains) == 0 {
			return errors.New("no chain")
		}
		chain = newestChain(t, r, chains)
		segs, err := journal.List(ctx, r, chain)
		if err != nil {
			return testproc.Abort(err)
		}
		if len(segs) == 0 || segs[len(segs)-1].EndOffset < offset {
			return fmt.Errorf("chains %v", chains)
		}
		return nil
	})
	return chain
}

// stopInOneChain ends the writer, waits until the journal holds all it wrote, stops the
// follower, and checks what a fault the follower survives leaves behind: one chain, without a
// gap, whose end restores to the source (the counter equals the writes, the digest the
// source's). It returns the number of writes and the chain's segments.
func stopInOneChain(t *testing.T, src *redistest.Server, r *repo.Repository, f *proc, w *writer) (int64, []journal.Manifest) {
	t.Helper()
	n := w.end(t)
	off := redistest.ReplOffset(t, src.Client)
	chain := waitJournal(t, r, off, 30*time.Second)
	f.stop()
	if c := chainsOf(t, r); len(c) != 1 || c[0] != chain {
		t.Fatalf("chains %v, want only %s; output:\n%s", c, chain, f.output())
	}
	segs := assertChain(t, r, chain)
	dst := restoreTo(t, r, chain, off, n)
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest of the restore %s, source %s", b, a)
	}
	dataset.Same(t, src, dst)
	return n, segs
}

// newestChain is the chain whose base is the newest (ids of one second sort by a random suffix).
func newestChain(t *testing.T, r *repo.Repository, chains []string) string {
	t.Helper()
	var best string
	var bestTime time.Time
	for _, c := range chains {
		m, err := r.Manifest(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if best == "" || m.Time.After(bestTime) {
			best, bestTime = c, m.Time
		}
	}
	return best
}

// assertChain checks that chain's segments follow its base without a gap or an overlap.
func assertChain(t *testing.T, r *repo.Repository, chain string) []journal.Manifest {
	t.Helper()
	ctx := context.Background()
	base, err := r.Manifest(ctx, chain)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := journal.List(ctx, r, chain)
	if err != nil {
		t.Fatal(err)
	}
	if err := journal.CheckContiguous(base.ReplOffset, segs); err != nil {
		t.Fatal(err)
	}
	return segs
}

// restoreTo restores chain up to offset into a new server and returns it, after checking that
// its counter is want (and that every t:<n> below it is there).
func restoreTo(t *testing.T, r *repo.Repository, chain string, offset, want int64) *redistest.Server {
	t.Helper()
	ctx := context.Background()
	dst := redistest.Start(t)
	res, err := restore.ToPoint(ctx, restore.Options{Redis: redisconn.Options{Network: "tcp", Addr: dst.Addr}, Repository: r, Snapshot: chain},
		restore.Point{Offset: offset, ByOffset: true})
	if err != nil {
		t.Fatalf("restore chain %s to offset %d: %v", chain, offset, err)
	}
	got, err := dst.Client.Get(ctx, "counter").Int64()
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	keys, err := dst.Client.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored chain %s to offset %d: base %d keys, %d segments, %d commands; counter %d, %d keys",
		chain, res.Offset, res.Keys, res.Segments, res.Commands, got, keys)
	if got != want || (want > 0 && keys != want+1) {
		t.Fatalf("restore of chain %s to offset %d: counter %d and %d keys, want %d and %d", chain, offset, got, keys, want, want+1)
	}
	return dst
}

// chainsOf returns the repository's chains, oldest base first.
func chainsOf(t *testing.T, r *repo.Repository) []string {
	t.Helper()
	wins, _, err := journal.Windows(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range wins {
		out = append(out, w.Chain)
	}
	return out
}
