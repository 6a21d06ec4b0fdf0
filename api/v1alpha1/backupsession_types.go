package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BackupSession is one run of a BackupConfiguration, created by its CronJob at each tick or
// by `kubectl stash backup trigger`. Its status tells how the backup went.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=stash
// +kubebuilder:printcolumn:name="Invoker",type=string,JSONPath=`.spec.invoker.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Snapshot",type=string,JSONPath=`.status.snapshot`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keys`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.status.sessionDuration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BackupSessionSpec   `json:"spec,omitempty"`
	Status BackupSessionStatus `json:"status,omitempty"`
}

// NewBackupSession returns a session that runs bc once, the one way every BackupSession is
// made: by the CronJob's tick (stash-runner trigger) and by `kubectl stash backup trigger`.
// The API server names it (bc's name and a random suffix). bc is an owner, so deleting bc
// deletes its sessions, but not the controller: nothing reconciles sessions through their
// configuration. The invoker labels are those Default sets.
func NewBackupSession(bc *BackupConfiguration) *BackupSession {
	return &BackupSession{
		TypeMeta: metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: KindBackupSession},
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: bc.Name + "-",
			Namespace:    bc.Namespace,
			Labels:       map[string]string{LabelInvokerKind: KindBackupConfiguration, LabelInvokerName: bc.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: GroupVersion.String(), Kind: KindBackupConfiguration, Name: bc.Name, UID: bc.UID,
			}},
		},
		Spec: BackupSessionSpec{Invoker: BackupInvokerRef{APIGroup: GroupVersion.Group, Kind: KindBackupConfiguration, Name: bc.Name}},
	}
}

// BackupSessionSpec names the BackupConfiguration this session runs. It cannot change.
type BackupSessionSpec struct {
	// Invoker is the BackupConfiguration that this session runs.
	Invoker BackupInvokerRef `json:"invoker"`
	// RetryLeft is how many retries the session still has.
	// +optional
	RetryLeft int32 `json:"retryLeft,omitempty"`
}

// BackupInvokerRef points to the object that invoked a BackupSession.
type BackupInvokerRef struct {
	// APIGroup of the invoker. Defaults to stash.dev.
	// +optional
	APIGroup string `json:"apiGroup,omitempty"`
	// Kind of the invoker. Defaults to BackupConfiguration, the only kind supported.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the invoker, in the session's namespace.
	Name string `json:"name,omitempty"`
}

// SessionPhase is the state of a BackupSession or RestoreSession.
type SessionPhase string

// Session phases.
const (
	SessionPending   SessionPhase = "Pending"
	SessionSkipped   SessionPhase = "Skipped"
	SessionRunning   SessionPhase = "Running"
	SessionSucceeded SessionPhase = "Succeeded"
	SessionFailed    SessionPhase = "Failed"
	SessionUnknown   SessionPhase = "Unknown"
	SessionInvalid   SessionPhase = "Invalid"
)

// Condition types of sessions.
const (
	ConditionDeadlineExceeded       = "DeadlineExceeded"
	ConditionRetentionPolicyApplied = "RetentionPolicyApplied"
	ConditionBackupSkipped          = "BackupSkipped"
	ConditionBackupHistoryCleaned   = "BackupHistoryCleaned"
	ConditionRepositoryMetricsSent  = "RepositoryMetricsPushed"
)

// BackupSessionStatus is the result of a backup.
type BackupSessionStatus struct {
	// Phase is Pending, Skipped, Running, Succeeded, Failed or Unknown.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// Snapshot is the id of the snapshot written.
	// +optional
	Snapshot string `json:"snapshot,omitempty"`
	// Keys is the number of keys written.
	// +optional
	Keys int64 `json:"keys,omitempty"`
	// CutPause is how long writes were paused on every master for a consistent cut
	// (spec.target.consistentCut), never more than its maxPause.
	// +optional
	CutPause *metav1.Duration `json:"cutPause,omitempty"`
	// Bytes is the stored (compressed, encrypted) size of the snapshot.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// DataBytes is the size of the dump before compression.
	// +optional
	DataBytes int64 `json:"dataBytes,omitempty"`
	// SessionDuration is how long the backup took.
	// +optional
	SessionDuration string `json:"sessionDuration,omitempty"`
	// StartTime is when the backup started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the backup ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// SessionDeadline is when the session fails with DeadlineExceeded if still running.
	// +optional
	SessionDeadline *metav1.Time `json:"sessionDeadline,omitempty"`
	// Retried is how many times the backup was retried.
	// +optional
	Retried int32 `json:"retried,omitempty"`
	// Error says why the backup failed.
	// +optional
	Error string `json:"error,omitempty"`
	// Job is the name of the Job that runs the backup.
	// +optional
	Job string `json:"job,omitempty"`
	// Progress is updated by the runner every few seconds while the backup runs.
	// +optional
	Progress *Progress `json:"progress,omitempty"`
	// Repository is the state of the repository after this backup and its retention run,
	// reported by the runner (which holds the credentials) for the controller to publish
	// in the Repository's status.
	// +optional
	Repository *RepositoryStats `json:"repository,omitempty"`
	// Conditions are the latest observations of the session.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// BackupSessionList is a list of BackupSessions.
// +kubebuilder:object:root=true
type BackupSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupSession `json:"items"`
}

// Progress is how far a running backup or restore has got.
type Progress struct {
	// Keys processed so far.
	Keys int64 `json:"keys"`
	// TotalKeys expected (from DBSIZE), 0 when unknown.
	// +optional
	TotalKeys int64 `json:"totalKeys,omitempty"`
	// Bytes of the dump processed so far (uncompressed).
	Bytes int64 `json:"bytes"`
	// UpdateTime is when the runner last reported.
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
}

// RepositoryStats summarizes a repository's content.
type RepositoryStats struct {
	// SnapshotCount is the number of snapshots.
	SnapshotCount int64 `json:"snapshotCount"`
	// TotalSizeBytes is the stored size of all snapshots.
	TotalSizeBytes int64 `json:"totalSizeBytes"`
	// SnapshotsRemoved is how many snapshots the retention policy removed.
	// +optional
	SnapshotsRemoved int64 `json:"snapshotsRemoved,omitempty"`
	// FirstSnapshotTime is when the oldest snapshot was taken.
	// +optional
	FirstSnapshotTime *metav1.Time `json:"firstSnapshotTime,omitempty"`
}
