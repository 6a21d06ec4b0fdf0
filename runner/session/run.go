package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
)

// Options configure a session run.
type Options struct {
	// Log receives progress lines and warnings (the Pod's log).
	Log io.Writer
	// ProgressInterval is how often progress is logged and written to status; 0 means 5 s.
	ProgressInterval time.Duration
	// PushgatewayURL, when set, receives the run's metrics.
	PushgatewayURL string
	// Hostname and RunnerVersion are recorded in the snapshot manifest.
	Hostname, RunnerVersion string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Hooks are what the session's hooks need (spec.hooks).
	Hooks HookOptions
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) log(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// RunBackup runs the BackupSession ns/name and writes its result into the session's status:
// Succeeded with the snapshot, or Failed with the error. The error is returned as well, so
// that the Pod (and with it the Job) fails.
func RunBackup(ctx context.Context, c client.Client, ns, name string, o Options) error {
	s := &v1alpha1.BackupSession{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		return fmt.Errorf("read BackupSession %s/%s: %w", ns, name, err)
	}
	start := o.now()
	out, err := runBackup(ctx, c, s, o)
	res := out.result
	final := out.postBackup(ctx, s, err)
	status := func(st *v1alpha1.BackupSessionStatus) {
		end := metav1.NewTime(o.now())
		st.CompletionTime = &end
		st.SessionDuration = end.Sub(start).Round(time.Millisecond).String()
		st.Progress = nil
		out.hooks.apply(&st.Conditions)
		if err != nil {
			st.Phase, st.Error = v1alpha1.SessionFailed, statusError(err)
			if !final {
				st.Retried++
			}
			return
		}
		st.Phase, st.Error = v1alpha1.SessionSucceeded, ""
		st.Snapshot, st.Keys, st.Bytes, st.DataBytes = res.SnapshotID, res.Keys, res.StoredBytes, res.RawBytes
		if res.CutPauseMicros > 0 {
			st.CutPause = &metav1.Duration{Duration: time.Duration(res.CutPauseMicros) * time.Microsecond}
		}
		st.Repository = out.stats
		if out.retention != nil {
			meta.SetStatusCondition(&st.Conditions, *out.retention)
		}
	}
	if perr := writeResult(ctx, o, func(ctx context.Context) error { return patchBackupStatus(ctx, c, s, status) }); perr != nil {
		err = errors.Join(err, perr)
	}
	o.pushMetrics(runMetrics{job: "stash-backup", namespace: s.Namespace, kind: v1alpha1.KindBackupConfiguration, invoker: s.Spec.Invoker.Name,
		succeeded: err == nil, duration: o.now().Sub(start), keys: res.Keys})
	return err
}

// backupOutcome is what a backup run leaves for the session's status.
type backupOutcome struct {
	result backup.Result
	// stats describe the repository after the run; nil when it could not be listed.
	stats *v1alpha1.RepositoryStats
	// retention is the RetentionPolicyApplied condition; nil without a retention policy.
	retention *metav1.Condition
	// bc is the BackupConfiguration run; nil when it could not be read.
	bc *v1alpha1.BackupConfiguration
	// hooks ran the session's hooks; nil when there are none.
	hooks *sessionHooks
}

func runBackup(ctx context.Context, c client.Client, s *v1alpha1.BackupSession, o Options) (backupOutcome, error) {
	var out backupOutcome
	bc := &v1alpha1.BackupConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Invoker.Name}, bc); err != nil {
		return out, fmt.Errorf("read BackupConfiguration %s/%s: %w", s.Namespace, s.Spec.Invoker.Name, err)
	}
	out.bc = bc
	if h := bc.Spec.Hooks; h != nil {
		out.hooks = o.newSessionHooks(ctx, c, s.Namespace, &bc.Spec.Target, h.Handlers())
		if err := out.hooks.pre(ctx, "preBackup", v1alpha1.ConditionPreBackupHookSucceeded, h.PreBackup); err != nil {
			return out, err
		}
	}
	ends, err := o.open(ctx, c, s.Namespace, bc.Spec.Repository, &bc.Spec.Target, repo.Options{Create: true, UnlockInBackground: true})
	if err != nil {
		return out, err
	}
	defer ends.repo.Close()
	target, r := ends.target, ends.repo
	counter := &progress.Counter{}
	stop := o.reportProgress(ctx, "backup", counter, func(p *v1alpha1.Progress) {
		_ = patchBackupStatus(ctx, c, s, func(st *v1alpha1.BackupSessionStatus) { st.Progress = p })
	})
	res, err := backup.Run(ctx, backup.Options{Redis: target.Redis, Repository: r, Databases: target.Databases,
		Hostname: o.Hostname, RunnerVersion: o.RunnerVersion, Progress: counter, Sentinel: target.Sentinel, Mode: target.Mode,
		ReadFromReplica: target.ReadFromReplica, ConsistentCut: target.ConsistentCut, CutPause: target.CutPause})
	stop()
	out.result = res
	if err != nil {
		return out, fmt.Errorf("backup %s into %s: %w", target.Redis.Addr, ends.url, err)
	}
	o.log("snapshot %s: %d keys, %d bytes stored", res.SnapshotID, res.Keys, res.StoredBytes)

	var cond *metav1.Condition
	removed := int64(0)
	if p := bc.Spec.RetentionPolicy; p != nil {
		var fr repo.ForgetResult
		policy, ferr := repo.PolicyOf(p)
		if ferr == nil {
			fr, ferr = r.Forget(ctx, policy, p.DryRun)
		}
		if ferr != nil {
			// The snapshot is safe; a failed cleanup is reported, not fatal.
			cond = &metav1.Condition{Type: v1alpha1.ConditionRetentionPolicyApplied, Status: metav1.ConditionFalse, Reason: "Error", Message: ferr.Error()}
			o.log("warning: retention policy: %v", ferr)
		} else {
			msg := fmt.Sprintf("kept %d, removed %d snapshots", len(fr.Keep), len(fr.Remove))
			if p.DryRun {
				msg = fmt.Sprintf("dry run: would keep %d, remove %d snapshots", len(fr.Keep), len(fr.Remove))
			} else {
				removed = int64(len(fr.Remove))
			}
			cond = &metav1.Condition{Type: v1alpha1.ConditionRetentionPolicyApplied, Status: metav1.ConditionTrue, Reason: "Applied", Message: msg}
			o.log("retention policy: %s", msg)
		}
	}
	out.retention = cond
	stats, err := repositoryStats(ctx, r)
	if err != nil {
		o.log("warning: list repository: %v", err)
		return out, nil
	}
	stats.SnapshotsRemoved = removed
	out.stats = stats
	return out, nil
}

