package plugin_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/plugin"
	"stash.dev/redis/test/testproc"
)

// TestGoldenCreateOutputIsAdmitted sends the plugin's golden `create -o yaml` output through
// a server-side dry run, so the admission webhook judges exactly what users get printed.
func TestGoldenCreateOutputIsAdmitted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "plugin", "testdata", "create", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out := kubectl.Must(t, "stash", "validate", "--server-side", "-n", "demo", "-f", strings.Join(files, ","))
	if strings.Count(out, "valid") < len(files)-2 {
		t.Errorf("not every golden object was judged valid:\n%s", out)
	}
	// The Secrets too, with the real kubectl's server dry run: their values are hidden, so the
	// API server must refuse them rather than create a Secret whose password is "<redacted>".
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "secret-") {
			out, err := kubectl.Try(t, "apply", "--dry-run=server", "-f", f)
			if err == nil || !strings.Contains(out, "illegal base64") {
				t.Errorf("kubectl apply of the printed Secret %s: %v, want a refusal:\n%s", filepath.Base(f), err, out)
			}
		}
	}
}

// TestConvertedStashExamplesAreAdmitted converts Stash's examples and sends the result
// through the webhook with a server-side dry run.
func TestConvertedStashExamplesAreAdmitted(t *testing.T) {
	out, err := kubectl.Try(t, "stash", "convert", "-f", filepath.Join(root, "plugin", "testdata", "convert", "stash.yaml"))
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	// kubectl's combined output holds the warnings too; keep the YAML.
	var yaml []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "Warning: ") {
			yaml = append(yaml, l)
		}
	}
	// In a namespace of its own: demo's gcs-repo exists with another backend, which the
	// webhook rightly refuses to change.
	if err := cluster.CreateNamespace(context.Background(), "converted", nil); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "converted.yaml")
	writeFile(t, file, strings.ReplaceAll(strings.Join(yaml, "\n"), "namespace: demo", "namespace: converted"))
	out = kubectl.Must(t, "stash", "validate", "--server-side", "-n", "converted", "-f", file)
	if strings.Count(out, ": valid") != 4 {
		t.Errorf("want the Repository, BackupConfiguration and both RestoreSessions valid:\n%s", out)
	}
}

func TestCreateAppliesAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	for range 2 { // applying twice changes nothing and does not conflict
		out := kubectl.Must(t, "stash", "create", "repository", "created-repo", "-n", "demo", "--provider", "gcs",
			"--bucket", "stash-backups", "--prefix", "/created/", "--secret", "gcs-secret")
		if !strings.Contains(out, "repository.stash.dev/created-repo applied") {
			t.Errorf("output: %s", out)
		}
	}
	out := kubectl.Must(t, "stash", "create", "backupconfig", "created-bc", "-n", "demo", "--redis-address", "redis.demo.svc:6379",
		"--repo", "created-repo", "--schedule", "@hourly", "--keep-last", "3", "-o", "name")
	if strings.TrimSpace(out) != "backupconfiguration.stash.dev/created-bc" {
		t.Errorf("-o name printed %q", out)
	}
	kubectl.Must(t, "stash", "create", "restoresession", "created-rs", "-n", "demo", "--repo", "created-repo", "--target-appbinding", "sample-redis")

	var repo v1alpha1.Repository
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "created-repo"}, &repo); err != nil {
		t.Fatal(err)
	}
	if repo.Spec.Backend.GCS.Prefix != "created" {
		t.Errorf("prefix %q", repo.Spec.Backend.GCS.Prefix)
	}
	found := false
	for _, mf := range repo.ManagedFields {
		found = found || (mf.Manager == plugin.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply)
	}
	if !found {
		t.Errorf("not server-side applied by %s: %+v", plugin.FieldManager, repo.ManagedFields)
	}
	var bc v1alpha1.BackupConfiguration
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "created-bc"}, &bc); err != nil {
		t.Fatal(err)
	}
	if bc.Spec.RetentionPolicy == nil || *bc.Spec.RetentionPolicy.KeepLast != 3 || bc.Spec.Target.Redis.Mode != v1alpha1.RedisModeStandalone {
		t.Errorf("backupconfiguration: %+v", bc.Spec)
	}

	// A server dry run reaches the webhook and persists nothing.
	out = kubectl.Must(t, "stash", "create", "repository", "dry-repo", "-n", "demo", "--provider", "gcs", "--bucket", "stash-backups", "--secret", "gcs-secret", "--dry-run=server")
	if !strings.Contains(out, "repository.stash.dev/dry-repo applied (server dry run)") {
		t.Errorf("output: %s", out)
	}
	if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "dry-repo"}, &repo); err == nil {
		t.Error("--dry-run=server persisted the repository")
	}
	// The storage Secret: created from the environment, never printed.
	b, err := kubectl.WithEnv("RESTIC_PASSWORD=very-secret-pw", "GOOGLE_PROJECT_ID=p1").Try(t, "stash", "create", "secret", "storage", "env-secret", "-n", "demo", "--from-env")
	if err != nil || strings.Contains(b, "very-secret-pw") {
		t.Fatalf("create secret: %v\n%s", err, b)
	}
}

