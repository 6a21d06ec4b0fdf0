package e2enode

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/realnode"
)

// redisPodWithPassword is redisPod for a server that requires a password, with the Secret
// (key "password", as KubeDB's auth Secrets have it) and the AppBinding that describe it.
func redisPodWithPassword(t *testing.T, ns, name, password string) *redis.Client {
	t.Helper()
	applyYAML(t, realnode.RedisManifest(ns, name, redisImage, password))
	cmd := cluster.KubectlCommand(context.Background(), "create", "secret", "generic", name+"-auth", "-n", ns, "--from-file=password=/dev/stdin")
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("create the auth Secret: %v\n%s", err, out)
	}
	applyYAML(t, fmt.Sprintf(`apiVersion: appcatalog.appscode.com/v1alpha1
kind: AppBinding
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  type: kubedb.com/redis
  clientConfig:
    service: {name: %[2]s, port: 6379, scheme: redis}
  secret: {name: %[2]s-auth}
`, ns, name))
	admin.Must(t, "wait", "--for=condition=Ready", "pod/"+name, "-n", ns, "--timeout=2m")
	ip := strings.TrimSpace(admin.Must(t, "get", "service", name, "-n", ns, "-o", "jsonpath={.spec.clusterIP}"))
	c := redis.NewClient(&redis.Options{Addr: ip + ":6379", Password: password})
	t.Cleanup(func() { c.Close() })
	waitFor(t, 30*time.Second, "PING "+name+" through its Service", func() error { return c.Ping(context.Background()).Err() })
	return c
}

// TestAppBindingTarget backs up a password-protected Redis described by an AppBinding, as
// KubeDB makes them (clientConfig.service and an auth Secret), and restores into another
// one named by its AppBinding: the runner resolves the Service through cluster DNS and reads
// the auth Secrets its Role was granted because the AppBindings name them.
func TestAppBindingTarget(t *testing.T) {
	t.Parallel()
	ns := "node-appbinding"
	namespace(t, ns)
	src := redisPodWithPassword(t, ns, "redis-src", "src-password")
	dst := redisPodWithPassword(t, ns, "redis-dst", "dst-password")
	loadSample(t, src, 3000)
	admin.Must(t, "stash", "create", "backupconfig", "by-appbinding", "-n", ns, "--repo", "repo", "--target-appbinding", "redis-src", "--schedule", "@daily")
	backupAndRestore(t, "AppBindings", ns, "by-appbinding", "repo", "appbinding/redis-dst", src, dst)
	// The passwords the runner read from the auth Secrets are nowhere the cluster shows them:
	// the runner's logs, the Jobs and Pods, the sessions, the Events.
	var logs string
	for _, session := range strings.Fields(admin.Must(t, "get", "backupsessions", "-n", ns, "-o", "jsonpath={.items[*].metadata.name}")) {
		logs += admin.Must(t, "stash", "backup", "logs", session, "-n", ns)
	}
	if logs == "" {
		t.Fatal("no runner logs to look at")
	}
	// The runner's Jobs and Pods (the Redis Pods of the test carry their own --requirepass).
	objects := admin.Must(t, "get", "jobs,pods", "-l", v1alpha1.LabelSession, "-n", ns, "-o", "yaml") +
		admin.Must(t, "get", "backupsessions,restoresessions,events", "-n", ns, "-o", "yaml")
	if !strings.Contains(objects, "stash-runner") {
		t.Fatalf("the runner's Jobs and Pods are not among the objects looked at:\n%.2000s", objects)
	}
	for _, pw := range []string{"src-password", "dst-password"} {
		if strings.Contains(logs, pw) || strings.Contains(objects, pw) {
			t.Errorf("the Redis password %q shows in the runner's logs or the namespace's objects", pw)
		}
	}
}

// TestS3PrivateCAFromCACertData backs up to MinIO over TLS with a certificate from a CA that
// neither the machine nor the runner image trusts: without CA_CERT_DATA in the storage
// Secret the backup fails on the certificate, with it the backup and the restore succeed.
func TestS3PrivateCAFromCACertData(t *testing.T) {
	t.Parallel()
	ns := "node-s3-ca"
	private, err := realnode.WriteCerts(filepath.Join(t.TempDir(), "private-ca"), "store", realnode.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	s3 := miniotest.StartTLSOn(t, "stash-private", realnode.Gateway, miniotest.TLSFiles{CAFile: private.CAFile, CertFile: private.CertFile, KeyFile: private.KeyFile})
	admin.Must(t, "create", "namespace", ns)
	env := []string{"RESTIC_PASSWORD=s3-ca-password", "AWS_ACCESS_KEY_ID=" + miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY=" + miniotest.SecretKey}
	admin.WithEnv(env...).Must(t, "stash", "create", "secret", "storage", "s3-storage", "-n", ns, "--from-env")
	admin.Must(t, "stash", "create", "repository", "s3", "-n", ns, "--provider", "s3", "--bucket", s3.Bucket, "--prefix", "node",
		"--endpoint", s3.Endpoint, "--region", "us-east-1", "--secret", "s3-storage")
	src := redisPod(t, ns, "redis-src")
	dst := redisPod(t, ns, "redis-dst")
	loadSample(t, src, 2000)
	admin.Must(t, "stash", "create", "backupconfig", "to-s3", "-n", ns, "--repo", "s3", "--redis-service", "redis-src", "--schedule", "@daily")
	c := apiClient(t)
	failed := waitBackupSession(t, c, ns, triggeredSession(t, ns, "to-s3"), 2*time.Minute)
	if failed.Status.Phase != v1alpha1.SessionFailed || !strings.Contains(failed.Status.Error, "certificate") {
		t.Fatalf("a backup to a store whose CA nothing trusts: %s %q, want Failed on the certificate", failed.Status.Phase, failed.Status.Error)
	}

	admin.Must(t, "delete", "secret", "s3-storage", "-n", ns)
	admin.WithEnv(env...).Must(t, "stash", "create", "secret", "storage", "s3-storage", "-n", ns, "--from-env", "--ca-cert-file", private.CAFile)
	backupAndRestore(t, "S3 with the CA in CA_CERT_DATA", ns, "to-s3", "s3", "service/redis-dst", src, dst)
}
