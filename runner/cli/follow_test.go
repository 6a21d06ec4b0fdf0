package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// follower is `stash-runner follow` running in-process until stop.
type follower struct {
	out, errOut testproc.Output
	cancel      context.CancelFunc
	done        chan error
}

// startFollow runs stash-runner follow with args until stop.
func startFollow(t *testing.T, args ...string) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &follower{cancel: cancel, done: make(chan error, 1)}
	e := env{cli.EnvResticPassword: testPassword}
	cmd := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &f.out, ErrOut: &f.errOut}, e.get, "test")
	cmd.SetArgs(append(append([]string{"follow"}, args...), "--kdf-work-factor", "10", "--progress-interval", "0"))
	go func() { f.done <- cmd.ExecuteContext(ctx) }()
	return f
}

// waitFor waits up to 30 s until cond holds of what the follower printed on stdout.
func (f *follower) waitFor(t *testing.T, what string, cond func(stdout string) bool) {
	t.Helper()
	testproc.Eventually(t, 30*time.Second, what, func() error {
		if !cond(f.out.String()) {
			return fmt.Errorf("stdout: %s\nstderr: %s", f.out.String(), f.errOut.String())
		}
		return nil
	})
}

// stop cancels the follower, as SIGTERM does, and fails the test unless it exits without
// error within 30 s.
func (f *follower) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("follow: %v\nstderr: %s", err, f.errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not exit within 30 s of its cancellation")
	}
}

// TestFollowCommand: `stash-runner follow` saves a base snapshot that `snapshots` lists, writes
// segments as the source is written, and on cancellation (SIGTERM) closes the open one and
// exits without error.
func TestFollowCommand(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	repoURL := "file://" + t.TempDir()
	f := startFollow(t, "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "200ms", "--segment-size", "16KiB")
	f.waitFor(t, "the base snapshot", func(out string) bool { return strings.Contains(out, "base snapshot ") })
	for i := range 300 {
		if err := src.Client.Set(ctx, "k"+strings.Repeat("x", i%50), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(t, "a segment", func(out string) bool { return strings.Contains(out, "segment ") })
	f.stop(t)
	if !strings.Contains(f.errOut.String(), "follow stopped") {
		t.Fatalf("stderr: %s", f.errOut.String())
	}
	base := idRE.FindString(f.out.String())
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