func repositoryStats(ctx context.Context, r *repo.Repository) (*v1alpha1.RepositoryStats, error) {
	list, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	stats := &v1alpha1.RepositoryStats{SnapshotCount: int64(len(list))}
	sort.Slice(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	for _, m := range list {
		stats.TotalSizeBytes += m.StoredBytes
	}
	if len(list) > 0 {
		t := metav1.NewTime(list[0].Time)
		stats.FirstSnapshotTime = &t
	}
	return stats, nil
}

// endpoints are what a session moves data between: its Redis target, resolved, and its
// repository, open (the caller closes it).
type endpoints struct {
	target *Target
	url    string // the repository's URL, for messages
	repo   *repo.Repository
}

// open reads a session's Repository and target through the API, logs what the target's
// resolution warns about, and opens the repository with ro (a backup creates it and unlocks its
// key while it starts).
func (o *Options) open(ctx context.Context, c client.Client, ns string, ref v1alpha1.RepositoryRef, t *v1alpha1.Target, ro repo.Options) (endpoints, error) {
	st, err := ResolveRepository(ctx, c, ns, ref)
	if err != nil {
		return endpoints{}, err
	}
	target, err := ResolveTarget(ctx, c, ns, t)
	if err != nil {
		return endpoints{}, err
	}
	for _, w := range target.Warnings {
		o.log("%s", w)
	}
	r, err := openRepository(ctx, st, ro, *o)
	if err != nil {
		return endpoints{}, err
	}
	return endpoints{target: target, url: st.URL, repo: r}, nil
}

// openRepository opens the repository of st with ro (Create, UnlockInBackground) and the
// storage Secret's password.
func openRepository(ctx context.Context, st *Storage, ro repo.Options, o Options) (*repo.Repository, error) {
	bucket, err := store.Open(ctx, st.URL, st.Env)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", st.URL, err)
	}
	ro.Password, ro.Hostname = st.Password, o.Hostname
	r, err := repo.Open(ctx, bucket, ro)
	if err != nil {
		_ = bucket.Close()
		return nil, fmt.Errorf("open repository %s: %w", st.URL, err)
	}
	return r, nil
}

