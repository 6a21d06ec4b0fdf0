// Package testproc is what every test of this repository uses to run and wait for things:
// the server processes tests need (storage emulators, Redis: it finds the binary, picks a free
// port, keeps the log, waits until the server answers, and kills it the way an outage would),
// the one way to wait for a condition (Poll, Eventually, When), and the real kubectl bound to
// a test cluster (Kubectl). A missing binary fails the test with the command that installs it:
// a test that skips because a binary is missing is a test that did not run.
package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of name, from PATH or the tool cache that hack/tools.sh fills
// (~/.cache/kubectl-stash/bin), or fails the test naming install.
func Binary(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "kubectl-stash", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found on PATH or in ~/.cache/kubectl-stash/bin: run `make test` or `%s`", name, install)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ClusterPort returns a free port whose Redis Cluster bus port (port+10000) is free too.
func ClusterPort() (int, error) {
	for range 50 {
		p, err := FreePort()
		if err != nil {
			return 0, err
		}
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// OnFreePort calls start with a free port, and again with another one when it fails: a
// parallel test can take the port between FreePort and the server's bind. It fails the test
// after three tries.
func OnFreePort(t testing.TB, start func(port int) error) {
	t.Helper()
	var err error
	for range 3 {
		var port int
		if port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		if err = start(port); err == nil {
			return
		}
	}
	t.Fatal(err)
}

// Process is a running server.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// Start runs cmd with its output appended to logPath and polls ready until it returns nil.
// It fails when the process exits first (the log says why) or timeout passes. The process is
// killed when the test ends.
func Start(t testing.TB, name string, cmd *exec.Cmd, logPath string, timeout time.Duration, ready func() error) (*Process, error) {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("run %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); close(p.done) }()
	t.Cleanup(p.Kill)
	err = Poll(timeout, name+" ready", func() error {
		err := ready()
		// An answer while our process is gone came from another server on the port.
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			return Abort(fmt.Errorf("%s exited during startup: %s", name, b))
		default:
			return err
		}
	})
	if err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Kill stops the process with SIGKILL, as a crash or an outage would, and waits for it.
func (p *Process) Kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	})
}

// Interrupt stops a process that the caller started and nobody waits for yet: SIGINT, so that
// it can clean up, then SIGKILL after grace. It returns when the process has exited.
func Interrupt(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Tool returns the path of a tool that hack/tools.sh builds into the tools cache
// ($STASH_TOOLS_BIN, which the Makefile exports, else ~/.cache/kubectl-stash/bin). The test
// fails, never skips, when it is missing: `make test` builds every tool first.
func Tool(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("STASH_TOOLS_BIN")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "kubectl-stash", "bin")
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s not found in %s: run `make test`, whose tools step builds it (hack/tools.sh)", name, dir)
	}
	return bin
}

// ourPackages are the main packages of this module's programs, by binary name.
var ourPackages = map[string]string{
	"kubectl-stash": "stash.dev/redis/cmd/kubectl-stash",
	"stash-webhook": "stash.dev/redis/cmd/webhook",
	"stash-runner":  "stash.dev/redis/cmd/runner",
}

// OurBinaries returns a directory that holds the programs of this module named (kubectl-stash,
// stash-webhook, stash-runner): $STASH_BIN_DIR, where `make build` wrote them, when it holds
// them all, else dir, into which they are built for this machine.
func OurBinaries(dir string, names ...string) (string, error) {
	if d := os.Getenv("STASH_BIN_DIR"); d != "" {
		all := true
		for _, name := range names {
			all = all && fileExists(filepath.Join(d, name))
		}
		if all {
			return d, nil
		}
	}
	for _, name := range names {
		pkg, ok := ourPackages[name]
		if !ok {
			return "", fmt.Errorf("%s is not a program of this module", name)
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", name, err, out)
		}
	}
	return dir, nil
}

// OurBinary is OurBinaries for one program: its path.
func OurBinary(dir, name string) (string, error) {
	d, err := OurBinaries(dir, name)
	return filepath.Join(d, name), err
}

// Silent listens on 127.0.0.1 and returns its address: a server that accepts every connection
// and holds it open without ever answering (a hung Redis, a storage endpoint that never
// replies). It closes the listener and the connections when the test ends.
func Silent(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
