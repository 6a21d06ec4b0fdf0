// Package dump writes the keys of a Redis server as a snapshot stream (the format is defined
// and documented by runner/stream): a SELECT record per database, then a RESTORE record per key.
// The stream can be replayed by the load package or by `redis-cli --pipe`.
//
// Keys are found with SCAN on one connection and dumped with pipelined PEXPIRETIME (PTTL before
// Redis 7) + DUMP on several others; replies are decoded straight into reused output buffers, so
// the hot path allocates nothing per key and memory is bounded by the batches in flight.
package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/runner/stream"
)

// Options configure Write.
type Options struct {
	Redis redisconn.Options
	// Databases to dump, in order.
	Databases []int
	// Workers is the number of DUMP connections; 0 means DefaultWorkers.
	Workers int
	// ScanCount is the SCAN COUNT hint and so the batch size; 0 means DefaultScanCount.
	ScanCount int
	// UsePTTL computes absolute expiry from PTTL, for servers older than 7.0 without PEXPIRETIME.
	UsePTTL bool
	// Progress, if set, is updated as keys are written.
	Progress *progress.Counter
	// SkipKey, if set, drops the keys it returns true for before they are dumped (a cluster
	// backup dumps the keys of migrating slots separately).
	SkipKey func(key []byte) bool
}

// Defaults, measured with bench/ on 2 cores: more connections keep Redis busy while we encode.
const (
	DefaultWorkers   = redisconn.DefaultWorkers
	DefaultScanCount = 1000
)

// Stats describe a finished dump.
type Stats struct {
	// Keys per database.
	Keys  map[int]int64
	Total int64
	// Skipped counts keys that vanished or expired between SCAN and DUMP.
	Skipped int64
	// Bytes is the size of the RESP stream.
	Bytes int64
	// RDBVersion is read from the first DUMP payload's footer (0 if no key was dumped).
	RDBVersion int
	// Functions holds the code of the source's function libraries (see repo.Manifest).
	Functions []string
}

type keyBatch struct {
	arena []byte
	ends  []int
}

func (b *keyBatch) reset() { b.arena, b.ends = b.arena[:0], b.ends[:0] }

// end is the end of the last key in the arena.
func (b *keyBatch) end() int {
	if len(b.ends) == 0 {
		return 0
	}
	return b.ends[len(b.ends)-1]
}

func (b *keyBatch) key(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.arena[start:b.ends[i]]
}

type outBatch struct {
	buf     []byte
	keys    int64
	skipped int64
	rdb     int
}

// maxKeepBuffer: output buffers that grew beyond this (a batch with a huge key) are dropped
// instead of being reused, so one big key does not pin its memory for the rest of the dump.
const maxKeepBuffer = 16 << 20

// Write dumps opts.Databases to w.
func Write(ctx context.Context, opts Options, w io.Writer) (Stats, error) {
	opts.Workers = redisconn.ClampWorkers(opts.Workers)
	if opts.ScanCount <= 0 {
		opts.ScanCount = DefaultScanCount
	}
	st := Stats{Keys: map[int]int64{}}
	var hdr []byte
	for _, db := range opts.Databases {
		hdr = stream.AppendSelect(hdr[:0], db)
		if _, err := w.Write(hdr); err != nil {
			return st, fmt.Errorf("write snapshot: %w", err)
		}
		st.Bytes += int64(len(hdr))
		if err := dumpDB(ctx, opts, db, w, &st); err != nil {
			return st, fmt.Errorf("dump database %d: %w", db, err)
		}
	}
	return st, nil
}

