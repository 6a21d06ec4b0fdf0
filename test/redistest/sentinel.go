package redistest

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a running redis-sentinel.
type Sentinel struct {
	*Server
	// MasterName is the monitored master set.
	MasterName string
	// Client talks Sentinel commands.
	Sentinel *redis.SentinelClient
}

// StartReplica runs a redis-server that replicates master and waits until the link is up.
func StartReplica(t testing.TB, master *Server, opts ...Option) *Server {
	t.Helper()
	host, port, _ := net.SplitHostPort(master.Addr)
	opts = append(opts, WithConfig("replicaof", host, port))
	if master.Password != "" {
		opts = append(opts, WithConfig("masterauth", master.Password), WithPassword(master.Password))
	}
	s := Start(t, opts...)
	waitFor(t, 15*time.Second, "replica "+s.Addr+" in sync", func() bool {
		info, err := s.Client.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return s
}

// StartSentinel runs a redis-sentinel (quorum 1, 1 s down-after) that monitors master as name,
// and waits until it knows the given number of replicas.
func StartSentinel(t testing.TB, master *Server, name string, replicas int, opts ...Option) *Sentinel {
	t.Helper()
	host, port, _ := net.SplitHostPort(master.Addr)
	opts = append(opts, withSentinel(),
		WithConfig("sentinel", "monitor", name, host, port, "1"),
		WithConfig("sentinel", "down-after-milliseconds", name, "1000"),
		WithConfig("sentinel", "failover-timeout", name, "10000"))
	if master.Password != "" {
		opts = append(opts, WithConfig("sentinel", "auth-pass", name, master.Password))
	}
	s := Start(t, opts...)
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: s.Password, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { sc.Close() })
	waitFor(t, 30*time.Second, "sentinel to see "+strconv.Itoa(replicas)+" replicas", func() bool {
		r, err := sc.Replicas(context.Background(), name).Result()
		return err == nil && len(r) >= replicas
	})
	return &Sentinel{Server: s, MasterName: name, Sentinel: sc}
}

func withSentinel() Option { return optionFunc(func(c *config) { c.sentinel = true }) }

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
