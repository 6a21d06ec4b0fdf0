package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
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

func equalStatus[T any](a, b *T) bool { return apiequality.Semantic.DeepEqual(a, b) }

// BackupSessionReconciler runs each BackupSession as one Job and turns the Job's end into
// the session's end, so that no session stays Running forever.
type BackupSessionReconciler struct {
	client.Client
	// APIReader reads around the cache where a stale read would start two backups at once.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Jobs      jobs.Options
	Metrics   *Metrics
	Clock
}

// Reconcile moves one BackupSession along Pending → Running → Succeeded|Failed (or Skipped).
func (r *BackupSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	s := &v1alpha1.BackupSession{}
	if err := r.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	switch s.Status.Phase {
	case v1alpha1.SessionSucceeded, v1alpha1.SessionFailed, v1alpha1.SessionSkipped:
		return ctrl.Result{}, r.finish(ctx, s)
	case v1alpha1.SessionRunning:
		return r.follow(ctx, s)
	default:
		return r.start(ctx, s)
	}
}

func (r *BackupSessionReconciler) start(ctx context.Context, s *v1alpha1.BackupSession) (ctrl.Result, error) {
	bc := &v1alpha1.BackupConfiguration{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Invoker.Name}, bc); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.fail(ctx, s, "", fmt.Sprintf("BackupConfiguration %q not found", s.Spec.Invoker.Name))
		}
		return ctrl.Result{}, err
	}
	// Another session of the same BackupConfiguration still running: skip, as Stash does.
	var sessions v1alpha1.BackupSessionList
	if err := r.APIReader.List(ctx, &sessions, client.InNamespace(s.Namespace), client.MatchingLabels{v1alpha1.LabelInvokerName: bc.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list sessions of %s: %w", bc.Name, err)
	}
	for _, o := range sessions.Items {
		if o.Name != s.Name && o.Status.Phase == v1alpha1.SessionRunning {
			old := s.Status.DeepCopy()
			s.Status.Phase = v1alpha1.SessionSkipped
			s.Status.Error = fmt.Sprintf("skipped: BackupSession %q of the same BackupConfiguration is still running", o.Name)
			meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionBackupSkipped, Status: metav1.ConditionTrue, Reason: "AnotherSessionRunning", Message: s.Status.Error})
			return ctrl.Result{}, r.updateStatus(ctx, s, old)
		}
	}
	repo := &v1alpha1.Repository{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: repoNamespace(s.Namespace, bc.Spec.Repository), Name: bc.Spec.Repository.Name}, repo); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.fail(ctx, s, "", fmt.Sprintf("Repository %q not found (see: kubectl describe backupconfiguration %s -n %s)", bc.Spec.Repository.Name, bc.Name, bc.Namespace))
		}
		return ctrl.Result{}, err
	}
	if err := ensureRunnerAccess(ctx, r.Client, s.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	job := jobs.WithHookPod(jobs.BackupJob(s, bc, repo, r.Jobs), hookPod(ctx, r.APIReader, s.Namespace, &bc.Spec.Target, bc.Spec.Hooks.Handlers()))
	if err := controllerutil.SetControllerReference(s, job, r.Scheme()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create job %s: %w", job.Name, err)
	}
	old := s.Status.DeepCopy()
	now := metav1.NewTime(r.now().Truncate(time.Second))
	s.Status.Phase, s.Status.Job, s.Status.StartTime = v1alpha1.SessionRunning, job.Name, &now
	if d, err := jobs.Deadline(now.Time, bc.Spec.TimeOut); err == nil {
		s.Status.SessionDeadline = &metav1.Time{Time: d}
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(s, job, corev1.EventTypeNormal, "Started", "Backup", "Job %s backs up into Repository %s", job.Name, repo.Name)
	}
	return ctrl.Result{RequeueAfter: untilDeadline(s.Status.SessionDeadline, r.now())}, r.updateStatus(ctx, s, old)
}