func TestPauseResume(t *testing.T) {
	ctx := context.Background()
	kubectl.Must(t, "stash", "create", "backupconfig", "pausable", "-n", "demo", "--target-appbinding", "sample-redis", "--repo", "gcs-repo", "--schedule", "@daily")
	paused := func() bool {
		var bc v1alpha1.BackupConfiguration
		if err := cluster.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "pausable"}, &bc); err != nil {
			t.Fatal(err)
		}
		return bc.Spec.Paused
	}
	if out := kubectl.Must(t, "stash", "backup", "pause", "pausable", "-n", "demo"); !strings.Contains(out, "backupconfiguration.stash.dev/pausable paused") || !paused() {
		t.Errorf("pause: %s", out)
	}
	if out := kubectl.Must(t, "stash", "backup", "resume", "pausable", "-n", "demo"); !strings.Contains(out, "resumed") || paused() {
		t.Errorf("resume: %s", out)
	}
}

// startTrigger runs `kubectl stash backup trigger BC --wait` in the background.
func startTrigger(t *testing.T, bc string, extra ...string) (out *testproc.Output, wait func() (string, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	args := append([]string{"stash", "backup", "trigger", bc, "-n", "demo", "--wait", "--poll-interval", "100ms"}, extra...)
	cmd := kubectl.Command(ctx, args...)
	out = &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return out, func() (string, error) {
		defer cancel()
		err := cmd.Wait()
		return out.String(), err
	}
}

// newSession waits for the trigger's BackupSession of bc.
func newSession(t *testing.T, bc string) *v1alpha1.BackupSession {
	t.Helper()
	ctx := context.Background()
	var s *v1alpha1.BackupSession
	testproc.Eventually(t, 30*time.Second, "a new BackupSession of "+bc, func() error {
		var list v1alpha1.BackupSessionList
		if err := cluster.Client.List(ctx, &list, client.InNamespace("demo"), client.MatchingLabels{v1alpha1.LabelInvokerName: bc}); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			if list.Items[i].Status.Phase == "" {
				s = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("%d sessions, none new", len(list.Items))
	})
	return s
}

// setStatus moves a session's status, as the runner and the controller would.
func setStatus(t *testing.T, s *v1alpha1.BackupSession, st v1alpha1.BackupSessionStatus) {
	t.Helper()
	s.Status = st
	if err := cluster.Client.Status().Update(context.Background(), s); err != nil {
		t.Fatalf("update status: %v", err)
	}
}

func TestTriggerWaitSucceeded(t *testing.T) {
	kubectl.Must(t, "stash", "create", "backupconfig", "wait-ok", "-n", "demo", "--target-appbinding", "sample-redis", "--repo", "gcs-repo", "--schedule", "@daily")
	progress, wait := startTrigger(t, "wait-ok")
	s := newSession(t, "wait-ok")
	if s.Spec.Invoker.Name != "wait-ok" || s.Labels[v1alpha1.LabelInvokerKind] != "BackupConfiguration" || len(s.OwnerReferences) != 1 || !strings.HasPrefix(s.Name, "wait-ok-") {
		t.Errorf("session: %+v", s.ObjectMeta)
	}
	start := metav1.NewTime(time.Now().Add(-time.Second))
	setStatus(t, s, v1alpha1.BackupSessionStatus{Phase: v1alpha1.SessionRunning, StartTime: &start, Job: v1alpha1.BackupJobName(s.Name),
		Progress: &v1alpha1.Progress{Keys: 500, Bytes: 3 << 20, UpdateTime: &metav1.Time{Time: time.Now()}}})
	progress.WaitFor(t, 30*time.Second, "Running    500 keys")
	setStatus(t, s, v1alpha1.BackupSessionStatus{Phase: v1alpha1.SessionSucceeded, StartTime: &start, Snapshot: "20261125T233500Z-3f9a1c",
		Keys: 1000, Bytes: 6 << 20, SessionDuration: "2s", Job: v1alpha1.BackupJobName(s.Name)})
	out, err := wait()
	if err != nil {
		t.Fatalf("trigger --wait: %v\n%s", err, out)
	}
	for _, want := range []string{"backupsession.stash.dev/" + s.Name + " created", "Running    500 keys  3.0 MiB", "MiB/s",
		`backupsession "` + s.Name + `" succeeded: snapshot 20261125T233500Z-3f9a1c, 1000 keys, 6.0 MiB in 2s`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// list and describe show the session.
	out = kubectl.Must(t, "stash", "backup", "list", "-n", "demo")
	if !strings.Contains(out, "wait-ok") || !regexpMatch(out, s.Name+`\s+wait-ok\s+Succeeded\s+2s\s+20261125T233500Z-3f9a1c\s+1000\s+6.0 MiB`) {
		t.Errorf("backup list:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "backup", "describe", "wait-ok", "-n", "demo")
	for _, want := range []string{"Schedule:", "@daily", "AppBinding sample-redis", s.Name, "Succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	out = kubectl.Must(t, "stash", "backup", "list", "wait-ok", "-n", "demo", "-o", "name")
	if strings.TrimSpace(out) != "backupsession.stash.dev/"+s.Name {
		t.Errorf("list -o name: %q", out)
	}
	// logs: the session's Job has no pod here (no controller runs), and the error says where to look.
	out, err = kubectl.Try(t, "stash", "backup", "logs", s.Name, "-n", "demo")
	if err == nil || !strings.Contains(out, "has no pod of job") || !strings.Contains(out, "see: kubectl describe job") {
		t.Errorf("logs without a pod: %v\n%s", err, out)
	}
}

func TestTriggerWaitFailed(t *testing.T) {
	kubectl.Must(t, "stash", "create", "backupconfig", "wait-fail", "-n", "demo", "--target-appbinding", "sample-redis", "--repo", "gcs-repo", "--schedule", "@daily")
	_, wait := startTrigger(t, "wait-fail")
	s := newSession(t, "wait-fail")
	setStatus(t, s, v1alpha1.BackupSessionStatus{Phase: v1alpha1.SessionFailed, Job: v1alpha1.BackupJobName(s.Name),
		Error: "dump: connect to redis sample-redis.demo.svc:6379: connection refused"})
	out, err := wait()
	if exitCode(err) != 1 {
		t.Fatalf("exit %v, want 1:\n%s", err, out)
	}
	want := `error: backupsession "` + s.Name + `" failed: dump: connect to redis sample-redis.demo.svc:6379: connection refused (see: kubectl logs job/stash-backup-` + s.Name + ` -n demo)`
	if !strings.Contains(out, want) || strings.Contains(out, "goroutine") {
		t.Errorf("output:\n%s\nwant a line:\n%s", out, want)
	}
}

func TestTriggerWaitTimeout(t *testing.T) {
	_, wait := startTrigger(t, "nightly", "--timeout", "500ms")
	out, err := wait()
	if exitCode(err) != 1 || !strings.Contains(out, "timed out after 500ms waiting for backupsession") || !strings.Contains(out, "see: kubectl stash backup describe nightly -n demo") {
		t.Errorf("exit %v:\n%s", err, out)
	}
}

func TestRestoreWait(t *testing.T) {
	ctx := context.Background()
	cmdCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := kubectl.Command(cmdCtx, "stash", "restore", "gcs-repo", "--to", "appbinding/sample-redis", "-n", "demo", "--wait", "--poll-interval", "100ms")
	var out testproc.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var rs *v1alpha1.RestoreSession
	testproc.Eventually(t, 30*time.Second, "a RestoreSession of gcs-repo", func() error {
		var list v1alpha1.RestoreSessionList
		if err := cluster.Client.List(ctx, &list, client.InNamespace("demo")); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, "gcs-repo-") {
				rs = &list.Items[i]
			}
		}
		if rs == nil {
			return fmt.Errorf("none; kubectl said:\n%s", out.String())
		}
		return nil
	})
	if rs.Spec.Snapshot != "latest" || rs.Spec.Target.Ref.Name != "sample-redis" {
		t.Errorf("restore session: %+v", rs.Spec)
	}
	rs.Status = v1alpha1.RestoreSessionStatus{Phase: v1alpha1.SessionSucceeded, Snapshot: "20261125T233500Z-3f9a1c", KeysRestored: 7, Bytes: 100}
	if err := cluster.Client.Status().Update(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("restore --wait: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `restoresession "`+rs.Name+`" succeeded: snapshot 20261125T233500Z-3f9a1c, 7 keys`) {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestPluginDiscovery checks that kubectl finds the plugin on PATH and passes flags after
// its name through, and that flags before it are kubectl's error, as documented.
func TestPluginDiscovery(t *testing.T) {
	out := kubectl.Must(t, "plugin", "list")
	if !strings.Contains(out, filepath.Join(pluginDir, "kubectl-stash")) {
		t.Errorf("plugin list:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "version", "--server")
	if !strings.Contains(out, "kubectl-stash ") || !strings.Contains(out, "kubernetes v") {
		t.Errorf("version:\n%s", out)
	}
	// Completion: cobra's __complete, which kubectl_complete-stash scripts and shells call.
	out = kubectl.Must(t, "stash", "__complete", "backup", "trigger", "-n", "demo", "ni")
	if !strings.Contains(out, "nightly\n") || !strings.Contains(out, ":4") {
		t.Errorf("completion of backupconfiguration names:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "__complete", "create", "repository", "r", "--provider", "")
	if !strings.Contains(out, "gcs\ns3\nazure\nlocal\n") {
		t.Errorf("completion of --provider:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "completion", "bash")
	if !strings.Contains(out, "__start_kubectl") && !strings.Contains(out, "kubectl stash") && !strings.Contains(out, "bash completion") {
		t.Errorf("completion:\n%.300s", out)
	}
}

func regexpMatch(s, pattern string) bool { return regexp.MustCompile(pattern).MatchString(s) }
