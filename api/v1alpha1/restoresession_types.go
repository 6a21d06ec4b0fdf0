package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// RestoreSession restores one snapshot of a Repository into a Redis, once.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=stash
// +kubebuilder:printcolumn:name="Repository",type=string,JSONPath=`.spec.repository.name`
// +kubebuilder:printcolumn:name="Snapshot",type=string,JSONPath=`.spec.snapshot`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Keys",type=integer,JSONPath=`.status.keysRestored`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.status.sessionDuration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RestoreSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RestoreSessionSpec   `json:"spec,omitempty"`
	Status RestoreSessionStatus `json:"status,omitempty"`
}

// ConflictPolicy says what a restore does with keys that already exist in the target.
// +kubebuilder:validation:Enum=Fail;Replace
type ConflictPolicy string

// Conflict policies.
const (
	// ConflictFail stops the restore at the first key that already exists; nothing that
	// was there is overwritten.
	ConflictFail ConflictPolicy = "Fail"
	// ConflictReplace overwrites existing keys with the snapshot's value.
	ConflictReplace ConflictPolicy = "Replace"
)

// ConditionRestoreRefused is set on a RestoreSession whose restore was refused before anything
// was written, for a reason its user can act on: Reason is one of the Reason* below, Message
// the facts. Clients phrase the next step in their own user's words (the plugin's flags).
const ConditionRestoreRefused = "RestoreRefused"

// Reasons of ConditionRestoreRefused.
const (
	// ReasonTargetNotEmpty: a target database holds keys, and neither FlushBeforeRestore nor
	// ConflictPolicy Replace was asked for.
	ReasonTargetNotEmpty = "TargetNotEmpty"
	// ReasonLossyRestore: the target cannot hold some values of the snapshot, and AllowLossy
	// was not asked for.
	ReasonLossyRestore = "LossyRestore"
	// ReasonPointInTimeSelection: PointInTime with databases or a key pattern
	// (CheckPointInTimeSelection).
	ReasonPointInTimeSelection = "PointInTimeSelection"
)

// SnapshotLatest asks for the newest snapshot of the repository.
const SnapshotLatest = "latest"

// RestoreSessionSpec says which snapshot goes where.
type RestoreSessionSpec struct {
	// Repository holds the snapshot.
	Repository RepositoryRef `json:"repository"`
	// Target is the Redis to restore into.
	Target Target `json:"target"`
	// Snapshot is a snapshot id or "latest" (the default).
	// +optional
	Snapshot string `json:"snapshot,omitempty"`
	// TimeOut bounds the restore, as a duration. Defaults to 1h.
	// +optional
	TimeOut string `json:"timeOut,omitempty"`
	// FlushBeforeRestore empties each restored database first. Off by default: a restore
	// never deletes data unless asked to.
	// +optional
	FlushBeforeRestore bool `json:"flushBeforeRestore,omitempty"`
	// ConflictPolicy is Fail (default: stop at the first existing key) or Replace.
	// +optional
	ConflictPolicy ConflictPolicy `json:"conflictPolicy,omitempty"`
	// AllowLossy restores a snapshot into a server that cannot hold some of its values (hash
	// field TTLs or vector sets into Valkey or an older Redis): those keys are left out and
	// listed in the runner's log. Off by default: such a restore is refused before anything
	// is written.
	// +optional
	AllowLossy bool `json:"allowLossy,omitempty"`
	// Databases restores only these logical databases of the snapshot.
	// +optional
	Databases []int32 `json:"databases,omitempty"`
	// KeyPattern restores only keys matching this glob (Redis MATCH syntax).
	// +optional
	KeyPattern string `json:"keyPattern,omitempty"`
	// PointInTime restores the source as it was at this instant (RFC 3339): the newest base
	// snapshot before it whose journal chain reaches it, then the journal replayed up to it
	// (continuous backup; docs/runner.md). Snapshot, if set, pins the chain. Databases and
	// KeyPattern do not apply.
	// +optional
	PointInTime *metav1.Time `json:"pointInTime,omitempty"`
	// RuntimeSettings shape the restore Job's Pod.
	// +optional
	RuntimeSettings *RuntimeSettings `json:"runtimeSettings,omitempty"`
	// Task is accepted for compatibility with Stash.
	// +optional
	Task *TaskRef `json:"task,omitempty"`
	// Hooks run before and after the restore (Stash's spec.hooks).
	// +optional
	Hooks *RestoreHooks `json:"hooks,omitempty"`
}

// PointInTimeStatus is where a restore to a point in time stopped.
type PointInTimeStatus struct {
	// Chain is the journal chain replayed: the id of its base snapshot.
	Chain string `json:"chain,omitempty"`
	// Offset is the source's replication offset the target's data is at.
	Offset int64 `json:"offset,omitempty"`
	// Time is when the follower received the last command replayed.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// Commands is the number of journal commands replayed on the base.
	Commands int64 `json:"commands,omitempty"`
}

// RestoreSessionStatus is the result of a restore.
type RestoreSessionStatus struct {
	// Phase is Pending, Running, Succeeded, Failed, Unknown or Invalid.
	// +optional
	Phase SessionPhase `json:"phase,omitempty"`
	// Snapshot is the id of the snapshot restored ("latest" resolved).
	// +optional
	Snapshot string `json:"snapshot,omitempty"`
	// PointInTime is how far a restore to a point in time got: the replication offset and the
	// receive time of the last command replayed, and the chain.
	// +optional
	PointInTime *PointInTimeStatus `json:"pointInTime,omitempty"`
	// KeysRestored is the number of keys written to the target.
	// +optional
	KeysRestored int64 `json:"keysRestored,omitempty"`
	// Bytes is the number of snapshot bytes read.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`
	// Method is how the keys were written: "replication" (the empty target loaded the snapshot
	// as a replica of the runner) or "restore" (RESTORE commands).
	// +optional
	Method string `json:"method,omitempty"`
	// SessionDuration is how long the restore took.
	// +optional
	SessionDuration string `json:"sessionDuration,omitempty"`
	// StartTime is when the restore started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the restore ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// SessionDeadline is when the session fails with DeadlineExceeded if still running.
	// +optional
	SessionDeadline *metav1.Time `json:"sessionDeadline,omitempty"`
	// Error says why the restore failed and how far it got.
	// +optional
	Error string `json:"error,omitempty"`
	// Job is the name of the Job that runs the restore.
	// +optional
	Job string `json:"job,omitempty"`
	// Progress is updated by the runner every few seconds while the restore runs.
	// +optional
	Progress *Progress `json:"progress,omitempty"`
	// Conditions are the latest observations of the session.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RestoreSessionList is a list of RestoreSessions.
// +kubebuilder:object:root=true
type RestoreSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RestoreSession `json:"items"`
}
