package e2enode

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real node runs its containers on this machine, so a test can look at the runner's
// process itself through /proc: what the kernel enforces, not what the Pod spec asks for.

// runnerProc is a runner process of one session, seen from the host.
type runnerProc struct {
	PID int
	// UID and GID are the real, effective, saved and filesystem ids (the Uid:/Gid: lines).
	UID, GID []string
	// NoNewPrivs and CapEff are from /proc/PID/status.
	NoNewPrivs, CapEff string
	// RootReadOnly says the container's root mount is read-only.
	RootReadOnly bool
	// MemoryCgroup is the process's memory cgroup directory under /sys/fs/cgroup/memory.
	MemoryCgroup string
}

// findRunner returns the host PID of `stash-runner <op> --session ns/name`, or 0.
func findRunner(op, ns, name string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := []string{"stash-runner", op, "--session", ns + "/" + name}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) >= len(want) && filepath.Base(args[0]) == want[0] && args[1] == want[1] && args[2] == want[2] && args[3] == want[3] {
			return pid
		}
	}
	return 0
}

// inspectRunner reads what the kernel says about the process pid.
func inspectRunner(pid int) (runnerProc, error) {
	p := runnerProc{PID: pid}
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return p, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(l, ":")
		switch k {
		case "Uid":
			p.UID = strings.Fields(v)
		case "Gid":
			p.GID = strings.Fields(v)
		case "NoNewPrivs":
			p.NoNewPrivs = strings.TrimSpace(v)
		case "CapEff":
			p.CapEff = strings.TrimSpace(v)
		}
	}
	// mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...; the process's own view.
	mi, err := os.ReadFile(filepath.Join(dir, "mountinfo"))
	if err != nil {
		return p, err
	}
	for _, l := range strings.Split(string(mi), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			p.RootReadOnly = strings.HasPrefix(f[5], "ro")
		}
	}
	cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil {
		return p, err
	}
	sc := bufio.NewScanner(bytes.NewReader(cg))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			p.MemoryCgroup = filepath.Join("/sys/fs/cgroup/memory", parts[2])
		}
	}
	return p, nil
}

// checkRunnerIsConfined fails t unless the process runs as 65532:65532 without privileges
// (no capabilities, no_new_privs) on a read-only root filesystem: the securityContext that
// the controller sets, as the kernel applies it.
func checkRunnerIsConfined(t *testing.T, p runnerProc) {
	t.Helper()
	for what, ids := range map[string][]string{"uid": p.UID, "gid": p.GID} {
		if len(ids) != 4 || strings.Join(ids, " ") != "65532 65532 65532 65532" {
			t.Errorf("runner process %d: %s %v, want 65532 for real, effective, saved and filesystem", p.PID, what, ids)
		}
	}
	if p.NoNewPrivs != "1" {
		t.Errorf("runner process %d: NoNewPrivs %q, want 1 (allowPrivilegeEscalation: false)", p.PID, p.NoNewPrivs)
	}
	if strings.Trim(p.CapEff, "0") != "" {
		t.Errorf("runner process %d: effective capabilities %s, want none (drop ALL)", p.PID, p.CapEff)
	}
	if !p.RootReadOnly {
		t.Errorf("runner process %d: root filesystem is writable, want read-only", p.PID)
	}
}

// runnerWatch follows one runner process from its start to its end: what inspectRunner
// saw first, the memory limit of its cgroup, and its peak RSS (VmHWM) as last read.
type runnerWatch struct {
	mu      sync.Mutex
	proc    runnerProc
	seen    bool
	limit   int64
	peakRSS int64
	err     error
	done    chan struct{}
}

// watchRunner starts watching for `stash-runner op --session ns/name` until it has come and
// gone or ctx ends; Wait returns what it saw.
func watchRunner(ctx context.Context, op, ns, name string) *runnerWatch {
	w := &runnerWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		pid := 0
		for pid == 0 {
			if pid = findRunner(op, ns, name); pid == 0 {
				select {
				case <-ctx.Done():
					w.err = fmt.Errorf("no process `stash-runner %s --session %s/%s` appeared", op, ns, name)
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		p, err := inspectRunner(pid)
		w.mu.Lock()
		w.proc, w.seen, w.err = p, err == nil, err
		w.mu.Unlock()
		if err != nil {
			return
		}
		if b, err := os.ReadFile(filepath.Join(p.MemoryCgroup, "memory.limit_in_bytes")); err == nil {
			w.limit, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		for {
			status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
			if err != nil {
				return // the process has exited
			}
			for _, l := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
					w.mu.Lock()
					w.peakRSS = max(w.peakRSS, kb*1024)
					w.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

// Wait waits until the process has exited (or the watch's context ended).
func (w *runnerWatch) Wait() (proc runnerProc, limit, peakRSS int64, err error) {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.proc, w.limit, w.peakRSS, w.err
}
