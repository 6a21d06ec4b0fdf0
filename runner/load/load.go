// Package load replays a RESP stream written by the dump package into a Redis server with
// pipelined RESTORE on several connections.
//
// The stream is parsed, not blindly forwarded, so that the loader can select databases, filter
// keys, drop REPLACE unless overwriting was asked for, skip keys whose absolute expiry has passed,
// and name the key when the server rejects one.
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

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
	// Databases restricts the load to these databases; empty means all.
	Databases []int
	// KeyPattern restricts the load to keys matching this Redis glob pattern; empty means all.
	KeyPattern string
	// RDBVersion of the snapshot, to explain payload version errors.
	RDBVersion int
	// SourceVersion is the Redis version the snapshot was taken from, for the same purpose.
	SourceVersion string
	// Progress, if set, is updated as keys are restored.
	Progress *progress.Counter
	// Now returns the current time; nil means time.Now. Keys whose absolute expiry is not after
	// Now are skipped, as Redis would not create them.
	Now func() time.Time
}

// DefaultWorkers is the number of RESTORE connections.
const DefaultWorkers = 4

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
	// ExpiringBy holds, per database, the unix second and the number of restored keys whose expiry
	// falls in that second (only within a day of the start), so that a key count check can
	// tolerate keys that expire while the restore runs.
	ExpiringBy map[int]map[int64]int64
	// Bytes of RESP read.
	Bytes int64
}

// ExpiringBefore returns how many restored keys of db expire before t.
func (s Stats) ExpiringBefore(db int, t time.Time) int64 {
	var n int64
	for sec, c := range s.ExpiringBy[db] {
		if sec <= t.Unix() {
			n += c
		}
	}
	return n
}

type batch struct {
	db   int
	buf  []byte
	keys [][2]int // offsets of each key in buf, for error messages
}

