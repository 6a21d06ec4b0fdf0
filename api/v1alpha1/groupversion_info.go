// Package v1alpha1 holds the stash.dev/v1alpha1 API: Repository, BackupConfiguration,
// BackupSession and RestoreSession, with their defaults and validation.
//
// Default() and Validate() are pure functions (no client, no context) so that the admission
// webhook and `kubectl stash validate` give the same verdict on the same object: a GitOps
// pipeline learns offline what the cluster will say. Checks that need the cluster (does the
// Repository exist, does the Secret hold the keys) live in the webhook.
//
// +kubebuilder:object:generate=true
// +groupName=stash.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "stash.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Repository{}, &RepositoryList{},
		&BackupConfiguration{}, &BackupConfigurationList{},
		&BackupSession{}, &BackupSessionList{},
		&RestoreSession{}, &RestoreSessionList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// Kind names, used in messages and in BackupSession invokers.
const (
	KindRepository          = "Repository"
	KindBackupConfiguration = "BackupConfiguration"
	KindBackupSession       = "BackupSession"
	KindRestoreSession      = "RestoreSession"
)
