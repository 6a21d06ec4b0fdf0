// Package controllers holds the reconcilers that turn stash.dev objects into CronJobs and
// Jobs and keep every object's status true: BackupConfiguration → CronJob,
// BackupSession → backup Job, RestoreSession → restore Job.
package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/webhook/jobs"
)

// BackupConfigurationReconciler keeps one CronJob per BackupConfiguration and says in the
// status what is missing for backups to run.
type BackupConfigurationReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Jobs     jobs.Options
	// Metrics, when not nil, receives the schedule interval of each configuration.
	Metrics *Metrics
	Clock
}

// notReadyRequeue is how often a NotReady BackupConfiguration is looked at again: Secrets
// and AppBindings are not watched, so their arrival is noticed this way.
const notReadyRequeue = 30 * time.Second

// Reconcile brings the CronJob and status of one BackupConfiguration up to date.
func (r *BackupConfigurationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	bc := &v1alpha1.BackupConfiguration{}
	if err := r.Get(ctx, req.NamespacedName, bc); err != nil {
		// A deleted BackupConfiguration's CronJob goes with it through its owner reference;
		// the runners' access to what it named goes here.
		if apierrors.IsNotFound(err) {
			r.setScheduleInterval(req.Namespace, req.Name, 0)
			r.Metrics.ForgetContinuous(req.Namespace, req.Name)
			// In a namespace being deleted nothing can be created: nothing needs revoking.
			if err := ensureRunnerAccess(ctx, r.Client, req.Namespace); err != nil && !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				return ctrl.Result{}, err
			}
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	old := bc.Status.DeepCopy()
	st := &bc.Status
	st.ObservedGeneration = bc.Generation
	gen := bc.Generation
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}

	if errs := bc.Validate(); len(errs) > 0 {
		set(v1alpha1.ConditionValidationPassed, false, "Invalid", errs.ToAggregate().Error())
		st.Phase, st.Message = v1alpha1.BackupConfigurationInvalid, "fix the spec: "+errs.ToAggregate().Error()
		return ctrl.Result{}, r.updateStatus(ctx, bc, old)
	}
	set(v1alpha1.ConditionValidationPassed, true, "Valid", "")

	var problems []string
	repo, err := r.checkRepository(ctx, bc)
	if err != nil {
		return ctrl.Result{}, err
	}
	if repo == nil {
		msg := fmt.Sprintf("Repository %q not found in namespace %q", bc.Spec.Repository.Name, repoNamespace(bc.Namespace, bc.Spec.Repository))
		set(v1alpha1.ConditionRepositoryFound, false, "NotFound", msg)
		set(v1alpha1.ConditionBackendSecretFound, false, "RepositoryNotFound", "the Repository names the storage Secret")
		problems = append(problems, msg)
	} else {
		set(v1alpha1.ConditionRepositoryFound, true, "Found", "")
		if msg := r.checkStorageSecret(ctx, repo); msg != "" {
			set(v1alpha1.ConditionBackendSecretFound, false, "NotReady", msg)
			problems = append(problems, msg)
		} else {
			set(v1alpha1.ConditionBackendSecretFound, true, "Found", "")
		}
	}
	if msg := r.checkTarget(ctx, bc.Namespace, &bc.Spec.Target); msg != "" {
		set(v1alpha1.ConditionBackupTargetFound, false, "NotFound", msg)
		problems = append(problems, msg)
	} else {
		set(v1alpha1.ConditionBackupTargetFound, true, "Found", "")
	}

	if err := ensureRunnerAccess(ctx, r.Client, bc.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.ensureCronJob(ctx, bc); err != nil {
		set(v1alpha1.ConditionCronJobCreated, false, "Error", err.Error())
		_ = r.updateStatus(ctx, bc, old)
		return ctrl.Result{}, err
	}
	set(v1alpha1.ConditionCronJobCreated, true, "Created", "CronJob "+v1alpha1.CronJobName(bc.Name))
	if running, err := r.ensureFollower(ctx, bc, repo); err != nil {
		set(v1alpha1.ConditionFollowerDeployed, false, "Error", err.Error())
		_ = r.updateStatus(ctx, bc, old)
		return ctrl.Result{}, err
	} else if running {
		set(v1alpha1.ConditionFollowerDeployed, true, "Deployed", "Deployment "+v1alpha1.FollowerName(bc.Name))
		ok, reason, msg := r.followerRunning(ctx, bc)
		set(v1alpha1.ConditionContinuousBackupRunning, ok, reason, msg)
	} else if c := bc.Spec.Continuous; c != nil && c.Enabled {
		set(v1alpha1.ConditionFollowerDeployed, false, "Waiting", "the follower runs once the configuration is not paused and its Repository exists")
		set(v1alpha1.ConditionContinuousBackupRunning, false, "NotDeployed", "no follower runs")
	} else {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionFollowerDeployed)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionContinuousBackupRunning)
	}
	r.setContinuous(bc)

	st.NextScheduleTime = nil
	var interval time.Duration
	if sched, err := cron.ParseStandard(bc.Spec.Schedule); err == nil && !bc.Spec.Paused {
		next := sched.Next(inTimeZone(r.now(), bc.Spec.TimeZone))
		st.NextScheduleTime = &metav1.Time{Time: next.Truncate(time.Second)}
		interval = sched.Next(next).Sub(next)
	}
	r.setScheduleInterval(bc.Namespace, bc.Name, interval)
	result := ctrl.Result{}
	if len(problems) > 0 {
		st.Phase, st.Message = v1alpha1.BackupConfigurationNotReady, strings.Join(problems, "; ")
		result.RequeueAfter = notReadyRequeue
	} else {
		st.Phase, st.Message = v1alpha1.BackupConfigurationReady, ""
	}
	if old.Phase != st.Phase && r.Recorder != nil {
		kind := corev1.EventTypeNormal
		if st.Phase != v1alpha1.BackupConfigurationReady {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(bc, nil, kind, string(st.Phase), "Reconcile", "%s", firstNonEmpty(st.Message, "backups are scheduled"))
	}
	return result, r.updateStatus(ctx, bc, old)
}