// Run reads the stream from r and restores it.
func Run(ctx context.Context, r io.Reader, opts Options) (Stats, error) {
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	st := Stats{Keys: map[int]int64{}, ExpiringBy: map[int]map[int64]int64{}}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan *batch, opts.Workers)
	free := make(chan *batch, opts.Workers*2+1)
	for range cap(free) {
		free <- &batch{}
	}
	var mu sync.Mutex
	for range opts.Workers {
		g.Go(func() error {
			return restoreWorker(gctx, opts, work, free, func(b *batch) {
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
	br := bufio.NewReaderSize(&countingReader{r: r, n: &st.Bytes}, 1<<20)
	rd := resp.NewReader(br)
	var pattern []byte
	if opts.KeyPattern != "" {
		pattern = []byte(opts.KeyPattern)
	}
	startSec := opts.Now().Unix()
	nowMs := opts.Now().UnixMilli()
	db, dbWanted := 0, len(opts.Databases) == 0 || slices.Contains(opts.Databases, 0)
	var cur *batch
	var arg []byte
	send := func() error {
		if cur == nil || len(cur.keys) == 0 {
			return nil
		}
		select {
		case work <- cur:
			cur = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	next := func() (*batch, error) {
		if cur != nil && cur.db == db && len(cur.keys) < batchCmds && len(cur.buf) < batchBytes {
			return cur, nil
		}
		if cur != nil && len(cur.keys) == 0 {
			// Everything in it was filtered out: reuse it for the new database instead of
			// dropping it, which would shrink the free list until the loader deadlocks.
			cur.db, cur.buf = db, cur.buf[:0]
			return cur, nil
		}
		if err := send(); err != nil {
			return nil, err
		}
		select {
		case cur = <-free:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		cur.db, cur.buf, cur.keys = db, cur.buf[:0], cur.keys[:0]
		return cur, nil
	}
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			nowMs = opts.Now().UnixMilli()
		}
		argc, err := rd.ReadArrayLen()
		if errors.Is(err, io.EOF) {
			return send()
		}
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if argc < 1 {
			return fmt.Errorf("read snapshot: %w: empty command", resp.ErrProtocol)
		}
		arg, _, err = rd.AppendBulkReply(arg[:0])
		if err != nil {
			return fmt.Errorf("read snapshot: %w", noEOF(err))
		}
		switch {
		case bytes.EqualFold(arg, []byte("SELECT")):
			if argc != 2 {
				return fmt.Errorf("read snapshot: %w: SELECT with %d arguments", resp.ErrProtocol, argc-1)
			}
			if arg, _, err = rd.AppendBulkReply(arg[:0]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			d, err := strconv.Atoi(string(arg))
			if err != nil {
				return fmt.Errorf("read snapshot: %w: bad database %q", resp.ErrProtocol, arg)
			}
			db = d
			dbWanted = len(opts.Databases) == 0 || slices.Contains(opts.Databases, db)
		case bytes.EqualFold(arg, []byte("RESTORE")):
			if argc < 4 {
				return fmt.Errorf("read snapshot: %w: RESTORE with %d arguments", resp.ErrProtocol, argc-1)
			}
			b, err := next()
			if err != nil {
				return err
			}
			mark := len(b.buf)
			nargs := 5 // RESTORE key ttl payload ABSTTL
			if opts.Replace {
				nargs = 6
			}
			b.buf = resp.AppendArray(b.buf, nargs)
			b.buf = resp.AppendBulkString(b.buf, "RESTORE")
			// key
			klen, err := rd.ReadBulkLen()
			if err != nil || klen < 0 {
				return fmt.Errorf("read snapshot: bad key: %w", noEOF(orProto(err)))
			}
			b.buf = appendBulkHeader(b.buf, klen)
			kstart := len(b.buf)
			b.buf = resp.Grow(b.buf, klen+2)
			if err := rd.ReadBulkData(b.buf[kstart : kstart+klen]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			b.buf = append(b.buf[:kstart+klen], '\r', '\n')
			key := b.buf[kstart : kstart+klen]
			// ttl
			if arg, _, err = rd.AppendBulkReply(arg[:0]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			ttl, err := resp.ParseInt(arg)
			if err != nil {
				return fmt.Errorf("read snapshot: bad ttl of key %q: %w", key, err)
			}
			skip := !dbWanted || (pattern != nil && !Match(pattern, key))
			expired := !skip && ttl > 0 && ttl <= nowMs
			b.buf = resp.AppendBulk(b.buf, arg)
			// payload
			plen, err := rd.ReadBulkLen()
			if err != nil || plen < 0 {
				return fmt.Errorf("read snapshot: bad payload of key %q: %w", key, noEOF(orProto(err)))
			}
			b.buf = appendBulkHeader(b.buf, plen)
			p := len(b.buf)
			b.buf = resp.Grow(b.buf, plen+32)
			if err := rd.ReadBulkData(b.buf[p : p+plen]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			b.buf = append(b.buf[:p+plen], '\r', '\n')
			// the original modifiers are dropped: ours are REPLACE (if asked) and ABSTTL
			for range argc - 4 {
				if err := rd.Discard(); err != nil {
					return fmt.Errorf("read snapshot: %w", noEOF(err))
				}
			}
			switch {
			case skip:
				st.Filtered++
				b.buf = b.buf[:mark]
				continue
			case expired:
				st.Expired++
				b.buf = b.buf[:mark]
				continue
			}
			if opts.Replace {
				b.buf = resp.AppendBulkString(b.buf, "REPLACE")
			}
			b.buf = resp.AppendBulkString(b.buf, "ABSTTL")
			b.keys = append(b.keys, [2]int{kstart, kstart + klen})
			if ttl > 0 && ttl/1000 < startSec+86400 {
				m := st.ExpiringBy[db]
				if m == nil {
					m = map[int64]int64{}
					st.ExpiringBy[db] = m
				}
				m[ttl/1000]++
			}
		default:
			return fmt.Errorf("read snapshot: unsupported command %q (not a stash snapshot?)", arg)
		}
	}
}

func appendBulkHeader(b []byte, n int) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

func restoreWorker(ctx context.Context, opts Options, work <-chan *batch, free chan<- *batch, done func(*batch)) error {
	var c *redisconn.Conn
	db := -1
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for b := range work {
		if c == nil {
			var err error
			if c, err = opts.Redis.Dial(ctx, b.db); err != nil {
				return err
			}
			db = b.db
		}
		if b.db != db {
			if err := c.Select(b.db); err != nil {
				return c.Err(err)
			}
			db = b.db
		}
		if _, err := c.W.Write(b.buf); err != nil {
			return c.Err(err)
		}
		if err := c.W.Flush(); err != nil {
			return c.Err(err)
		}
		var firstErr error
		for i := range b.keys {
			if err := c.R.ReadOK(); err != nil {
				var re resp.Error
				if !errors.As(err, &re) {
					return c.Err(err)
				}
				if firstErr == nil {
					k := b.keys[i]
					firstErr = explain(string(re), b.buf[k[0]:k[1]], b.db, opts)
				}
			}
		}
		if firstErr != nil {
			return firstErr
		}
		done(b)
		free <- b
	}
	return nil
}

// explain turns server errors into messages that say what to do.
func explain(msg string, key []byte, db int, opts Options) error {
	base := fmt.Errorf("restore key %q in database %d: %s", key, db, msg)
	switch {
	case strings.HasPrefix(msg, "BUSYKEY"):
		return fmt.Errorf("%w (the key already exists: use --flush to empty the database first or --replace to overwrite keys)", base)
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

func orProto(err error) error {
	if err == nil {
		return fmt.Errorf("%w: nil bulk string", resp.ErrProtocol)
	}
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: snapshot stream ends in the middle of a command", io.ErrUnexpectedEOF)
	}
	return err
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}
