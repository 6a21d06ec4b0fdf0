package jobs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"

	"stash.dev/redis/api/v1alpha1"
)

func TestRunnerRoleBindingBindsChosenAccounts(t *testing.T) {
	rb := RunnerRoleBinding("db", "backup-identity", "", v1alpha1.RunnerServiceAccount, "backup-identity", "restore-identity")
	want := []rbacv1.Subject{
		{Kind: "ServiceAccount", Name: v1alpha1.RunnerServiceAccount, Namespace: "db"},
		{Kind: "ServiceAccount", Name: "backup-identity", Namespace: "db"},
		{Kind: "ServiceAccount", Name: "restore-identity", Namespace: "db"},
	}
	if d := cmp.Diff(want, rb.Subjects); d != "" {
		t.Errorf("subjects (-want +got):\n%s", d)
	}
}

// TestSharedRepositoryRole: the Role in a Repository's namespace names exactly the Repositories
// and storage Secrets, with get only, and is bound to the runners of the using namespace.
func TestSharedRepositoryRole(t *testing.T) {
	r := SharedRepositoryRole("repos", "app", []string{"shared"}, []string{"shared-storage"})
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"repositories"}, Verbs: []string{"get"}, ResourceNames: []string{"shared"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"shared-storage"}},
	}
	if d := cmp.Diff(want, r.Rules); d != "" {
		t.Errorf("rules (-want +got):\n%s", d)
	}
	if r.Namespace != "repos" || r.Name != "stash-runner-from-app" || r.Labels[LabelRunnerNamespace] != "app" {
		t.Errorf("role %s/%s labels %v", r.Namespace, r.Name, r.Labels)
	}
	if r := SharedRepositoryRole("repos", "app", nil, nil); len(r.Rules) != 0 {
		t.Errorf("a Role with nothing to grant has rules %v", r.Rules)
	}
	rb := SharedRepositoryRoleBinding("repos", "app", []string{"backup-identity"})
	if rb.Namespace != "repos" || rb.RoleRef.Name != r.Name || len(rb.Subjects) != 2 ||
		rb.Subjects[0].Namespace != "app" || rb.Subjects[1].Name != "backup-identity" {
		t.Errorf("binding %+v", rb)
	}
}
