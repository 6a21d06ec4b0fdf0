// Package jobs builds the CronJobs and Jobs that run stash-runner. The builders are pure:
// objects in, objects out, so that every field of what reaches the cluster is table-tested.
//
// No secret value ever appears in what they build: the runner reads the Secrets it needs
// through the API, with a Role that names exactly those Secrets (see RunnerRole).
package jobs

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"stash.dev/redis/api/v1alpha1"
)

// Options are the controller's settings that shape every Job.
type Options struct {
	// RunnerImage is the stash-runner image.
	RunnerImage string
	// PushgatewayURL, when set, is passed to the runner, which pushes its metrics there.
	PushgatewayURL string
}

// runnerUID is the non-root user the runner runs as unless runtimeSettings say otherwise.
const runnerUID = 65532

// Component label values.
const (
	ComponentTrigger = "backup-trigger"
	ComponentBackup  = "backup"
	ComponentRestore = "restore"
)

// CronJob returns the CronJob that creates a BackupSession of bc at each tick.
// concurrencyPolicy Forbid keeps ticks from piling up; paused suspends it.
func CronJob(bc *v1alpha1.BackupConfiguration, o Options) *batchv1.CronJob {
	labels := map[string]string{v1alpha1.LabelComponent: ComponentTrigger, v1alpha1.LabelInvokerName: bc.Name}
	pod := podSpec(o, bc.Spec.RuntimeSettings, []string{"trigger", "--backupconfiguration", bc.Namespace + "/" + bc.Name})
	pod.RestartPolicy = corev1.RestartPolicyNever
	var timeZone *string
	if bc.Spec.TimeZone != "" {
		timeZone = ptr.To(bc.Spec.TimeZone)
	}
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.CronJobName(bc.Name), Namespace: bc.Namespace, Labels: labels},
		Spec: batchv1.CronJobSpec{
			Schedule:                   bc.Spec.Schedule,
			TimeZone:                   timeZone,
			Suspend:                    ptr.To(bc.Spec.Paused),
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			SuccessfulJobsHistoryLimit: ptr.To[int32](1),
			FailedJobsHistoryLimit:     ptr.To[int32](1),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: batchv1.JobSpec{
					BackoffLimit:          ptr.To[int32](2),
					ActiveDeadlineSeconds: ptr.To[int64](120),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec:       pod,
					},
				},
			},
		},
	}
}

// BackupJob returns the Job that runs one BackupSession.
func BackupJob(s *v1alpha1.BackupSession, bc *v1alpha1.BackupConfiguration, repo *v1alpha1.Repository, o Options) *batchv1.Job {
	args := []string{"backup", "--session", s.Namespace + "/" + s.Name}
	retries := int32(0)
	if bc.Spec.RetryConfig != nil {
		retries = bc.Spec.RetryConfig.MaxRetry
	}
	return runnerJob{
		Name: v1alpha1.BackupJobName(s.Name), Namespace: s.Namespace, Session: s.Name, Component: ComponentBackup,
		TimeOut: bc.Spec.TimeOut, Retries: retries, Runtime: bc.Spec.RuntimeSettings, Repository: repo, Args: args,
	}.build(o)
}

// RestoreJob returns the Job that runs one RestoreSession. A restore is never retried: a
// second attempt on a half-restored target could meet its own keys.
func RestoreJob(rs *v1alpha1.RestoreSession, repo *v1alpha1.Repository, o Options) *batchv1.Job {
	args := []string{"restore", "--session", rs.Namespace + "/" + rs.Name}
	return runnerJob{
		Name: v1alpha1.RestoreJobName(rs.Name), Namespace: rs.Namespace, Session: rs.Name, Component: ComponentRestore,
		TimeOut: rs.Spec.TimeOut, Runtime: rs.Spec.RuntimeSettings, Repository: repo, Args: args,
	}.build(o)
}