// setScheduleInterval exports the gap between two scheduled runs; 0 removes the series
// (paused or deleted), so that the stale-backup alert ignores the configuration.
func (r *BackupConfigurationReconciler) setScheduleInterval(ns, name string, d time.Duration) {
	if r.Metrics == nil {
		return
	}
	l := prometheus.Labels{"namespace": ns, "invoker_kind": v1alpha1.KindBackupConfiguration, "invoker_name": name}
	if d <= 0 {
		r.Metrics.ScheduleInterval.Delete(l)
		return
	}
	r.Metrics.ScheduleInterval.With(l).Set(d.Seconds())
}

// setContinuous exports the window the follower reported while continuous backup is on.
func (r *BackupConfigurationReconciler) setContinuous(bc *v1alpha1.BackupConfiguration) {
	cs, c := bc.Status.Continuous, bc.Spec.Continuous
	if c == nil || !c.Enabled || cs == nil || cs.WindowEnd == nil || cs.WindowStart == nil {
		r.Metrics.ForgetContinuous(bc.Namespace, bc.Name)
		return
	}
	r.Metrics.SetContinuous(bc.Namespace, bc.Name, cs.WindowStart.Time, cs.WindowEnd.Time)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (r *BackupConfigurationReconciler) updateStatus(ctx context.Context, bc *v1alpha1.BackupConfiguration, old *v1alpha1.BackupConfigurationStatus) error {
	if equalStatus(old, &bc.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, bc); err != nil {
		return fmt.Errorf("update status of backupconfiguration %s/%s: %w", bc.Namespace, bc.Name, err)
	}
	return nil
}

// ensureFollower keeps the follower's Deployment while continuous backup is enabled, the
// configuration is not paused and its Repository exists, and deletes it otherwise. running
// says whether it is wanted.
func (r *BackupConfigurationReconciler) ensureFollower(ctx context.Context, bc *v1alpha1.BackupConfiguration, repo *v1alpha1.Repository) (running bool, err error) {
	c := bc.Spec.Continuous
	if c == nil || !c.Enabled || bc.Spec.Paused || repo == nil {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FollowerName(bc.Name), Namespace: bc.Namespace}}
		if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("delete follower deployment %s/%s: %w", d.Namespace, d.Name, err)
		}
		return false, nil
	}
	want := jobs.FollowerDeployment(bc, repo, r.Jobs)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
	_, err = controllerutil.CreateOrUpdate(ctx, r.Client, d, func() error {
		d.Labels = want.Labels
		d.Spec = want.Spec
		return controllerutil.SetControllerReference(bc, d, r.Scheme())
	})
	if err != nil {
		return false, fmt.Errorf("ensure follower deployment %s/%s: %w", want.Namespace, want.Name, err)
	}
	return true, nil
}

