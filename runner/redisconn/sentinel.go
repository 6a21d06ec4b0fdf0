package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Sentinel says how to find a master through Redis Sentinel. The Options it is applied to carry
// the credentials and TLS settings of the data nodes; the Sentinel has its own password.
type Sentinel struct {
	// Addrs are Sentinel addresses (host:port); the first that answers is used.
	Addrs      []string
	MasterName string
	// Username and Password authenticate to the Sentinel (not to Redis).
	Username, Password string
}

// ResolveSentinel asks the Sentinel for the current master of s.MasterName, or for a healthy
// replica when replica is true, and returns o pointed at it.
func (o Options) ResolveSentinel(ctx context.Context, s Sentinel, replica bool) (Options, error) {
	if s.MasterName == "" {
		return o, ErrNoMasterName
	}
	var errs []error
	for _, addr := range s.Addrs {
		c := redis.NewSentinelClient(&redis.Options{
			Addr: addr, Username: s.Username, Password: s.Password, TLSConfig: o.TLS,
			DialTimeout: o.dialTimeout(), Protocol: 2, DisableIdentity: true,
		})
		target, err := askSentinel(ctx, c, s.MasterName, replica)
		c.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("sentinel %s: %w", addr, err))
			continue
		}
		return o.WithAddr(target), nil
	}
	if len(errs) == 0 {
		return o, errors.New("no sentinel address")
	}
	return o, fmt.Errorf("find master %q through sentinel: %w", s.MasterName, errors.Join(errs...))
}

func askSentinel(ctx context.Context, c *redis.SentinelClient, name string, replica bool) (string, error) {
	if !replica {
		hp, err := c.GetMasterAddrByName(ctx, name).Result()
		if err != nil {
			if errors.Is(err, redis.Nil) {
				return "", fmt.Errorf("no master named %q is monitored (check SENTINEL MASTERS)", name)
			}
			return "", err
		}
		if len(hp) != 2 {
			return "", fmt.Errorf("unexpected reply %v", hp)
		}
		return net.JoinHostPort(hp[0], hp[1]), nil
	}
	reps, err := c.Replicas(ctx, name).Result()
	if err != nil {
		return "", err
	}
	for _, r := range reps {
		flags := r["flags"]
		if strings.Contains(flags, "s_down") || strings.Contains(flags, "o_down") || strings.Contains(flags, "disconnected") {
			continue
		}
		if r["master-link-status"] != "ok" {
			continue
		}
		return net.JoinHostPort(r["ip"], r["port"]), nil
	}
	return "", fmt.Errorf("master %q has no healthy replica (back up from the master instead)", name)
}
