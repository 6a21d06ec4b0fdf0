package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/webhook/jobs"
)

// RestoreSessionReconciler runs each RestoreSession once, as one Job.
type RestoreSessionReconciler struct {
	client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Jobs      jobs.Options
	Metrics   *Metrics
	Clock
}

// Reconcile moves one RestoreSession along Pending → Running → Succeeded|Failed.
func (r *RestoreSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &v1alpha1.RestoreSession{}
	if err := r.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	switch rs.Status.Phase {
	case v1alpha1.SessionSucceeded, v1alpha1.SessionFailed, v1alpha1.SessionInvalid:
		r.observe(rs)
		return ctrl.Result{}, nil
	case v1alpha1.SessionRunning:
		res, err := followJob(ctx, r.Client, r.APIReader, rs.Namespace, rs.Status.Job, rs.Status.SessionDeadline, r.now())
		if err != nil {
			return ctrl.Result{}, err
		}
		if res.running {
			return ctrl.Result{RequeueAfter: untilDeadline(rs.Status.SessionDeadline, r.now())}, nil
		}
		fresh := &v1alpha1.RestoreSession{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rs), fresh); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if fresh.Status.Phase == v1alpha1.SessionSucceeded {
			r.observe(fresh)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, r.fail(ctx, fresh, res.condition, firstNonEmpty(fresh.Status.Error, res.reason))
	}
	if errs := rs.Validate(); len(errs) > 0 {
		old := rs.Status.DeepCopy()
		rs.Status.Phase, rs.Status.Error = v1alpha1.SessionInvalid, errs.ToAggregate().Error()
		return ctrl.Result{}, r.updateStatus(ctx, rs, old)
	}
	repo := &v1alpha1.Repository{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: repoNamespace(rs.Namespace, rs.Spec.Repository), Name: rs.Spec.Repository.Name}, repo); err != nil {
		if apierrors.IsNotFound(err) {
			// The Repository may be on its way (GitOps applies in any order): wait for it.
			return ctrl.Result{RequeueAfter: notReadyRequeue}, r.pending(ctx, rs, fmt.Sprintf("waiting for Repository %q", rs.Spec.Repository.Name))
		}
		return ctrl.Result{}, err
	}
	if err := ensureRunnerAccess(ctx, r.Client, rs.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	job := jobs.WithHookPod(jobs.RestoreJob(rs, repo, r.Jobs), hookPod(ctx, r.APIReader, rs.Namespace, &rs.Spec.Target, rs.Spec.Hooks.Handlers()))
	if err := controllerutil.SetControllerReference(rs, job, r.Scheme()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create job %s: %w", job.Name, err)
	}
	old := rs.Status.DeepCopy()
	now := metav1.NewTime(r.now().Truncate(time.Second))
	rs.Status.Phase, rs.Status.Job, rs.Status.StartTime, rs.Status.Error = v1alpha1.SessionRunning, job.Name, &now, ""
	if d, err := jobs.Deadline(now.Time, rs.Spec.TimeOut); err == nil {
		rs.Status.SessionDeadline = &metav1.Time{Time: d}
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(rs, job, corev1.EventTypeNormal, "Started", "Restore", "Job %s restores from Repository %s", job.Name, repo.Name)
	}
	return ctrl.Result{RequeueAfter: untilDeadline(rs.Status.SessionDeadline, r.now())}, r.updateStatus(ctx, rs, old)
}

func (r *RestoreSessionReconciler) pending(ctx context.Context, rs *v1alpha1.RestoreSession, msg string) error {
	old := rs.Status.DeepCopy()
	rs.Status.Phase, rs.Status.Error = v1alpha1.SessionPending, msg
	return r.updateStatus(ctx, rs, old)
}

func (r *RestoreSessionReconciler) fail(ctx context.Context, rs *v1alpha1.RestoreSession, condition, reason string) error {
	old := rs.Status.DeepCopy()
	rs.Status.Phase, rs.Status.Error = v1alpha1.SessionFailed, reason
	if rs.Status.CompletionTime == nil {
		now := metav1.NewTime(r.now())
		rs.Status.CompletionTime = &now
	}
	if condition != "" {
		meta.SetStatusCondition(&rs.Status.Conditions, metav1.Condition{Type: condition, Status: metav1.ConditionTrue, Reason: condition, Message: reason})
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(rs, nil, corev1.EventTypeWarning, "Failed", "Restore", "%s", reason)
	}
	if err := r.updateStatus(ctx, rs, old); err != nil {
		return err
	}
	r.observe(rs)
	return nil
}

// observe exports a finished restore's metrics.
func (r *RestoreSessionReconciler) observe(rs *v1alpha1.RestoreSession) {
	if r.Metrics == nil || rs.Status.Phase == v1alpha1.SessionInvalid {
		return
	}
	l := prometheus.Labels{"namespace": rs.Namespace, "invoker_kind": v1alpha1.KindRestoreSession, "invoker_name": rs.Name, "repository": rs.Spec.Repository.Name}
	r.Metrics.RestoreSuccess.With(l).Set(b2f(rs.Status.Phase == v1alpha1.SessionSucceeded))
	if d, ok := sessionDuration(rs.Status.SessionDuration, rs.Status.StartTime, rs.Status.CompletionTime); ok {
		r.Metrics.RestoreDuration.With(l).Set(d.Seconds())
	}
}

func (r *RestoreSessionReconciler) updateStatus(ctx context.Context, rs *v1alpha1.RestoreSession, old *v1alpha1.RestoreSessionStatus) error {
	if equalStatus(old, &rs.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, rs); err != nil {
		return fmt.Errorf("update status of restoresession %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// SetupWithManager registers the reconciler; it owns the restore Jobs.
func (r *RestoreSessionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.RestoreSession{}).
		Owns(&batchv1.Job{}).
		Named("restoresession").
		Complete(r)
}
