package e2enode

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/realnode"
	"stash.dev/redis/test/redistest"
)

// TestAPIServerRestartedMidBackup stops kube-apiserver (SIGTERM, as a control-plane restart
// does) while a backup's runner receives the source's RDB stream, keeps it stopped until the
// runner has written the snapshot and then a few seconds more, so that the runner's last
// status write meets the outage, and starts it again on the same address, certificates and
// etcd. The kubelet, kube-controller-manager, kube-proxy, the stash-webhook replicas and the
// runner all see the API server go away and come back. Then: the session ends Succeeded
// within a bound, with the one Job and the one Pod it had (the source served exactly one
// full resync: nothing ran twice), the repository holds exactly that snapshot, it restores
// to an equal DEBUG DIGEST, and the stash-webhook answers admission again within a bound (the
// test counts the calls refused meanwhile: the replica that led restarts). It runs alone (no
// t.Parallel): every other test would meet the outage.
func TestAPIServerRestartedMidBackup(t *testing.T) {
	testStart := time.Now()
	ctx := context.Background()
	ns := "node-apiserver"
	repoDir := namespace(t, ns)
	src := redisPod(t, ns, "redis-src")
	dst := redisPod(t, ns, "redis-dst")
	loadSample(t, src, 3000)
	keys := src.DBSize(ctx).Val()
	want := digest(t, src)
	// 3000 keys at 3 ms each: the resync takes about 9 s, all of it inside the outage.
	if err := src.ConfigSet(ctx, "rdb-key-save-delay", "3000").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "stash", "create", "backupconfig", "restart", "-n", ns, "--repo", "repo", "--redis-service", "redis-src", "--schedule", "@daily")
	c := apiClient(t)
	syncsBefore := syncFull(t, src)

	session := triggeredSession(t, ns, "restart")
	waitFor(t, 90*time.Second, "the runner is receiving the source's RDB stream", func() error {
		repl := src.Info(ctx, "replication", "persistence").Val()
		if !strings.Contains(repl, "connected_slaves:1") || !strings.Contains(repl, "rdb_bgsave_in_progress:1") {
			return fmt.Errorf("the source has no replica receiving a resync yet")
		}
		if findRunner("backup", ns, session) == 0 {
			return fmt.Errorf("no runner process for %s", session)
		}
		return nil
	})

	// While the API server is down nothing may call t.Fatal: it would leave it down for
	// the tests that follow. What happens is recorded and judged once it is back.
	var written time.Time
	var runnerAlive bool
	stopping := time.Now()
	outage, err := cluster.RestartAPIServer(func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if m, _ := filepath.Glob(filepath.Join(repoDir, "snapshots", "*", "manifest.json")); len(m) > 0 {
				written = time.Now()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		// The runner lists the repository and writes the session's status right after the
		// manifest: hold the outage past that, and at least 12 s in all.
		time.Sleep(max(3*time.Second, 12*time.Second-time.Since(stopping)))
		runnerAlive = findRunner("backup", ns, session) != 0
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver %s", outage)
	// Admission is asked from the moment the API server serves again, beside what follows.
	admission := make(chan admissionAfter, 1)
	go func() { admission <- probeAdmission(ctx, c, ns, outage.Serving) }()
	if written.IsZero() {
		t.Fatalf("the runner wrote no snapshot in the 60 s the API server was down")
	}
	t.Logf("the runner wrote the snapshot's manifest %s into the outage; runner process still there when the API server came back: %v",
		written.Sub(outage.Stopping).Round(time.Millisecond), runnerAlive)

	s := waitBackupSession(t, c, ns, session, 3*time.Minute)
	recovered := time.Since(outage.Serving)
	t.Logf("session %s: %s %s after the API server served again (%s after the stop): %s", session, s.Status.Phase,
		recovered.Round(time.Millisecond), time.Since(outage.Stopping).Round(time.Millisecond), s.Status.Error)
	// What the runner met while it wrote its result.
	for _, l := range strings.Split(admin.Must(t, "stash", "backup", "logs", session, "-n", ns), "\n") {
		if strings.Contains(l, "trying again") {
			t.Logf("runner: %s", l)
		}
	}
	if s.Status.Phase != v1alpha1.SessionSucceeded {
		t.Fatalf("session %s after the API server restart: %s, want Succeeded: %s", session, s.Status.Phase, s.Status.Error)
	}

	// Nothing ran twice: one Job, whose one Pod succeeded, and one full resync served by the source.
	var jobs batchv1.JobList
	waitFor(t, 60*time.Second, "the session's Job completes", func() error {
		if err := c.List(ctx, &jobs, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSession: session}); err != nil {
			return err
		}
		if len(jobs.Items) != 1 || jobs.Items[0].Status.Succeeded+jobs.Items[0].Status.Failed == 0 {
			return fmt.Errorf("%d Jobs", len(jobs.Items))
		}
		return nil
	})
	if jobs.Items[0].Name != s.Status.Job {
		t.Fatalf("session %s has Job %s, want its Job %s", session, jobs.Items[0].Name, s.Status.Job)
	}
	if j := jobs.Items[0].Status; j.Succeeded != 1 || j.Failed != 0 {
		t.Errorf("Job %s: %d Pods succeeded, %d failed; want 1 and 0", s.Status.Job, j.Succeeded, j.Failed)
	}
	if pod := sessionPod(t, c, ns, session); pod.Status.Phase != corev1.PodSucceeded { // sessionPod fails unless there is exactly one
		t.Errorf("the backup Pod %s is %s, want Succeeded", pod.Name, pod.Status.Phase)
	}
	if n := syncFull(t, src) - syncsBefore; n != 1 {
		t.Errorf("the source served %d full resyncs for the session, want 1", n)
	}
	list := snapshots(t, ns, "repo")
	if len(list) != 1 || list[0].ID != s.Status.Snapshot || list[0].Keys != keys {
		t.Fatalf("the repository holds %+v, want the one snapshot %s of %d keys the session names", list, s.Status.Snapshot, keys)
	}

	adm := <-admission
	if adm.err != nil {
		t.Fatal(adm.err)
	}
	valid := fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: Repository
metadata: {name: after-restart, namespace: %s}
spec:
  backend: {storageSecretName: storage, gcs: {bucket: after-restart}}
`, ns)
	if out, err := kubectlApplyStdin(t, valid); err != nil {
		t.Fatalf("a valid Repository after the API server restart: %v\n%s", err, out)
	}
	t.Logf("admission after the restart: first denial by the webhook %s after the API server served again; %d of %d calls not answered, the last %s after; stash-webhook container restarts: %s",
		adm.firstDenial.Round(time.Millisecond), adm.refused, adm.calls, adm.lastRefusal.Round(time.Millisecond), webhookRestarts(t, c))
	if adm.refused > 0 {
		t.Logf("the last call not answered: %s", adm.refusal)
	}

	// The snapshot restores (through a RestoreSession, admitted and run by the controller).
	if err := src.ConfigSet(ctx, "rdb-key-save-delay", "0").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "stash", "restore", "repo", "-n", ns, "--snapshot", s.Status.Snapshot, "--to", "service/redis-dst", "--wait", "--wait-timeout", "2m")
	if got := digest(t, dst); got != want {
		t.Fatalf("digest after restoring %s: %s, want the source's %s", s.Status.Snapshot, got, want)
	}

	// The tests that follow find the node Ready.
	admin.Must(t, "wait", "--for=condition=Ready", "node/"+realnode.NodeName, "--timeout=2m")
	t.Logf("test took %s", time.Since(testStart).Round(time.Second))
}

// syncFull is how many full resyncs the server has served (INFO stats).
func syncFull(t *testing.T, c *redis.Client) int {
	t.Helper()
	v := redistest.InfoField(t, c, "stats", "sync_full")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("INFO stats sync_full: %q", v)
	}
	return n
}

// webhookRestarts lists each stash-webhook Pod with its container restart count.
func webhookRestarts(t *testing.T, c client.Client) string {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace("stash-system"), client.MatchingLabels{"app.kubernetes.io/name": "stash-webhook"}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		n := int32(0)
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
		out = append(out, fmt.Sprintf("%s %d", p.Name, n))
	}
	return strings.Join(out, ", ")
}

// admissionAfter is what probeAdmission saw.
type admissionAfter struct {
	calls, refused           int
	firstDenial, lastRefusal time.Duration // since the API server served again
	refusal                  string        // what kubectl said of the last refused call
	err                      error
}

// probeAdmission asks for admission after the API server's restart (since: when it served
// again). The replica that held the leader Lease could not renew it while the API server was
// down and exits (controller-runtime's answer to a lost Lease); the kubelet starts it again,
// and until the Service's endpoints catch up a call the API server sends to that replica is
// refused. Every 250 ms an invalid object must get the webhook's own denial, ten times in a
// row with both replicas Ready, within 2 minutes; the refused calls on the way are counted.
func probeAdmission(ctx context.Context, c client.Client, ns string, since time.Time) admissionAfter {
	invalid := invalidBackupConfiguration(ns)
	var a admissionAfter
	inARow := 0
	var lastOut string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		if inARow >= 10 && readyWebhookPods(ctx, c) == 2 {
			return a
		}
		if time.Now().After(deadline) {
			a.err = fmt.Errorf("the stash-webhook did not answer 10 admission calls in a row with two Ready replicas within 2 minutes of the API server's restart (%d of %d refused; %d Ready replicas); last:\n%s",
				a.refused, a.calls, readyWebhookPods(ctx, c), lastOut)
			return a
		}
		cmd := cluster.KubectlCommand(ctx, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(invalid)
		out, err := cmd.CombinedOutput()
		a.calls++
		lastOut = string(out)
		if err != nil && strings.Contains(lastOut, "spec.schedule") && strings.Contains(lastOut, "not a valid cron expression") && !strings.Contains(lastOut, "failed calling webhook") {
			if a.firstDenial == 0 {
				a.firstDenial = time.Since(since)
			}
			inARow++
			continue
		}
		a.refused++
		inARow = 0
		a.lastRefusal, a.refusal = time.Since(since), strings.TrimSpace(lastOut)
	}
}

// readyWebhookPods counts the ready, not terminating stash-webhook Pods (0 when they cannot be listed).
func readyWebhookPods(ctx context.Context, c client.Client) int {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("stash-system"), client.MatchingLabels{"app.kubernetes.io/name": "stash-webhook"}); err != nil {
		return 0
	}
	n := 0
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if p.DeletionTimestamp == nil && cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}
