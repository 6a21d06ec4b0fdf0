package redistest

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/testproc"
)

// Cluster is a Redis Cluster of real redis-server processes on 127.0.0.1.
type Cluster struct {
	Masters  []*Server
	Replicas []*Server
	// Client follows MOVED and ASK redirections.
	Client *redis.ClusterClient
}

// StartCluster runs masters cluster-enabled servers (fresh directories, so no node remembers an
// earlier cluster) and joins them with `redis-cli --cluster create`, which assigns the 16384
// slots evenly. It returns when every node reports cluster_state:ok. opts apply to every node
// (a Flavor runs a cluster of that server).
func StartCluster(t testing.TB, masters int, opts ...Option) *Cluster {
	t.Helper()
	return startCluster(t, masters, 0, opts...)
}

// StartClusterWithReplicas is StartCluster with one replica per master (Replicas[i] need not
// replicate Masters[i]: ask CLUSTER NODES).
func StartClusterWithReplicas(t testing.TB, masters int) *Cluster {
	t.Helper()
	return startCluster(t, masters, 1)
}

func startCluster(t testing.TB, masters, replicas int, opts ...Option) *Cluster {
	t.Helper()
	cli := Binary(t, "redis-cli")
	n := masters * (1 + replicas)
	var nodes []*Server
	var addrs []string
	for range n {
		s := Start(t, append([]Option{withClusterPort(),
			WithConfig("cluster-enabled", "yes"),
			WithConfig("cluster-config-file", "nodes.conf"),
			WithConfig("cluster-node-timeout", "3000"),
			WithConfig("cluster-require-full-coverage", "yes")}, opts...)...)
		nodes = append(nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx := context.Background()
	// One deadline for the whole cluster to settle.
	deadline := time.Now().Add(30 * time.Second)
	settle := func(what string, cond func() error) {
		t.Helper()
		testproc.Eventually(t, time.Until(deadline), what, cond)
	}
	for _, s := range nodes {
		settle("cluster node "+s.Addr+" ready", func() error {
			info, err := s.Client.ClusterInfo(ctx).Result()
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = fmt.Errorf("CLUSTER INFO: %s", info)
			}
			return err
		})
	}
	c := &Cluster{}
	for _, s := range nodes {
		role, err := s.Client.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatalf("role of %s: %v", s.Addr, err)
		}
		if role[0] == "master" {
			c.Masters = append(c.Masters, s)
		} else {
			c.Replicas = append(c.Replicas, s)
		}
	}
	// Replicas must know every master before the cluster client can route through them.
	for _, s := range c.Replicas {
		settle("replica "+s.Addr+" in sync", func() error { return linkUp(s) })
	}
	// Every node must know every replica (gossip takes a moment after CLUSTER REPLICATE).
	for _, s := range nodes {
		settle(fmt.Sprintf("node %s sees %d replicas", s.Addr, len(c.Replicas)), func() error {
			txt, err := s.Client.ClusterNodes(ctx).Result()
			if err == nil && strings.Count(txt, "slave") != len(c.Replicas) {
				err = fmt.Errorf("CLUSTER NODES:\n%s", txt)
			}
			return err
		})
	}
	c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Protocol: 2, DisableIdentity: true, ReadTimeout: 2 * time.Minute})
	t.Cleanup(func() { c.Client.Close() })
	return c
}

// withClusterPort makes Start choose a port whose cluster bus port (port+10000) exists.
func withClusterPort() Option { return optionFunc(func(c *config) { c.cluster = true }) }

// DBSize is the number of keys in the cluster: the sum of DBSIZE over the masters.
func (c *Cluster) DBSize(t testing.TB) int64 {
	t.Helper()
	var n int64
	for _, m := range c.Masters {
		k, err := m.Client.DBSize(context.Background()).Result()
		if err != nil {
			t.Fatalf("dbsize of %s: %v", m.Addr, err)
		}
		n += k
	}
	return n
}

// Contents returns every key of the cluster (merged over the masters) mapped to
// "DEBUG DIGEST-VALUE/PEXPIRETIME", so that two datasets can be compared key by key.
func (c *Cluster) Contents(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range c.Masters {
		maps.Copy(out, m.Contents(t))
	}
	return out
}

// Contents returns every key of database 0 mapped to "DEBUG DIGEST-VALUE/PEXPIRETIME".
func (s *Server) Contents(t testing.TB) map[string]string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	it := s.Client.Scan(ctx, 0, "", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("scan %s: %v", s.Addr, err)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(keys))
	for chunk := range slices.Chunk(keys, 1000) {
		p := s.Client.Pipeline()
		dig := make([]*redis.Cmd, len(chunk))
		exp := make([]*redis.Cmd, len(chunk))
		for i, k := range chunk {
			dig[i] = p.Do(ctx, "DEBUG", "DIGEST-VALUE", k)
			exp[i] = p.Do(ctx, "PEXPIRETIME", k)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("digest keys on %s: %v", s.Addr, err)
		}
		for i, k := range chunk {
			out[k] = fmt.Sprintf("%v/%d", dig[i].Val(), exp[i].Val())
		}
	}
	return out
}
