package e2enode

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// TestBackupPodDeletedMidBackup deletes the backup Pod while the runner is reading the
// dataset, as a node drain does: the session ends Failed with the reason, the repository has
// no snapshot, and the next backup succeeds. The source server is slowed down with
// rdb-key-save-delay (a Redis debug setting, microseconds per key while it writes the RDB
// stream of a full resync), so that "mid-backup" is a state the test waits for, not a guess.
func TestBackupPodDeletedMidBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := "node-drain"
	namespace(t, ns)
	src := redisPod(t, ns, "redis-src")
	loadSample(t, src, 3000)
	keys := src.DBSize(ctx).Val()
	// 3000 keys at 10 ms each: the resync would take 30 s.
	if err := src.ConfigSet(ctx, "rdb-key-save-delay", "10000").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "stash", "create", "backupconfig", "drain", "-n", ns, "--repo", "repo", "--redis-service", "redis-src", "--schedule", "@daily")
	c := apiClient(t)

	session := triggeredSession(t, ns, "drain")
	var pid int
	waitFor(t, 90*time.Second, "the runner is receiving the source's RDB stream", func() error {
		repl := src.Info(ctx, "replication", "persistence").Val()
		if !strings.Contains(repl, "connected_slaves:1") || !strings.Contains(repl, "rdb_bgsave_in_progress:1") {
			return fmt.Errorf("the source has no replica receiving a resync yet")
		}
		if pid = findRunner("backup", ns, session); pid == 0 {
			return fmt.Errorf("no runner process for %s", session)
		}
		return nil
	})
	// The process the kernel runs, while it runs: the securityContext the controller sets.
	proc, err := inspectRunner(pid)
	if err != nil {
		t.Fatal(err)
	}
	checkRunnerIsConfined(t, proc)

	pod := sessionPod(t, c, ns, session)
	deleted := time.Now()
	admin.Must(t, "delete", "pod", pod.Name, "-n", ns, "--wait=false")
	s := waitBackupSession(t, c, ns, session, 90*time.Second)
	t.Logf("session %s: %s %s after the Pod was deleted: %s", session, s.Status.Phase, time.Since(deleted).Round(time.Millisecond), s.Status.Error)
	if s.Status.Phase != v1alpha1.SessionFailed {
		t.Fatalf("session %s after its Pod was deleted mid-backup: %s, want Failed", session, s.Status.Phase)
	}
	if job := v1alpha1.BackupJobName(session); !strings.Contains(s.Status.Error, job) || !strings.Contains(s.Status.Error, "failed") {
		t.Errorf("the session's error does not say that its Job %s failed: %q", job, s.Status.Error)
	}
	if s.Status.Snapshot != "" {
		t.Errorf("the failed session names snapshot %s", s.Status.Snapshot)
	}
	if list := snapshots(t, ns, "repo"); len(list) != 0 {
		t.Fatalf("the interrupted backup left %d snapshots: %+v", len(list), list)
	}

	// The server forgets the gone replica and kills the child that fed it; the next backup
	// gets a fresh resync at full speed.
	if err := src.ConfigSet(ctx, "rdb-key-save-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the source's resync for the deleted Pod has ended", func() error {
		if info := src.Info(ctx, "persistence").Val(); !strings.Contains(info, "rdb_bgsave_in_progress:0") {
			return fmt.Errorf("a child is still writing the RDB stream")
		}
		return nil
	})
	next := triggeredSession(t, ns, "drain")
	if s := waitBackupSession(t, c, ns, next, 2*time.Minute); s.Status.Phase != v1alpha1.SessionSucceeded {
		t.Fatalf("the backup after the interrupted one: %s: %s", s.Status.Phase, s.Status.Error)
	}
	list := snapshots(t, ns, "repo")
	if len(list) != 1 || list[0].Keys != keys {
		t.Fatalf("after the next backup the repository has %+v, want one snapshot of %d keys", list, keys)
	}
}

