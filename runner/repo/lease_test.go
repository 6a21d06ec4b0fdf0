package repo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/repo"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestLease: a lease has one holder, on the file store and on fake-gcs-server: a second taker
// is refused with the holder named; a released lease is free at once; a holder that stopped
// renewing (crashed) blocks only until its lease expires; a holder whose lease was taken over
// learns it through its context.
func TestLease(t *testing.T) {
	gcs := gcstest.Start(t, "lease")
	for _, be := range []struct {
		name string
		url  string
		env  map[string]string
	}{
		{"file", "file://" + t.TempDir(), nil},
		{"gcs", gcs.URL("lease"), gcs.Env()},
	} {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			r := runnertest.OpenRepo(t, be.url, be.env)
			first, _, err := r.AcquireLease(ctx, "follow", "host-a", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = r.AcquireLease(ctx, "follow", "host-b", time.Minute)
			if !errors.Is(err, repo.ErrLeaseHeld) || !strings.Contains(err.Error(), "host host-a, pid "+fmt.Sprint(os.Getpid())) {
				t.Fatalf("second taker: %v, want ErrLeaseHeld naming host-a", err)
			}
			first.Release(ctx)
			second, _, err := r.AcquireLease(ctx, "follow", "host-b", time.Minute)
			if err != nil {
				t.Fatalf("after release: %v", err)
			}
			second.Release(ctx)

			// A crashed holder: its renewals stop with its context, its object stays.
			crashedCtx, crash := context.WithCancel(ctx)
			if _, _, err := r.AcquireLease(crashedCtx, "follow", "host-crashed", 600*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			crash()
			if _, _, err := r.AcquireLease(ctx, "follow", "host-c", time.Minute); !errors.Is(err, repo.ErrLeaseHeld) {
				t.Fatalf("while the crashed holder's lease lasts: %v, want ErrLeaseHeld", err)
			}
			var third *repo.Lease
			testproc.Eventually(t, 5*time.Second, "the crashed holder's lease to expire", func() error {
				third, _, err = r.AcquireLease(ctx, "follow", "host-c", 600*time.Millisecond)
				return err
			})
			// Taken over behind its back (as when it could not renew in time): it finds out.
			_, lctx, err := r.AcquireLease(ctx, "other", "host-d", 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			// Another process's newer epoch (its content is not what matters here).
			if err := r.WriteSealed(ctx, "leases/other/00000000000000000099.json", struct{}{}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-lctx.Done():
				if !errors.Is(context.Cause(lctx), repo.ErrLeaseLost) {
					t.Fatalf("cause: %v, want ErrLeaseLost", context.Cause(lctx))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the holder whose lease was taken over did not learn it")
			}
			third.Release(ctx)
		})
	}
}

// TestLeaseOfADeadProcessOnThisHost: a follower killed and started again on the same machine
// takes the journal over at once (its predecessor's pid runs nothing in the same pid
// namespace), while an unexpired lease of a live process, of another host or of another pid
// namespace still refuses it until it expires.
func TestLeaseOfADeadProcessOnThisHost(t *testing.T) {
	ns := repo.PIDNamespaceForTest()
	if ns == "" {
		t.Fatal("this test needs /proc/self/ns/pid (Linux)")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	holder := func(host string, pid int, ns string) repo.LeaseHolder {
		return repo.LeaseHolder{Host: host, PID: pid, PIDNamespace: ns, Started: now, Renewed: now, Expires: now.Add(time.Hour)}
	}
	for _, tc := range []struct {
		name    string
		holder  repo.LeaseHolder
		refused bool
	}{
		{"dead pid, this host and namespace", holder("host-a", dead.Process.Pid, ns), false},
		{"live pid", holder("host-a", os.Getppid(), ns), true},
		{"another host", holder("host-b", dead.Process.Pid, ns), true},
		{"another pid namespace", holder("host-a", dead.Process.Pid, "pid:[1]"), true},
		{"a holder that recorded no namespace", holder("host-a", dead.Process.Pid, ""), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
			if err := repo.WriteLeaseHolderForTest(ctx, r, "follow", 1, tc.holder); err != nil {
				t.Fatal(err)
			}
			l, _, err := r.AcquireLease(ctx, "follow", "host-a", time.Minute)
			if tc.refused != errors.Is(err, repo.ErrLeaseHeld) {
				t.Fatalf("AcquireLease: %v, want refused %v", err, tc.refused)
			}
			if l != nil {
				l.Release(ctx)
			}
		})
	}
}
