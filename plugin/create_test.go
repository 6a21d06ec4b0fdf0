package plugin

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files from the current output")

// runStash runs `kubectl stash ARGS` in process with no kubeconfig: commands that print
// need no cluster.
func runStash(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	cmd := NewCmdStash(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// CreateGoldenCases are the create commands whose output is checked against
// testdata/create/NAME.golden. The envtest suite (test/plugin) sends the same files through
// kubectl stash validate --server-side, so the webhook's verdict on them is tested too.
var createGoldenCases = []struct {
	name  string
	stdin string
	args  []string
}{
	{"secret-storage-gcs", "", []string{"create", "secret", "storage", "gcs-prod-secret", "--password-file", "testdata/password.txt", "--google-project-id", "demo-project"}},
	{"secret-storage-stdin", "s3cr3t\n", []string{"create", "secret", "storage", "s3-secret", "--password-stdin", "--aws-access-key-id", "AKIDEXAMPLE"}},
	{"repository-gcs", "", []string{"create", "repository", "gcs-prod", "--provider", "gcs", "--bucket", "stash-backups", "--prefix", "/prod/redis/", "--secret", "gcs-secret"}},
	{"repository-s3", "", []string{"create", "repository", "minio", "--provider", "s3", "--endpoint", "https://minio.storage:9000", "--bucket", "backups", "--region", "us-east-1", "--secret", "s3-secret"}},
	{"repository-azure", "", []string{"create", "repo", "azure", "--provider", "azure", "--bucket", "redis-backups", "--prefix", "prod", "--secret", "azure-secret", "--allowed-namespaces", "All"}},
	{"repository-local", "", []string{"create", "repository", "nfs", "--provider", "local", "--pvc", "backups", "--mount-path", "/repo", "--sub-path", "redis", "--secret", "gcs-secret"}},
	{"backupconfig-appbinding", "", []string{"create", "backupconfig", "hourly", "--target-appbinding", "sample-redis", "--repo", "gcs-repo", "--schedule", "0 * * * *", "--keep-last", "5", "--keep-daily", "7"}},
	{"backupconfig-service", "", []string{"create", "bc", "cache", "--redis-service", "redis:6380", "--auth-secret", "redis-auth", "--databases", "0,2", "--repo", "gcs-repo", "--schedule", "@daily", "--time-zone", "Europe/Berlin", "--paused", "--timeout", "30m", "--history-limit", "5"}},
	{"backupconfig-cluster-json", "", []string{"create", "backupconfig", "cluster", "--redis-address", "redis-cluster.demo.svc:6379", "--mode", "cluster", "--repo", "gcs-repo", "--schedule", "*/15 * * * *", "-o", "json"}},
	{"restoresession-appbinding", "", []string{"create", "restoresession", "restore-latest", "--repo", "gcs-repo", "--target-appbinding", "sample-redis"}},
	{"restoresession-address", "", []string{"create", "restoresession", "restore-one", "--repo", "gcs-repo", "--snapshot", "20261125T233500Z-3f9a1c", "--redis-address", "redis-copy.demo.svc:6379", "--auth-secret", "redis-auth", "--conflict-policy", "Replace", "--databases", "0", "--key-pattern", "user:*"}},
}

func TestCreateGolden(t *testing.T) {
	for _, tc := range createGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-n", "demo"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "-o json") {
				args = append(args, "-o", "yaml")
			}
			out, errOut, err := runStash(t, tc.stdin, args...)
			if err != nil {
				t.Fatalf("kubectl stash %s: %v\n%s", strings.Join(args, " "), err, errOut)
			}
			golden := filepath.Join("testdata", "create", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./plugin -run TestCreateGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("output differs from %s (-want +got; go test ./plugin -run TestCreateGolden -update rewrites it):\n%s", golden, diff)
			}
			if strings.Contains(out, "s3cr3t") || strings.Contains(out, "not-a-real") {
				t.Errorf("a secret value was printed:\n%s", out)
			}
		})
	}
}

