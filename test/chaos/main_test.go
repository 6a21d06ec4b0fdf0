// Package chaos is the fault-injection suite of issue 15 for the runner: the real stash-runner
// binary against real redis-server processes, through a TCP fault proxy (test/faultproxy), with
// a file:// repository. Every fault is real (a stalled, cut or reset connection, a process
// SIGKILLed or SIGSTOPped, a full disk), and every scenario asserts the same promise: the command
// ends within a bound, its error says what failed and where, nothing that looks good is left
// (no snapshot listed for a failed backup, no target left a replica of a dead runner, `check`
// reports or removes what is left), and the next run succeeds.
//
// Each scenario records a row; `go test ./test/chaos -update` rewrites the table in
// docs/reliability.md between its markers from them.
package chaos

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

var update = flag.Bool("update", false, "rewrite the chaos table in docs/reliability.md from this run")

// runnerBin is the stash-runner binary under test.
var runnerBin string

// password is the test repositories' password.
const password = "chaos-repository-password"

// readTimeout is the --redis-read-timeout every scenario runs with: a stall is called one after
// this much silence.
const readTimeout = 2 * time.Second

// bound is how long any single command may take before the suite calls it a hang.
const bound = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The suite runs the binary as a Job would, so that a SIGKILL kills the whole runner and
	// nothing else: `make build`'s (STASH_BIN_DIR) or one built here.
	runnerBin, err = testproc.OurBinary(dir, "stash-runner")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if *update && code == 0 {
		if err := writeTable(); err != nil {
			fmt.Fprintln(os.Stderr, "update docs/reliability.md:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// proc is a running stash-runner.
type proc struct {
	args        []string
	cmd         *exec.Cmd
	out, errOut bytes.Buffer
	start       time.Time
	end         time.Time
	err         error
	done        chan struct{}
}

// start runs stash-runner with args (a cheap key derivation and no progress lines added).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with more environment variables (a storage Secret's keys).
func startEnv(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(runnerBin, append(args, "--kdf-work-factor", "10", "--progress-interval", "0")...)
	p.cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+password)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.end = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits for the command, failing the test if it runs longer than bound: a hang.
func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(bound - time.Since(p.start)):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump on stderr
		time.Sleep(time.Second)
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("HANG: stash-runner %s still ran after %s\nstderr: %s", strings.Join(p.args, " "), bound, tail(p.errOut.String(), 40))
	}
	return p.err
}

// message is the error line the runner printed.
func (p *proc) message() string {
	for line := range strings.Lines(p.errOut.String()) {
		if m, ok := strings.CutPrefix(line, "error: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return strings.TrimSpace(p.errOut.String())
}

// run runs stash-runner to its end within bound.
func run(t *testing.T, args ...string) (*proc, error) {
	t.Helper()
	p := start(t, args...)
	return p, p.wait(t)
}

// mustRun runs stash-runner and fails the test unless it succeeds.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	p, err := run(t, args...)
	if err != nil {
		t.Fatalf("stash-runner %s: %v\nstderr: %s", strings.Join(args, " "), err, tail(p.errOut.String(), 20))
	}
	return p.out.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var idRE = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)

// snapshots lists the snapshot ids of the repository.
func snapshots(t *testing.T, repoURL string) []string {
	t.Helper()
	return idRE.FindAllString(mustRun(t, "snapshots", "--repository", repoURL), -1)
}

// files lists the files under dir (relative), except the repository key.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if !d.IsDir() && !strings.HasPrefix(rel, "keys"+string(filepath.Separator)) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leftBehind describes what a failed backup left in the repository at dir, and checks the
// promise: no manifest, nothing listed, and `check` names every data object that has no
// manifest as an orphan and removes it with --prune-orphans.
func leftBehind(t *testing.T, repoURL, dir string) string {
	t.Helper()
	if ids := snapshots(t, repoURL); len(ids) != 0 {
		t.Fatalf("the failed backup left snapshots %v", ids)
	}
	all := files(t, dir)
	for _, f := range all {
		if strings.HasSuffix(f, "manifest.json") {
			t.Fatalf("the failed backup left a manifest: %s", f)
		}
	}
	if len(all) == 0 {
		return "nothing"
	}
	out := mustRun(t, "check", "--repository", repoURL, "--prune-orphans", "--orphan-min-age", "0s")
	for _, f := range all {
		if id := idRE.FindString(f); id != "" && !strings.Contains(out, id+": orphan removed") {
			t.Fatalf("check --prune-orphans did not remove %s: %s", f, out)
		}
	}
	if rest := files(t, dir); len(rest) != 0 {
		t.Fatalf("after check --prune-orphans: %v", rest)
	}
	names := make([]string, len(all))
	for i, f := range all {
		names[i] = excerpt(f)
	}
	return strings.Join(names, ", ") + ": `check` reports it as an orphan, `check --prune-orphans` removes it"
}

// row is one line of the reliability table.
type row struct {
	Op, Fault, Outcome, Detect, Left, Next, Test string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

// record adds a row to the table; the test name is t's.
func record(t *testing.T, r row) {
	r.Test = t.Name()
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Logf("| %s | %s | %s | %s | %s | %s |", r.Op, r.Fault, r.Outcome, r.Detect, r.Left, r.Next)
}

var (
	addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	// tmpRE matches a t.TempDir() path, also seen through /proc/<pid>/root.
	tmpRE = regexp.MustCompile(`(/proc/\d+/root)?/tmp/Test[^/ ]*/\d+`)
	// tmpSuffixRE is the random suffix of a file being written.
	tmpSuffixRE = regexp.MustCompile(`\.[0-9a-f]{16}\.tmp\b`)
)

// excerpt makes an error message stable and short for the table: addresses, snapshot ids and
// temporary paths vary from run to run.
func excerpt(msg string) string {
	msg = addrRE.ReplaceAllString(msg, "HOST:PORT")
	msg = idRE.ReplaceAllString(msg, "ID")
	msg = tmpRE.ReplaceAllString(msg, "/REPO")
	msg = tmpSuffixRE.ReplaceAllString(msg, ".RANDOM.tmp")
	msg = strings.ReplaceAll(msg, "|", "\\|")
	if r := []rune(msg); len(r) > 400 {
		msg = string(r[:400]) + "…"
	}
	return "`" + msg + "`"
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

const (
	beginMarker = "<!-- BEGIN chaos table: generated by `go test ./test/chaos -update`; do not edit by hand -->"
	endMarker   = "<!-- END chaos table -->"
)

// writeTable rewrites the table between the markers of docs/reliability.md.
func writeTable() error {
	path := filepath.Join("..", "..", "docs", "reliability.md")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q section", path, beginMarker, endMarker)
	}
	rowsMu.Lock()
	defer rowsMu.Unlock()
	slices.SortFunc(rows, func(a, b row) int {
		return strings.Compare(a.Op+"\x00"+a.Test, b.Op+"\x00"+b.Test)
	})
	var w strings.Builder
	w.WriteString(beginMarker + "\n\n")
	w.WriteString("| operation | fault | outcome (error as printed) | ends after the fault | left behind | next run | test |\n")
	w.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | `%s` |\n", r.Op, r.Fault, r.Outcome, r.Detect, r.Left, r.Next, r.Test)
	}
	w.WriteString("\n")
	doc = doc[:i] + w.String() + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644)
}

// says reports whether msg contains want or, when want has alternatives separated by "|", one
// of them.
func says(msg, want string) bool {
	for alt := range strings.SplitSeq(want, "|") {
		if strings.Contains(msg, alt) {
			return true
		}
	}
	return false
}

// within fails unless d is at most max: the fault was detected in bounded time.
func within(t *testing.T, what string, d, max time.Duration) {
	t.Helper()
	if d > max {
		t.Fatalf("%s took %s, more than %s", what, d.Round(100*time.Millisecond), max)
	}
}

// ctx is the tests' context.
var ctx = context.Background()
