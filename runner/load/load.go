// Package load writes a snapshot stream (runner/stream) into a Redis server with pipelined
// RESTORE commands on several connections: Run, the "restore" method of runner/restore, which
// works on any target including a Redis Cluster. It also owns what both loaders share: which keys
// are loaded (Selection, Keys) and the account of a load (Stats); the other loader, which hands
// the snapshot to an empty server as its replication master, is runner/replication.
//
// The stream is parsed, not blindly forwarded, so that the loader can select databases, filter
// keys, drop REPLACE unless overwriting was asked for, skip keys whose absolute expiry has passed,
// and name the key when the server rejects one.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
)

// Options configure Run.
type Options struct {
	Redis redisconn.Options
	// Workers is the number of RESTORE connections; 0 means DefaultWorkers.
	Workers int
	// Replace overwrites existing keys; without it an existing key fails the load (BUSYKEY).
	Replace bool
	// Selection says which keys are restored.
	Selection
	// RDBVersion of the snapshot, to explain payload version errors.
	RDBVersion int
	// SourceVersion is the Redis version the snapshot was taken from, for the same purpose.
	SourceVersion string
	// Progress, if set, is updated as keys are restored.
	Progress *progress.Counter
	// Cluster, if set, sends each key to the master that owns its slot instead of to Redis,
	// and follows MOVED and ASK redirections (a resharding during the restore).
	Cluster *Routing
}

// Routing says where the keys of a Redis Cluster go.
type Routing struct {
	// Base carries the credentials and TLS settings for every node.
	Base redisconn.Options
	// Nodes are the masters; Owner maps each slot to an index in Nodes.
	Nodes []redisconn.Options
	Owner [cluster.Slots]int16
	// Databases is how many databases each node has: 1 (0 means 1) on a Redis Cluster, Valkey
	// 9's cluster-databases.
	Databases int
}

// DefaultWorkers is the number of RESTORE connections.
const DefaultWorkers = redisconn.DefaultWorkers

// batch limits: a batch is sent in one round trip.
const (
	batchCmds  = 1000
	batchBytes = 4 << 20
)

// Stats describe a finished load.
type Stats struct {
	// Keys restored per database.
	Keys map[int]int64
	// Total keys restored.
	Total int64
	// Filtered keys were skipped by Databases or KeyPattern.
	Filtered int64
	// Expired keys were skipped because their expiry had passed.
	Expired int64
	// ExpiringBy holds, per database, the number of restored keys whose expiry falls in each
	// second of the day that starts at ExpiringFrom (a unix second), so that a key count check
	// can tolerate keys that expire while the restore runs. A slice indexed by the second, not a
	// map: a map update per key with a TTL was 2% of a restore's CPU.
	ExpiringBy   map[int][]int64
	ExpiringFrom int64
	// Bytes of RESP read.
	Bytes int64
	// Dropped keys were skipped because the target cannot hold their values
	// (Selection.DropLossy); DroppedKeys lists the first MaxDroppedListed of them.
	Dropped     int64
	DroppedKeys []DroppedKey
}

// ExpiringBefore returns how many restored keys of db expire before t.
func (s Stats) ExpiringBefore(db int, t time.Time) int64 {
	counts := s.ExpiringBy[db]
	var n int64
	for _, c := range counts[:min(max(t.Unix()-s.ExpiringFrom+1, 0), int64(len(counts)))] {
		n += c
	}
	return n
}

type batch struct {
	db   int
	node int // index in Routing.Nodes
	buf  []byte
	keys [][2]int // offsets of each key in buf, for error messages
	cmds [][2]int // offsets of each command in buf, to resend it after a redirection
}

// Run reads the stream from r and restores it.
func Run(ctx context.Context, r io.Reader, opts Options) (Stats, error) {
	opts.Workers = redisconn.ClampWorkers(opts.Workers)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := NewStats()
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *batch, opts.Workers)
	nodes := 1
	if opts.Cluster != nil {
		nodes = len(opts.Cluster.Nodes)
	}
	free := make(chan *batch, opts.Workers*2+nodes)
	for range cap(free) {
		free <- &batch{}
	}
	var mu sync.Mutex
	for range opts.Workers {
		g.Go(func() error {
			return restoreWorker(gctx, ctx, opts, work, free, func(b *batch) {
				mu.Lock()
				st.Keys[b.db] += int64(len(b.keys))
				st.Total += int64(len(b.keys))
				mu.Unlock()
				if opts.Progress != nil {
					opts.Progress.Keys.Add(int64(len(b.keys)))
					opts.Progress.Bytes.Add(int64(len(b.buf)))
				}
			})
		})
	}
	g.Go(func() error {
		defer close(work)
		return parse(gctx, r, opts, &st, free, work)
	})
	err := g.Wait()
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return st, err
}