// TestCreateGoldenValidates runs the golden files through kubectl stash validate offline.
func TestCreateGoldenValidates(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "create", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	out, errOut, err := runStash(t, "", "validate", "-f", strings.Join(files, ","))
	if err != nil {
		t.Fatalf("validate: %v\n%s%s", err, out, errOut)
	}
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no password", []string{"create", "secret", "storage", "s"}, "no repository password"},
		{"no provider", []string{"create", "repository", "r", "--secret", "s"}, "--provider is required"},
		{"no secret", []string{"create", "repository", "r", "--provider", "gcs", "--bucket", "bkt"}, "--secret is required"},
		{"bad bucket", []string{"create", "repository", "r", "--provider", "gcs", "--bucket", "B", "--secret", "s"}, `Repository "r" is invalid:`},
		{"bad schedule", []string{"create", "bc", "b", "--repo", "r", "--schedule", "sometimes", "--target-appbinding", "x"}, "spec.schedule: Invalid value"},
		{"two targets", []string{"create", "bc", "b", "--repo", "r", "--schedule", "@daily", "--target-appbinding", "x", "--redis-address", "h:1"}, "exactly one of"},
		{"bad snapshot", []string{"create", "restoresession", "r", "--repo", "r", "--snapshot", "yesterday", "--target-appbinding", "x"}, "spec.snapshot"},
		{"bad dry-run", []string{"create", "repository", "r", "--provider", "gcs", "--bucket", "bkt", "--secret", "s", "--dry-run=maybe"}, "invalid --dry-run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runStash(t, "", append(tc.args, "-o", "yaml")...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDryRunClientPrintsName(t *testing.T) {
	out, _, err := runStash(t, "", "-n", "demo", "create", "repository", "r", "--provider", "gcs", "--bucket", "bkt", "--secret", "s", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if want := "repository.stash.dev/r applied (dry run)\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestBuildRepository(t *testing.T) {
	tests := []struct {
		name    string
		flags   repositoryFlags
		want    v1alpha1.Backend
		wantErr string
	}{
		{name: "gcs", flags: repositoryFlags{provider: "gcs", bucket: "b", prefix: "p", secret: "s"},
			want: v1alpha1.Backend{StorageSecretName: "s", GCS: &v1alpha1.GCSSpec{Bucket: "b", Prefix: "p"}}},
		{name: "s3", flags: repositoryFlags{provider: "s3", bucket: "b", endpoint: "http://m:9000", region: "r", insecureTLS: true, secret: "s"},
			want: v1alpha1.Backend{StorageSecretName: "s", S3: &v1alpha1.S3Spec{Bucket: "b", Endpoint: "http://m:9000", Region: "r", InsecureTLS: true}}},
		{name: "azure uses bucket as container", flags: repositoryFlags{provider: "azure", bucket: "c", secret: "s"},
			want: v1alpha1.Backend{StorageSecretName: "s", Azure: &v1alpha1.AzureSpec{Container: "c"}}},
		{name: "local host path", flags: repositoryFlags{provider: "local", hostPath: "/data", mountPath: "/repo", secret: "s"},
			want: v1alpha1.Backend{StorageSecretName: "s", Local: func() *v1alpha1.LocalSpec {
				l := &v1alpha1.LocalSpec{MountPath: "/repo"}
				l.HostPath = &corev1.HostPathVolumeSource{Path: "/data"}
				return l
			}()}},
		{name: "local without volume", flags: repositoryFlags{provider: "local", mountPath: "/repo"}, wantErr: "needs a volume"},
		{name: "local with two volumes", flags: repositoryFlags{provider: "local", pvc: "c", hostPath: "/d"}, wantErr: "not both"},
		{name: "unknown provider", flags: repositoryFlags{provider: "swift"}, wantErr: `unknown --provider "swift"`},
		{name: "endpoint on gcs", flags: repositoryFlags{provider: "gcs", bucket: "b", endpoint: "http://x"}, wantErr: "for --provider s3"},
		{name: "pvc on gcs", flags: repositoryFlags{provider: "gcs", bucket: "b", pvc: "x"}, wantErr: "for --provider local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildRepository(tc.flags)
			if errorWanted(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got.Spec.Backend); diff != "" {
				t.Errorf("backend (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildBackupConfig(t *testing.T) {
	keep := func(vals ...int32) []int32 {
		k := make([]int32, len(new(v1alpha1.RetentionPolicy).Rules()))
		for i := range k {
			k[i] = -1
		}
		copy(k, vals)
		return k
	}
	i32 := func(v int32) *int32 { return &v }
	tests := []struct {
		name    string
		flags   backupConfigFlags
		want    v1alpha1.BackupConfigurationSpec
		wantErr string
	}{
		{name: "appbinding without retention",
			flags: backupConfigFlags{target: targetFlags{appBinding: "r"}, repo: "repo", schedule: "@daily", keep: keep(), historyLimit: -1},
			want:  v1alpha1.BackupConfigurationSpec{Schedule: "@daily", Repository: v1alpha1.RepositoryRef{Name: "repo"}, Target: v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "r"}}}},
		{name: "retention keeps only set rules",
			flags: backupConfigFlags{target: targetFlags{address: "h:1"}, repo: "repo", repoNS: "shared", keep: keep(3, -1, 0), prune: true, paused: true, timeout: "5m", historyLimit: 2},
			want: v1alpha1.BackupConfigurationSpec{Paused: true, TimeOut: "5m", Repository: v1alpha1.RepositoryRef{Name: "repo", Namespace: "shared"},
				Target:             v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "h:1"}},
				RetentionPolicy:    &v1alpha1.RetentionPolicy{Name: "keep-last-3-keep-daily-0", KeepLast: i32(3), KeepDaily: i32(0), Prune: true},
				BackupHistoryLimit: i32(2)}},
		{name: "service with port and auth",
			flags: backupConfigFlags{target: targetFlags{service: "redis:7000", authSecret: "auth", mode: "sentinel", masterName: "m"}, repo: "repo", keep: keep(), historyLimit: -1},
			want: v1alpha1.BackupConfigurationSpec{Repository: v1alpha1.RepositoryRef{Name: "repo"},
				Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Service: &v1alpha1.ServiceTarget{Name: "redis", Port: 7000}, Mode: "sentinel", MasterName: "m", AuthSecret: &v1alpha1.AuthSecret{Name: "auth"}}}}},
		{name: "bad port", flags: backupConfigFlags{target: targetFlags{service: "redis:x"}, keep: keep()}, wantErr: "port must be a number"},
		{name: "no target", flags: backupConfigFlags{keep: keep()}, wantErr: "exactly one of"},
		{name: "inline flags on appbinding", flags: backupConfigFlags{target: targetFlags{appBinding: "a", authSecret: "s"}, keep: keep()}, wantErr: "the AppBinding already says"},
		{name: "sentinel appbinding with its master set and the data nodes' Secret",
			flags: backupConfigFlags{target: targetFlags{appBinding: "sen", masterName: "cache", authSecret: "cache-auth"}, repo: "repo", keep: keep(), historyLimit: -1},
			want: v1alpha1.BackupConfigurationSpec{Repository: v1alpha1.RepositoryRef{Name: "repo"},
				Target: v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "sen", MasterName: "cache", AuthSecret: &v1alpha1.AuthSecret{Name: "cache-auth"}}}}},
		{name: "continuous with its segment interval",
			flags: backupConfigFlags{target: targetFlags{address: "h:1"}, repo: "repo", keep: keep(), historyLimit: -1, continuous: true, segmentInterval: "5s"},
			want: v1alpha1.BackupConfigurationSpec{Repository: v1alpha1.RepositoryRef{Name: "repo"}, Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Address: "h:1"}},
				Continuous: &v1alpha1.ContinuousBackup{Enabled: true, SegmentInterval: "5s"}}},
		{name: "segment interval without continuous", flags: backupConfigFlags{target: targetFlags{address: "h:1"}, keep: keep(), segmentInterval: "5s"}, wantErr: "applies with --continuous"},
		{name: "mode on appbinding", flags: backupConfigFlags{target: targetFlags{appBinding: "a", mode: "sentinel"}, keep: keep()}, wantErr: "the AppBinding already says"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildBackupConfig(tc.flags)
			if errorWanted(t, err, tc.wantErr) {
				return
			}
			if diff := cmp.Diff(tc.want, got.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		to      string
		want    targetFlags
		wantErr bool
	}{
		{to: "appbinding/redis", want: targetFlags{appBinding: "redis"}},
		{to: "AppBinding/redis", want: targetFlags{appBinding: "redis"}},
		{to: "svc/redis:6380", want: targetFlags{service: "redis:6380"}},
		{to: "service/redis", want: targetFlags{service: "redis"}},
		{to: "redis.db.svc:6379", want: targetFlags{address: "redis.db.svc:6379"}},
		{to: "pod/redis-0", wantErr: true},
		{to: "", wantErr: true},
	}
	for _, tc := range tests {
		var got targetFlags
		err := parseTarget(tc.to, &got)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseTarget(%q): error %v, want error %t", tc.to, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(targetFlags{})); diff != "" && !tc.wantErr {
			t.Errorf("parseTarget(%q) (-want +got):\n%s", tc.to, diff)
		}
	}
}

