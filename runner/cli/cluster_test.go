package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/test/redistest"
)

// TestClusterAndSentinelFlags: --redis with any cluster node detects the cluster; with
// --sentinel-master, --redis is the Sentinel and REDIS_SENTINEL_PASSWORD authenticates to it.
func TestClusterAndSentinelFlags(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := c.Client.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	repoURL := "file://" + t.TempDir()
	out := mustRun(t, nil, "backup", "--redis", c.Masters[2].URL(), "--repository", repoURL)
	if !strings.Contains(out, ": 6 keys") {
		t.Errorf("backup output: %s", out)
	}
	js := mustRun(t, nil, "snapshots", "--repository", repoURL, "--json")
	var ms []struct {
		RedisMode string
		Cluster   struct{ Shards []struct{ Keys int64 } }
	}
	if err := json.Unmarshal([]byte(js), &ms); err != nil || len(ms) != 1 || ms[0].RedisMode != "cluster" || len(ms[0].Cluster.Shards) != 3 {
		t.Fatalf("snapshots --json: %v\n%s", err, js)
	}
	followRefusesCluster(t, c)
	dst := redistest.StartCluster(t, 3)
	mustRun(t, nil, "restore", "--redis", dst.Masters[0].URL(), "--repository", repoURL)
	if n := dst.DBSize(t); n != 6 {
		t.Errorf("restored cluster has %d keys", n)
	}

	master := redistest.Start(t, redistest.WithPassword("data"))
	master.Client.Set(ctx, "x", "y", 0)
	sen := redistest.StartSentinel(t, master, "mm", 0, redistest.WithPassword("sen"))
	e := env{cli.EnvRedisPassword: "data", cli.EnvRedisSentinelPassword: "sen"}
	out = mustRun(t, e, "backup", "--redis", sen.URL(), "--sentinel-master", "mm", "--repository", repoURL)
	if !strings.Contains(out, ": 1 keys") {
		t.Errorf("backup through sentinel: %s", out)
	}
	_, _, err := run(t, e, "backup", "--redis", sen.URL(), "--sentinel-master", "nope", "--repository", repoURL)
	if err == nil || !strings.Contains(err.Error(), `no master named "nope"`) {
		t.Errorf("unknown master set: %v", err)
	}
}

// followRefusesCluster: follow of a cluster node is refused at once, naming the cluster, and
// leaves no repository. Before, it followed that node's shard and its window restored a third of
// the keys as if it were the whole dataset.
func followRefusesCluster(t *testing.T, c *redistest.Cluster) {
	t.Helper()
	dir := t.TempDir()
	f := startFollow(t, "--redis", c.Masters[1].URL(), "--repository", "file://"+dir, "--no-reconnect")
	select {
	case err := <-f.done:
		if err == nil || !strings.Contains(err.Error(), "Redis Cluster") {
			t.Fatalf("follow of a cluster node: %v, want a refusal naming the cluster", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("follow of a cluster node still runs after 20 s; stdout: %s", f.out.String())
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
		t.Fatalf("follow of a cluster node left %v (%v) in the repository", entries, err)
	}
}
