package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Repository is a place where snapshots of Redis are kept: a bucket prefix in object storage
// or a directory on a volume. Its storage Secret holds the repository password (every
// repository is encrypted) and the credentials of the backend.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=repo,categories=stash
// +kubebuilder:printcolumn:name="Backend",type=string,JSONPath=`.status.backend`
// +kubebuilder:printcolumn:name="Integrity",type=boolean,JSONPath=`.status.integrity`
// +kubebuilder:printcolumn:name="Size",type=string,JSONPath=`.status.totalSize`
// +kubebuilder:printcolumn:name="Snapshot-Count",type=integer,JSONPath=`.status.snapshotCount`
// +kubebuilder:printcolumn:name="Last-Successful-Backup",type=date,JSONPath=`.status.lastBackupTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Repository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RepositorySpec   `json:"spec,omitempty"`
	Status RepositoryStatus `json:"status,omitempty"`
}

// RepositorySpec says where the snapshots live and who may use them.
type RepositorySpec struct {
	// Backend is the storage that holds the snapshots.
	Backend Backend `json:"backend"`

	// WipeOut deletes the snapshots from the backend when the Repository is deleted.
	// Not allowed for local backends, whose data the controller cannot reach.
	// +optional
	WipeOut bool `json:"wipeOut,omitempty"`

	// UsagePolicy says which namespaces may back up into or restore from this Repository.
	// Defaults to the Repository's own namespace.
	// +optional
	UsagePolicy *UsagePolicy `json:"usagePolicy,omitempty"`
}

// Backend is exactly one storage location plus the Secret that unlocks it.
type Backend struct {
	// StorageSecretName names a Secret in the Repository's namespace with the repository
	// password (RESTIC_PASSWORD or ENCRYPTION_PASSWORD) and the backend's credentials.
	StorageSecretName string `json:"storageSecretName,omitempty"`

	// Local keeps snapshots in a directory of a volume mounted into the backup Job.
	// +optional
	Local *LocalSpec `json:"local,omitempty"`
	// S3 keeps snapshots in an S3 bucket or an S3-compatible store (MinIO, Ceph RGW, ...).
	// +optional
	S3 *S3Spec `json:"s3,omitempty"`
	// GCS keeps snapshots in a Google Cloud Storage bucket.
	// +optional
	GCS *GCSSpec `json:"gcs,omitempty"`
	// Azure keeps snapshots in an Azure Blob Storage container.
	// +optional
	Azure *AzureSpec `json:"azure,omitempty"`
}

// LocalSpec is a directory on a volume. The volume is mounted at MountPath in the Jobs.
type LocalSpec struct {
	// VolumeSource is the volume that holds the repository (hostPath, persistentVolumeClaim, nfs, ...).
	corev1.VolumeSource `json:",inline"`
	// MountPath is where the volume is mounted in the backup and restore Jobs; an absolute path.
	MountPath string `json:"mountPath,omitempty"`
	// SubPath is a directory inside the volume; relative, without "..".
	// +optional
	SubPath string `json:"subPath,omitempty"`
}

// S3Spec is a bucket on Amazon S3 or an S3-compatible server.
type S3Spec struct {
	// Endpoint is the server URL, such as https://s3.amazonaws.com or http://minio.storage:9000.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Bucket is the bucket name.
	Bucket string `json:"bucket,omitempty"`
	// Prefix is the directory inside the bucket.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// Region of the bucket, such as us-east-1.
	// +optional
	Region string `json:"region,omitempty"`
	// InsecureTLS skips verification of the endpoint's certificate. Use CA_CERT_DATA in the
	// storage Secret instead whenever possible.
	// +optional
	InsecureTLS bool `json:"insecureTLS,omitempty"`
}

// GCSSpec is a Google Cloud Storage bucket.
type GCSSpec struct {
	// Bucket is the bucket name.
	Bucket string `json:"bucket,omitempty"`
	// Prefix is the directory inside the bucket.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// MaxConnections is accepted for compatibility with Stash and ignored.
	// +optional
	MaxConnections int64 `json:"maxConnections,omitempty"`
}

// AzureSpec is an Azure Blob Storage container.
type AzureSpec struct {
	// Container is the container name.
	Container string `json:"container,omitempty"`
	// Prefix is the directory inside the container.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// MaxConnections is accepted for compatibility with Stash and ignored.
	// +optional
	MaxConnections int64 `json:"maxConnections,omitempty"`
}

// UsagePolicy limits which namespaces may use a Repository.
type UsagePolicy struct {
	// AllowedNamespaces selects the namespaces.
	AllowedNamespaces AllowedNamespaces `json:"allowedNamespaces"`
}

// FromNamespaces chooses how AllowedNamespaces picks namespaces.
// +kubebuilder:validation:Enum=Same;All;Selector
type FromNamespaces string

// The ways a Repository can be shared.
const (
	NamespacesFromSame     FromNamespaces = "Same"
	NamespacesFromAll      FromNamespaces = "All"
	NamespacesFromSelector FromNamespaces = "Selector"
)

// AllowedNamespaces is Same (the Repository's namespace), All, or the namespaces whose
// labels match Selector.
type AllowedNamespaces struct {
	// From is Same, All or Selector. Defaults to Same.
	// +optional
	From FromNamespaces `json:"from,omitempty"`
	// Selector matches namespace labels when From is Selector.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// RepositoryStatus is what the controller knows of the repository's content.
type RepositoryStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Backend is a one-word summary of the backend (gcs, s3, azure, local).
	// +optional
	Backend string `json:"backend,omitempty"`
	// FirstBackupTime is when the oldest snapshot was taken.
	// +optional
	FirstBackupTime *metav1.Time `json:"firstBackupTime,omitempty"`
	// LastBackupTime is when the newest successful snapshot was taken.
	// +optional
	LastBackupTime *metav1.Time `json:"lastBackupTime,omitempty"`
	// Integrity is the result of the last check of the repository.
	// +optional
	Integrity *bool `json:"integrity,omitempty"`
	// TotalSize is the stored size of all snapshots, human readable.
	// +optional
	TotalSize string `json:"totalSize,omitempty"`
	// TotalSizeBytes is the stored size of all snapshots in bytes.
	// +optional
	TotalSizeBytes int64 `json:"totalSizeBytes,omitempty"`
	// SnapshotCount is the number of snapshots.
	// +optional
	SnapshotCount int64 `json:"snapshotCount,omitempty"`
	// SnapshotsRemovedOnLastCleanup is how many snapshots the last retention run removed.
	// +optional
	SnapshotsRemovedOnLastCleanup int64 `json:"snapshotsRemovedOnLastCleanup,omitempty"`
	// Conditions are the latest observations of the Repository.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RepositoryList is a list of Repositories.
// +kubebuilder:object:root=true
type RepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Repository `json:"items"`
}
