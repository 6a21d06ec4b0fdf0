package follow

import (
	"context"
	"fmt"
	"sync"
	"time"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
)

// source returns the options that reach the server to follow now: opts.Redis, or the master
// that the Sentinel names at this moment. It is asked at every (re)connection rather than once,
// because after a failover the old master is gone or has become a replica: the follower then
// asks the new master to continue its chain (PSYNC <replid> <offset+1>), which a promoted
// replica accepts for its old master's replication id as far as its own history goes (PSYNC2),
// and otherwise answers with a full resynchronization, which starts a new chain.
func (opts *Options) source(ctx context.Context) (redisconn.Options, error) {
	if opts.Sentinel == nil {
		return opts.Redis, nil
	}
	o, err := opts.Redis.ResolveSentinel(ctx, *opts.Sentinel, false)
	if err != nil {
		return o, fmt.Errorf("follow: %w", err)
	}
	if o.Addr != opts.lastAddr {
		if opts.lastAddr != "" {
			opts.Logf("sentinel: the master of %s is now %s (was %s)", opts.Sentinel.MasterName, o.Addr, opts.lastAddr)
		} else {
			opts.Logf("sentinel: the master of %s is %s", opts.Sentinel.MasterName, o.Addr)
		}
		opts.lastAddr = o.Addr
	}
	return o, nil
}

// sentinelPoll is how often a follower of a Sentinel-managed set asks whether the master changed.
const sentinelPoll = time.Second

// watchSentinel drops the link to src (fs.Close, so that the follower reconnects to the new
// master) as soon as the Sentinel names another master; it stops when the returned function is
// called. Without it the follower stayed on the old master until the Sentinel turned that one
// into a replica, which dropped its replicas: about 10 s later (the Sentinel's INFO period),
// during which the old master went on sending its PINGs. Those put the follower's offset beyond
// the promoted replica's history, which then answered its PSYNC with a full resynchronization:
// a new chain where PSYNC2 would have continued the old one.
func (opts *Options) watchSentinel(ctx context.Context, src string, fs *replication.FullSync) func() {
	if opts.Sentinel == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(sentinelPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			qctx, cancel := context.WithTimeout(ctx, sentinelPoll)
			o, err := opts.Redis.ResolveSentinel(qctx, *opts.Sentinel, false)
			cancel()
			if err != nil || o.Addr == src {
				continue // a Sentinel that does not answer changes nothing: the link decides
			}
			opts.Logf("sentinel: the master of %s is now %s: leaving %s", opts.Sentinel.MasterName, o.Addr, src)
			fs.Close()
			return
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
