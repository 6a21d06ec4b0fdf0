package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewBackupSession(t *testing.T) {
	bc := &BackupConfiguration{}
	bc.Name, bc.Namespace, bc.UID = "nightly", "db", "uid-1"
	s := NewBackupSession(bc)
	if s.GenerateName != "nightly-" || s.Namespace != "db" || s.Name != "" {
		t.Errorf("name: %q/%q generateName %q", s.Namespace, s.Name, s.GenerateName)
	}
	if s.APIVersion != "stash.dev/v1alpha1" || s.Kind != "BackupSession" {
		t.Errorf("type: %s %s", s.APIVersion, s.Kind)
	}
	if diff := cmp.Diff(map[string]string{LabelInvokerKind: "BackupConfiguration", LabelInvokerName: "nightly"}, s.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(BackupInvokerRef{APIGroup: "stash.dev", Kind: "BackupConfiguration", Name: "nightly"}, s.Spec.Invoker); diff != "" {
		t.Errorf("invoker (-want +got):\n%s", diff)
	}
	owner := s.OwnerReferences
	if len(owner) != 1 || owner[0].UID != "uid-1" || owner[0].Kind != "BackupConfiguration" || owner[0].APIVersion != "stash.dev/v1alpha1" ||
		owner[0].Name != "nightly" || owner[0].Controller != nil {
		t.Errorf("owner references: %+v", owner)
	}
	// Defaulting changes nothing: the constructor already says everything Default would.
	d := s.DeepCopy()
	d.Default()
	if diff := cmp.Diff(s, d); diff != "" {
		t.Errorf("Default changed the session (-new +defaulted):\n%s", diff)
	}
	if errs := s.Validate(); len(errs) > 0 {
		t.Errorf("invalid: %v", errs)
	}
}
