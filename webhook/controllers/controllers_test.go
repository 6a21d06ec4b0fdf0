package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/testproc"
	"stash.dev/redis/webhook/controllers"
	"stash.dev/redis/webhook/jobs"
)

var (
	cluster     *clustertest.Cluster
	metricsAddr string
)

const (
	ns          = "ctrl"
	secretValue = "s3cr3t-value-that-must-never-leak"
	runnerImage = "stash.dev/stash-runner:test"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	port, err := testproc.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cluster, err = clustertest.StartWith(clustertest.Options{
		MetricsAddr:       metricsAddr,
		ControllerManager: []string{"garbage-collector-controller"},
		Setup: func(mgr ctrl.Manager) error {
			_, err := controllers.Setup(mgr, jobs.Options{RunnerImage: runnerImage}, nil)
			return err
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	if err := seed(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		return 1
	}
	return m.Run()
}

// seed creates what every test uses: a namespace, a storage Secret, a Repository, an
// AppBinding with its Secret, and a Secret nobody refers to.
func seed(ctx context.Context) error {
	c := cluster.Client
	for _, n := range []string{ns, "elsewhere"} {
		if err := cluster.CreateNamespace(ctx, n, nil); err != nil {
			return err
		}
	}
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: ns}, StringData: map[string]string{"RESTIC_PASSWORD": secretValue}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "redis-auth", Namespace: ns}, StringData: map[string]string{"password": secretValue}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns}, StringData: map[string]string{"token": secretValue}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: ns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage",
			Local:             &v1alpha1.LocalSpec{MountPath: "/backups", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/backups"}}},
		}}},
	}
	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	ab.SetName("redis")
	ab.SetNamespace(ns)
	_ = unstructured.SetNestedField(ab.Object, "redis://redis.ctrl.svc:6379", "spec", "clientConfig", "url")
	_ = unstructured.SetNestedField(ab.Object, "redis-auth", "spec", "secret", "name")
	objs = append(objs, ab)
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	return nil
}

func newBC(name string) *v1alpha1.BackupConfiguration {
	return &v1alpha1.BackupConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.BackupConfigurationSpec{
			Schedule:   "*/5 * * * *",
			Repository: v1alpha1.RepositoryRef{Name: "repo"},
			Target:     v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "redis"}},
			TimeOut:    "10m",
		},
	}
}

func newSession(bc, name string) *v1alpha1.BackupSession {
	return &v1alpha1.BackupSession{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.BackupSessionSpec{Invoker: v1alpha1.BackupInvokerRef{Name: bc}}}
}

// eventually waits as long as a controller here may take to act (testproc.Eventually).
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	testproc.Eventually(t, 30*time.Second, what, cond)
}

func get(ctx context.Context, name string, obj client.Object) error {
	return cluster.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj)
}

