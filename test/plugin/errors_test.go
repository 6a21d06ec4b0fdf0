package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestErrorsAreOneLine checks the failures a user meets first: each is one line that names
// the object and the next command, the exit status is 1, and there is no stack trace.
func TestErrorsAreOneLine(t *testing.T) {
	nobody := addUser(t, cluster.Env, "nobody")
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: demo}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		kubeconfig string
		args       []string
		want       string
	}{
		{"unknown backupconfiguration", cluster.Kubeconfig, []string{"stash", "backup", "trigger", "nope", "-n", "demo"},
			`error: backupconfiguration "nope" not found in namespace "demo" (see: kubectl stash backup list -n demo)`},
		{"pause unknown", cluster.Kubeconfig, []string{"stash", "backup", "pause", "nope", "-n", "demo"},
			`error: backupconfiguration "nope" not found in namespace "demo" (see: kubectl stash backup list -n demo)`},
		{"missing repository", cluster.Kubeconfig, []string{"stash", "snapshots", "list", "nope", "-n", "demo"},
			`error: repository "nope" not found in namespace "demo" (see: kubectl get repositories.stash.dev -n demo)`},
		{"restore from missing repository", cluster.Kubeconfig, []string{"stash", "restore", "nope", "--to", "appbinding/sample-redis", "-n", "demo"},
			`error: repository "nope" not found in namespace "demo" (see: kubectl get repositories.stash.dev -n demo)`},
		{"missing namespace", cluster.Kubeconfig, []string{"stash", "create", "repository", "r", "-n", "nope", "--provider", "gcs", "--bucket", "bkt", "--secret", "s"},
			`error: namespaces "nope" not found`},
		{"no permission", nobody, []string{"stash", "backup", "trigger", "nightly", "-n", "demo"},
			`error: backupconfigurations.stash.dev "nightly" is forbidden: User "nobody" cannot get resource "backupconfigurations" in API group "stash.dev" in the namespace "demo" (see: kubectl auth can-i --list -n demo, and ask a cluster admin for access)`},
		{"no permission to list", nobody, []string{"stash", "backup", "list", "-n", "demo"},
			`error: backupconfigurations.stash.dev is forbidden: User "nobody" cannot list resource "backupconfigurations" in API group "stash.dev" in the namespace "demo"`},
		{"unreachable", unreachable, []string{"stash", "backup", "list"},
			`error: cannot reach the Kubernetes API server at https://127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused (check --context and --kubeconfig; see: kubectl cluster-info)`},
		{"unreachable on create", unreachable, []string{"stash", "create", "repository", "r", "--provider", "gcs", "--bucket", "bkt", "--secret", "s"},
			`error: cannot reach the Kubernetes API server at https://127.0.0.1:1`},
	}
	// kubectl's flags after the plugin name are the plugin's: --kubeconfig wins over $KUBECONFIG.
	if out, err := kubectl.As(unreachable).Try(t, "stash", "--kubeconfig", cluster.Kubeconfig, "backup", "list", "-n", "demo"); err != nil || !strings.Contains(out, "nightly") {
		t.Errorf("--kubeconfig after the plugin name: %v\n%s", err, out)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := kubectl.As(tc.kubeconfig).Try(t, tc.args...)
			if exitCode(err) != 1 {
				t.Errorf("exit %v, want 1", err)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], tc.want) {
				t.Errorf("output:\n%s\nwant one line starting with:\n%s", out, tc.want)
			}
		})
	}
}

// TestSnapshotsWithoutSecretAccess lists snapshots as a user who may read stash.dev objects
// but not Secrets: the plugin falls back to what the cluster knows.
func TestSnapshotsWithoutSecretAccess(t *testing.T) {
	ctx := context.Background()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "stash-viewer", Namespace: "demo"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"stash.dev"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "stash-viewer", Namespace: "demo"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "stash-viewer"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "viewer"}}}
	if err := cluster.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	viewer := addUser(t, cluster.Env, "viewer")
	out, err := kubectl.As(viewer).Try(t, "stash", "snapshots", "list", "gcs-repo", "-n", "demo")
	if err != nil {
		t.Fatalf("snapshots list: %v\n%s", err, out)
	}
	if !strings.Contains(out, `no permission to read storage Secret "gcs-secret"; showing what the cluster knows`) || !strings.Contains(out, "Repository gcs-repo:") {
		t.Errorf("output:\n%s", out)
	}
}