// WriteShards dumps opts.Databases (database 0 when empty) of every node in parallel into w as
// one stream: per database SELECT, then the RESTORE commands of all nodes interleaved batch by
// batch. A RESTORE stream does not say which node a key came from, so it restores into any
// cluster layout or a standalone server. It returns the combined stats and the stats of each
// node. (Valkey 9 clusters have numbered databases; Redis clusters only database 0.)
func WriteShards(ctx context.Context, opts Options, nodes []redisconn.Options, w io.Writer) (Stats, []Stats, error) {
	opts.Workers = redisconn.ClampWorkers(opts.Workers)
	if opts.ScanCount <= 0 {
		opts.ScanCount = DefaultScanCount
	}
	dbs := opts.Databases
	if len(dbs) == 0 {
		dbs = []int{0}
	}
	total := Stats{Keys: map[int]int64{}}
	lw := &lockedWriter{w: w}
	per := make([]Stats, len(nodes))
	for i := range per {
		per[i] = Stats{Keys: map[int]int64{}}
	}
	var err error
	for _, db := range dbs {
		hdr := stream.AppendSelect(nil, db)
		if _, err := w.Write(hdr); err != nil {
			return total, nil, fmt.Errorf("write snapshot: %w", err)
		}
		total.Bytes += int64(len(hdr))
		g, gctx := errgroup.WithContext(ctx)
		for i, node := range nodes {
			o := opts
			o.Redis = node
			g.Go(func() error {
				if err := dumpDB(gctx, o, db, lw, &per[i]); err != nil {
					return fmt.Errorf("dump node %s database %d: %w", node.Addr, db, err)
				}
				return nil
			})
		}
		if err = g.Wait(); err != nil {
			break
		}
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	for _, s := range per {
		for db, n := range s.Keys {
			total.Keys[db] += n
		}
		total.Total += s.Total
		total.Skipped += s.Skipped
		total.Bytes += s.Bytes
		if total.RDBVersion == 0 {
			total.RDBVersion = s.RDBVersion
		}
	}
	return total, per, err
}

// lockedWriter serializes whole batches from several dumps.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func dumpDB(ctx context.Context, opts Options, db int, w io.Writer, st *Stats) error {
	g, gctx := errgroup.WithContext(ctx)
	nfree := opts.Workers * 2
	freeKeys := make(chan *keyBatch, nfree)
	for range nfree {
		freeKeys <- &keyBatch{}
	}
	keysCh := make(chan *keyBatch, nfree)
	outCh := make(chan *outBatch, opts.Workers)
	freeOut := sync.Pool{New: func() any { return &outBatch{} }}

	scanConn, err := opts.Redis.Dial(gctx, db)
	if err != nil {
		return err
	}
	g.Go(func() error {
		defer close(keysCh)
		defer scanConn.Close()
		return scan(gctx, scanConn, opts.ScanCount, opts.SkipKey, freeKeys, keysCh)
	})
	var wg sync.WaitGroup
	for range opts.Workers {
		c, err := opts.Redis.Dial(gctx, db)
		if err != nil {
			// The scanner may be blocked on keysCh: cancel it through the group.
			g.Go(func() error { return err })
			break
		}
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			defer c.Close()
			return worker(gctx, c, opts.UsePTTL, keysCh, freeKeys, outCh, &freeOut)
		})
	}
	go func() { wg.Wait(); close(outCh) }()

	var werr error
	for ob := range outCh {
		if werr == nil && gctx.Err() == nil {
			if _, err := w.Write(ob.buf); err != nil {
				werr = fmt.Errorf("write snapshot: %w", err)
				g.Go(func() error { return werr }) // cancels the others
			} else {
				st.Keys[db] += ob.keys
				st.Total += ob.keys
				st.Skipped += ob.skipped
				st.Bytes += int64(len(ob.buf))
				if st.RDBVersion == 0 {
					st.RDBVersion = ob.rdb
				}
				if opts.Progress != nil {
					opts.Progress.Keys.Add(ob.keys)
					opts.Progress.Bytes.Add(int64(len(ob.buf)))
				}
			}
		}
		if cap(ob.buf) <= maxKeepBuffer {
			freeOut.Put(ob)
		}
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if werr != nil {
		return werr
	}
	if st.Keys[db] == 0 {
		delete(st.Keys, db)
	}
	return nil
}

