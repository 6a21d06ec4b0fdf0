package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
)

// What a restore checks before it reports success ("verified"), by the state of each restored
// database when the restore began:
//
//   - empty, or emptied by Flush: DBSIZE must equal the keys written, less those whose expiry
//     has passed by the check. Nothing but the restore wrote to it, so a count proves that every
//     key is there (a key evicted or deleted makes it smaller, a key written by another client
//     larger: both fail).
//   - not empty (Replace without Flush): DBSIZE says nothing about the restored keys, so the
//     snapshot is read a second time and every restored key is looked up with EXISTS, in
//     pipelined batches of existsBatch; one that is not there fails the restore, naming it,
//     unless its expiry has passed. This costs a second read of the snapshot and one round trip
//     per existsBatch keys, and only restores over existing keys pay it.
//
// Function libraries are checked by name and code with FUNCTION LIST (see functions.go).
// Values are not compared: they were written by RESTORE or loaded by the target's own loader,
// which check the payload's checksum, and the snapshot's bytes were authenticated on the way.

// existsBatch is how many EXISTS commands are sent in one round trip by checkPresent.
const existsBatch = 1000

// maxMissingListed bounds the keys a presence check names.
const maxMissingListed = 5

// checkPresent reads the snapshot again and fails with ErrKeyCount if a key the restore wrote
// into one of the databases dbs is not in the target, unless it has expired by then (or within
// a second of the check). routing is set for a cluster.
func checkPresent(ctx context.Context, opts Options, m repo.Manifest, sel load.Selection, routing *load.Routing, dbs []int) error {
	sr, err := opts.Repository.OpenSnapshot(ctx, m)
	if err != nil {
		return err
	}
	defer sr.Close()
	st := load.NewStats()
	keys := load.NewKeys(sr, sel, &st)
	p := newPresence(opts.Redis, routing)
	defer p.close()
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := keys.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("read snapshot %s to verify the restore: %w", m.ID, err)
		}
		if !slices.Contains(dbs, rec.DB) || !keys.Keep() {
			continue
		}
		if sel.Target != nil {
			if _, keep, err := keys.Converted(); err != nil {
				return fmt.Errorf("read snapshot %s to verify the restore: %w", m.ID, err)
			} else if !keep {
				continue // left out: the target cannot hold it
			}
		}
		if err := p.add(ctx, rec.DB, rec.Key, rec.ExpireAt); err != nil {
			return err
		}
	}
	if err := p.flush(ctx); err != nil {
		return err
	}
	if p.missing == 0 {
		return nil
	}
	return fmt.Errorf("restore snapshot %s: %w: %d of the restored keys are not in %s (%s): evicted (the target has maxmemory and an evicting maxmemory-policy) or deleted by another client",
		m.ID, ErrKeyCount, p.missing, opts.Redis.Addr, strings.Join(p.examples, ", "))
}

// presence looks keys up with pipelined EXISTS, per database and node.
type presence struct {
	base    redisconn.Options
	routing *load.Routing
	clients map[[2]int]*redis.Client // by node index and database
	pending map[[2]int][]pendingKey
	n       int
	// missing counts the keys not found; examples names the first of them.
	missing  int64
	examples []string
}

type pendingKey struct {
	key      string
	db       int
	expireAt int64
}

func newPresence(base redisconn.Options, routing *load.Routing) *presence {
	return &presence{base: base, routing: routing, clients: map[[2]int]*redis.Client{}, pending: map[[2]int][]pendingKey{}}
}

func (p *presence) add(ctx context.Context, db int, key []byte, expireAt int64) error {
	node := 0
	if p.routing != nil {
		node = int(p.routing.Owner[cluster.Slot(key)])
	}
	at := [2]int{node, db}
	p.pending[at] = append(p.pending[at], pendingKey{string(key), db, expireAt})
	if p.n++; p.n >= existsBatch {
		return p.flush(ctx)
	}
	return nil
}

// flush sends the pending lookups, one pipeline per node and database.
func (p *presence) flush(ctx context.Context) error {
	for at, keys := range p.pending {
		if len(keys) == 0 {
			continue
		}
		c := p.clients[at]
		if c == nil {
			o := p.base
			if p.routing != nil {
				o = p.routing.Nodes[at[0]]
			}
			c = o.Client(at[1])
			p.clients[at] = c
		}
		pipe := c.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.Exists(ctx, k.key)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("verify the restored keys of database %d: %w", at[1], err)
		}
		// A key whose expiry passed, or passes within a second of the lookup, may be gone.
		soon := time.Now().Add(time.Second).UnixMilli()
		for i, k := range keys {
			if cmds[i].Val() == 1 || k.expireAt > 0 && k.expireAt <= soon {
				continue
			}
			p.missing++
			if len(p.examples) < maxMissingListed {
				p.examples = append(p.examples, fmt.Sprintf("db %d %q", k.db, k.key))
			}
		}
		p.pending[at] = keys[:0]
	}
	p.n = 0
	return nil
}

func (p *presence) close() {
	for _, c := range p.clients {
		c.Close()
	}
}

// evictionWarning returns a warning when the target may evict restored keys (maxmemory set and
// an evicting maxmemory-policy), or "". The restore still verifies every key; the warning says
// up front why it may fail.
func evictionWarning(ctx context.Context, c *redis.Client, addr string) string {
	cfg, err := c.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil || cfg["maxmemory"] == "" || cfg["maxmemory"] == "0" {
		return ""
	}
	policy := cfg["maxmemory-policy"]
	if policy == "" || policy == "noeviction" {
		return ""
	}
	return fmt.Sprintf("%s has maxmemory %s bytes and maxmemory-policy %s: it may evict keys as they are restored (the restore checks that every restored key is there, and fails if one is not)", addr, cfg["maxmemory"], policy)
}

// keysHeld sums DBSIZE over dbs, for an error that must say what the target holds rather than
// what was sent; -1 when the target does not answer.
func keysHeld(ctx context.Context, targets []redisconn.Options, dbs []int) int64 {
	var total int64
	for _, db := range dbs {
		n, err := dbSize(ctx, targets, db)
		if err != nil {
			return -1
		}
		total += n
	}
	return total
}