// followerRunning says whether the follower's Pod is available and reports no error.
func (r *BackupConfigurationReconciler) followerRunning(ctx context.Context, bc *v1alpha1.BackupConfiguration) (ok bool, reason, msg string) {
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: bc.Namespace, Name: v1alpha1.FollowerName(bc.Name)}, d); err != nil {
		return false, "NotFound", err.Error()
	}
	if d.Status.AvailableReplicas < 1 {
		return false, "FollowerNotAvailable", "the follower's Pod is not running (see: kubectl logs deployment/" + d.Name + " -n " + d.Namespace + ")"
	}
	if cs := bc.Status.Continuous; cs != nil && cs.Error != "" {
		return false, "FollowerError", cs.Error
	}
	return true, "Following", ""
}

func (r *BackupConfigurationReconciler) ensureCronJob(ctx context.Context, bc *v1alpha1.BackupConfiguration) error {
	want := jobs.CronJob(bc, r.Jobs)
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
	_, err := controllerutil.CreateOrUpdate(ctx, r.Client, cj, func() error {
		cj.Labels = want.Labels
		cj.Spec = want.Spec
		return controllerutil.SetControllerReference(bc, cj, r.Scheme())
	})
	if err != nil {
		return fmt.Errorf("ensure cronjob %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// checkRepository returns the referenced Repository, or nil when it does not exist or its
// usage policy does not admit the namespace.
func (r *BackupConfigurationReconciler) checkRepository(ctx context.Context, bc *v1alpha1.BackupConfiguration) (*v1alpha1.Repository, error) {
	repo := &v1alpha1.Repository{}
	err := r.Get(ctx, types.NamespacedName{Namespace: repoNamespace(bc.Namespace, bc.Spec.Repository), Name: bc.Spec.Repository.Name}, repo)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get repository: %w", err)
	}
	return repo, nil
}

// checkStorageSecret says what is wrong with the Repository's storage Secret, or "".
func (r *BackupConfigurationReconciler) checkStorageSecret(ctx context.Context, repo *v1alpha1.Repository) string {
	s := &corev1.Secret{}
	name := repo.Spec.Backend.StorageSecretName
	if err := r.Get(ctx, types.NamespacedName{Namespace: repo.Namespace, Name: name}, s); err != nil {
		return fmt.Sprintf("storage Secret %q of Repository %q: %v", name, repo.Name, err)
	}
	if missing := repo.Spec.Backend.MissingSecretKeys(s.Data); len(missing) > 0 {
		return fmt.Sprintf("storage Secret %q lacks %s", name, strings.Join(missing, ", "))
	}
	return ""
}

// checkTarget says what is missing of the target, or "".
func (r *BackupConfigurationReconciler) checkTarget(ctx context.Context, ns string, t *v1alpha1.Target) string {
	switch {
	case t.Ref != nil:
		ab := &unstructured.Unstructured{}
		ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
		ab.SetKind(v1alpha1.AppBindingKind)
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Ref.Name}, ab); err != nil {
			return fmt.Sprintf("AppBinding %q: %v", t.Ref.Name, err)
		}
	case t.Redis != nil && t.Redis.AuthSecret != nil:
		s := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Redis.AuthSecret.Name}, s); err != nil {
			return fmt.Sprintf("Redis auth Secret %q: %v", t.Redis.AuthSecret.Name, err)
		}
	}
	return ""
}

func repoNamespace(ns string, ref v1alpha1.RepositoryRef) string {
	if ref.Namespace != "" {
		return ref.Namespace
	}
	return ns
}

// SetupWithManager registers the reconciler: it owns CronJobs, and a changed Repository
// wakes the BackupConfigurations of its namespace.
func (r *BackupConfigurationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.BackupConfiguration{}).
		Owns(&batchv1.CronJob{}).
		Owns(&appsv1.Deployment{}).
		Watches(&v1alpha1.Repository{}, handler.EnqueueRequestsFromMapFunc(r.configsInNamespace)).
		Named("backupconfiguration").
		Complete(r)
}

func (r *BackupConfigurationReconciler) configsInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	var list v1alpha1.BackupConfigurationList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, b := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Name}})
	}
	return reqs
}