func TestBackupConfigurationCronJobLifecycle(t *testing.T) {
	ctx := context.Background()
	bc := newBC("lifecycle")
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	cj := &batchv1.CronJob{}
	eventually(t, "CronJob created", func() error { return get(ctx, v1alpha1.CronJobName("lifecycle"), cj) })
	if cj.Spec.Schedule != "*/5 * * * *" || *cj.Spec.Suspend || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("cronjob spec: schedule %q suspend %v policy %s", cj.Spec.Schedule, *cj.Spec.Suspend, cj.Spec.ConcurrencyPolicy)
	}
	if ref := metav1.GetControllerOf(cj); ref == nil || ref.Name != "lifecycle" || ref.Kind != v1alpha1.KindBackupConfiguration {
		t.Errorf("cronjob owner: %+v", cj.OwnerReferences)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if pod.ServiceAccountName != v1alpha1.RunnerServiceAccount || pod.Containers[0].Image != runnerImage ||
		strings.Join(pod.Containers[0].Args, " ") != "trigger --backupconfiguration ctrl/lifecycle" {
		t.Errorf("cronjob pod: sa %q image %q args %v", pod.ServiceAccountName, pod.Containers[0].Image, pod.Containers[0].Args)
	}
	eventually(t, "BackupConfiguration Ready", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "lifecycle", got); err != nil {
			return err
		}
		for _, c := range []string{v1alpha1.ConditionRepositoryFound, v1alpha1.ConditionBackendSecretFound, v1alpha1.ConditionBackupTargetFound, v1alpha1.ConditionCronJobCreated, v1alpha1.ConditionValidationPassed} {
			if !meta.IsStatusConditionTrue(got.Status.Conditions, c) {
				return fmt.Errorf("condition %s not true: %+v", c, got.Status.Conditions)
			}
		}
		if got.Status.Phase != v1alpha1.BackupConfigurationReady || got.Status.NextScheduleTime == nil {
			return fmt.Errorf("phase %q next %v", got.Status.Phase, got.Status.NextScheduleTime)
		}
		return nil
	})

	interval := `stash_appscode_com_backupconfiguration_schedule_interval_seconds{invoker_kind="BackupConfiguration",invoker_name="lifecycle",namespace="ctrl"}`
	eventually(t, "schedule interval metric", func() error {
		out, err := scrape()
		if err != nil {
			return err
		}
		if !strings.Contains(out, interval+" 300\n") {
			return fmt.Errorf("/metrics lacks %s 300", interval)
		}
		return nil
	})

	// Update: new schedule, paused → the CronJob follows, suspended.
	eventually(t, "update", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "lifecycle", got); err != nil {
			return err
		}
		got.Spec.Schedule, got.Spec.Paused = "0 3 * * *", true
		return cluster.Client.Update(ctx, got)
	})
	eventually(t, "CronJob updated and suspended", func() error {
		if err := get(ctx, v1alpha1.CronJobName("lifecycle"), cj); err != nil {
			return err
		}
		if cj.Spec.Schedule != "0 3 * * *" || !*cj.Spec.Suspend {
			return fmt.Errorf("schedule %q suspend %v", cj.Spec.Schedule, *cj.Spec.Suspend)
		}
		return nil
	})
	eventually(t, "no schedule interval while paused", func() error {
		out, err := scrape()
		if err != nil {
			return err
		}
		if strings.Contains(out, interval) {
			return fmt.Errorf("/metrics still has %s", interval)
		}
		return nil
	})

	// Delete: the real garbage collector removes the CronJob.
	if err := cluster.Client.Delete(ctx, bc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CronJob garbage-collected", func() error {
		err := get(ctx, v1alpha1.CronJobName("lifecycle"), cj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func TestBackupConfigurationNotReadyNamesWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	bc := newBC("missing-repo")
	bc.Spec.Repository.Name = "no-such-repo"
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "NotReady", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "missing-repo", got); err != nil {
			return err
		}
		if got.Status.Phase != v1alpha1.BackupConfigurationNotReady || !strings.Contains(got.Status.Message, `Repository "no-such-repo" not found in namespace "ctrl"`) {
			return fmt.Errorf("phase %q message %q", got.Status.Phase, got.Status.Message)
		}
		return nil
	})
}

func TestBackupSessionJob(t *testing.T) {
	ctx := context.Background()
	bc := newBC("jobspec")
	bc.Spec.RetryConfig = &v1alpha1.RetryConfig{MaxRetry: 2}
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, newSession("jobspec", "jobspec-1")); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{}
	eventually(t, "Job created", func() error { return get(ctx, v1alpha1.BackupJobName("jobspec-1"), job) })
	raw, _ := json.Marshal(job)
	if strings.Contains(string(raw), secretValue) {
		t.Errorf("a secret value appears in the Job: %s", raw)
	}
	pod := job.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case job.Spec.ActiveDeadlineSeconds == nil || *job.Spec.ActiveDeadlineSeconds != 600:
		t.Errorf("activeDeadlineSeconds %v, want 600 (timeOut 10m)", job.Spec.ActiveDeadlineSeconds)
	case *job.Spec.BackoffLimit != 2:
		t.Errorf("backoffLimit %d, want 2 (retryConfig.maxRetry)", *job.Spec.BackoffLimit)
	case pod.ServiceAccountName != v1alpha1.RunnerServiceAccount:
		t.Errorf("service account %q", pod.ServiceAccountName)
	case pod.SecurityContext == nil || !*pod.SecurityContext.RunAsNonRoot || *pod.SecurityContext.RunAsUser == 0:
		t.Errorf("pod security context %+v", pod.SecurityContext)
	case c.SecurityContext == nil || *c.SecurityContext.AllowPrivilegeEscalation || !*c.SecurityContext.ReadOnlyRootFilesystem:
		t.Errorf("container security context %+v", c.SecurityContext)
	case strings.Join(c.Args, " ") != "backup --session ctrl/jobspec-1":
		t.Errorf("args %v", c.Args)
	case len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/backups":
		t.Errorf("local repository not mounted: %+v", c.VolumeMounts)
	}
	if ref := metav1.GetControllerOf(job); ref == nil || ref.Name != "jobspec-1" {
		t.Errorf("job owner %+v", job.OwnerReferences)
	}
	eventually(t, "session Running", func() error {
		s := &v1alpha1.BackupSession{}
		if err := get(ctx, "jobspec-1", s); err != nil {
			return err
		}
		if s.Status.Phase != v1alpha1.SessionRunning || s.Status.Job != job.Name || s.Status.SessionDeadline == nil {
			return fmt.Errorf("status %+v", s.Status)
		}
		return nil
	})

	// A second session while the first runs is skipped.
	if err := cluster.Client.Create(ctx, newSession("jobspec", "jobspec-2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second session Skipped", func() error {
		s := &v1alpha1.BackupSession{}
		if err := get(ctx, "jobspec-2", s); err != nil {
			return err
		}
		if s.Status.Phase != v1alpha1.SessionSkipped || !meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionBackupSkipped) {
			return fmt.Errorf("status %+v", s.Status)
		}
		return nil
	})

	// The Job fails: the session fails with the Job's reason.
	eventually(t, "mark Job failed", func() error {
		if err := get(ctx, job.Name, job); err != nil {
			return err
		}
		now := metav1.Now()
		job.Status.StartTime = &now
		job.Status.Failed = 3
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
		}
		return cluster.Client.Status().Update(ctx, job)
	})
	eventually(t, "session Failed with the reason", func() error {
		s := &v1alpha1.BackupSession{}
		if err := get(ctx, "jobspec-1", s); err != nil {
			return err
		}
		if s.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(s.Status.Error, "Job has reached the specified backoff limit") {
			return fmt.Errorf("status %+v", s.Status)
		}
		return nil
	})
}

