package webhook_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/plugin"
	"stash.dev/redis/test/clustertest"
)

var (
	cluster   *clustertest.Cluster
	pluginDir string
	fixtures  = filepath.Join(clustertest.RootDir(), "test", "fixtures")
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if cluster, pluginDir, err = clustertest.StartWithPlugin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	ctx := context.Background()
	for _, ns := range []string{"demo", "other"} {
		if err := cluster.CreateNamespace(ctx, ns, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	// The objects the fixtures refer to, applied with the real kubectl through the webhook.
	if out, err := cluster.Kubectl(ctx, pluginDir, "apply", "-f", filepath.Join(fixtures, "cluster", "prereqs.yaml")); err != nil {
		fmt.Fprintf(os.Stderr, "apply prerequisites: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func TestValidObjectIsAdmittedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	repo := &v1alpha1.Repository{}
	repo.Name, repo.Namespace = "defaulted", "demo"
	repo.Spec.Backend = v1alpha1.Backend{StorageSecretName: "gcs-secret", GCS: &v1alpha1.GCSSpec{Bucket: "stash-backups", Prefix: "/team/redis/"}}
	if err := cluster.Client.Create(ctx, repo); err != nil {
		t.Fatalf("create repository: %v", err)
	}
	got := &v1alpha1.Repository{}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(repo), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Backend.GCS.Prefix != "team/redis" || got.Spec.UsagePolicy == nil || got.Spec.UsagePolicy.AllowedNamespaces.From != v1alpha1.NamespacesFromSame {
		t.Errorf("repository not defaulted by the webhook: %+v", got.Spec)
	}

	bc := &v1alpha1.BackupConfiguration{}
	bc.Name, bc.Namespace = "defaulted", "demo"
	bc.Spec = v1alpha1.BackupConfigurationSpec{Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "defaulted"},
		Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "redis:6379", AuthSecret: &v1alpha1.AuthSecret{Name: "redis-auth"}}}}
	if err := cluster.Client.Create(ctx, bc); err != nil {
		t.Fatalf("create backupconfiguration: %v", err)
	}
	gotBC := &v1alpha1.BackupConfiguration{}
	if err := cluster.Client.Get(ctx, client.ObjectKeyFromObject(bc), gotBC); err != nil {
		t.Fatal(err)
	}
	s := gotBC.Spec
	if s.TimeOut != v1alpha1.DefaultTimeOut || s.BackupHistoryLimit == nil || *s.BackupHistoryLimit != 1 ||
		s.Target.Redis.Mode != v1alpha1.RedisModeStandalone || s.Target.Redis.AuthSecret.PasswordKey != "password" {
		t.Errorf("backupconfiguration not defaulted by the webhook: %+v", s)
	}

	// An update that moves the repository's backend is denied: old snapshots would be stranded.
	got.Spec.Backend.GCS.Bucket = "other-bucket"
	err := cluster.Client.Update(ctx, got)
	if err == nil || !strings.Contains(err.Error(), "spec.backend: Forbidden: the backend of a Repository cannot change") {
		t.Errorf("want backend change denied, got %v", err)
	}
}

// wantFields reads the "# want: field.path" lines at the top of a fixture.
func wantFields(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
			want = append(want, w)
		}
	}
	if len(want) == 0 {
		t.Fatalf("%s has no '# want: field.path' line", file)
	}
	return want
}

func fixtureFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtures, dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	sort.Strings(files)
	return files
}

// TestInvalidFixturesAreDenied applies every invalid fixture with the real kubectl and a
// server-side dry run: the API server (through our webhook) refuses it and names the field.
func TestInvalidFixturesAreDenied(t *testing.T) {
	for _, file := range append(fixtureFiles(t, "invalid"), fixtureFiles(t, "cluster-invalid")...) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := cluster.Kubectl(context.Background(), pluginDir, "apply", "--dry-run=server", "-f", file)
			if err == nil {
				t.Fatalf("kubectl apply --dry-run=server admitted an invalid object:\n%s", out)
			}
			for _, f := range wantFields(t, file) {
				if !strings.Contains(out, f) {
					t.Errorf("denial does not name %s:\n%s", f, out)
				}
			}
		})
	}
}

