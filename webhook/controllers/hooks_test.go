package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// runnerMay asks the API server's authorizer whether the runner of namespace hns may do verb
// on resource/subresource name there.
func runnerMay(ctx context.Context, hns, verb, resource, subresource, name string) (bool, error) {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + hns + ":" + v1alpha1.RunnerServiceAccount,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + hns, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: hns, Verb: verb, Resource: resource, Subresource: subresource, Name: name},
	}}
	if err := cluster.Client.Create(ctx, sar); err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// TestExecHookAccess: the runner may exec into the Pod behind the target's Service, and into
// no other, only while an exec hook needs it; the Job names that Pod; a header's Secret
// joins the Secrets the runner may read.
func TestExecHookAccess(t *testing.T) {
	ctx := context.Background()
	const hns = "hooks"
	if err := cluster.CreateNamespace(ctx, hns, nil); err != nil {
		t.Fatal(err)
	}
	running := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: hns, Labels: labels},
			Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "redis", Image: "redis"}}}}
	}
	// No service-account controller runs here: the Pods' account is made by hand.
	if err := cluster.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: hns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "storage", Namespace: hns}, StringData: map[string]string{"RESTIC_PASSWORD": secretValue}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: hns}, StringData: map[string]string{"token": secretValue}},
		&v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "repo", Namespace: hns}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
			StorageSecretName: "storage", GCS: &v1alpha1.GCSSpec{Bucket: "stash-backups"}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "redis", Namespace: hns}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "redis"}, Ports: []corev1.ServicePort{{Port: 6379}}}},
		running("redis-0", map[string]string{"app": "redis"}),
		running("web-0", map[string]string{"app": "web"}),
	}
	for _, o := range objs {
		if err := cluster.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"redis-0", "web-0"} {
		p := &corev1.Pod{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: hns, Name: name}, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := cluster.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	bc := &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "hooked", Namespace: hns}, Spec: v1alpha1.BackupConfigurationSpec{
		Schedule: "@daily", TimeZone: "Europe/Berlin", Repository: v1alpha1.RepositoryRef{Name: "repo"},
		Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Service: &v1alpha1.ServiceTarget{Name: "redis"}}},
		Hooks: &v1alpha1.BackupHooks{
			PreBackup: &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "SET", "marker", "1"}}},
			PostBackup: &v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFailure, HookHandler: v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{
				Host: "chat", Port: intstr.FromInt32(80), HTTPHeaders: []v1alpha1.HTTPHeader{{Name: "Authorization", ValueFrom: &v1alpha1.HeaderValueSource{
					SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "chat"}, Key: "token"}}}}}}},
		},
	}}
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the runner may exec into redis-0 and read the header's Secret", func() error {
		for _, check := range []struct{ verb, resource, sub, name string }{{"create", "pods", "exec", "redis-0"}, {"get", "secrets", "", "chat"}} {
			ok, err := runnerMay(ctx, hns, check.verb, check.resource, check.sub, check.name)
			if err != nil || !ok {
				return fmt.Errorf("%s %s/%s %s: allowed %v, %v", check.verb, check.resource, check.sub, check.name, ok, err)
			}
		}
		return nil
	})
	for _, check := range []struct{ verb, resource, sub, name string }{{"create", "pods", "exec", "web-0"}, {"list", "pods", "", ""}, {"get", "services", "", "redis"}} {
		if ok, err := runnerMay(ctx, hns, check.verb, check.resource, check.sub, check.name); err != nil || ok {
			t.Errorf("the runner may %s %s/%s %q: %v %v", check.verb, check.resource, check.sub, check.name, ok, err)
		}
	}
	cj := &batchv1.CronJob{}
	eventually(t, "CronJob in Europe/Berlin", func() error {
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: hns, Name: v1alpha1.CronJobName("hooked")}, cj); err != nil {
			return err
		}
		if cj.Spec.TimeZone == nil || *cj.Spec.TimeZone != "Europe/Berlin" {
			return fmt.Errorf("timeZone %v", cj.Spec.TimeZone)
		}
		return nil
	})

	// @daily in Berlin is midnight there, not in UTC.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	eventually(t, "nextScheduleTime at midnight in Berlin", func() error {
		got := &v1alpha1.BackupConfiguration{}
		if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(bc), got); err != nil {
			return err
		}
		if n := got.Status.NextScheduleTime; n == nil || n.In(berlin).Format("15:04") != "00:00" {
			return fmt.Errorf("nextScheduleTime %v", n)
		}
		return nil
	})

	s := &v1alpha1.BackupSession{ObjectMeta: metav1.ObjectMeta{Name: "hooked-1", Namespace: hns}, Spec: v1alpha1.BackupSessionSpec{Invoker: v1alpha1.BackupInvokerRef{Name: "hooked"}}}
	if err := cluster.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	job := &batchv1.Job{}
	eventually(t, "Job created", func() error {
		return cluster.Client.Get(ctx, types.NamespacedName{Namespace: hns, Name: v1alpha1.BackupJobName("hooked-1")}, job)
	})
	if args := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " "); args != "backup --session hooks/hooked-1 --hook-pod redis-0" {
		t.Errorf("args %q", args)
	}

	// Without an exec hook the runner may exec nowhere.
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(bc), bc); err != nil {
		t.Fatal(err)
	}
	bc.Spec.Hooks.PreBackup = nil
	if err := cluster.Client.Update(ctx, bc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "exec taken back", func() error {
		if ok, err := runnerMay(ctx, hns, "create", "pods", "exec", "redis-0"); err != nil || ok {
			return fmt.Errorf("allowed %v, %v", ok, err)
		}
		return nil
	})
}
