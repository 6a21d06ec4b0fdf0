package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BackupConfiguration backs up a Redis into a Repository on a schedule. The controller runs
// a CronJob that creates a BackupSession at each tick; each BackupSession runs one backup Job.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=bc,categories=stash
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`
// +kubebuilder:printcolumn:name="Repository",type=string,JSONPath=`.spec.repository.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Last-Success",type=date,JSONPath=`.status.lastSuccessfulBackupTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupConfigurationSpec   `json:"spec,omitempty"`
	Status BackupConfigurationStatus `json:"status,omitempty"`
}

// BackupConfigurationSpec says what to back up, where, when and how much to keep.
type BackupConfigurationSpec struct {
	// Schedule is a cron expression in the syntax of CronJob ("0 */6 * * *", "@daily").
	Schedule string `json:"schedule,omitempty"`
	// TimeZone is the IANA time zone the schedule runs in ("Europe/Berlin"), passed to the
	// CronJob's timeZone: a backup at 02:00 stays at 02:00 local time across daylight saving
	// changes. Empty means the controller manager's time zone (UTC in most clusters).
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
	// Paused stops scheduled backups; `kubectl stash backup trigger` still runs one.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Repository receives the snapshots.
	Repository RepositoryRef `json:"repository"`
	// Target is the Redis to back up.
	Target Target `json:"target"`
	// RetentionPolicy says which snapshots to keep after each successful backup.
	// +optional
	RetentionPolicy *RetentionPolicy `json:"retentionPolicy,omitempty"`
	// BackupHistoryLimit is how many succeeded BackupSessions to keep. Defaults to 1.
	// +optional
	BackupHistoryLimit *int32 `json:"backupHistoryLimit,omitempty"`
	// FailedBackupHistoryLimit is how many failed BackupSessions to keep. Defaults to 3.
	// +optional
	FailedBackupHistoryLimit *int32 `json:"failedBackupHistoryLimit,omitempty"`
	// TimeOut bounds one backup, as a duration ("30m", "2h"). A session that runs longer
	// fails with DeadlineExceeded. Defaults to 1h.
	// +optional
	TimeOut string `json:"timeOut,omitempty"`
	// RetryConfig says how often a failed backup is retried within one session.
	// +optional
	RetryConfig *RetryConfig `json:"retryConfig,omitempty"`
	// RuntimeSettings shape the backup Job's Pod.
	// +optional
	RuntimeSettings *RuntimeSettings `json:"runtimeSettings,omitempty"`
	// Task is accepted for compatibility with Stash.
	// +optional
	Task *TaskRef `json:"task,omitempty"`
	// Hooks run before and after each backup (Stash's spec.hooks).
	// +optional
	Hooks *BackupHooks `json:"hooks,omitempty"`
	// Continuous, when enabled, also follows the target's replication stream into the
	// repository's journal (point-in-time recovery; docs/runner.md): the controller runs the
	// follower as a Deployment of one Pod beside the scheduled backups.
	// +optional
	Continuous *ContinuousBackup `json:"continuous,omitempty"`
}

// ContinuousBackup configures the follower of a BackupConfiguration.
type ContinuousBackup struct {
	// Enabled runs the follower (while the configuration is not paused).
	Enabled bool `json:"enabled,omitempty"`
	// SegmentInterval closes a journal segment this long after its first command, as a
	// duration ("10s", "1m"): at most this much of the newest writes is not yet in the
	// repository. Defaults to 10s.
	// +optional
	SegmentInterval string `json:"segmentInterval,omitempty"`
	// BaseInterval takes a new base snapshot (and starts a new journal chain) this long after
	// the chain's base, while the stream is still recorded, as a duration ("6h"): a restore to
	// a point replays at most about this much journal. Defaults to 6h; "0s" never does.
	// +optional
	BaseInterval string `json:"baseInterval,omitempty"`
	// Window keeps every base and journal segment that a restore to an instant of this last
	// stretch of time needs ("168h" for 7 days), and removes older chains with their bases
	// after each new base. Empty keeps them (the retention policy of snapshots applies).
	// +optional
	Window string `json:"window,omitempty"`
}

// ContinuousStatus is what the follower reports: the journal chain it writes and the window of
// instants a restore can reach through it.
type ContinuousStatus struct {
	// Chain is the journal chain being written: the id of its base snapshot.
	// +optional
	Chain string `json:"chain,omitempty"`
	// WindowStart is the instant of the chain's base snapshot.
	// +optional
	WindowStart *metav1.Time `json:"windowStart,omitempty"`
	// WindowEnd is when the follower received the last command of the newest closed segment:
	// the latest instant a restore can reach.
	// +optional
	WindowEnd *metav1.Time `json:"windowEnd,omitempty"`
	// Segments is the number of segments of the chain written by this follower.
	// +optional
	Segments int64 `json:"segments,omitempty"`
	// Follower is the Pod that reported last.
	// +optional
	Follower string `json:"follower,omitempty"`
	// Inexact are the newest stretches of the chain (at most 10) where the journal cannot place
	// the source's writes to the promised precision (the follower was down): a restore to an
	// instant inside one is refused.
	// +optional
	Inexact []InexactStretch `json:"inexact,omitempty"`
	// WindowKeptFrom and WindowBytes are what the last retention pass of spec.continuous.window
	// kept: the oldest instant kept reachable, and the bytes of the bases and segments kept.
	// +optional
	WindowKeptFrom *metav1.Time `json:"windowKeptFrom,omitempty"`
	// +optional
	WindowBytes int64 `json:"windowBytes,omitempty"`
	// Error is the follower's last error, empty while it runs well.
	// +optional
	Error string `json:"error,omitempty"`
}

