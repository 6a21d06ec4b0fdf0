package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// TestContinuousReportsAMovingWindow runs the in-cluster follower (what the follower
// Deployment runs) against a real redis-server and API server: it takes a base, records the
// writes that follow, and its BackupConfiguration's status.continuous shows the chain and a
// window whose end moves with the writes. A RestoreSession with pointInTime between two writes
// restores the base and exactly the writes before that instant, and says where it stopped.
// Cancelling the follower (the Pod's SIGTERM) ends it without an error in the status.
func TestContinuousReportsAMovingWindow(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		src := redistest.Start(t)
		continuousWindow(t, "runner-continuous", src, &v1alpha1.RedisTarget{Address: src.Addr})
	})
	// A Sentinel target: the follower asks the Sentinel for the master.
	t.Run("sentinel", func(t *testing.T) {
		src := redistest.Start(t)
		sen := redistest.StartSentinel(t, src, "cache", 0)
		continuousWindow(t, "runner-continuous-sentinel", src,
			&v1alpha1.RedisTarget{Address: sen.Addr, Mode: v1alpha1.RedisModeSentinel, MasterName: "cache"})
	})
}

func continuousWindow(t *testing.T, ns string, src *redistest.Server, target *v1alpha1.RedisTarget) {
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", "1000", "key", "16").Err(); err != nil {
		t.Fatal(err)
	}
	repoDir := t.TempDir()
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": "repo-password"}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: repoDir, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: repoDir}}},
		}}},
		&v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "pitr", Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
			Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"},
			Target:     v1alpha1.Target{Redis: target},
			Continuous: &v1alpha1.ContinuousBackup{Enabled: true, SegmentInterval: "1s"},
		}},
	} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- session.RunContinuous(runCtx, cluster.Client, ns, "pitr", session.Options{Hostname: "follower-pod"})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	status := func() *v1alpha1.ContinuousStatus {
		bc := &v1alpha1.BackupConfiguration{}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pitr"}, bc); err != nil {
			t.Fatal(err)
		}
		return bc.Status.Continuous
	}
	var first *v1alpha1.ContinuousStatus
	testproc.Eventually(t, 30*time.Second, "the base and a chain in the status", func() error {
		select {
		case err := <-done:
			t.Fatalf("the follower stopped: %v", err)
		default:
		}
		first = status()
		if first == nil || first.Chain == "" || first.WindowStart == nil || first.WindowEnd == nil || first.Follower != "follower-pod" {
			return fmt.Errorf("status.continuous %+v", first)
		}
		return nil
	})
	if !v1alpha1.SnapshotIDPattern.MatchString(first.Chain) {
		t.Fatalf("chain %q is not a snapshot id", first.Chain)
	}
	// Writes after the base, 2.5 s apart: segments close every second and the window's end
	// follows them.
	var wrote []time.Time
	for i := range 3 {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond)
		}
		if err := src.Client.Set(ctx, fmt.Sprintf("after:%d", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		wrote = append(wrote, time.Now())
	}
	// pointInTime has a second's precision: a whole second between the second and the third write.
	point := wrote[1].Add(1500 * time.Millisecond).Truncate(time.Second)
	testproc.Eventually(t, 30*time.Second, "the window's end moves past the third write", func() error {
		s := status()
		if s.Segments == 0 || s.WindowEnd == nil || s.WindowEnd.Time.Before(wrote[2].Truncate(time.Second)) || s.Chain != first.Chain || s.Error != "" {
			return fmt.Errorf("status.continuous %+v (first %+v)", s, first)
		}
		return nil
	})

	// A RestoreSession to that instant: the base, then the journal up to it.
	dst := redistest.Start(t)
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "to-point", Namespace: ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository:  v1alpha1.RepositoryRef{Name: "repo"},
		Target:      v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: dst.Addr}},
		PointInTime: &metav1.Time{Time: point},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := session.RunRestore(ctx, cluster.Client, ns, "to-point", session.Options{}); err != nil {
		t.Fatalf("restore to %s: %v", point, err)
	}
	for i, want := range []int64{1, 1, 0} {
		if got := dst.Client.Exists(ctx, fmt.Sprintf("after:%d", i)).Val(); got != want {
			t.Errorf("after:%d (written %s) exists %d after a restore to %s, want %d", i, wrote[i].Format(time.RFC3339Nano), got, point.Format(time.RFC3339), want)
		}
	}
	if got, want := dst.Client.DBSize(ctx).Val(), int64(1002); got != want {
		t.Errorf("restored %d keys, want %d (the base's 1000 and two writes)", got, want)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(rs), rs); err != nil {
		t.Fatal(err)
	}
	if p := rs.Status.PointInTime; rs.Status.Phase != v1alpha1.SessionSucceeded || p == nil || p.Chain != first.Chain || p.Commands == 0 || p.Time == nil || p.Time.After(point) {
		t.Errorf("restore status %+v (point in time %+v)", rs.Status, rs.Status.PointInTime)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("the follower ended with %v", err)
	}
	done <- nil // for the cleanup
	if s := status(); s.Error != "" {
		t.Fatalf("a stopped follower reported an error: %q", s.Error)
	}
}

// TestContinuousBoundedWindow: spec.continuous.baseInterval and window reach the follower: it
// takes new bases (the chain in the status moves on) and, after them, reports the window it
// kept and its bytes (scaled down: a base a second, a window of 3 s).
func TestContinuousBoundedWindow(t *testing.T) {
	ctx := context.Background()
	const ns = "runner-continuous-bounded"
	if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	src := redistest.Start(t)
	repoDir := t.TempDir()
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": "repo-password"}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: repoDir, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: repoDir}}},
		}}},
		&v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "pitr", Namespace: ns}, Spec: v1alpha1.BackupConfigurationSpec{
			Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"},
			Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: src.Addr}},
			Continuous: &v1alpha1.ContinuousBackup{Enabled: true, SegmentInterval: "1s", BaseInterval: "1s", Window: "3s"},
		}},
	} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- session.RunContinuous(runCtx, cluster.Client, ns, "pitr", session.Options{Hostname: "follower-pod"})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	chains := map[string]bool{}
	testproc.Eventually(t, 60*time.Second, "new bases and a kept window in the status", func() error {
		select {
		case err := <-done:
			t.Fatalf("the follower stopped: %v", err)
		default:
		}
		_ = src.Client.Incr(ctx, "ctr").Err()
		bc := &v1alpha1.BackupConfiguration{}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pitr"}, bc); err != nil {
			t.Fatal(err)
		}
		s := bc.Status.Continuous
		if s == nil {
			return errors.New("no status.continuous")
		}
		chains[s.Chain] = true
		if len(chains) < 5 || s.WindowKeptFrom == nil || s.WindowBytes <= 0 || s.Error != "" {
			return fmt.Errorf("%d chains seen; status.continuous %+v", len(chains), s)
		}
		if time.Since(s.WindowKeptFrom.Time) > 10*time.Second {
			return fmt.Errorf("the window kept starts at %s", s.WindowKeptFrom)
		}
		return nil
	})
}
