package e2enode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/realnode"
	"stash.dev/redis/test/testproc"
)

// admin runs the real kubectl as the cluster's admin, with the kubectl-stash under test on
// PATH (cluster.AdminKubectl, set once the cluster is up).
var admin testproc.Kubectl

// waitFor is testproc.Eventually.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	testproc.Eventually(t, timeout, what, f)
}

// redisPod runs Debian's redis-server image in a Pod behind a Service of the same name and
// returns a client that reaches it through the Service's cluster IP (kube-proxy's rules).
func redisPod(t *testing.T, ns, name string) *redis.Client {
	t.Helper()
	manifest := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(manifest, []byte(realnode.RedisManifest(ns, name, redisImage, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "apply", "-f", manifest)
	admin.Must(t, "wait", "--for=condition=Ready", "pod/"+name, "-n", ns, "--timeout=2m")
	ip := strings.TrimSpace(admin.Must(t, "get", "service", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}"))
	c := redis.NewClient(&redis.Options{Addr: ip + ":6379"})
	t.Cleanup(func() { c.Close() })
	waitFor(t, 30*time.Second, "PING "+name+" through its Service", func() error { return c.Ping(context.Background()).Err() })
	return c
}

func loadSample(t *testing.T, c *redis.Client, keys int) {
	t.Helper()
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"DEBUG", "POPULATE", fmt.Sprint(keys), "key", "64"},
		{"HSET", "user:1", "name", "ada", "visits", "3"}, {"RPUSH", "queue", "a", "b", "c"}, {"SADD", "tags", "x", "y"},
		{"ZADD", "board", "1", "one", "2", "two"}, {"XADD", "orders", "*", "id", "1"}, {"SET", "session", "tok", "PX", "600000"},
	} {
		if err := c.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
}

func digest(t *testing.T, c *redis.Client) string {
	t.Helper()
	d, err := c.Do(context.Background(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// namespace creates a namespace with a storage Secret and a local Repository on a hostPath
// that the runner's user may write, and returns that directory.
func namespace(t *testing.T, ns string) string {
	t.Helper()
	admin.Must(t, "create", "namespace", ns)
	cluster.AdminKubectl().WithStdin(ns+"-password\n").Must(t, "stash", "create", "secret", "storage", "storage", "-n", ns, "--password-stdin")
	repo := t.TempDir()
	if err := os.Chmod(repo, 0o777); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "stash", "create", "repository", "repo", "-n", ns, "--provider", "local", "--host-path", repo, "--mount-path", "/repository", "--secret", "storage")
	return repo
}

func sessions(t *testing.T, ns string) map[string]string {
	t.Helper()
	return cluster.AdminKubectl().BackupSessionPhases(t, ns)
}

// TestScheduledBackupAndRestoreWithTheImages is the seed's whole story on the real node: the
// CronJob fires, the session runs as a Job in the runner image, a manual trigger follows,
// `kubectl stash backup logs` shows the container's log, and a restore into an empty Redis
// gives an equal DEBUG DIGEST.
func TestScheduledBackupAndRestoreWithTheImages(t *testing.T) {
	t.Parallel()
	ns := "node-flow"
	namespace(t, ns)
	src := redisPod(t, ns, "redis-src")
	dst := redisPod(t, ns, "redis-dst")
	loadSample(t, src, 5000)
	admin.Must(t, "stash", "create", "backupconfig", "flow", "-n", ns, "--repo", "repo", "--redis-service", "redis-src",
		"--schedule", "* * * * *", "--keep-last", "5")
	var scheduled string
	waitFor(t, 150*time.Second, "a scheduled backup succeeds", func() error {
		for name, phase := range sessions(t, ns) {
			if phase == "Succeeded" {
				scheduled = name
				return nil
			}
		}
		return fmt.Errorf("sessions: %v", sessions(t, ns))
	})
	logs := admin.Must(t, "stash", "backup", "logs", scheduled, "-n", ns)
	if !strings.Contains(logs, "snapshot") {
		t.Errorf("backup logs do not show the runner's log:\n%s", logs)
	}
	out := admin.Must(t, "stash", "backup", "trigger", "flow", "-n", ns, "--wait", "--timeout", "2m")
	if !strings.Contains(out, "succeeded") {
		t.Errorf("trigger --wait: %s", out)
	}
	user := admin.Must(t, "get", "pods", "-n", ns, "-l", v1alpha1.LabelComponent+"=backup", "-o", "jsonpath={.items[0].spec.securityContext.runAsUser}")
	if user != "65532" {
		t.Errorf("the backup Pod runs as %q, want 65532", user)
	}
	out = admin.Must(t, "stash", "restore", "repo", "-n", ns, "--snapshot", "latest", "--to", "service/redis-dst", "--wait", "--wait-timeout", "2m")
	if a, b := digest(t, src), digest(t, dst); a != b {
		t.Fatalf("digest mismatch after restore: source %s, restored %s\n%s", a, b, out)
	}
	if ttl := dst.PTTL(context.Background(), "session").Val(); ttl <= 0 {
		t.Errorf("TTL of session lost: %v", ttl)
	}
}

// TestS3TrustedThroughTheImageRoots backs up to MinIO over TLS whose certificate the suite's
// CA signed, without CA_CERT_DATA: only the runner image's own root bundle holds that CA.
func TestS3TrustedThroughTheImageRoots(t *testing.T) {
	t.Parallel()
	ns := "node-s3"
	s3 := miniotest.StartTLSOn(t, "stash-node", realnode.Gateway, miniotest.TLSFiles{CAFile: suiteCA.CAFile, CertFile: suiteCA.CertFile, KeyFile: suiteCA.KeyFile})
	admin.Must(t, "create", "namespace", ns)
	admin.WithEnv("RESTIC_PASSWORD=s3-password", "AWS_ACCESS_KEY_ID="+miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY="+miniotest.SecretKey).Must(t,
		"stash", "create", "secret", "storage", "s3-storage", "-n", ns, "--from-env")
	admin.Must(t, "stash", "create", "repository", "s3", "-n", ns, "--provider", "s3", "--bucket", s3.Bucket, "--prefix", "node",
		"--endpoint", s3.Endpoint, "--region", "us-east-1", "--secret", "s3-storage")
	src := redisPod(t, ns, "redis-src")
	dst := redisPod(t, ns, "redis-dst")
	loadSample(t, src, 2000)
	admin.Must(t, "stash", "create", "backupconfig", "to-s3", "-n", ns, "--repo", "s3", "--redis-service", "redis-src", "--schedule", "@daily")
	backupAndRestore(t, "S3 over TLS trusted by the image's roots", ns, "to-s3", "s3", "service/redis-dst", src, dst)
}

// backupAndRestore triggers a backup of BackupConfiguration bc and waits for it, restores the
// latest snapshot of repo to the target to (a kubectl stash restore --to), and fails the test
// unless dst then has src's DEBUG DIGEST. what names the path under test in failures.
func backupAndRestore(t *testing.T, what, ns, bc, repo, to string, src, dst *redis.Client) {
	t.Helper()
	if out, err := admin.Try(t, "stash", "backup", "trigger", bc, "-n", ns, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("backup through %s: %v\n%s\n%s", what, err, out, admin.Must(t, "stash", "backup", "logs", bc, "-n", ns))
	}
	admin.Must(t, "stash", "restore", repo, "-n", ns, "--to", to, "--wait", "--wait-timeout", "2m")
	if a, b := digest(t, src), digest(t, dst); a != b {
		t.Fatalf("digest mismatch through %s: source %s, restored %s", what, a, b)
	}
}

// TestRunnerTokenCannotReadOtherSecrets: the runner's service account token (what its Pods
// mount) reads the storage Secret it was granted and gets 403 for any other.
func TestRunnerTokenCannotReadOtherSecrets(t *testing.T) {
	t.Parallel()
	ns := "node-rbac"
	namespace(t, ns)
	admin.Must(t, "stash", "create", "backupconfig", "rbac", "-n", ns, "--repo", "repo", "--redis-address", "127.0.0.1:1", "--schedule", "@daily")
	admin.Must(t, "create", "secret", "generic", "not-for-the-runner", "-n", ns, "--from-literal=k=v")
	var token string
	waitFor(t, 60*time.Second, "the runner's service account", func() error {
		out, err := admin.Try(t, "create", "token", v1alpha1.RunnerServiceAccount, "-n", ns)
		token = strings.TrimSpace(out)
		return err
	})
	cfg := rest.AnonymousClientConfig(cluster.Config)
	cfg.BearerToken = token
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, 60*time.Second, "the runner reads its storage Secret", func() error {
		_, err := cs.CoreV1().Secrets(ns).Get(ctx, "storage", metav1.GetOptions{})
		return err
	})
	_, err = cs.CoreV1().Secrets(ns).Get(ctx, "not-for-the-runner", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("the runner's token reading a Secret it was not granted: %v, want 403 Forbidden", err)
	}
}
