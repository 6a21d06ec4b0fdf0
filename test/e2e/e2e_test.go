// Package e2e runs the whole system the way a user meets it, on this machine: the real
// CronJob, Job and garbage-collector controllers, stash-webhook as a local process
// installed with `kubectl stash install`, the test node agent running Pods as processes,
// real redis-server and fake-gcs-server, and the real kubectl with our plugin.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/localcluster"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

var (
	cluster *localcluster.Cluster
	// kubectl is the real kubectl as the cluster's admin, with our kubectl-stash.
	kubectl testproc.Kubectl
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stash-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := binaries(filepath.Join(dir, "bin"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cluster, err = localcluster.Start(localcluster.Options{BinDir: bin, Dir: dir}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	kubectl = cluster.AdminKubectl()
	code := m.Run()
	if code != 0 {
		for _, f := range []string{"stash-webhook.log", "kube-controller-manager.log"} {
			if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
				fmt.Fprintf(os.Stderr, "=== last lines of %s\n%s\n", f, tail(string(b), 40))
			}
		}
	}
	return code
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// binaries returns the directory with kubectl-stash, stash-webhook and stash-runner: the
// ones `make build` wrote (STASH_BIN_DIR), or fresh builds.
func binaries(dir string) (string, error) {
	return testproc.OurBinaries(dir, "kubectl-stash", "stash-webhook", "stash-runner")
}

// namespace creates a namespace with a storage Secret and a local Repository in a temp dir.
func namespace(t *testing.T, ns, password string) string {
	t.Helper()
	kubectl.Must(t, "create", "namespace", ns)
	kubectl.WithStdin(password+"\n").Must(t, "stash", "create", "secret", "storage", "storage", "-n", ns, "--password-stdin")
	repo := t.TempDir()
	kubectl.Must(t, "stash", "create", "repository", "repo", "-n", ns, "--provider", "local", "--host-path", repo, "--mount-path", repo, "--secret", "storage")
	return repo
}

// sessions lists the phases of the BackupSessions in ns, by name.
func sessions(t *testing.T, ns string) map[string]string {
	t.Helper()
	return kubectl.BackupSessionPhases(t, ns)
}

// waitForSession waits, as long as two scheduled runs may take, until a BackupSession in ns
// has phase, and returns its name.
func waitForSession(t *testing.T, ns, phase, what string) string {
	t.Helper()
	var name string
	testproc.Eventually(t, 150*time.Second, what, func() error {
		all := sessions(t, ns)
		for n, p := range all {
			if p == phase {
				name = n
				return nil
			}
		}
		return fmt.Errorf("sessions: %v", all)
	})
	return name
}

func loadSample(t *testing.T, r *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"DEBUG", "POPULATE", "3000", "key", "64"},
		{"HSET", "user:1", "name", "ada", "visits", "3"}, {"RPUSH", "queue", "a", "b", "c"}, {"SADD", "tags", "x", "y"},
		{"ZADD", "board", "1", "one", "2", "two"}, {"XADD", "orders", "*", "id", "1"}, {"SET", "session", "tok", "PX", "600000"},
		{"SELECT", "3"},
	} {
		if err := r.Client.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	db3 := r.Client.Conn()
	defer db3.Close()
	if err := db3.Select(ctx, 3).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db3.Set(ctx, "cache:1", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestScheduledBackupTriggerAndRestore is the seed's whole story: the CronJob fires, the
// session runs as a Job, a manual trigger follows with --wait, and a restore into an empty
// Redis gives an equal DEBUG DIGEST.
func TestScheduledBackupTriggerAndRestore(t *testing.T) {
	t.Parallel()
	ns := "e2e-flow"
	namespace(t, ns, "flow-password")
	src := redistest.Start(t, redistest.WithPassword("redis-pw"))
	loadSample(t, src)
	kubectl.Must(t, "create", "secret", "generic", "redis-auth", "-n", ns, "--from-literal=password=redis-pw")
	kubectl.Must(t, "stash", "create", "backupconfig", "flow", "-n", ns, "--repo", "repo", "--redis-address", src.Addr,
		"--auth-secret", "redis-auth", "--schedule", "* * * * *", "--keep-last", "5")

	t.Logf("scheduled session %s succeeded", waitForSession(t, ns, "Succeeded", "a scheduled backup succeeds"))
	out := kubectl.Must(t, "stash", "backup", "trigger", "flow", "-n", ns, "--wait", "--timeout", "2m")
	if !strings.Contains(out, "succeeded") {
		t.Errorf("trigger --wait output: %s", out)
	}

	dst := redistest.Start(t)
	out = kubectl.Must(t, "stash", "restore", "repo", "-n", ns, "--snapshot", "latest", "--to", dst.Addr, "--wait", "--wait-timeout", "2m")
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest mismatch after restore: source %s, restored %s\n%s", a, b, out)
	}
	dataset.Same(t, src, dst)
	if ttl := dst.Client.PTTL(context.Background(), "session").Val(); ttl <= 0 {
		t.Errorf("TTL of session lost: %v", ttl)
	}
	testproc.Eventually(t, 30*time.Second, "metrics", func() error {
		m, err := cluster.Metrics()
		if err != nil {
			return err
		}
		for _, want := range []string{
			`stash_appscode_com_backupsession_success{invoker_kind="BackupConfiguration",invoker_name="flow",namespace="e2e-flow",repository="repo"} 1`,
			`stash_appscode_com_restoresession_success{`,
			`stash_appscode_com_repository_snapshot_count{backend="local",namespace="e2e-flow",repository="repo"}`,
		} {
			if !strings.Contains(m, want) {
				return fmt.Errorf("metrics lack %s", want)
			}
		}
		return nil
	})
}

// TestGCSRepository backs up into a fake-gcs-server bucket through the same flow.
func TestGCSRepository(t *testing.T) {
	t.Parallel()
	ns := "e2e-gcs"
	gcs := gcstest.Start(t, "stash-e2e")
	kubectl.Must(t, "create", "namespace", ns)
	kubectl.WithStdin("gcs-password\n").Must(t, "stash", "create", "secret", "storage", "gcs-storage", "-n", ns, "--password-stdin", "--storage-emulator-host", gcs.Host)
	kubectl.Must(t, "stash", "create", "repository", "gcs", "-n", ns, "--provider", "gcs", "--bucket", gcs.Bucket, "--prefix", "e2e/redis", "--secret", "gcs-storage")
	src := redistest.Start(t)
	loadSample(t, src)
	kubectl.Must(t, "stash", "create", "backupconfig", "to-gcs", "-n", ns, "--repo", "gcs", "--redis-address", src.Addr, "--schedule", "@daily")
	kubectl.Must(t, "stash", "backup", "trigger", "to-gcs", "-n", ns, "--wait", "--timeout", "2m")
	dst := redistest.Start(t)
	kubectl.Must(t, "stash", "restore", "gcs", "-n", ns, "--to", dst.Addr, "--wait", "--wait-timeout", "2m")
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest mismatch through GCS: %s != %s", a, b)
	}
	dataset.Same(t, src, dst)
}

// TestWrongPassword: a changed repository password fails the session with a message that
// `kubectl stash backup describe` shows.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	ns := "e2e-badpw"
	namespace(t, ns, "right-password")
	src := redistest.Start(t)
	loadSample(t, src)
	kubectl.Must(t, "stash", "create", "backupconfig", "pw", "-n", ns, "--repo", "repo", "--redis-address", src.Addr, "--schedule", "@daily")
	kubectl.Must(t, "stash", "backup", "trigger", "pw", "-n", ns, "--wait", "--timeout", "2m")
	kubectl.Must(t, "patch", "secret", "storage", "-n", ns, "--type=merge", "-p", `{"stringData":{"RESTIC_PASSWORD":"wrong-password"}}`)
	out, err := kubectl.Try(t, "stash", "backup", "trigger", "pw", "-n", ns, "--wait", "--timeout", "2m")
	if err == nil || !strings.Contains(out, "wrong repository password") {
		t.Fatalf("want a failure naming the wrong password, got err=%v:\n%s", err, out)
	}
	desc := kubectl.Must(t, "stash", "backup", "describe", "pw", "-n", ns)
	if !strings.Contains(desc, "wrong repository password") {
		t.Errorf("backup describe does not show the reason:\n%s", desc)
	}
}

// TestRedisDownThenBack: a scheduled backup of a dead Redis fails; once Redis is back the
// next scheduled run succeeds.
func TestRedisDownThenBack(t *testing.T) {
	t.Parallel()
	ns := "e2e-down"
	namespace(t, ns, "down-password")
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	kubectl.Must(t, "stash", "create", "backupconfig", "down", "-n", ns, "--repo", "repo", "--redis-address", addr, "--schedule", "* * * * *")
	waitForSession(t, ns, "Failed", "a scheduled backup of the dead Redis fails")
	redistest.Start(t, redistest.WithPort(port))
	waitForSession(t, ns, "Succeeded", "the next scheduled backup succeeds")
}

// TestTimeOut: a backup that hangs (the "Redis" accepts and never answers) fails with
// DeadlineExceeded when its timeOut runs out.
func TestTimeOut(t *testing.T) {
	t.Parallel()
	ns := "e2e-timeout"
	namespace(t, ns, "timeout-password")
	kubectl.Must(t, "stash", "create", "backupconfig", "slow", "-n", ns, "--repo", "repo", "--redis-address", testproc.Silent(t), "--schedule", "@daily", "--timeout", "3s")
	out, err := kubectl.Try(t, "stash", "backup", "trigger", "slow", "-n", ns, "--wait", "--timeout", "2m")
	if err == nil || !strings.Contains(strings.ToLower(out), "deadline") {
		t.Fatalf("want a deadline failure, got err=%v:\n%s", err, out)
	}
	conds := kubectl.Must(t, "get", "backupsessions", "-n", ns, "-o", `jsonpath={.items[*].status.conditions[*].type}`)
	if !strings.Contains(conds, "DeadlineExceeded") {
		t.Errorf("no DeadlineExceeded condition: %q", conds)
	}
}

// TestPausedFiresNothing: a paused BackupConfiguration's CronJob is suspended and no
// session appears across a minute boundary.
func TestPausedFiresNothing(t *testing.T) {
	t.Parallel()
	ns := "e2e-paused"
	namespace(t, ns, "paused-password")
	kubectl.Must(t, "stash", "create", "backupconfig", "paused", "-n", ns, "--repo", "repo", "--redis-address", "127.0.0.1:1", "--schedule", "* * * * *", "--paused")
	testproc.Eventually(t, 30*time.Second, "CronJob suspended", func() error {
		out, err := kubectl.Try(t, "get", "cronjob", "stash-trigger-paused", "-n", ns, "-o", "jsonpath={.spec.suspend}")
		if err != nil || out != "true" {
			return fmt.Errorf("suspend=%q err=%v", out, err)
		}
		return nil
	})
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 15*time.Second)))
	if s := sessions(t, ns); len(s) != 0 {
		t.Errorf("a paused BackupConfiguration fired: %v", s)
	}
}