func TestBackupSessionDeadline(t *testing.T) {
	ctx := context.Background()
	bc := newBC("deadline")
	bc.Spec.TimeOut = "2s"
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, newSession("deadline", "deadline-1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "DeadlineExceeded", func() error {
		s := &v1alpha1.BackupSession{}
		if err := get(ctx, "deadline-1", s); err != nil {
			return err
		}
		if s.Status.Phase != v1alpha1.SessionFailed || !meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionDeadlineExceeded) {
			return fmt.Errorf("status %+v", s.Status)
		}
		return nil
	})
}

// succeed writes what the runner writes at the end of a successful backup.
func succeed(ctx context.Context, name string, stats *v1alpha1.RepositoryStats) error {
	s := &v1alpha1.BackupSession{}
	if err := get(ctx, name, s); err != nil {
		return err
	}
	if s.Status.Phase != v1alpha1.SessionRunning {
		return fmt.Errorf("session %s is %q, not Running yet", name, s.Status.Phase)
	}
	now := metav1.Now()
	s.Status.Phase, s.Status.Snapshot, s.Status.Keys, s.Status.Bytes = v1alpha1.SessionSucceeded, "20261126T010203Z-abcdef", 1000, 4096
	s.Status.CompletionTime, s.Status.Repository = &now, stats
	return cluster.Client.Status().Update(ctx, s)
}

func TestSucceededSessionUpdatesRepositoryAndPrunesHistory(t *testing.T) {
	ctx := context.Background()
	bc := newBC("history")
	bc.Spec.BackupHistoryLimit = ptr.To[int32](1)
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("history-%d", i)
		if err := cluster.Client.Create(ctx, newSession("history", name)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "session succeeded", func() error {
			return succeed(ctx, name, &v1alpha1.RepositoryStats{SnapshotCount: int64(i), TotalSizeBytes: int64(i) * 4096})
		})
		time.Sleep(1100 * time.Millisecond) // distinct creation timestamps
	}
	eventually(t, "history pruned to 1", func() error {
		var list v1alpha1.BackupSessionList
		if err := cluster.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelInvokerName: "history"}); err != nil {
			return err
		}
		if len(list.Items) != 1 || list.Items[0].Name != "history-3" {
			var names []string
			for _, s := range list.Items {
				names = append(names, s.Name+"="+string(s.Status.Phase))
			}
			return fmt.Errorf("sessions left: %v", names)
		}
		return nil
	})
	eventually(t, "repository status", func() error {
		r := &v1alpha1.Repository{}
		if err := get(ctx, "repo", r); err != nil {
			return err
		}
		if r.Status.SnapshotCount != 3 || r.Status.TotalSizeBytes != 3*4096 || r.Status.TotalSize != "12.0 KiB" || r.Status.LastBackupTime == nil || r.Status.Backend != "local" {
			return fmt.Errorf("status %+v", r.Status)
		}
		return nil
	})
	eventually(t, "backupconfiguration last success", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := get(ctx, "history", got); err != nil {
			return err
		}
		if got.Status.LastSuccessfulBackupTime == nil {
			return fmt.Errorf("no lastSuccessfulBackupTime")
		}
		return nil
	})
	// The metrics of one success and (from TestBackupSessionJob or here) one failure.
	bad := newSession("history", "history-bad")
	if err := cluster.Client.Create(ctx, bad); err != nil {
		t.Fatal(err)
	}
	eventually(t, "failure written", func() error {
		s := &v1alpha1.BackupSession{}
		if err := get(ctx, "history-bad", s); err != nil {
			return err
		}
		if s.Status.Phase != v1alpha1.SessionRunning {
			return fmt.Errorf("phase %q", s.Status.Phase)
		}
		s.Status.Phase, s.Status.Error = v1alpha1.SessionFailed, "wrong repository password"
		now := metav1.Now()
		s.Status.CompletionTime = &now
		return cluster.Client.Status().Update(ctx, s)
	})
	eventually(t, "metrics", func() error {
		body, err := scrape()
		if err != nil {
			return err
		}
		for _, want := range []string{
			`stash_appscode_com_backupsession_success{invoker_kind="BackupConfiguration",invoker_name="history",namespace="ctrl",repository="repo"} 0`,
			`stash_appscode_com_backupsession_last_success_time_seconds{invoker_kind="BackupConfiguration",invoker_name="history",namespace="ctrl",repository="repo"} `,
			`stash_appscode_com_backupsession_duration_seconds{invoker_kind="BackupConfiguration",invoker_name="history",namespace="ctrl",repository="repo"} `,
			`stash_appscode_com_repository_snapshot_count{backend="local",namespace="ctrl",repository="repo"} 3`,
		} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("/metrics lacks %s", want)
			}
		}
		return nil
	})
}

