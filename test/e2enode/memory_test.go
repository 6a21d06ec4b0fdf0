package e2enode

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// runnerMemoryLimit is the memory limit the bench's claim is held to: a runner Pod this small
// backs up and restores a million keys.
const runnerMemoryLimit = "192Mi"

// TestMillionKeysWithin192MiB backs up and restores 1M keys with the runner Pods limited to
// 192 MiB through runtimeSettings.resources: the kernel enforces the limit (read from the
// runner's own memory cgroup), neither Pod is OOM-killed, and the restored server has the
// source's DEBUG DIGEST. It also checks, on the running process, the securityContext the
// controller sets: uid and gid 65532, no capabilities, no_new_privs, a read-only root.
func TestMillionKeysWithin192MiB(t *testing.T) {
	t.Parallel()
	ns := "node-million"
	namespace(t, ns)
	// DEBUG POPULATE and DEBUG DIGEST of a million keys may take longer than go-redis's 3 s
	// read timeout on a busy machine.
	src := redisPod(t, ns, "redis-src").WithTimeout(time.Minute)
	dst := redisPod(t, ns, "redis-dst").WithTimeout(time.Minute)
	start := time.Now()
	loadSample(t, src, 1_000_000)
	keys := src.DBSize(context.Background()).Val()
	t.Logf("%d keys loaded in %s", keys, time.Since(start).Round(time.Millisecond))
	runtimeSettings := fmt.Sprintf(`  runtimeSettings:
    resources:
      requests: {memory: %[1]s}
      limits: {memory: %[1]s}
`, runnerMemoryLimit)
	applyYAML(t, fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: million, namespace: %s}
spec:
  schedule: "@daily"
  repository: {name: repo}
  target: {redis: {service: {name: redis-src}}}
%s`, ns, runtimeSettings))
	c := apiClient(t)

	start = time.Now()
	session := triggeredSession(t, ns, "million")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	watch := watchRunner(ctx, "backup", ns, session)
	s := waitBackupSession(t, c, ns, session, 3*time.Minute)
	if s.Status.Phase != v1alpha1.SessionSucceeded {
		t.Fatalf("backup of 1M keys in %s: %s: %s\n%s", runnerMemoryLimit, s.Status.Phase, s.Status.Error, admin.Must(t, "stash", "backup", "logs", session, "-n", ns))
	}
	if s.Status.Keys != keys {
		t.Errorf("the snapshot has %d keys, the source %d", s.Status.Keys, keys)
	}
	t.Logf("backup: %d keys, %d bytes stored, %s (trigger to Succeeded: %s)", s.Status.Keys, s.Status.Bytes, s.Status.SessionDuration, time.Since(start).Round(time.Millisecond))
	checkRunnerWithinLimit(t, c, ns, session, watch)

	applyYAML(t, fmt.Sprintf(`apiVersion: stash.dev/v1alpha1
kind: RestoreSession
metadata: {name: million, namespace: %s}
spec:
  repository: {name: repo}
  target: {redis: {service: {name: redis-dst}}}
  snapshot: %s
%s`, ns, s.Status.Snapshot, runtimeSettings))
	start = time.Now()
	watch = watchRunner(ctx, "restore", ns, "million")
	rs := waitRestoreSession(t, c, ns, "million", 3*time.Minute)
	if rs.Status.Phase != v1alpha1.SessionSucceeded {
		t.Fatalf("restore of 1M keys in %s: %s: %s", runnerMemoryLimit, rs.Status.Phase, rs.Status.Error)
	}
	t.Logf("restore: %d keys by %s, %s (created to Succeeded: %s)", rs.Status.KeysRestored, rs.Status.Method, rs.Status.SessionDuration, time.Since(start).Round(time.Millisecond))
	checkRunnerWithinLimit(t, c, ns, "million", watch)
	if a, b := digest(t, src), digest(t, dst); a != b {
		t.Fatalf("digest mismatch after restoring 1M keys: source %s, restored %s", a, b)
	}
}

// checkRunnerWithinLimit checks the session's Pod: the limit is on its container and in its
// memory cgroup, the container ended with exit code 0 rather than OOMKilled, and the process
// ran confined.
func checkRunnerWithinLimit(t *testing.T, c client.Client, ns, session string, watch *runnerWatch) {
	t.Helper()
	want := resource.MustParse(runnerMemoryLimit)
	proc, limit, peak, err := watch.Wait()
	if err != nil {
		t.Fatalf("the runner process of %s: %v", session, err)
	}
	if limit != want.Value() {
		t.Errorf("the runner's memory cgroup %s has limit %d, want %d (%s)", proc.MemoryCgroup, limit, want.Value(), runnerMemoryLimit)
	}
	checkRunnerIsConfined(t, proc)
	t.Logf("%s: runner peak RSS %.1f MiB (VmHWM) under a %s limit", session, float64(peak)/(1<<20), runnerMemoryLimit)

	var pod *corev1.Pod
	waitFor(t, 30*time.Second, "the runner container of "+session+" has terminated", func() error {
		pod = sessionPod(t, c, ns, session)
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Terminated == nil {
				return fmt.Errorf("container %s: %+v", cs.Name, cs.State)
			}
		}
		return nil
	})
	if got := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; got.Cmp(want) != 0 {
		t.Errorf("Pod %s: memory limit %s, want %s", pod.Name, got.String(), runnerMemoryLimit)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if term := cs.State.Terminated; term.ExitCode != 0 || term.Reason == "OOMKilled" {
			t.Errorf("Pod %s: container %s ended with exit code %d, reason %s", pod.Name, cs.Name, term.ExitCode, term.Reason)
		}
	}
	sc, csc := pod.Spec.SecurityContext, pod.Spec.Containers[0].SecurityContext
	if sc == nil || csc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || ptr.Deref(sc.RunAsUser, 0) != 65532 || ptr.Deref(sc.RunAsGroup, 0) != 65532 ||
		!ptr.Deref(csc.ReadOnlyRootFilesystem, false) || ptr.Deref(csc.AllowPrivilegeEscalation, true) {
		t.Errorf("Pod %s: securityContext %+v, container %+v; want runAsNonRoot, runAsUser and runAsGroup 65532, readOnlyRootFilesystem, no privilege escalation", pod.Name, sc, csc)
	}
}