// TestWebhookReplicaKilledKeepsAdmitting deletes the stash-webhook Pod that holds the leader
// Lease. The other replica answers admission at once (an invalid object is refused with the
// webhook's own message, a valid one passes) and takes the Lease over, and the controller
// loops run again there (a new BackupConfiguration gets its CronJob). It runs alone (no
// t.Parallel): other tests' requests would meet the webhook configuration's failurePolicy:
// Fail in the instant the killed replica leaves the Service.
func TestWebhookReplicaKilledKeepsAdmitting(t *testing.T) {
	ctx := context.Background()
	c := apiClient(t)
	ns := "node-webhook"
	admin.Must(t, "create", "namespace", ns)
	lease := &coordinationv1.Lease{}
	leaseKey := client.ObjectKey{Namespace: "stash-system", Name: "stash-webhook.stash.dev"}
	var leader string
	waitFor(t, 60*time.Second, "a stash-webhook replica holds the Lease", func() error {
		if err := c.Get(ctx, leaseKey, lease); err != nil {
			return err
		}
		if leader = leaseHolderPod(lease); leader == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	pods := webhookPods(t, c)
	if len(pods) != 2 {
		t.Fatalf("stash-webhook runs %d ready Pods, want 2: %v", len(pods), pods)
	}
	if !slices.Contains(pods, leader) {
		t.Fatalf("the Lease holder %q is not one of the Pods %v", leader, pods)
	}
	survivor := pods[0]
	if survivor == leader {
		survivor = pods[1]
	}

	// kubectl delete waits until the Pod is gone: by then it has left the Service's endpoints.
	start := time.Now()
	admin.Must(t, "delete", "pod", leader, "-n", "stash-system", "--timeout=90s")
	t.Logf("leader %s deleted in %s; %s remains", leader, time.Since(start).Round(time.Millisecond), survivor)
	out, err := kubectlApplyStdin(t, invalidBackupConfiguration(ns))
	// The webhook's own verdict (its cron parser's words), not the API server's "failed calling webhook".
	if err == nil || !strings.Contains(out, "spec.schedule") || !strings.Contains(out, "not a valid cron expression") || strings.Contains(out, "failed calling webhook") {
		t.Fatalf("an invalid BackupConfiguration right after the leader's Pod was deleted: %v, want the webhook's denial naming the schedule:\n%s", err, out)
	}
	for i := range 5 {
		valid := fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: Repository
metadata: {name: repo-%d, namespace: %s}
spec:
  backend: {storageSecretName: storage, gcs: {bucket: bucket-%d}}
`, i, ns, i)
		if out, err := kubectlApplyStdin(t, valid); err != nil {
			t.Fatalf("Repository %d right after the leader's Pod was deleted: %v\n%s", i, err, out)
		}
	}

	waitFor(t, 90*time.Second, "another replica takes the Lease over", func() error {
		if err := c.Get(ctx, leaseKey, lease); err != nil {
			return err
		}
		if h := leaseHolderPod(lease); h == "" || h == leader {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	t.Logf("Lease held by %s %s after the delete", leaseHolderPod(lease), time.Since(start).Round(time.Millisecond))
	admin.Must(t, "stash", "create", "backupconfig", "after-failover", "-n", ns, "--repo", "repo-0", "--redis-address", "127.0.0.1:6379", "--schedule", "@daily")
	waitFor(t, 60*time.Second, "the new leader makes the CronJob of a new BackupConfiguration", func() error {
		_, err := admin.Try(t, "get", "cronjob", v1alpha1.CronJobName("after-failover"), "-n", ns)
		return err
	})
	// The Deployment replaces the Pod; the tests that follow find two replicas again.
	admin.Must(t, "rollout", "status", "deployment/stash-webhook", "-n", "stash-system", "--timeout=2m")
	waitFor(t, 60*time.Second, "two ready stash-webhook Pods", func() error {
		if p := webhookPods(t, c); len(p) != 2 {
			return fmt.Errorf("ready Pods %v", p)
		}
		return nil
	})
}

// leaseHolderPod is the Pod name in a controller-runtime Lease holder identity (HOSTNAME_UUID).
func leaseHolderPod(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	pod, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_")
	return pod
}

// webhookPods are the names of the ready, not terminating stash-webhook Pods.
func webhookPods(t *testing.T, c client.Client) []string {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace("stash-system"), client.MatchingLabels{"app.kubernetes.io/name": "stash-webhook"}); err != nil {
		t.Fatal(err)
	}
	var ready []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, p.Name)
			}
		}
	}
	return ready
}

// kubectlApplyStdin applies a manifest from standard input and returns kubectl's output.
func kubectlApplyStdin(t *testing.T, manifest string) (string, error) {
	t.Helper()
	cmd := cluster.KubectlCommand(context.Background(), "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// invalidBackupConfiguration is a BackupConfiguration in ns that only the stash-webhook refuses
// (its schedule does not parse): its denial, in the webhook's own words, shows that the webhook
// answers admission.
func invalidBackupConfiguration(ns string) string {
	return fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: invalid, namespace: %s}
spec:
  schedule: "not a schedule"
  repository: {name: repo}
  target: {redis: {address: "127.0.0.1:6379"}}
`, ns)
}
