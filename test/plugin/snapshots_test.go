package plugin_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/repo"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/runnertest"
)

// writeSnapshot writes one small snapshot into the repository at url, as a backup would.
func writeSnapshot(t *testing.T, url, password string, at time.Time, env map[string]string) string {
	t.Helper()
	r := runnertest.OpenRepoWithPassword(t, url, password, env)
	id := repo.NewID(at)
	runnertest.WriteSnapshot(t, r, repo.Manifest{FormatVersion: repo.FormatVersion, ID: id, Time: at.UTC(), Duration: time.Second,
		Source: "redis.demo.svc:6379", RedisVersion: "7.0.15", Databases: map[int]int64{0: 1}, Keys: 1, Compression: "zstd",
		Encryption: "age-x25519", RunnerVersion: "test"}, []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	return id
}

// TestSnapshotsListCheckDelete reads a local (hostPath) repository through its storage
// Secret with the runner's repo package.
func TestSnapshotsListCheckDelete(t *testing.T) {
	dir := t.TempDir()
	password := "local-repo-password"
	older := writeSnapshot(t, "file://"+dir, password, time.Now().Add(-time.Hour), nil)
	newer := writeSnapshot(t, "file://"+dir, password, time.Now(), nil)

	pw := dir + ".pw"
	writeFile(t, pw, password+"\n")
	kubectl.Must(t, "stash", "create", "secret", "storage", "local-secret", "-n", "demo", "--password-file", pw)
	kubectl.Must(t, "stash", "create", "repository", "local-repo", "-n", "demo", "--provider", "local", "--host-path", dir, "--mount-path", "/repo", "--secret", "local-secret")

	out := kubectl.Must(t, "stash", "snapshots", "list", "local-repo", "-n", "demo")
	if !strings.Contains(out, older) || !strings.Contains(out, newer) || strings.Index(out, newer) > strings.Index(out, older) {
		t.Errorf("snapshots list (newest first):\n%s", out)
	}
	out = kubectl.Must(t, "stash", "check", "local-repo", "-n", "demo", "--read-data")
	if !strings.Contains(out, "repository local-repo is healthy: 2 snapshots (manifests and all data verified)") {
		t.Errorf("check:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "snapshot", "delete", "local-repo", older, "-n", "demo")
	if !strings.Contains(out, "snapshot "+older+" deleted") {
		t.Errorf("delete:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "snapshots", "list", "local-repo", "-n", "demo", "-o", "json")
	if strings.Contains(out, older) || !strings.Contains(out, newer) {
		t.Errorf("after delete:\n%s", out)
	}
	out, err := kubectl.Try(t, "stash", "snapshot", "delete", "local-repo", older, "-n", "demo")
	if err == nil || !strings.Contains(out, `snapshot "`+older+`" not found in repository "local-repo" (see: kubectl stash snapshots list local-repo -n demo)`) {
		t.Errorf("deleting twice: %v\n%s", err, out)
	}
}

// TestSnapshotsListGCS reads a GCS repository (fake-gcs-server) with the credentials and
// emulator host of its storage Secret, as the runner would.
func TestSnapshotsListGCS(t *testing.T) {
	gcs := gcstest.Start(t, "plugin-snapshots")
	id := writeSnapshot(t, "gs://"+gcs.Bucket+"/team/redis", "gcs-password", time.Now(), gcs.Env())
	pw := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pw, "gcs-password")
	kubectl.Must(t, "stash", "create", "secret", "storage", "emulated-gcs", "-n", "demo", "--password-file", pw, "--storage-emulator-host", gcs.Host)
	kubectl.Must(t, "stash", "create", "repository", "emulated-gcs", "-n", "demo", "--provider", "gcs", "--bucket", gcs.Bucket, "--prefix", "/team/redis/", "--secret", "emulated-gcs")
	out := kubectl.Must(t, "stash", "snapshots", "list", "emulated-gcs", "-n", "demo")
	if !regexpMatch(out, id+`\s+\S+\s+1\s+0\s+`) {
		t.Errorf("snapshots list:\n%s", out)
	}
	out = kubectl.Must(t, "stash", "check", "emulated-gcs", "-n", "demo")
	if !strings.Contains(out, "healthy: 1 snapshots") {
		t.Errorf("check:\n%s", out)
	}
}