// TestRestoreToTime: --to-time becomes spec.pointInTime and leaves the base to the restore
// (no snapshot pinned unless one is named); a time that is not RFC 3339 is refused.
func TestRestoreToTime(t *testing.T) {
	rs, err := buildRestoreSession(restoreFlags{name: "r", target: targetFlags{address: "h:1"}, repo: "repo", snapshot: v1alpha1.SnapshotLatest, toTime: "2026-12-02T10:15:00Z"})
	if err != nil {
		t.Fatal(err)
	}
	if p := rs.Spec.PointInTime; p == nil || !p.Equal(&metav1.Time{Time: time.Date(2026, 12, 2, 10, 15, 0, 0, time.UTC)}) || rs.Spec.Snapshot != "" {
		t.Fatalf("pointInTime %v snapshot %q", rs.Spec.PointInTime, rs.Spec.Snapshot)
	}
	if errs := rs.Validate(); len(errs) > 0 {
		t.Fatalf("validate: %v", errs)
	}
	if _, err := buildRestoreSession(restoreFlags{target: targetFlags{address: "h:1"}, toTime: "yesterday"}); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad --to-time: %v", err)
	}
}

// errorWanted fails the test unless err is what a case wants: an error containing wantErr, or
// none when wantErr is empty. It reports whether the case ends there, an error having been wanted.
func errorWanted(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("got %v, want error containing %q", err, wantErr)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

// TestRestoreHintsNameTheFlags: kubectl stash restore phrases a refused restore in its own
// flags: a point in time with a selection before the RestoreSession is created, a non-empty
// target and a lossy restore from the reason the runner leaves on the session
// (ConditionRestoreRefused); --allow-lossy becomes spec.allowLossy.
func TestRestoreHintsNameTheFlags(t *testing.T) {
	for _, f := range []restoreFlags{
		{target: targetFlags{address: "h:1"}, toTime: "2026-12-02T10:15:00Z", databases: []int32{1}},
		{target: targetFlags{address: "h:1", databases: []int32{0}}, toTime: "2026-12-02T10:15:00Z"},
		{target: targetFlags{address: "h:1"}, toTime: "2026-12-02T10:15:00Z", keyPattern: "user:*"},
	} {
		if _, err := buildRestoreSession(f); err == nil || !strings.Contains(err.Error(), "drop --databases and --key-pattern") {
			t.Errorf("--to-time with a selection: %v", err)
		}
	}
	for reason, want := range map[string]string{
		v1alpha1.ReasonTargetNotEmpty: "--flush", v1alpha1.ReasonLossyRestore: "--allow-lossy", v1alpha1.ReasonPointInTimeSelection: "--to-time",
	} {
		rs := &v1alpha1.RestoreSession{Status: v1alpha1.RestoreSessionStatus{Phase: v1alpha1.SessionFailed, Error: "facts (spec.field)",
			Conditions: []metav1.Condition{{Type: v1alpha1.ConditionRestoreRefused, Status: metav1.ConditionTrue, Reason: reason, Message: "facts"}}}}
		if msg := restoreState(rs).errMsg; !strings.HasPrefix(msg, "facts (") || !strings.Contains(msg, want) || strings.Contains(msg, "spec.") {
			t.Errorf("%s: %q, want the facts and %s", reason, msg, want)
		}
	}
	rs, err := buildRestoreSession(restoreFlags{target: targetFlags{address: "h:1"}, allowLossy: true})
	if err != nil || !rs.Spec.AllowLossy {
		t.Fatalf("--allow-lossy: %v %+v", err, rs)
	}
}