// InexactStretch is a stretch of a journal chain where the source ran Writes that no time mark
// of the source places to the promised precision.
type InexactStretch struct {
	From   metav1.Time `json:"from"`
	To     metav1.Time `json:"to"`
	Writes int64       `json:"writes"`
}

// RetentionPolicy keeps snapshots by count and by calendar bucket, like restic's forget.
type RetentionPolicy struct {
	// Name of the policy, for messages.
	// +optional
	Name string `json:"name,omitempty"`
	// KeepLast keeps the newest N snapshots.
	// +optional
	KeepLast *int32 `json:"keepLast,omitempty"`
	// KeepHourly keeps the newest snapshot of each of the last N hours that have one.
	// +optional
	KeepHourly *int32 `json:"keepHourly,omitempty"`
	// KeepDaily keeps the newest snapshot of each of the last N days that have one.
	// +optional
	KeepDaily *int32 `json:"keepDaily,omitempty"`
	// KeepWeekly keeps the newest snapshot of each of the last N weeks that have one.
	// +optional
	KeepWeekly *int32 `json:"keepWeekly,omitempty"`
	// KeepMonthly keeps the newest snapshot of each of the last N months that have one.
	// +optional
	KeepMonthly *int32 `json:"keepMonthly,omitempty"`
	// KeepYearly keeps the newest snapshot of each of the last N years that have one.
	// +optional
	KeepYearly *int32 `json:"keepYearly,omitempty"`
	// Prune deletes the data of forgotten snapshots. Snapshots are self-contained, so
	// forgetting always deletes; the field is accepted for compatibility with Stash.
	// +optional
	Prune bool `json:"prune,omitempty"`
	// DryRun reports what would be removed without removing it.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// RetryConfig retries a failed backup Job.
type RetryConfig struct {
	// MaxRetry is the number of retries after the first failure. Defaults to 1.
	// +optional
	MaxRetry int32 `json:"maxRetry,omitempty"`
	// Delay is the pause before a retry, as a duration. Informational: the Job controller's
	// exponential back-off decides the real delay.
	// +optional
	Delay string `json:"delay,omitempty"`
}

// BackupConfigurationPhase summarizes a BackupConfiguration's readiness.
type BackupConfigurationPhase string

// BackupConfiguration phases.
const (
	BackupConfigurationReady    BackupConfigurationPhase = "Ready"
	BackupConfigurationNotReady BackupConfigurationPhase = "NotReady"
	BackupConfigurationInvalid  BackupConfigurationPhase = "Invalid"
)

// Condition types of a BackupConfiguration.
const (
	ConditionRepositoryFound    = "RepositoryFound"
	ConditionBackendSecretFound = "BackendSecretFound"
	ConditionBackupTargetFound  = "BackupTargetFound"
	ConditionCronJobCreated     = "CronJobCreated"
	// ConditionFollowerDeployed is about the Deployment of the continuous-backup follower.
	ConditionFollowerDeployed = "FollowerDeployed"
	// ConditionContinuousBackupRunning is true while the follower's Pod is available and has
	// reported no error: false says the journal is not growing, and why.
	ConditionContinuousBackupRunning = "ContinuousBackupRunning"
	ConditionValidationPassed        = "ValidationPassed"
)

// BackupConfigurationStatus says whether backups can run and when they last did.
type BackupConfigurationStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase is Ready, NotReady (something referenced is missing) or Invalid.
	// +optional
	Phase BackupConfigurationPhase `json:"phase,omitempty"`
	// Message says what to fix when the phase is not Ready.
	// +optional
	Message string `json:"message,omitempty"`
	// LastBackupTime is when the last BackupSession finished.
	// +optional
	LastBackupTime *metav1.Time `json:"lastBackupTime,omitempty"`
	// LastSuccessfulBackupTime is when the last successful BackupSession finished.
	// +optional
	LastSuccessfulBackupTime *metav1.Time `json:"lastSuccessfulBackupTime,omitempty"`
	// NextScheduleTime is when the next scheduled backup starts.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// Continuous is the follower's report, with spec.continuous enabled.
	// +optional
	Continuous *ContinuousStatus `json:"continuous,omitempty"`
	// Conditions are the latest observations of the BackupConfiguration.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BackupConfigurationList is a list of BackupConfigurations.
// +kubebuilder:object:root=true
type BackupConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupConfiguration `json:"items"`
}