func scrape() (string, error) {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestRestoreSession(t *testing.T) {
	ctx := context.Background()
	rs := &v1alpha1.RestoreSession{ObjectMeta: metav1.ObjectMeta{Name: "restore", Namespace: ns}, Spec: v1alpha1.RestoreSessionSpec{
		Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target:     v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis-new:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "redis-auth"}}},
	}}
	if err := cluster.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{}
	eventually(t, "restore Job", func() error { return get(ctx, v1alpha1.RestoreJobName("restore"), job) })
	if a := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "); a != "restore --session ctrl/restore" || *job.Spec.BackoffLimit != 0 {
		t.Errorf("restore job args %q backoff %d", a, *job.Spec.BackoffLimit)
	}
	eventually(t, "runner reports success", func() error {
		got := &v1alpha1.RestoreSession{}
		if err := get(ctx, "restore", got); err != nil {
			return err
		}
		if got.Status.Phase != v1alpha1.SessionRunning {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		now := metav1.Now()
		got.Status.Phase, got.Status.KeysRestored, got.Status.CompletionTime = v1alpha1.SessionSucceeded, 1000, &now
		return cluster.Client.Status().Update(ctx, got)
	})
	eventually(t, "restore metrics", func() error {
		body, err := scrape()
		if err != nil {
			return err
		}
		want := `stash_appscode_com_restoresession_success{invoker_kind="RestoreSession",invoker_name="restore",namespace="ctrl",repository="repo"} 1`
		if !strings.Contains(body, want) {
			return fmt.Errorf("/metrics lacks %s", want)
		}
		return nil
	})
}

// TestRunnerRBAC impersonates the runner's service account: it reads the Secrets its
// namespace's objects name, and nothing else.
func TestRunnerRBAC(t *testing.T) {
	ctx := context.Background()
	bc := newBC("rbac")
	// A Sentinel's AppBinding with the data nodes' Secret named by the reference.
	sentinelBC := newBC("rbac-sentinel")
	sentinelBC.Spec.Target.Ref.MasterName = "cache"
	sentinelBC.Spec.Target.Ref.AuthSecret = &v1alpha1.AuthSecret{Name: "cache-data-auth"}
	for _, o := range []client.Object{bc, sentinelBC,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cache-data-auth", Namespace: ns}, StringData: map[string]string{"password": secretValue}}} {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + v1alpha1.RunnerServiceAccount}
	runner, err := client.New(cfg, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "runner reads its storage and auth Secrets", func() error {
		for _, name := range []string{"storage", "redis-auth", "cache-data-auth"} {
			if err := runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err := runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: "unrelated"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("runner read a Secret it was not given: %v", err)
	}
	if err := runner.List(ctx, &corev1.SecretList{}, client.InNamespace(ns)); !apierrors.IsForbidden(err) {
		t.Errorf("runner listed Secrets: %v", err)
	}
	other := newSession("x", "other-ns-session")
	other.Namespace = "elsewhere"
	if err := runner.Get(ctx, client.ObjectKeyFromObject(other), &v1alpha1.BackupSession{}); !apierrors.IsForbidden(err) {
		t.Errorf("runner read a session of another namespace: %v", err)
	}
	if err := runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: "rbac"}, &v1alpha1.BackupConfiguration{}); err != nil {
		t.Errorf("runner cannot read its BackupConfiguration: %v", err)
	}
}
