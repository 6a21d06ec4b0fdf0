package jobs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stash.dev/redis/api/v1alpha1"
)

type batchJob = batchv1.Job

func fixtures() (*v1alpha1.BackupConfiguration, *v1alpha1.BackupSession, *v1alpha1.Repository) {
	bc := &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "db"}, Spec: v1alpha1.BackupConfigurationSpec{
		Schedule: "0 2 * * *", TimeOut: "30m", RetryConfig: &v1alpha1.RetryConfig{MaxRetry: 2},
		Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "redis-auth"}}},
	}}
	s := &v1alpha1.BackupSession{ObjectMeta: metav1.ObjectMeta{Name: "nightly-abcde", Namespace: "db"}}
	repo := &v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: "db"}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
		StorageSecretName: "storage", GCS: &v1alpha1.GCSSpec{Bucket: "b"}}}}
	return bc, s, repo
}

func TestBuilders(t *testing.T) {
	o := Options{RunnerImage: "reg/stash-runner:v1"}
	tests := []struct {
		name  string
		build func() any
		check func(t *testing.T, got any)
	}{
		{"cronjob follows paused and schedule", func() any {
			bc, _, _ := fixtures()
			bc.Spec.Paused = true
			return CronJob(bc, o)
		}, func(t *testing.T, got any) {
			cj := got.(interface{ GetName() string })
			if cj.GetName() != "stash-trigger-nightly" {
				t.Errorf("name %q", cj.GetName())
			}
		}},
		{"backup job: deadline, retries, args, no local volume for gcs", func() any {
			bc, s, repo := fixtures()
			return BackupJob(s, bc, repo, o)
		}, func(t *testing.T, got any) {
			j := got.(*batchJob)
			if *j.Spec.ActiveDeadlineSeconds != 1800 || *j.Spec.BackoffLimit != 2 || len(j.Spec.Template.Spec.Volumes) != 0 {
				t.Errorf("deadline %d backoff %d volumes %v", *j.Spec.ActiveDeadlineSeconds, *j.Spec.BackoffLimit, j.Spec.Template.Spec.Volumes)
			}
			if d := cmp.Diff([]string{"backup", "--session", "db/nightly-abcde"}, j.Spec.Template.Spec.Containers[0].Args); d != "" {
				t.Errorf("args (-want +got):\n%s", d)
			}
		}},
		{"runtime settings and pushgateway", func() any {
			bc, s, repo := fixtures()
			bc.Spec.RuntimeSettings = &v1alpha1.RuntimeSettings{
				Resources:    &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
				NodeSelector: map[string]string{"disk": "ssd"}, Tolerations: []corev1.Toleration{{Key: "backup", Operator: corev1.TolerationOpExists}},
				ServiceAccountName: "custom",
			}
			return BackupJob(s, bc, repo, Options{RunnerImage: "x", PushgatewayURL: "http://pg:9091"})
		}, func(t *testing.T, got any) {
			p := got.(*batchJob).Spec.Template.Spec
			c := p.Containers[0]
			if c.Resources.Limits.Memory().String() != "256Mi" || p.NodeSelector["disk"] != "ssd" || len(p.Tolerations) != 1 || p.ServiceAccountName != "custom" {
				t.Errorf("runtime settings not applied: %+v", p)
			}
			if !strings.HasSuffix(strings.Join(c.Args, " "), "--pushgateway-url http://pg:9091") {
				t.Errorf("args %v", c.Args)
			}
		}},
		{"restore job mounts a local repository and never retries", func() any {
			_, _, repo := fixtures()
			repo.Spec.Backend = v1alpha1.Backend{StorageSecretName: "s", Local: &v1alpha1.LocalSpec{MountPath: "/backups",
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pvc"}}}}
			rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "db"}, Spec: v1alpha1.RestoreSessionSpec{TimeOut: "1h"}}
			return RestoreJob(rs, repo, o)
		}, func(t *testing.T, got any) {
			j := got.(*batchJob)
			p := j.Spec.Template.Spec
			if *j.Spec.BackoffLimit != 0 || p.Volumes[0].PersistentVolumeClaim.ClaimName != "pvc" || p.Containers[0].VolumeMounts[0].MountPath != "/backups" {
				t.Errorf("restore job %+v", j.Spec)
			}
			if !*p.SecurityContext.RunAsNonRoot || *p.SecurityContext.RunAsUser != runnerUID || !*p.Containers[0].SecurityContext.ReadOnlyRootFilesystem {
				t.Errorf("security context %+v", p.SecurityContext)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.build()
			raw, _ := json.Marshal(got)
			if strings.Contains(string(raw), "secretKeyRef") {
				t.Errorf("a Job refers to secret values: %s", raw)
			}
			tt.check(t, got)
		})
	}
}

func TestRunnerRoleNamesOnlyGivenSecrets(t *testing.T) {
	r := RunnerRole("db", []string{"redis-auth", "storage"})
	var secretRules int
	for _, rule := range r.Rules {
		for _, res := range rule.Resources {
			if res == "secrets" {
				secretRules++
				if d := cmp.Diff([]string{"redis-auth", "storage"}, rule.ResourceNames); d != "" || len(rule.Verbs) != 1 || rule.Verbs[0] != "get" {
					t.Errorf("secret rule %+v", rule)
				}
			}
		}
	}
	if secretRules != 1 {
		t.Errorf("want one secret rule, got %d", secretRules)
	}
	if r := RunnerRole("db", nil); len(r.Rules) != 5 {
		t.Errorf("no secrets: want no secret rule, got %+v", r.Rules)
	}
	if RunnerRoleBinding("db").Subjects[0].Name != v1alpha1.RunnerServiceAccount {
		t.Error("binding has no subject")
	}
}