// reportProgress logs progress and hands it to write (a status patch) every interval.
func (o *Options) reportProgress(ctx context.Context, label string, c *progress.Counter, write func(*v1alpha1.Progress)) (stop func()) {
	interval := o.ProgressInterval
	if interval == 0 {
		interval = 5 * time.Second
	}
	start := o.now()
	return progress.Every(ctx, interval, func() {
		k, b, total := c.Keys.Load(), c.Bytes.Load(), c.Total.Load()
		o.log("%s", progress.Line(label, k, b, total, o.now().Sub(start)))
		now := metav1.NewTime(o.now())
		write(&v1alpha1.Progress{Keys: k, Bytes: b, TotalKeys: total, UpdateTime: &now})
	})
}

// patchBackupStatus applies change to the session's status with a merge patch, leaving the
// controller's fields (job, startTime, sessionDeadline) alone. A failed patch leaves s as it
// was, so that the same change can be tried again.
func patchBackupStatus(ctx context.Context, c client.Client, s *v1alpha1.BackupSession, change func(*v1alpha1.BackupSessionStatus)) error {
	next := s.DeepCopy()
	change(&next.Status)
	if err := c.Status().Patch(ctx, next, client.MergeFrom(s)); err != nil {
		return fmt.Errorf("write status of BackupSession %s/%s: %w", s.Namespace, s.Name, err)
	}
	*s = *next
	return nil
}