// runnerJob describes the Job of one session: its name and labels, how long and how often it
// may run, and the runner's arguments, runtime settings and repository.
type runnerJob struct {
	Name, Namespace, Session, Component string
	// TimeOut is the session's timeOut (a Go duration; empty or invalid means none).
	TimeOut string
	// Retries is the Job's backoff limit.
	Retries    int32
	Runtime    *v1alpha1.RuntimeSettings
	Repository *v1alpha1.Repository
	Args       []string
}

func (rj runnerJob) build(o Options) *batchv1.Job {
	labels := map[string]string{v1alpha1.LabelComponent: rj.Component, v1alpha1.LabelSession: rj.Session}
	args := rj.Args
	if o.PushgatewayURL != "" {
		args = append(args, "--pushgateway-url", o.PushgatewayURL)
	}
	pod := podSpec(o, rj.Runtime, args)
	pod.RestartPolicy = corev1.RestartPolicyNever
	mountRepository(&pod, rj.Repository)
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: rj.Name, Namespace: rj.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To(rj.Retries),
			Template:     corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
	if d, err := time.ParseDuration(rj.TimeOut); err == nil && d > 0 {
		j.Spec.ActiveDeadlineSeconds = ptr.To(int64(d.Seconds()))
	}
	return j
}

// mountRepository mounts a local repository's volume where the Repository says; other
// backends need nothing in the Pod.
func mountRepository(pod *corev1.PodSpec, repo *v1alpha1.Repository) {
	if l := repo.Spec.Backend.Local; l != nil {
		pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "repository", VolumeSource: l.VolumeSource})
		pod.Containers[0].VolumeMounts = append(pod.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "repository", MountPath: l.MountPath})
	}
}

// ComponentFollower labels the Deployment and Pod of a continuous-backup follower.
const ComponentFollower = "follower"

// FollowerDeployment returns the Deployment that runs bc's continuous-backup follower
// (`stash-runner continuous`): one Pod, replaced only after the old one is gone (Recreate:
// two followers of one source would write two chains), under the runner's account and
// runtime settings, restarted by its ReplicaSet whenever it exits.
func FollowerDeployment(bc *v1alpha1.BackupConfiguration, repo *v1alpha1.Repository, o Options) *appsv1.Deployment {
	labels := map[string]string{v1alpha1.LabelComponent: ComponentFollower, v1alpha1.LabelInvokerName: bc.Name}
	pod := podSpec(o, bc.Spec.RuntimeSettings, []string{"continuous", "--backupconfiguration", bc.Namespace + "/" + bc.Name})
	pod.RestartPolicy = corev1.RestartPolicyAlways
	// SIGTERM closes the open segment; give the upload of that segment time to finish.
	pod.TerminationGracePeriodSeconds = ptr.To[int64](60)
	mountRepository(&pod, repo)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FollowerName(bc.Name), Namespace: bc.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod},
		},
	}
}

// podSpec is the runner's Pod: non-root, read-only root filesystem, no privilege escalation,
// the runner's service account, and the user's runtime settings on top.
func podSpec(o Options, rt *v1alpha1.RuntimeSettings, args []string) corev1.PodSpec {
	p := corev1.PodSpec{
		ServiceAccountName: v1alpha1.RunnerServiceAccount,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](runnerUID),
			RunAsGroup:     ptr.To[int64](runnerUID),
			FSGroup:        ptr.To[int64](runnerUID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:    "runner",
			Image:   o.RunnerImage,
			Command: []string{"stash-runner"},
			Args:    args,
			Env: []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem:   ptr.To(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}},
	}
	if rt == nil {
		return p
	}
	if rt.Resources != nil {
		p.Containers[0].Resources = *rt.Resources
	}
	p.NodeSelector = rt.NodeSelector
	p.Tolerations = rt.Tolerations
	if rt.SecurityContext != nil {
		p.SecurityContext = rt.SecurityContext
	}
	if rt.ServiceAccountName != "" {
		p.ServiceAccountName = rt.ServiceAccountName
	}
	return p
}

