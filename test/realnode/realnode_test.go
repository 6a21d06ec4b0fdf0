package realnode

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// TestNodeRunsAnImageBehindAService starts the node, runs Debian's redis-server from an image
// in a Pod behind a Service, and reaches it through the Service's address from the host and
// from another Pod; after Stop nothing of the node is left on the host.
func TestNodeRunsAnImageBehindAService(t *testing.T) {
	if err := Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the real node: %v", err)
		}
		t.Skip(err)
	}
	c, err := Start(Options{LogDir: logDir(t), Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	kubectl := c.AdminKubectl()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	spec, archive, err := RedisImage(ctx, t.TempDir(), redis)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	manifest := t.TempDir() + "/redis.yaml"
	if err := os.WriteFile(manifest, []byte(RedisManifest("default", "redis", spec.Ref(), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl.Must(t, "apply", "-f", manifest)
	kubectl.Must(t, "wait", "--for=condition=Ready", "pod/redis", "--timeout=2m")
	ip := strings.TrimSpace(kubectl.Must(t, "get", "service", "redis", "-o", "jsonpath={.spec.clusterIP}"))
	var out []byte
	if err := testproc.Poll(30*time.Second, "PING through the Service from the host", func() error {
		out, err = exec.Command("redis-cli", "-h", ip, "ping").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "PONG" {
			return errorf("%s %v", out, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err, "\n", kubectl.Must(t, "logs", "redis"))
	}
	c.Stop()
	stopped = true
	if err := exec.Command("ip", "link", "show", Bridge).Run(); err == nil {
		t.Errorf("bridge %s left behind", Bridge)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/" + CgroupName); err == nil {
		t.Errorf("cgroup %s left behind", CgroupName)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		if out, _ := exec.Command(save).Output(); strings.Contains(string(out), "KUBE-") {
			t.Errorf("iptables rules of the kubelet or kube-proxy left behind:\n%s", out)
		}
	}
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("%s left behind", c.Dir)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// logDir is where the components' logs go: $STASH_REALNODE_LOGS to keep them, or a test directory.
func logDir(t *testing.T) string {
	if d := os.Getenv("STASH_REALNODE_LOGS"); d != "" {
		return d
	}
	return t.TempDir()
}
