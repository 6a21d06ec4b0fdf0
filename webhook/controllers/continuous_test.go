package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stash.dev/redis/api/v1alpha1"
)

// TestContinuousFollowerDeployment: spec.continuous.enabled gets the follower's Deployment
// (one Pod, Recreate, the runner's account and image, `continuous --backupconfiguration`,
// owned by the configuration); pausing removes it and resuming brings it back; the window the
// follower reports in status.continuous is exported with its lag; deleting the configuration
// garbage-collects the Deployment and the series.
func TestContinuousFollowerDeployment(t *testing.T) {
	ctx := context.Background()
	bc := newBC("pitr")
	bc.Spec.Continuous = &v1alpha1.ContinuousBackup{Enabled: true, SegmentInterval: "5s"}
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	name := v1alpha1.FollowerName("pitr")
	eventually(t, "follower Deployment created", func() error { return get(ctx, name, d) })
	pod := d.Spec.Template.Spec
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType ||
		pod.ServiceAccountName != v1alpha1.RunnerServiceAccount || pod.Containers[0].Image != runnerImage ||
		!slices.Equal(pod.Containers[0].Args, []string{"continuous", "--backupconfiguration", ns + "/pitr"}) {
		t.Fatalf("follower deployment: replicas %d strategy %s account %s image %s args %v",
			*d.Spec.Replicas, d.Spec.Strategy.Type, pod.ServiceAccountName, pod.Containers[0].Image, pod.Containers[0].Args)
	}
	if ref := metav1.GetControllerOf(d); ref == nil || ref.Name != "pitr" {
		t.Fatalf("owner: %+v", d.OwnerReferences)
	}
	eventually(t, "FollowerDeployed condition", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "pitr", got); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionFollowerDeployed) {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		// envtest runs no Pods: the follower is deployed, not running, and the status says so.
		if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionContinuousBackupRunning); c == nil ||
			c.Status != metav1.ConditionFalse || c.Reason != "FollowerNotAvailable" {
			return fmt.Errorf("ContinuousBackupRunning %+v", c)
		}
		return nil
	})

	// The follower reports a window: the controller exports it, the lag growing with time.
	end := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	eventually(t, "report a window", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "pitr", got); err != nil {
			return err
		}
		got.Status.Continuous = &v1alpha1.ContinuousStatus{Chain: "20261206T100000Z-abcdef",
			WindowStart: &metav1.Time{Time: end.Add(-time.Hour)}, WindowEnd: &metav1.Time{Time: end}, Segments: 360}
		return cluster.Client.Status().Update(ctx, got)
	})
	labels := `{invoker_kind="BackupConfiguration",invoker_name="pitr",namespace="ctrl"}`
	eventually(t, "continuous metrics", func() error {
		out, err := scrape()
		if err != nil {
			return err
		}
		if w := metricValue(out, "stash_continuous_recoverable_window_seconds"+labels); w != 3600 {
			return fmt.Errorf("window %v, want 3600", w)
		}
		if e := metricValue(out, "stash_continuous_window_end_timestamp_seconds"+labels); e != float64(end.Unix()) {
			return fmt.Errorf("window end %v, want %d", e, end.Unix())
		}
		lag := metricValue(out, "stash_continuous_lag_seconds"+labels)
		if lag < 30 || lag > 120 {
			return fmt.Errorf("lag %v, want about 30 s", lag)
		}
		return nil
	})

	// Paused: no follower; resumed: back.
	setPaused := func(p bool) {
		eventually(t, fmt.Sprintf("paused=%v", p), func() error {
			got := &v1alpha1.BackupConfiguration{}
			if err := get(ctx, "pitr", got); err != nil {
				return err
			}
			got.Spec.Paused = p
			return cluster.Client.Update(ctx, got)
		})
	}
	setPaused(true)
	eventually(t, "follower removed while paused", func() error {
		if err := get(ctx, name, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	setPaused(false)
	eventually(t, "follower back", func() error { return get(ctx, name, &appsv1.Deployment{}) })

	// Deleted: the garbage collector removes the Deployment; the series go.
	if err := cluster.Client.Delete(ctx, bc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "follower garbage-collected", func() error {
		if err := get(ctx, name, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
	eventually(t, "continuous series removed", func() error {
		out, err := scrape()
		if err != nil {
			return err
		}
		if strings.Contains(out, `invoker_name="pitr"`) {
			return fmt.Errorf("/metrics still has the configuration's series")
		}
		return nil
	})
}

// metricValue returns the value of the sample whose name and labels are series, or -1.
func metricValue(out, series string) float64 {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
