package e2enode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/api/v1alpha1"
)

// TestContinuousBackupInTheCluster is continuous backup as a user meets it on a real node: a
// BackupConfiguration created with --continuous gets its follower Deployment (the runner image,
// `stash-runner continuous`), whose status window moves with the writes; `kubectl stash backup
// describe` shows it; the controller serves the lag and the window on /metrics; `kubectl stash
// restore --to-time` between two writes restores the base and exactly the writes before that
// instant; deleting the configuration removes the Deployment.
func TestContinuousBackupInTheCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := "node-continuous"
	namespace(t, ns)
	src, dst := redisPod(t, ns, "redis-src"), redisPod(t, ns, "redis-dst")
	loadSample(t, src, 5000)
	admin.Must(t, "stash", "create", "backupconfig", "pitr", "-n", ns, "--repo", "repo", "--redis-service", "redis-src",
		"--schedule", "@daily", "--continuous", "--segment-interval", "1s")
	waitFor(t, time.Minute, "the follower Deployment", func() error {
		_, err := admin.Try(t, "get", "deployment", v1alpha1.FollowerName("pitr"), "-n", ns)
		return err
	})
	admin.Must(t, "rollout", "status", "deployment/"+v1alpha1.FollowerName("pitr"), "-n", ns, "--timeout", "2m")

	status := func() v1alpha1.ContinuousStatus {
		var s v1alpha1.ContinuousStatus
		out, _ := admin.Try(t, "get", "backupconfiguration", "pitr", "-n", ns, "-o", "jsonpath={.status.continuous}")
		_ = json.Unmarshal([]byte(out), &s)
		return s
	}
	var base v1alpha1.ContinuousStatus
	waitFor(t, 2*time.Minute, "the follower's base in the status", func() error {
		if base = status(); base.Chain == "" || base.WindowEnd == nil {
			logs, _ := admin.Try(t, "logs", "deployment/"+v1alpha1.FollowerName("pitr"), "-n", ns, "--tail", "5")
			return fmt.Errorf("status.continuous %+v; follower log:\n%s", base, logs)
		}
		return nil
	})
	waitFor(t, time.Minute, "condition ContinuousBackupRunning True", func() error {
		out, _ := admin.Try(t, "get", "backupconfiguration", "pitr", "-n", ns, "-o", `jsonpath={.status.conditions[?(@.type=="ContinuousBackupRunning")].status}`)
		if out != "True" {
			return fmt.Errorf("ContinuousBackupRunning %q", out)
		}
		return nil
	})
	var wrote []time.Time
	for i := range 3 {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond)
		}
		if err := src.Set(ctx, fmt.Sprintf("after:%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		wrote = append(wrote, time.Now())
	}
	waitFor(t, time.Minute, "the window's end past the third write", func() error {
		s := status()
		if s.WindowEnd == nil || s.WindowEnd.Time.Before(wrote[2].Truncate(time.Second)) || s.Chain != base.Chain {
			return fmt.Errorf("status.continuous %+v", s)
		}
		return nil
	})
	if out := admin.Must(t, "stash", "backup", "describe", "pitr", "-n", ns); !strings.Contains(out, "chain "+base.Chain+", restorable from") {
		t.Errorf("backup describe does not show the window:\n%s", out)
	}
	waitFor(t, time.Minute, "the lag and the window on the controller's /metrics", func() error {
		out, err := admin.Try(t, "get", "--raw", "/api/v1/namespaces/stash-system/services/http:stash-webhook:metrics/proxy/metrics")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, m := range []string{"stash_continuous_lag_seconds", "stash_continuous_recoverable_window_seconds"} {
			if !strings.Contains(out, m+`{invoker_kind="BackupConfiguration",invoker_name="pitr",namespace="`+ns+`"}`) {
				return fmt.Errorf("/metrics lacks %s of pitr", m)
			}
		}
		return nil
	})

	point := wrote[1].Add(1500 * time.Millisecond).Truncate(time.Second).UTC().Format(time.RFC3339)
	admin.Must(t, "stash", "restore", "repo", "-n", ns, "--to", "service/redis-dst", "--to-time", point, "--wait", "--wait-timeout", "2m")
	for i, want := range []int64{1, 1, 0} {
		if got := dst.Exists(ctx, fmt.Sprintf("after:%d", i)).Val(); got != want {
			t.Errorf("after:%d exists %d after a restore to %s, want %d", i, got, point, want)
		}
	}
	if got, want := dst.DBSize(ctx).Val(), src.DBSize(ctx).Val()-1; got != want {
		t.Errorf("restored %d keys, want %d (all but the third write)", got, want)
	}

	admin.Must(t, "delete", "backupconfiguration", "pitr", "-n", ns)
	waitFor(t, 2*time.Minute, "the follower Deployment removed with its configuration", func() error {
		if _, err := admin.Try(t, "get", "deployment", v1alpha1.FollowerName("pitr"), "-n", ns); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}
