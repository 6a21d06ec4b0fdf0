package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// TestSecretsStayInSecrets drives every in-cluster flow the controller runs — a
// BackupConfiguration with continuous backup (CronJob, follower Deployment), a BackupSession
// (Job), a RestoreSession (Job), a configuration that names a missing Secret (status, events) —
// over Secrets that hold one recognisable value, and looks for it in everything those flows
// make observable: the objects' specs and statuses, the Events, and /metrics.
func TestSecretsStayInSecrets(t *testing.T) {
	ctx := context.Background()
	bc := newBC("secrets")
	bc.Spec.Target = v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis.ctrl.svc:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "redis-auth"}}}
	bc.Spec.Continuous = &v1alpha1.ContinuousBackup{Enabled: true}
	missing := newBC("secrets-missing")
	missing.Spec.Target = v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis.ctrl.svc:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "no-such-secret"}}}
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "secrets-restore", Namespace: ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis-new:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "redis-auth"}}},
	}}
	for _, o := range []client.Object{bc, missing, newSession("secrets", "secrets-1"), rs} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the CronJob, the follower, the backup and restore Jobs", func() error {
		for name, o := range map[string]client.Object{
			v1alpha1.CronJobName("secrets"):            &batchv1.CronJob{},
			v1alpha1.FollowerName("secrets"):           &appsv1.Deployment{},
			v1alpha1.BackupJobName("secrets-1"):        &batchv1.Job{},
			v1alpha1.RestoreJobName("secrets-restore"): &batchv1.Job{},
		} {
			if err := get(ctx, name, o); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "secrets-missing", got); err != nil || got.Status.Phase != v1alpha1.BackupConfigurationNotReady {
			return fmt.Errorf("the configuration naming a missing Secret: %v %q", err, got.Status.Phase)
		}
		return nil
	})
	var everything []any
	for _, l := range []client.ObjectList{
		&batchv1.CronJobList{}, &batchv1.JobList{}, &appsv1.DeploymentList{}, &eventsv1.EventList{},
		&v1alpha1.BackupConfigurationList{}, &v1alpha1.BackupSessionList{}, &v1alpha1.RestoreSessionList{}, &v1alpha1.RepositoryList{},
	} {
		if err := cluster.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		everything = append(everything, l)
	}
	raw, err := json.Marshal(everything)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 1000 {
		t.Fatalf("only %d bytes of objects looked at", len(raw))
	}
	metrics, err := scrape()
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"objects and events": string(raw), "/metrics": metrics} {
		if i := strings.Index(s, secretValue); i >= 0 {
			t.Errorf("the secret value is in the %s: …%s…", what, s[max(0, i-300):min(len(s), i+100)])
		}
	}
}