// TestWebhookDenialIsPrinted checks what a user sees from kubectl. The cron check exists
// only in the webhook (the CRD schema has no pattern for schedules), so this message can
// only have come from it; kubectl formats the webhook's Invalid status as "is invalid".
func TestWebhookDenialIsPrinted(t *testing.T) {
	out, err := cluster.Kubectl(context.Background(), pluginDir, "apply", "--dry-run=server", "-f", filepath.Join(fixtures, "invalid", "bc-bad-schedule.yaml"))
	if err == nil {
		t.Fatal("want a denial")
	}
	want := `The BackupConfiguration "bc-bad-schedule" is invalid: spec.schedule: Invalid value: "61 * * * *": not a valid cron expression: end of range (61) above maximum (59): 61`
	if !strings.Contains(out, want) {
		t.Errorf("kubectl output lacks the webhook's denial\nwant: %s\ngot:  %s", want, out)
	}
}

// TestOfflineVerdictEqualsWebhookVerdict is the GitOps promise: for every fixture,
// `kubectl stash validate` (offline) and the cluster (server-side dry run through the
// webhook) agree on valid or invalid, and name the same fields.
func TestOfflineVerdictEqualsWebhookVerdict(t *testing.T) {
	files := append(fixtureFiles(t, "valid"), fixtureFiles(t, "invalid")...)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ctx := context.Background()
			cmd, err := cluster.KubectlCommand(ctx, pluginDir, "stash", "validate", "-o", "json", "-f", file)
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.Output()
			out := string(stdout)
			var results []plugin.ValidationResult
			if jerr := json.Unmarshal(stdout, &results); jerr != nil {
				t.Fatalf("kubectl stash validate -o json: %v (exit %v)\n%s", jerr, err, out)
			}
			offlineValid := err == nil
			serverOut, serr := cluster.Kubectl(ctx, pluginDir, "apply", "--dry-run=server", "-f", file)
			serverValid := serr == nil
			if offlineValid != serverValid {
				t.Fatalf("verdicts differ: offline valid=%v, server valid=%v\noffline:\n%s\nserver:\n%s", offlineValid, serverValid, out, serverOut)
			}
			for _, r := range results {
				for _, e := range r.Errors {
					if !strings.Contains(serverOut, e.Field) {
						t.Errorf("offline names %s, the server does not:\n%s", e.Field, serverOut)
					}
				}
			}
		})
	}
}

// TestServerSideValidate shows `kubectl stash validate --server-side` adding the checks
// only the cluster can make, which the offline run cannot know.
func TestServerSideValidate(t *testing.T) {
	for _, file := range fixtureFiles(t, "cluster-invalid") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			ctx := context.Background()
			if out, err := cluster.Kubectl(ctx, pluginDir, "stash", "validate", "-f", file); err != nil {
				t.Fatalf("offline validation should pass (only the cluster knows): %v\n%s", err, out)
			}
			out, err := cluster.Kubectl(ctx, pluginDir, "stash", "validate", "--server-side", "-f", file)
			if err == nil {
				t.Fatalf("--server-side should fail:\n%s", out)
			}
			for _, f := range wantFields(t, file) {
				if !strings.Contains(out, f) {
					t.Errorf("--server-side output does not name %s:\n%s", f, out)
				}
			}
		})
	}
	// Valid objects pass the dry run too, and the webhook's warnings reach the user.
	out, err := cluster.Kubectl(context.Background(), pluginDir, "stash", "validate", "--server-side", "-f", filepath.Join(fixtures, "valid", "repository-s3.yaml"))
	if err != nil {
		t.Fatalf("valid repository refused server-side: %v\n%s", err, out)
	}
	if !strings.Contains(out, `warning: storage Secret "s3-secret" not found in namespace "demo"`) {
		t.Errorf("want the webhook's warning about the missing Secret, got:\n%s", out)
	}
}

// TestDeployManifestsApply renders config/deploy with the real kubectl's kustomize and sends
// every object through a server-side dry run: the install manifests are valid objects.
func TestDeployManifestsApply(t *testing.T) {
	ctx := context.Background()
	if err := cluster.CreateNamespace(ctx, "stash-system", nil); err != nil {
		t.Fatal(err)
	}
	out, err := cluster.Kubectl(ctx, pluginDir, "apply", "--dry-run=server", "-k", filepath.Join(clustertest.RootDir(), "config", "deploy"))
	if err != nil {
		t.Fatalf("kubectl apply -k config/deploy: %v\n%s", err, out)
	}
	for _, want := range []string{
		"customresourcedefinition.apiextensions.k8s.io/backupconfigurations.stash.dev",
		"deployment.apps/stash-webhook", "service/stash-webhook", "clusterrole.rbac.authorization.k8s.io/stash-webhook",
		"poddisruptionbudget.policy/stash-webhook", "validatingwebhookconfiguration.admissionregistration.k8s.io/stash-webhook",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/stash-webhook", "secret/stash-webhook-cert",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply -k config/deploy did not apply %s:\n%s", want, out)
		}
	}
}