// TestDeleteRemovesCronJob: the garbage collector removes a deleted configuration's CronJob.
func TestDeleteRemovesCronJob(t *testing.T) {
	t.Parallel()
	ns := "e2e-delete"
	namespace(t, ns, "delete-password")
	kubectl.Must(t, "stash", "create", "backupconfig", "gone", "-n", ns, "--repo", "repo", "--redis-address", "127.0.0.1:1", "--schedule", "@daily")
	testproc.Eventually(t, 30*time.Second, "CronJob created", func() error {
		_, err := kubectl.Try(t, "get", "cronjob", "stash-trigger-gone", "-n", ns)
		return err
	})
	kubectl.Must(t, "delete", "backupconfiguration", "gone", "-n", ns)
	testproc.Eventually(t, 60*time.Second, "CronJob removed", func() error {
		out, err := kubectl.Try(t, "get", "cronjob", "-n", ns, "-o", "name")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("cronjobs: %q (%v)", out, err)
		}
		return nil
	})
}

// TestGitOpsVerdict: the installed webhook refuses an invalid BackupConfiguration in a
// server-side dry run, and `kubectl stash validate` says the same offline.
func TestGitOpsVerdict(t *testing.T) {
	t.Parallel()
	file := filepath.Join(clustertest.RootDir(), "test", "fixtures", "invalid", "bc-bad-schedule.yaml")
	kubectl.Must(t, "create", "namespace", "demo")
	server, err := kubectl.Try(t, "apply", "--dry-run=server", "-f", file)
	if err == nil || !strings.Contains(server, "spec.schedule") {
		t.Fatalf("the installed webhook admitted an invalid object (err=%v):\n%s", err, server)
	}
	offline, err := kubectl.Try(t, "stash", "validate", "-f", file)
	if err == nil || !strings.Contains(offline, "spec.schedule") {
		t.Fatalf("kubectl stash validate disagrees (err=%v):\n%s", err, offline)
	}
}