func patchRestoreStatus(ctx context.Context, c client.Client, rs *v1alpha1.RestoreSession, change func(*v1alpha1.RestoreSessionStatus)) error {
	next := rs.DeepCopy()
	change(&next.Status)
	if err := c.Status().Patch(ctx, next, client.MergeFrom(rs)); err != nil {
		return fmt.Errorf("write status of RestoreSession %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	*rs = *next
	return nil
}

// ResultWriteTimeout bounds how long a runner keeps trying to write its session's result when
// the API server does not take it: a restart or an upgrade of the control plane. Before, the
// first refused connection ended the Pod with an error, and a backup whose snapshot was
// written ended Failed.
const ResultWriteTimeout = 5 * time.Minute

// writeResult calls write, the patch of a session's final status, until it succeeds, the API
// server refuses it for good (the session is gone, the patch is invalid or forbidden),
// ResultWriteTimeout has passed or ctx ends. Each call has 15 s: a request that meets a
// connection the API server will never answer is tried again on a new one.
func writeResult(ctx context.Context, o Options, write func(context.Context) error) error {
	deadline := time.Now().Add(ResultWriteTimeout)
	wait := time.Second
	for {
		attempt, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := write(attempt)
		cancel()
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsForbidden(err) {
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w (tried for %s)", err, ResultWriteTimeout)
		}
		o.log("warning: %v; trying again in %s", err, wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// RunRestore runs the RestoreSession ns/name and writes its result into its status.
func RunRestore(ctx context.Context, c client.Client, ns, name string, o Options) error {
	rs := &v1alpha1.RestoreSession{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, rs); err != nil {
		return fmt.Errorf("read RestoreSession %s/%s: %w", ns, name, err)
	}
	start := o.now()
	var hooks *sessionHooks
	if h := rs.Spec.Hooks; h != nil {
		hooks = o.newSessionHooks(ctx, c, rs.Namespace, &rs.Spec.Target, h.Handlers())
	}
	var res restore.Result
	err := hooks.preRestore(ctx, rs)
	if err == nil {
		res, err = runRestore(ctx, c, rs, o)
	}
	if hooks != nil {
		// A restore is never retried: every failure is the final one.
		hooks.post(ctx, "postRestore", v1alpha1.ConditionPostRestoreHookSucceeded, rs.Spec.Hooks.PostRestore, err != nil, true)
	}
	if perr := writeResult(ctx, o, func(ctx context.Context) error {
		return patchRestoreStatus(ctx, c, rs, func(st *v1alpha1.RestoreSessionStatus) {
			end := metav1.NewTime(o.now())
			st.CompletionTime = &end
			st.SessionDuration = end.Sub(start).Round(time.Millisecond).String()
			st.Progress = nil
			hooks.apply(&st.Conditions)
			if err != nil {
				st.Phase, st.Error = v1alpha1.SessionFailed, statusError(err)
				st.KeysRestored = res.Keys
				if c := refusal(err); c != nil {
					meta.SetStatusCondition(&st.Conditions, *c)
				}
				return
			}
			st.Phase, st.Error = v1alpha1.SessionSucceeded, ""
			st.Snapshot, st.KeysRestored, st.Bytes, st.Method = res.SnapshotID, res.Keys, res.Bytes, res.Method
		})
	}); perr != nil {
		err = errors.Join(err, perr)
	}
	o.pushMetrics(runMetrics{job: "stash-restore", namespace: rs.Namespace, kind: v1alpha1.KindRestoreSession, invoker: rs.Name,
		succeeded: err == nil, duration: o.now().Sub(start), keys: res.Keys})
	return err
}

func runRestore(ctx context.Context, c client.Client, rs *v1alpha1.RestoreSession, o Options) (restore.Result, error) {
	var res restore.Result
	ends, err := o.open(ctx, c, rs.Namespace, rs.Spec.Repository, &rs.Spec.Target, repo.Options{})
	if err != nil {
		return res, err
	}
	defer ends.repo.Close()
	target, r := ends.target, ends.repo
	dbs := target.Databases
	for _, db := range rs.Spec.Databases {
		dbs = append(dbs, int(db))
	}
	counter := &progress.Counter{}
	stop := o.reportProgress(ctx, "restore", counter, func(p *v1alpha1.Progress) {
		_ = patchRestoreStatus(ctx, c, rs, func(st *v1alpha1.RestoreSessionStatus) { st.Progress = p })
	})
	opts := restore.Options{
		Redis: target.Redis, Sentinel: target.Sentinel, Mode: target.Mode, Repository: r, Snapshot: rs.Spec.Snapshot,
		Flush: rs.Spec.FlushBeforeRestore, Replace: rs.Spec.ConflictPolicy == v1alpha1.ConflictReplace,
		Databases: dbs, KeyPattern: rs.Spec.KeyPattern, Progress: counter, AllowLossy: rs.Spec.AllowLossy,
		Warn: func(w string) { o.log("warning: %s", w) },
	}
	if pit := rs.Spec.PointInTime; pit != nil {
		var pr restore.PointResult
		pr, err = restore.ToPoint(ctx, opts, restore.Point{Time: pit.Time})
		res = pr.Result
		if pr.Chain != "" {
			reached := &v1alpha1.PointInTimeStatus{Chain: pr.Chain, Offset: pr.Offset, Time: &metav1.Time{Time: pr.Time}, Commands: pr.Commands}
			_ = patchRestoreStatus(ctx, c, rs, func(st *v1alpha1.RestoreSessionStatus) { st.PointInTime = reached })
			o.log("restored base %s and %d journal commands: the target is at offset %d, received %s", pr.Chain, pr.Commands, pr.Offset, pr.Time.UTC().Format(time.RFC3339Nano))
		}
	} else {
		res, err = restore.Run(ctx, opts)
	}
	stop()
	if err != nil {
		// restore.Run's error says whether and how far the target was changed.
		return res, err
	}
	for _, d := range res.DroppedKeys { // spec.allowLossy
		o.log("warning: left out db %d key %q: %s", d.DB, d.Key, d.Reason)
	}
	if n := res.Dropped - int64(len(res.DroppedKeys)); n > 0 {
		o.log("warning: left out %d more keys the target cannot hold", n)
	}
	o.log("restored snapshot %s: %d keys by %s", res.SnapshotID, res.Keys, res.Method)
	return res, nil
}

// Trigger creates a BackupSession of the BackupConfiguration ns/name, as its CronJob does
// at each tick. A paused configuration is left alone unless force is set (a manual trigger).
func Trigger(ctx context.Context, c client.Client, ns, name string, force bool) (*v1alpha1.BackupSession, error) {
	bc := &v1alpha1.BackupConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, bc); err != nil {
		return nil, fmt.Errorf("read BackupConfiguration %s/%s: %w", ns, name, err)
	}
	if bc.Spec.Paused && !force {
		return nil, nil
	}
	s := v1alpha1.NewBackupSession(bc)
	if err := c.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("create BackupSession for %s/%s: %w", ns, name, err)
	}
	return s, nil
}

// runMetrics is one session run's outcome, as the Pushgateway receives it.
type runMetrics struct {
	job                      string // the Pushgateway job: stash-backup or stash-restore
	namespace, kind, invoker string // the session's namespace and invoker (a RestoreSession invokes itself)
	succeeded                bool
	duration                 time.Duration
	keys                     int64
}

// pushMetrics sends m to the Pushgateway, when one is configured. A failed push is logged:
// the session's result is already in its status.
func (o *Options) pushMetrics(m runMetrics) {
	if o.PushgatewayURL == "" {
		return
	}
	if err := pushRunMetrics(o.PushgatewayURL, m); err != nil {
		o.log("warning: push metrics to %s: %v", o.PushgatewayURL, err)
	}
}

// pushRunMetrics sends a run's outcome to a Prometheus Pushgateway, under Stash's names.
func pushRunMetrics(url string, m runMetrics) error {
	reg := prometheus.NewRegistry()
	// namespace and invoker_name come from the grouping key, which the Pushgateway adds.
	labels := prometheus.Labels{"invoker_kind": m.kind}
	prefix := "stash_appscode_com_backupsession_"
	if m.kind == v1alpha1.KindRestoreSession {
		prefix = "stash_appscode_com_restoresession_"
	}
	gauge := func(n, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + n, Help: help, ConstLabels: labels})
		g.Set(v)
		reg.MustRegister(g)
	}
	success := 0.0
	if m.succeeded {
		success = 1
		gauge("last_success_time_seconds", "Unix time of the last successful session.", float64(time.Now().Unix()))
	}
	gauge("success", "1 when the session succeeded, 0 when it failed.", success)
	gauge("duration_seconds", "Time the session took.", m.duration.Seconds())
	gauge("keys_total", "Keys processed by the session.", float64(m.keys))
	host, _ := os.Hostname()
	return push.New(url, m.job).Gatherer(reg).Grouping("namespace", m.namespace).Grouping("invoker_name", m.invoker).Grouping("instance", host).Push()
}