// RunnerRole is the Role of the runner in one namespace: read its sessions, the
// BackupConfigurations, Repositories and AppBindings they name, exactly the Secrets in
// secrets, create BackupSessions (the trigger), and write session status. Nothing else.
func RunnerRole(namespace string, secrets []string) *rbacv1.Role {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"backupsessions", "restoresessions", "backupconfigurations", "repositories"}, Verbs: []string{"get"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"backupsessions"}, Verbs: []string{"create"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"backupsessions/status", "restoresessions/status"}, Verbs: []string{"get", "patch", "update"}},
		// The follower reports its window in its BackupConfiguration's status.
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"backupconfigurations/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"appcatalog.appscode.com"}, Resources: []string{"appbindings"}, Verbs: []string{"get"}},
	}
	if len(secrets) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: secrets})
	}
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.RunnerServiceAccount, Namespace: namespace, Labels: map[string]string{v1alpha1.LabelComponent: "runner"}},
		Rules:      rules,
	}
}

// RunnerRoleBinding binds RunnerRole to the runner's service account and to the service
// accounts that runtimeSettings.serviceAccountName names in the namespace (accounts), so that a
// runner under an account of the user's choice (one bound to a cloud role, say) reads its
// session as the default one does.
func RunnerRoleBinding(namespace string, accounts ...string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.RunnerServiceAccount, Namespace: namespace, Labels: map[string]string{v1alpha1.LabelComponent: "runner"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: v1alpha1.RunnerServiceAccount},
		Subjects:   runnerSubjects(namespace, accounts),
	}
}

// runnerSubjects is the runner's service account in namespace and accounts besides it, once
// each, in order.
func runnerSubjects(namespace string, accounts []string) []rbacv1.Subject {
	subjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: v1alpha1.RunnerServiceAccount, Namespace: namespace}}
	seen := map[string]bool{v1alpha1.RunnerServiceAccount: true}
	for _, a := range accounts {
		if a != "" && !seen[a] {
			seen[a] = true
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: a, Namespace: namespace})
		}
	}
	return subjects
}

// LabelRunnerNamespace marks the Role and RoleBinding that give the runners of one namespace
// access to Repositories in another; its value is the runners' namespace.
const LabelRunnerNamespace = "stash.dev/runner-namespace"

// SharedRepositoryAccessName is the name of the Role and RoleBinding in a Repository's
// namespace that let runners of namespace from use it.
func SharedRepositoryAccessName(from string) string {
	return v1alpha1.RunnerServiceAccount + "-from-" + from
}

// SharedRepositoryRole is the Role in namespace that lets the runners of namespace from read
// the Repositories in repos and their storage Secrets in secrets: what a backup into, or a
// restore from, a Repository that another namespace shares needs, and nothing more. Empty
// lists grant nothing (the Role of a namespace that no longer uses any Repository here).
func SharedRepositoryRole(namespace, from string, repos, secrets []string) *rbacv1.Role {
	var rules []rbacv1.PolicyRule
	if len(repos) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"repositories"}, Verbs: []string{"get"}, ResourceNames: repos})
	}
	if len(secrets) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: secrets})
	}
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: SharedRepositoryAccessName(from), Namespace: namespace,
			Labels: map[string]string{v1alpha1.LabelComponent: "runner", LabelRunnerNamespace: from}},
		Rules: rules,
	}
}

// SharedRepositoryRoleBinding binds SharedRepositoryRole to the runners of namespace from:
// its runner service account and accounts.
func SharedRepositoryRoleBinding(namespace, from string, accounts []string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: SharedRepositoryAccessName(from), Namespace: namespace,
			Labels: map[string]string{v1alpha1.LabelComponent: "runner", LabelRunnerNamespace: from}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: SharedRepositoryAccessName(from)},
		Subjects: runnerSubjects(from, accounts),
	}
}

// RunnerServiceAccount is the runner's service account in one namespace.
func RunnerServiceAccount(namespace string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.RunnerServiceAccount, Namespace: namespace, Labels: map[string]string{v1alpha1.LabelComponent: "runner"}}}
}

// Deadline is when a session started at start must have ended.
func Deadline(start time.Time, timeOut string) (time.Time, error) {
	d, err := time.ParseDuration(timeOut)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timeOut %q: %w", timeOut, err)
	}
	return start.Add(d), nil
}