// scan walks the keyspace with SCAN and sends key batches.
func scan(ctx context.Context, c *redisconn.Conn, count int, skip func([]byte) bool, free chan *keyBatch, out chan<- *keyBatch) error {
	var cmd []byte
	cursor := []byte("0")
	countArg := fmt.Sprint(count)
	for {
		var b *keyBatch
		select {
		case b = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.reset()
		cmd = resp.AppendArray(cmd[:0], 4)
		cmd = resp.AppendBulkString(cmd, "SCAN")
		cmd = resp.AppendBulk(cmd, cursor)
		cmd = resp.AppendBulkString(cmd, "COUNT")
		cmd = resp.AppendBulkString(cmd, countArg)
		if _, err := c.W.Write(cmd); err != nil {
			return c.Err(err)
		}
		if err := c.W.Flush(); err != nil {
			return c.Err(err)
		}
		n, err := c.R.ReadArrayLen()
		if err != nil {
			return explain("scan", c.Err(err))
		}
		if n != 2 {
			return fmt.Errorf("scan: %w: reply has %d elements", resp.ErrProtocol, n)
		}
		cursor, _, err = c.R.AppendBulkReply(cursor[:0])
		if err != nil {
			return c.Err(err)
		}
		nk, err := c.R.ReadArrayLen()
		if err != nil {
			return c.Err(err)
		}
		for range nk {
			var isNil bool
			b.arena, isNil, err = c.R.AppendBulkReply(b.arena)
			if err != nil {
				return c.Err(err)
			}
			switch {
			case isNil:
			case skip != nil && skip(b.arena[b.end():]):
				b.arena = b.arena[:b.end()]
			default:
				b.ends = append(b.ends, len(b.arena))
			}
		}
		if len(b.ends) > 0 {
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			free <- b
		}
		if len(cursor) == 1 && cursor[0] == '0' {
			return nil
		}
	}
}

var (
	cmdPExpireTime = []byte("*2\r\n$11\r\nPEXPIRETIME\r\n")
	cmdPTTL        = []byte("*2\r\n$4\r\nPTTL\r\n")
	cmdDump        = []byte("*2\r\n$4\r\nDUMP\r\n")
)

// worker dumps key batches: one pipelined round trip per batch.
func worker(ctx context.Context, c *redisconn.Conn, usePTTL bool, in <-chan *keyBatch, free chan<- *keyBatch,
	out chan<- *outBatch, pool *sync.Pool) error {
	var cmd []byte
	ttlCmd := cmdPExpireTime
	if usePTTL {
		ttlCmd = cmdPTTL
	}
	for b := range in {
		if err := ctx.Err(); err != nil {
			return err
		}
		cmd = cmd[:0]
		for i := range b.ends {
			k := b.key(i)
			cmd = append(cmd, ttlCmd...)
			cmd = resp.AppendBulk(cmd, k)
			cmd = append(cmd, cmdDump...)
			cmd = resp.AppendBulk(cmd, k)
		}
		if _, err := c.W.Write(cmd); err != nil {
			return c.Err(err)
		}
		if err := c.W.Flush(); err != nil {
			return c.Err(err)
		}
		ob := pool.Get().(*outBatch)
		ob.buf, ob.keys, ob.skipped, ob.rdb = ob.buf[:0], 0, 0, 0
		for i := range b.ends {
			k := b.key(i)
			ttl, err := c.R.ReadInt()
			if err != nil {
				return explain("read ttl", c.Err(err))
			}
			expireAt, exists := stream.ExpireAt(ttl, usePTTL)
			n, err := c.R.ReadBulkLen()
			if err != nil {
				return explain(fmt.Sprintf("dump key %q", k), c.Err(err))
			}
			if n < 0 {
				ob.skipped++ // vanished after SCAN
				continue
			}
			// The payload is read from the connection straight into its place in the record.
			mark := len(ob.buf)
			ob.buf = stream.AppendRestoreStart(ob.buf, k, expireAt, n)
			ob.buf = resp.Grow(ob.buf, n+stream.RestoreEndLen)
			payload := ob.buf[len(ob.buf) : len(ob.buf)+n]
			if err := c.R.ReadBulkData(payload); err != nil {
				return c.Err(err)
			}
			ob.buf = ob.buf[:len(ob.buf)+n]
			if !exists {
				// Missing at PEXPIRETIME but present at DUMP: created meanwhile, expiry unknown.
				ob.buf = ob.buf[:mark]
				ob.skipped++
				continue
			}
			if ob.rdb == 0 {
				ob.rdb, _ = rdb.FormatVersion(payload[:n])
			}
			ob.buf = stream.AppendRestoreEnd(ob.buf)
			ob.keys++
		}
		free <- b
		select {
		case out <- ob:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// explain adds the next step to permission errors.
func explain(action string, err error) error {
	var re resp.Error
	if errors.As(err, &re) && strings.HasPrefix(string(re), "NOPERM") {
		return fmt.Errorf("%s: redis user lacks a permission the backup needs: %w (grant it e.g. with ACL SETUSER <user> +@read +dump +pexpiretime +scan +info +select)", action, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}
