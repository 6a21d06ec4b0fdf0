package restore_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// leaveAsDeadRunner puts dst in the state a replication restore leaves when its runner is
// SIGKILLed: the marker, a random masterauth, repl-diskless-load on-empty-db, and a replica of
// the runner's listener at port.
func leaveAsDeadRunner(t *testing.T, dst *redistest.Server, port int) {
	t.Helper()
	ctx := context.Background()
	for _, kv := range [][2]string{
		{"masteruser", replication.Marker{SetMasterauth: true, SetDisklessLoad: true}.String()},
		{"masterauth", "0123456789abcdef0123456789abcdef01234567"},
		{"repl-diskless-load", "on-empty-db"},
	} {
		if err := dst.Client.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.Client.Do(ctx, "REPLICAOF", "127.0.0.1", port).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestLeftoverOfDeadRunner: a target left a replica of a runner that died mid-restore is found
// by the next restore, which says what it found, puts every setting back and restores; while
// the runner it replicates from still listens (a restore in progress), nothing is touched.
func TestLeftoverOfDeadRunner(t *testing.T) {
	ctx := context.Background()
	r, m, _, _ := backupFile(t)
	dst := redistest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	leaveAsDeadRunner(t, dst, port)

	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r})
	if !errors.Is(err, restore.ErrRestoreRunning) {
		t.Fatalf("restore into the replica of a live runner: %v", err)
	}
	if info := dst.Client.Info(ctx, "replication").Val(); !strings.Contains(info, "role:slave") {
		t.Fatalf("the replica of a live runner was changed:\n%s", info)
	}
	l.Close() // the runner is gone

	for _, method := range []string{restore.MethodRestore, restore.MethodAuto} {
		if method == restore.MethodAuto {
			dst.Client.FlushAll(ctx)
			leaveAsDeadRunner(t, dst, port)
		}
		var warnings []string
		res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: method,
			Warn: func(s string) { warnings = append(warnings, s) }})
		if err != nil {
			t.Fatalf("--method %s: restore after a dead runner: %v", method, err)
		}
		want := "left a replica of a runner at 127.0.0.1:" + strconv.Itoa(port) + " that is gone"
		if len(warnings) != 1 || !strings.Contains(warnings[0], want) || !strings.Contains(warnings[0], "REPLICAOF NO ONE") ||
			!strings.Contains(warnings[0], "repl-diskless-load") || !strings.Contains(warnings[0], "masterauth") {
			t.Fatalf("--method %s: warnings %q, want one saying %q and what was put back", method, warnings, want)
		}
		t.Logf("--method %s: %s", method, warnings[0])
		wantMethod := method
		if method == restore.MethodAuto {
			wantMethod = restore.MethodReplication
		}
		if res.Keys != m.Keys || res.Method != wantMethod {
			t.Fatalf("--method %s: %+v", method, res)
		}
		assertPromoted(t, dst, "", "disabled")
		if u := dst.Client.ConfigGet(ctx, "masteruser").Val()["masteruser"]; u != "" {
			t.Fatalf("masteruser %q left", u)
		}
	}
}

// TestReplicationRestoreIntoStalledTarget: a target that stops (SIGSTOP) while it loads a
// replication restore fails the restore within the read timeout, saying the link stalled,
// instead of blocking the runner forever in a write or in the wait for the load (before:
// waitLoaded and the writes had no deadline). After SIGCONT the next restore puts the target
// back if the failed one could not, and restores.
func TestReplicationRestoreIntoStalledTarget(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 300000, "key", 100).Err(); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	pid := dst.PID(t)
	o := conn(t, dst)
	o.ReadTimeout = time.Second
	pc := &progress.Counter{}
	cont := func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	defer cont()
	var stopped time.Time
	testproc.When(t, time.Minute, "the target has received keys", func() bool { return pc.Keys.Load() > 0 }, func() error {
		stopped = time.Now()
		return syscall.Kill(pid, syscall.SIGSTOP)
	})
	done := make(chan error, 1)
	go func() {
		_, err := restore.Run(ctx, restore.Options{Redis: o, Repository: r, Method: restore.MethodReplication, Progress: pc})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		cont()
		t.Fatal("the replication restore into a stopped target still runs after 45 s")
	}
	took := time.Since(stopped)
	cont()
	if err == nil || !errors.Is(err, replication.ErrLinkStalled) || !strings.Contains(err.Error(), dst.Addr) {
		t.Fatalf("replication restore into a stopped target: %v", err)
	}
	t.Logf("failed %s after SIGSTOP: %v", took.Round(time.Millisecond), err)
	if took > 20*time.Second {
		t.Fatalf("took %s to fail with a 1 s read timeout", took)
	}
	var warnings []string
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication,
		Warn: func(s string) { warnings = append(warnings, s) }}); err != nil {
		t.Fatalf("restore after SIGCONT: %v (warnings %q)", err, warnings)
	}
	t.Logf("warnings of the next restore: %q", warnings)
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
	assertPromoted(t, dst, "", "disabled")
}
