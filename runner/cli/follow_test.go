package cli_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/test/redistest"
)

// lockedBuffer is a bytes.Buffer that a running command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFollowCommand: `stash-runner follow` saves a base snapshot that `snapshots` lists, writes
// segments as the source is written, and on cancellation (SIGTERM) closes the open one and
// exits without error.
func TestFollowCommand(t *testing.T) {
	src := redistest.Start(t)
	repoURL := "file://" + t.TempDir()
	var out, errOut lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := env{cli.EnvResticPassword: testPassword}
	cmd := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, e.get, "test")
	cmd.SetArgs([]string{"follow", "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "200ms",
		"--segment-size", "16KiB", "--kdf-work-factor", "10", "--progress-interval", "0"})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\nstdout: %s\nstderr: %s", what, out.String(), errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("the base snapshot", func() bool { return strings.Contains(out.String(), "base snapshot ") })
	for i := range 300 {
		if err := src.Client.Set(ctx, "k"+strings.Repeat("x", i%50), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	wait("a segment", func() bool { return strings.Contains(out.String(), "segment ") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow: %v\nstderr: %s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not exit within 30 s of its cancellation")
	}
	if !strings.Contains(errOut.String(), "follow stopped") {
		t.Fatalf("stderr: %s", errOut.String())
	}
	base := idRE.FindString(out.String())
	if list := mustRun(t, nil, "snapshots", "--repository", repoURL); !strings.Contains(list, base) {
		t.Fatalf("snapshots does not list the base %s:\n%s", base, list)
	}
}

// TestFollowFlags: bad segment flags are refused before anything connects.
func TestFollowFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--segment-size", "8XB"}, `invalid size "8XB"`},
		{[]string{"--segment-size", "1KiB"}, "must be between 4KiB and 1GiB"},
		{[]string{"--segment-size", "2GiB"}, "must be between 4KiB and 1GiB"},
		{[]string{"--segment-interval", "1ms"}, "must be at least 100ms"},
		{[]string{"--databases", "1"}, "--databases does not apply"},
	} {
		args := append([]string{"follow", "--redis", "redis://127.0.0.1:1", "--repository", "file://" + t.TempDir()}, tc.args...)
		if _, _, err := run(t, nil, args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