// untilDeadline is when to look at a running session again if nothing else wakes us.
func untilDeadline(deadline *metav1.Time, now time.Time) time.Duration {
	if deadline == nil {
		return time.Minute
	}
	d := deadline.Sub(now) + time.Second
	return max(min(d, time.Minute), time.Second)
}

func (r *BackupSessionReconciler) follow(ctx context.Context, s *v1alpha1.BackupSession) (ctrl.Result, error) {
	res, err := followJob(ctx, r.Client, r.APIReader, s.Namespace, s.Status.Job, s.Status.SessionDeadline, r.now())
	if err != nil {
		return ctrl.Result{}, err
	}
	if res.running {
		return ctrl.Result{RequeueAfter: untilDeadline(s.Status.SessionDeadline, r.now())}, nil
	}
	// The runner writes Succeeded itself; read around the cache before calling it a failure.
	fresh := &v1alpha1.BackupSession{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s), fresh); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if fresh.Status.Phase == v1alpha1.SessionSucceeded {
		return ctrl.Result{}, r.finish(ctx, fresh)
	}
	return ctrl.Result{}, r.fail(ctx, fresh, res.condition, firstNonEmpty(fresh.Status.Error, res.reason))
}

// jobResult is what a session's Job says about the session.
type jobResult struct {
	running   bool
	condition string // DeadlineExceeded when the time ran out
	reason    string
}

// followJob reads a session's Job (and its Pods, for the termination message) and says
// whether the session is still running and, if not, why it ended.
func followJob(ctx context.Context, c client.Client, api client.Reader, ns, name string, deadline *metav1.Time, now time.Time) (jobResult, error) {
	if deadline != nil && now.After(deadline.Time) {
		return jobResult{condition: v1alpha1.ConditionDeadlineExceeded, reason: fmt.Sprintf("deadline exceeded: the session did not finish by %s (spec.timeOut)", deadline.UTC().Format(time.RFC3339))}, nil
	}
	job := &batchv1.Job{}
	key := types.NamespacedName{Namespace: ns, Name: name}
	err := c.Get(ctx, key, job)
	if apierrors.IsNotFound(err) {
		// A cache that has just relisted (after an API server restart, or in a new leader)
		// can miss a Job that runs: only the API server itself may say it is gone.
		err = api.Get(ctx, key, job)
		if apierrors.IsNotFound(err) {
			return jobResult{reason: fmt.Sprintf("Job %s was deleted before it finished", name)}, nil
		}
	}
	if err != nil {
		return jobResult{}, err
	}
	for _, cond := range job.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete, batchv1.JobSuccessCriteriaMet:
			return jobResult{reason: fmt.Sprintf("Job %s completed but the runner did not report a result (see: kubectl logs job/%s -n %s)", name, name, ns)}, nil
		case batchv1.JobFailed, batchv1.JobFailureTarget:
			if cond.Reason == batchv1.JobReasonDeadlineExceeded || cond.Reason == "DeadlineExceeded" {
				return jobResult{condition: v1alpha1.ConditionDeadlineExceeded, reason: fmt.Sprintf("deadline exceeded: Job %s ran longer than spec.timeOut", name)}, nil
			}
			msg := fmt.Sprintf("Job %s failed: %s", name, firstNonEmpty(cond.Message, cond.Reason))
			if t := terminationMessage(ctx, api, ns, name); t != "" {
				msg += ": " + t
			}
			return jobResult{reason: msg + fmt.Sprintf(" (see: kubectl logs job/%s -n %s)", name, ns)}, nil
		}
	}
	return jobResult{running: true}, nil
}

// terminationMessage is the last words of the Job's newest failed runner container.
func terminationMessage(ctx context.Context, c client.Reader, ns, job string) string {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{batchv1.JobNameLabel: job}); err != nil {
		return ""
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.After(pods.Items[j].CreationTimestamp.Time)
	})
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.Message != "" {
				return t.Message
			}
		}
	}
	return ""
}

