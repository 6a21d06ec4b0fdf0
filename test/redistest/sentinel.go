package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/testproc"
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
	testproc.Eventually(t, 15*time.Second, "replica "+s.Addr+" in sync", func() error { return linkUp(s) })
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
	testproc.Eventually(t, 30*time.Second, "sentinel sees "+strconv.Itoa(replicas)+" replicas", func() error {
		r, err := sc.Replicas(context.Background(), name).Result()
		if err == nil && len(r) < replicas {
			err = fmt.Errorf("it sees %d", len(r))
		}
		return err
	})
	return &Sentinel{Server: s, MasterName: name, Sentinel: sc}
}

func withSentinel() Option { return optionFunc(func(c *config) { c.sentinel = true }) }

// linkUp says whether replica s has its master link up.
func linkUp(s *Server) error {
	info, err := s.Client.Info(context.Background(), "replication").Result()
	if err == nil && !strings.Contains(info, "master_link_status:up") {
		err = errors.New("master_link_status is not up")
	}
	return err
}