// parse reads commands and fills batches.
func parse(ctx context.Context, r io.Reader, opts Options, st *Stats, free, work chan *batch) error {
	sc := newScanner(r, opts, st)
	nodes := 1
	if opts.Cluster != nil {
		nodes = len(opts.Cluster.Nodes)
	}
	curs := make([]*batch, nodes) // the batch being filled for each node
	send := func(node int) error {
		cur := curs[node]
		if cur == nil || len(cur.keys) == 0 {
			return nil
		}
		select {
		case work <- cur:
			curs[node] = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	next := func(node, db int) (*batch, error) {
		cur := curs[node]
		if cur != nil && cur.db == db && len(cur.keys) < batchCmds && len(cur.buf) < batchBytes {
			return cur, nil
		}
		if err := send(node); err != nil {
			return nil, err
		}
		select {
		case cur = <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cur.db, cur.node, cur.buf, cur.keys, cur.cmds = db, node, cur.buf[:0], cur.keys[:0], cur.cmds[:0]
		curs[node] = cur
		return cur, nil
	}
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		err := sc.next()
		if errors.Is(err, io.EOF) {
			for node := range curs {
				if err := send(node); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		rec := sc.rec
		node := 0
		if opts.Cluster != nil {
			if sc.dbWanted {
				if err := v1alpha1.CheckClusterDatabase(rec.DB, opts.Cluster.Databases); err != nil {
					return fmt.Errorf("snapshot has keys in %w", err)
				}
			}
			node = int(opts.Cluster.Owner[cluster.Slot(rec.Key)])
		}
		if !sc.keep() {
			continue // the next record skips the payload
		}
		b, err := next(node, rec.DB)
		if err != nil {
			return err
		}
		// The RESTORE command for the target is the record with the loader's own modifiers:
		// REPLACE only when asked. The payload is read straight into it.
		mark := len(b.buf)
		nargs := 5 // RESTORE key expire-at payload ABSTTL
		if opts.Replace {
			nargs = 6
		}
		b.buf = resp.AppendArray(b.buf, nargs)
		b.buf = resp.AppendBulkString(b.buf, "RESTORE")
		b.buf = appendBulkHeader(b.buf, len(rec.Key))
		kstart := len(b.buf)
		b.buf = append(b.buf, rec.Key...)
		b.buf = append(b.buf, '\r', '\n')
		b.buf = resp.AppendBulkInt(b.buf, rec.ExpireAt)
		if opts.Target != nil {
			// A payload converted for the target may change size: convert it first, then copy.
			payload, keep, err := sc.Converted()
			if err != nil {
				return err
			}
			if !keep {
				b.buf = b.buf[:mark]
				continue
			}
			b.buf = appendBulkHeader(b.buf, len(payload))
			b.buf = append(b.buf, payload...)
			b.buf = append(b.buf, '\r', '\n')
		} else {
			plen := rec.PayloadLen
			b.buf = appendBulkHeader(b.buf, plen)
			p := len(b.buf)
			b.buf = resp.Grow(b.buf, plen+32)
			if err := sc.dec.ReadPayload(b.buf[p : p+plen]); err != nil {
				return err
			}
			b.buf = append(b.buf[:p+plen], '\r', '\n')
		}
		if opts.Replace {
			b.buf = resp.AppendBulkString(b.buf, "REPLACE")
		}
		b.buf = resp.AppendBulkString(b.buf, "ABSTTL")
		b.keys = append(b.keys, [2]int{kstart, kstart + len(rec.Key)})
		b.cmds = append(b.cmds, [2]int{mark, len(b.buf)})
	}
}

func appendBulkHeader(b []byte, n int) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// conns are one worker's connections, by address, with the database each has selected.
type conns struct {
	ctx context.Context
	m   map[string]*dbConn
}

type dbConn struct {
	*redisconn.Conn
	db int
}

func (cs *conns) get(o redisconn.Options, db int) (*redisconn.Conn, error) {
	c := cs.m[o.Addr]
	if c == nil {
		rc, err := o.Dial(cs.ctx, db)
		if err != nil {
			return nil, err
		}
		c = &dbConn{Conn: rc, db: db}
		cs.m[o.Addr] = c
	}
	if c.db != db {
		if err := c.Select(db); err != nil {
			return nil, c.Err(err)
		}
		c.db = db
	}
	return c.Conn, nil
}

func (cs *conns) close() {
	for _, c := range cs.m {
		c.Close()
	}
}

// redirect is a command the server answered with MOVED or ASK.
type redirect struct {
	i    int // index in batch.cmds
	addr string
	ask  bool
}

// restoreWorker writes batches until work closes or stop ends. A batch it has written is
// always read to its last reply, even when another goroutine has failed: Redis executes
// what it has received whether or not we listen, so abandoning the replies would let keys
// land after Run has returned and reported how far it got. Only the caller's connCtx
// interrupts a batch in flight.
func restoreWorker(stop, connCtx context.Context, opts Options, work <-chan *batch, free chan<- *batch, done func(*batch)) error {
	cs := &conns{ctx: connCtx, m: map[string]*dbConn{}}
	defer cs.close()
	for b := range work {
		if stop.Err() != nil {
			return nil // the group has failed already; write nothing more
		}
		o := opts.Redis
		if opts.Cluster != nil {
			o = opts.Cluster.Nodes[b.node]
		}
		c, err := cs.get(o, b.db)
		if err != nil {
			return err
		}
		if _, err := c.W.Write(b.buf); err != nil {
			return c.Err(err)
		}
		if err := c.W.Flush(); err != nil {
			return c.Err(err)
		}
		var firstErr error
		var redirects []redirect
		for i := range b.keys {
			if err := c.R.ReadOK(); err != nil {
				var re resp.Error
				if !errors.As(err, &re) {
					return c.Err(err)
				}
				if addr, ask, ok := cluster.ParseRedirect(string(re)); ok && opts.Cluster != nil {
					redirects = append(redirects, redirect{i, addr, ask})
					continue
				}
				if firstErr == nil {
					k := b.keys[i]
					firstErr = explain(string(re), b.buf[k[0]:k[1]], b.db, opts)
				}
			}
		}
		if firstErr == nil && len(redirects) > 0 {
			firstErr = follow(cs, opts, b, redirects)
		}
		if firstErr != nil {
			return firstErr
		}
		done(b)
		if cap(b.buf) > 2*batchBytes {
			b.buf = nil // grown for a huge key: do not keep it for the small ones that follow
		}
		free <- b
	}
	return nil
}

// follow resends redirected commands to the node named in the redirection (with ASKING before
// each for ASK), a few rounds deep, as a resharding can move a slot more than once.
func follow(cs *conns, opts Options, b *batch, redirects []redirect) error {
	for range 5 {
		var again []redirect
		for len(redirects) > 0 {
			to := redirects[0].addr
			var group []redirect
			rest := redirects[:0:0]
			for _, r := range redirects {
				if r.addr == to {
					group = append(group, r)
				} else {
					rest = append(rest, r)
				}
			}
			redirects = rest
			c, err := cs.get(cluster.NodeOptions(opts.Cluster.Base, to), 0)
			if err != nil {
				return err
			}
			for _, r := range group {
				if r.ask {
					if _, err := c.W.Write(cmdAsking); err != nil {
						return c.Err(err)
					}
				}
				if _, err := c.W.Write(b.buf[b.cmds[r.i][0]:b.cmds[r.i][1]]); err != nil {
					return c.Err(err)
				}
			}
			if err := c.W.Flush(); err != nil {
				return c.Err(err)
			}
			var firstErr error
			for _, r := range group {
				if r.ask {
					if err := c.R.ReadOK(); err != nil && firstErr == nil {
						firstErr = c.Err(fmt.Errorf("asking: %w", err))
					}
				}
				err := c.R.ReadOK()
				if err == nil {
					continue
				}
				var re resp.Error
				if !errors.As(err, &re) {
					return c.Err(err)
				}
				if addr, ask, ok := cluster.ParseRedirect(string(re)); ok {
					again = append(again, redirect{r.i, addr, ask})
				} else if firstErr == nil {
					k := b.keys[r.i]
					firstErr = explain(string(re), b.buf[k[0]:k[1]], b.db, opts)
				}
			}
			if firstErr != nil {
				return firstErr
			}
		}
		if len(again) == 0 {
			return nil
		}
		redirects = again
	}
	k := b.keys[redirects[0].i]
	return fmt.Errorf("restore key %q: too many cluster redirections (is the cluster being resharded in a loop?)", b.buf[k[0]:k[1]])
}

var cmdAsking = []byte("*1\r\n$6\r\nASKING\r\n")

// ErrKeyAppeared is a key that exists in a database that was empty (or flushed) when the
// restore began: written by another client during the restore, or twice in the snapshot.
var ErrKeyAppeared = errors.New("the database was empty when the restore began")

// explain turns server errors into messages that say what to do.
func explain(msg string, key []byte, db int, opts Options) error {
	base := fmt.Errorf("restore key %q in database %d: %s", key, db, msg)
	switch {
	case strings.HasPrefix(msg, "BUSYKEY"):
		// The restore began only into an empty (or flushed) database, and --flush and --replace
		// both write with REPLACE: so the key was written during the restore, by another client
		// or by this restore itself (a snapshot that holds the key twice). --flush cannot help.
		return fmt.Errorf("%w (%w: another client wrote the key during the restore, or the snapshot holds it twice)", base, ErrKeyAppeared)
	case strings.Contains(msg, "payload version or checksum are wrong"):
		return fmt.Errorf("%w (the snapshot was taken from Redis %s with RDB format %d, which the target cannot read: restore into Redis %s or newer)",
			base, opts.SourceVersion, opts.RDBVersion, opts.SourceVersion)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("%w (grant the user RESTORE, e.g. ACL SETUSER <user> +restore +select +@write)", base)
	case strings.HasPrefix(msg, "OOM"):
		return fmt.Errorf("%w (the target's maxmemory is too small for the snapshot)", base)
	}
	return base
}