// fail ends a session as Failed with reason (and condition, when a deadline ran out).
func (r *BackupSessionReconciler) fail(ctx context.Context, s *v1alpha1.BackupSession, condition, reason string) error {
	old := s.Status.DeepCopy()
	s.Status.Phase, s.Status.Error = v1alpha1.SessionFailed, reason
	if s.Status.CompletionTime == nil {
		now := metav1.NewTime(r.now())
		s.Status.CompletionTime = &now
	}
	if condition != "" {
		meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{Type: condition, Status: metav1.ConditionTrue, Reason: condition, Message: reason})
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, "Failed", "Backup", "%s", reason)
	}
	if err := r.updateStatus(ctx, s, old); err != nil {
		return err
	}
	return r.finish(ctx, s)
}

func (r *BackupSessionReconciler) updateStatus(ctx context.Context, s *v1alpha1.BackupSession, old *v1alpha1.BackupSessionStatus) error {
	if equalStatus(old, &s.Status) {
		return nil
	}
	if err := r.Status().Update(ctx, s); err != nil {
		return fmt.Errorf("update status of backupsession %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// finish publishes a finished session: metrics, the BackupConfiguration's and the
// Repository's status, and the session history limits. It is idempotent.
func (r *BackupSessionReconciler) finish(ctx context.Context, s *v1alpha1.BackupSession) error {
	bc := &v1alpha1.BackupConfiguration{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Invoker.Name}, bc); err != nil {
		return client.IgnoreNotFound(err)
	}
	if s.Status.Phase == v1alpha1.SessionSkipped {
		return r.pruneHistory(ctx, bc)
	}
	succeeded := s.Status.Phase == v1alpha1.SessionSucceeded
	end := s.Status.CompletionTime
	if r.Metrics != nil {
		l := prometheus.Labels{"namespace": s.Namespace, "invoker_kind": v1alpha1.KindBackupConfiguration, "invoker_name": bc.Name, "repository": bc.Spec.Repository.Name}
		r.Metrics.BackupSuccess.With(l).Set(b2f(succeeded))
		if d, ok := sessionDuration(s.Status.SessionDuration, s.Status.StartTime, end); ok {
			r.Metrics.BackupDuration.With(l).Set(d.Seconds())
		}
		if succeeded && end != nil {
			r.Metrics.BackupLastSuccessTime.With(l).Set(float64(end.Unix()))
			r.Metrics.BackupKeys.With(l).Set(float64(s.Status.Keys))
			r.Metrics.BackupSize.With(l).Set(float64(s.Status.Bytes))
		}
	}
	oldBC := bc.Status.DeepCopy()
	if end != nil && (bc.Status.LastBackupTime == nil || end.After(bc.Status.LastBackupTime.Time)) {
		bc.Status.LastBackupTime = end
	}
	if succeeded && end != nil && (bc.Status.LastSuccessfulBackupTime == nil || end.After(bc.Status.LastSuccessfulBackupTime.Time)) {
		bc.Status.LastSuccessfulBackupTime = end
	}
	if !equalStatus(oldBC, &bc.Status) {
		if err := r.Status().Update(ctx, bc); err != nil {
			return fmt.Errorf("update status of backupconfiguration %s/%s: %w", bc.Namespace, bc.Name, err)
		}
	}
	if succeeded && s.Status.Repository != nil {
		if err := r.publishRepository(ctx, s, bc); err != nil {
			return err
		}
	}
	return r.pruneHistory(ctx, bc)
}

// publishRepository copies the repository state the runner saw into the Repository's status,
// unless a newer backup has already done so.
func (r *BackupSessionReconciler) publishRepository(ctx context.Context, s *v1alpha1.BackupSession, bc *v1alpha1.BackupConfiguration) error {
	repo := &v1alpha1.Repository{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: repoNamespace(s.Namespace, bc.Spec.Repository), Name: bc.Spec.Repository.Name}, repo); err != nil {
		return client.IgnoreNotFound(err)
	}
	end := s.Status.CompletionTime
	if end == nil || (repo.Status.LastBackupTime != nil && repo.Status.LastBackupTime.After(end.Time)) {
		return nil
	}
	old := repo.Status.DeepCopy()
	st, stats := &repo.Status, s.Status.Repository
	st.ObservedGeneration = repo.Generation
	st.Backend = repo.Spec.Backend.Provider()
	st.LastBackupTime = end
	st.FirstBackupTime = stats.FirstSnapshotTime
	st.SnapshotCount = stats.SnapshotCount
	st.TotalSizeBytes = stats.TotalSizeBytes
	st.TotalSize = v1alpha1.HumanBytes(stats.TotalSizeBytes)
	st.SnapshotsRemovedOnLastCleanup = stats.SnapshotsRemoved
	if r.Metrics != nil {
		l := prometheus.Labels{"namespace": repo.Namespace, "repository": repo.Name, "backend": st.Backend}
		r.Metrics.RepositorySnapshots.With(l).Set(float64(st.SnapshotCount))
		r.Metrics.RepositorySize.With(l).Set(float64(st.TotalSizeBytes))
		r.Metrics.RepositoryCleaned.With(l).Set(float64(st.SnapshotsRemovedOnLastCleanup))
		if st.Integrity != nil {
			r.Metrics.RepositoryIntegrity.With(l).Set(b2f(*st.Integrity))
		}
	}
	if equalStatus(old, st) {
		return nil
	}
	if err := r.Status().Update(ctx, repo); err != nil {
		return fmt.Errorf("update status of repository %s/%s: %w", repo.Namespace, repo.Name, err)
	}
	return nil
}

// pruneHistory keeps the newest backupHistoryLimit succeeded and failedBackupHistoryLimit
// failed (or skipped) sessions of a BackupConfiguration and deletes the older ones.
func (r *BackupSessionReconciler) pruneHistory(ctx context.Context, bc *v1alpha1.BackupConfiguration) error {
	var list v1alpha1.BackupSessionList
	if err := r.List(ctx, &list, client.InNamespace(bc.Namespace), client.MatchingLabels{v1alpha1.LabelInvokerName: bc.Name}); err != nil {
		return fmt.Errorf("list sessions of %s: %w", bc.Name, err)
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i].CreationTimestamp, list.Items[j].CreationTimestamp
		if a.Equal(&b) {
			return list.Items[i].Name > list.Items[j].Name
		}
		return a.After(b.Time)
	})
	keepOK, keepFailed := int32(v1alpha1.DefaultBackupHistoryLimit), int32(v1alpha1.DefaultFailedBackupHistoryLimit)
	if bc.Spec.BackupHistoryLimit != nil {
		keepOK = *bc.Spec.BackupHistoryLimit
	}
	if bc.Spec.FailedBackupHistoryLimit != nil {
		keepFailed = *bc.Spec.FailedBackupHistoryLimit
	}
	for i := range list.Items {
		s := &list.Items[i]
		var keep *int32
		switch s.Status.Phase {
		case v1alpha1.SessionSucceeded:
			keep = &keepOK
		case v1alpha1.SessionFailed, v1alpha1.SessionSkipped:
			keep = &keepFailed
		default:
			continue
		}
		if *keep > 0 {
			*keep--
			continue
		}
		if err := r.Delete(ctx, s, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete old session %s: %w", s.Name, err)
		}
	}
	return nil
}

// sessionDuration prefers the runner's measured duration (status times have second
// precision) and falls back to the difference of start and end.
func sessionDuration(measured string, start, end *metav1.Time) (time.Duration, bool) {
	if d, err := time.ParseDuration(measured); err == nil {
		return d, true
	}
	if start != nil && end != nil {
		return end.Sub(start.Time), true
	}
	return 0, false
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SetupWithManager registers the reconciler; it owns the backup Jobs.
func (r *BackupSessionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.BackupSession{}).
		Owns(&batchv1.Job{}).
		Named("backupsession").
		Complete(r)
}
