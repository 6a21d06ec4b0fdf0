// Package follow is continuous backup: it follows a Redis source as a replica and records its
// replication stream into the journal of a repository (runner/journal), after a base snapshot
// taken from the same full resynchronization. It is the library behind `stash-runner follow`.
//
// One follower writes one chain at a time: the base snapshot (a normal snapshot, method
// replication, whose manifest holds the replication id and offset of its instant) and the
// segments that continue it from that offset without a gap. After a lost link the follower asks
// the source to continue (PSYNC <replid> <offset+1>); if it does, the chain goes on, and if it
// answers with a full resynchronization instead, a new base starts a new chain. A restarted
// follower continues the newest chain of the repository the same way.
package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
)

// Defaults of Options.
const (
	DefaultSegmentInterval = 10 * time.Second
	DefaultSegmentSize     = 8 << 20
	// DefaultBaseInterval bounds what a restore to a point replays to 6 hours of writes (one
	// base load plus at most that much journal) for the price of four forks and base
	// transfers a day, which a daily scheduled backup's one fork is the scale of.
	DefaultBaseInterval = 6 * time.Hour
)

// Options configure Run.
type Options struct {
	Redis      redisconn.Options
	Repository *repo.Repository
	// SegmentInterval closes a segment this long after its first command; SegmentSize closes it
	// when it holds this many bytes of stream, whichever comes first.
	SegmentInterval time.Duration
	SegmentSize     int64
	// Hostname and RunnerVersion are recorded in the base snapshot's manifest.
	Hostname, RunnerVersion string
	// Logf, if set, is told about bases, chains and reconnections.
	Logf func(format string, args ...any)
	// OnBase and OnSegment, if set, are called after a base snapshot or a segment is committed,
	// from the follower's goroutines (one at a time).
	OnBase    func(backup.Result)
	OnSegment func(journal.Manifest)
	// BaseInterval, if positive, takes a new base (and starts a new chain) this long after the
	// chain's base, on a second link while the first goes on recording, so that a restore
	// replays at most about this much journal and retention can drop old chains.
	BaseInterval time.Duration
	// KeepWithinWindow, if positive, applies journal.KeepWithin after every new base: the
	// chains no instant of the last KeepWithinWindow needs are removed with their bases.
	KeepWithinWindow time.Duration
	// OnRetention, if set, is told what a retention pass kept and removed.
	OnRetention func(journal.WindowRetention)
	// Reconnect makes Run reconnect after a lost link (PSYNC continue, else a new base) instead
	// of returning the link's error. Errors of the repository always end Run.
	Reconnect bool
	// Sentinel, if set, names the master set to follow: the follower asks the Sentinel for the
	// master at every (re)connection, so that it follows the new master after a failover.
	// Redis then carries only the data nodes' credentials and TLS settings.
	Sentinel *redisconn.Sentinel

	lastAddr string // the master the Sentinel named last, to log a change
	// ret runs one window retention pass at a time, in the background (deleting a chain's
	// objects takes a request each); Run waits for it.
	ret *retainer
}

type retainer struct {
	wg   sync.WaitGroup
	busy atomic.Bool
}

// position is the end of the journal: where the next segment starts.
type position struct {
	chain  string
	replID string
	offset int64
	db     int
}

// errLink marks an error of the replication link (not of the repository): Run may reconnect.
type errLink struct{ err error }

func (e errLink) Error() string { return "replication link: " + e.err.Error() }
func (e errLink) Unwrap() error { return e.err }

// Run follows the source until ctx is cancelled, then closes the open segment and returns nil.
// It continues the newest chain of the repository if the source can continue it, and starts a
// new chain with a base snapshot otherwise.
func Run(ctx context.Context, opts Options) error {
	if opts.Repository == nil {
		return errors.New("follow: no repository")
	}
	if opts.SegmentInterval <= 0 {
		opts.SegmentInterval = DefaultSegmentInterval
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.OnBase == nil {
		opts.OnBase = func(backup.Result) {}
	}
	// One writer per journal: a second follower would interleave its segments with ours.
	lease, lctx, err := opts.Repository.AcquireLease(ctx, JournalLease, opts.Hostname, 0)
	if err != nil {
		return fmt.Errorf("follow: the repository's journal has one writer: %w", err)
	}
	defer lease.Release(ctx)
	err = runHeld(lctx, opts)
	if cause := context.Cause(lctx); errors.Is(cause, repo.ErrLeaseLost) {
		return cause
	}
	return err
}

// JournalLease is the repository lease (repo.AcquireLease) a follower holds while it writes.
const JournalLease = "follow"

// runHeld is Run while the lease is held.
func runHeld(ctx context.Context, opts Options) error {
	pos, err := lastPosition(ctx, opts.Repository)
	if err != nil {
		return err
	}
	opts.ret = &retainer{}
	defer opts.ret.wg.Wait()
	backoff := time.Second
	for {
		began := time.Now()
		err := follow(ctx, &opts, &pos)
		if err == nil {
			return nil // stopped by ctx, the open segment closed
		}
		var le errLink
		if errors.As(err, &le) && ctx.Err() != nil {
			return nil // the link broke because the follower is stopping: the stop is the outcome
		}
		if !opts.Reconnect || !errors.As(err, &le) {
			return err
		}
		if time.Since(began) > time.Minute {
			backoff = time.Second
		}
		opts.Logf("%v; reconnecting in %s", err, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// lastPosition finds the end of the newest chain: its last segment's end, or its base's
// offset. A repository without a chain (or whose newest chain lost its base) has none.
func lastPosition(ctx context.Context, r *repo.Repository) (position, error) {
	chains, err := journal.Chains(ctx, r)
	if err != nil {
		return position{}, err
	}
	for i := len(chains) - 1; i >= 0; i-- {
		chain := chains[i]
		base, err := r.Manifest(ctx, chain)
		if errors.Is(err, repo.ErrSnapshotNotFound) {
			continue
		}
		if err != nil {
			return position{}, err
		}
		segs, err := journal.List(ctx, r, chain)
		if err != nil {
			return position{}, err
		}
		if err := journal.CheckContiguous(base.ReplOffset, segs); err != nil {
			// A chain with a missing segment reaches nothing after the hole: continuing it
			// would record segments no restore can use. A new base starts a new chain.
			return position{}, nil
		}
		if len(segs) == 0 {
			return position{chain: chain, replID: base.ReplID, offset: base.ReplOffset}, nil
		}
		last := segs[len(segs)-1]
		return position{chain: chain, replID: last.ReplID, offset: last.EndOffset, db: last.EndDB}, nil
	}
	return position{}, nil
}

// follow connects once: it continues pos if it names a chain and the source agrees, else it
// takes a new base and starts a new chain; then it records the stream until the link or ctx
// ends. It returns nil only when ctx ended it and everything read was committed.
func follow(ctx context.Context, opts *Options, pos *position) error {
	src, err := opts.source(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return errLink{err}
	}
	so := replication.SyncOptions{Redis: src, Logf: opts.Logf}
	var fs *replication.FullSync
	if pos.chain != "" && len(pos.replID) == 40 {
		fs, err = replication.Resume(ctx, so, pos.replID, pos.offset)
	} else {
		fs, err = replication.StartFullSync(ctx, so)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, replication.ErrSyncRefused) {
			return fmt.Errorf("follow %s: continuous backup needs a source that serves a replica: %w", src.Addr, err)
		}
		if errors.Is(err, replication.ErrTransferAborted) {
			// The source would abort the next transfer too: reconnecting cannot help.
			return fmt.Errorf("follow %s: %w", src.Addr, err)
		}
		return errLink{err}
	}
	// The marks start now, before a base's transfer: the source streams them after the
	// base's offset, so that the window starts right after the base's fork.
	mk, marked := startMarker(ctx, src, opts.Logf)
	defer mk.Stop()

	var baseTime time.Time
	if fs.Continued {
		opts.Logf("continuing chain %s at offset %d (replication id %s)", pos.chain, pos.offset, fs.ReplID)
		pos.replID = fs.ReplID
		if base, err := opts.Repository.Manifest(ctx, pos.chain); err == nil {
			baseTime = base.Time
		}
	} else {
		if pos.chain != "" {
			opts.Logf("the source cannot continue chain %s at offset %d: a new base starts a new chain", pos.chain, pos.offset)
		}
		res, err := opts.base(ctx, src, fs)
		if err != nil {
			fs.Close()
			if ctx.Err() != nil {
				return nil // nothing of the base was committed
			}
			return err
		}
		opts.OnBase(res)
		opts.retain(ctx)
		// The source re-sends SELECT before its first command after a full resynchronization.
		*pos = position{chain: res.SnapshotID, replID: fs.ReplID, offset: fs.Offset}
		baseTime = time.Now()
	}
	for {
		next, err := opts.record(ctx, src, so, pos, fs, marked, baseTime)
		fs.Close()
		if next == nil {
			return err
		}
		// A new base took over: its chain continues from the base's offset, where the stream
		// of its own link begins; the old chain was recorded past it.
		opts.Logf("base snapshot %s at offset %d (replication id %s): chain %s starts, chain %s ends at offset %d",
			next.res.SnapshotID, next.fs.Offset, next.fs.ReplID, next.res.SnapshotID, pos.chain, pos.offset)
		opts.OnBase(next.res)
		opts.retain(ctx)
		fs, baseTime = next.fs, time.Now()
		*pos = position{chain: next.res.SnapshotID, replID: fs.ReplID, offset: fs.Offset}
	}
}

// retain starts a window retention pass, unless one runs or none is asked for. Its errors are
// logged: the next base tries again.
func (opts *Options) retain(ctx context.Context) {
	if opts.KeepWithinWindow <= 0 || !opts.ret.busy.CompareAndSwap(false, true) {
		return
	}
	opts.ret.wg.Add(1)
	go func() {
		defer opts.ret.wg.Done()
		defer opts.ret.busy.Store(false)
		res, err := journal.KeepWithin(ctx, opts.Repository, opts.KeepWithinWindow, time.Now(), false)
		if err != nil {
			opts.Logf("window retention: %v (tried again after the next base)", err)
			return
		}
		if len(res.Removed) > 0 {
			opts.Logf("window retention (%s): removed chains %s; the window starts at %s, %d chains kept (%d bytes)",
				opts.KeepWithinWindow, strings.Join(res.Removed, ", "), res.Start.UTC().Format(time.RFC3339Nano), len(res.Kept), res.KeptBytes)
		}
		if opts.OnRetention != nil {
			opts.OnRetention(res)
		}
	}()
}

// base takes a base snapshot from the full resynchronization fs.
func (opts *Options) base(ctx context.Context, src redisconn.Options, fs *replication.FullSync) (backup.Result, error) {
	res, err := backup.FromFullSync(ctx, backup.Options{
		Redis: src, Sentinel: opts.Sentinel, Repository: opts.Repository, Hostname: opts.Hostname, RunnerVersion: opts.RunnerVersion, Logf: opts.Logf,
	}, fs)
	if err != nil {
		return res, fmt.Errorf("follow %s: base snapshot: %w", src.Addr, err)
	}
	opts.Logf("base snapshot %s at offset %d (replication id %s): chain %s starts", res.SnapshotID, fs.Offset, fs.ReplID, res.SnapshotID)
	return res, nil
}

// nextBase is a base taken on a second link while the first one records: the link, whose stream
// begins at the base's offset, and the base.
type nextBase struct {
	fs     *replication.FullSync
	res    backup.Result
	cancel context.CancelFunc
}

// record records the stream of link fs into the chain at pos until the link or ctx ends, or a
// new base takes over (every BaseInterval after baseTime): then it returns the new base, once
// the old chain is recorded past the new base's offset (and past a source mark after it, so
// that the old window ends after the new one starts: no instant is lost at the switch).
func (opts *Options) record(ctx context.Context, src redisconn.Options, so replication.SyncOptions, pos *position, fs *replication.FullSync, marked bool, baseTime time.Time) (*nextBase, error) {
	stop := context.AfterFunc(ctx, func() { fs.Close() })
	defer stop()
	defer opts.watchSentinel(ctx, src.Addr, fs)()
	br, err := fs.Stream()
	if err != nil {
		return nil, errLink{err}
	}
	// After a diskless transfer a Redis 7+ master starts the stream at the replica's first ACK:
	// send it now rather than at the next tick, so that the receive times recorded (which a
	// restore to a point in time goes by) stay within milliseconds of the source's.
	fs.Acknowledge(pos.offset)
	if err := fs.AckNow(); err != nil {
		return nil, errLink{err}
	}
	rec := &recorder{ctx: ctx, opts: opts, pos: pos, done: make(chan struct{}), sourceTime: marked}
	rctx, cancelRebase := context.WithCancel(ctx)
	rebased := make(chan struct{})
	if opts.BaseInterval > 0 {
		go func() {
			defer close(rebased)
			rec.rebase(rctx, src, so, time.Until(baseTime.Add(opts.BaseInterval)))
		}()
	} else {
		close(rebased)
	}
	go rec.closeOnInterval(fs)
	err = rec.record(journal.NewCommandReader(br), fs)
	close(rec.done)
	cancelRebase()
	<-rebased
	rec.mu.Lock()
	defer rec.mu.Unlock()
	next := rec.next.Load()
	if cerr := rec.closeSegment(); cerr != nil {
		next.close()
		return nil, cerr
	}
	if rec.err != nil {
		next.close()
		return nil, rec.err
	}
	if errors.Is(err, errSwitch) {
		return next, nil
	}
	next.close() // taken, but the old link ended first: a restarted link continues the newest chain
	if ctx.Err() != nil {
		return nil, nil
	}
	return nil, err
}

func (n *nextBase) close() {
	if n != nil {
		n.fs.Close()
		n.cancel()
	}
}

// errSwitch ends the recording of a link when a new base takes over.
var errSwitch = errors.New("a new base takes over")

// rebase waits until the chain is due for a new base, then takes one on a second link (the
// source forks again) while the first goes on recording, and hands it to the recorder. A base
// that fails is tried again one BaseInterval later (a minute at least).
func (rec *recorder) rebase(ctx context.Context, src redisconn.Options, so replication.SyncOptions, wait time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		// The new link outlives ctx (which ends with the old link's recording) once handed
		// over: it is bound to the follower's context, and closed here if ctx ends first.
		var handed atomic.Bool
		lctx, cancel := context.WithCancel(rec.ctx)
		stop := context.AfterFunc(ctx, func() {
			if !handed.Load() {
				cancel()
			}
		})
		fs, err := replication.StartFullSync(lctx, so)
		if err == nil {
			var res backup.Result
			res, err = rec.opts.base(lctx, src, fs)
			if err == nil {
				handed.Store(true)
				if stop() || ctx.Err() == nil {
					rec.next.Store(&nextBase{fs: fs, res: res, cancel: cancel})
					return
				}
			}
			fs.Close()
		}
		stop()
		cancel()
		if ctx.Err() != nil {
			return
		}
		wait = max(rec.opts.BaseInterval, time.Minute)
		rec.opts.Logf("new base: %v; the chain goes on, trying again in %s", err, wait)
	}
}

// recorder writes the stream of one link into segments. The reading goroutine and the interval
// timer share the open segment under mu; a segment holds only whole commands.
type recorder struct {
	ctx  context.Context
	opts *Options
	done chan struct{}

	// sourceTime says the source marks the stream of this link (journal.Start.SourceTime).
	sourceTime bool
	// next is a new base waiting to take over, once the stream recorded passes its offset
	// (and a source mark after it).
	next atomic.Pointer[nextBase]

	mu  sync.Mutex
	pos *position
	w   *journal.Writer
	err error // a failed commit from the timer
}

// record reads commands until the link ends. Each command is read whole into memory first (its
// size is bounded by the source's proto-max-bulk-len), so that a link cut inside a command
// leaves the segment at the command before.
func (rec *recorder) record(cr *journal.CommandReader, fs *replication.FullSync) error {
	var cmd bytes.Buffer
	for {
		if err := cr.ReadHeader(); err != nil {
			return errLink{err}
		}
		at := time.Now()
		cmd.Reset()
		c, err := cr.ReadBody(&cmd, false)
		if err != nil {
			return errLink{err}
		}
		rec.mu.Lock()
		start := rec.pos.offset
		err = rec.append(c, cmd.Bytes(), at)
		rec.mu.Unlock()
		if err != nil {
			return err
		}
		if next := rec.next.Load(); next != nil && rec.pos.offset >= next.fs.Offset {
			if _, mark := journal.MarkTime(c); mark && start >= next.fs.Offset || !rec.sourceTime {
				return errSwitch
			}
		}
		fs.Acknowledge(rec.pos.offset)
		if c.Is("REPLCONF") && len(c.Args) > 1 && bytes.EqualFold(c.Args[1], []byte("GETACK")) {
			if err := fs.AckNow(); err != nil {
				return errLink{err}
			}
		}
		if cmd.Cap() > 16<<20 {
			cmd = bytes.Buffer{} // do not keep a huge command's buffer
		}
	}
}

// append writes one command to the open segment (opening one if needed) and closes the segment
// when it reaches the size bound. Called with mu held.
func (rec *recorder) append(c journal.Command, raw []byte, at time.Time) error {
	if rec.err != nil {
		return rec.err
	}
	if rec.w == nil {
		// The writer's upload must survive the cancellation that stops the follower: the open
		// segment is committed after it.
		w, err := journal.NewWriter(context.WithoutCancel(rec.ctx), rec.opts.Repository, journal.Start{
			Chain: rec.pos.chain, ReplID: rec.pos.replID, Offset: rec.pos.offset, DB: rec.pos.db, SourceTime: rec.sourceTime,
		})
		if err != nil {
			return err
		}
		rec.w = w
	}
	rec.w.BeginCommand(at)
	rec.w.Note(c)
	if _, err := rec.w.Write(raw); err != nil {
		return err
	}
	rec.pos.offset += int64(len(raw))
	if c.Is("SELECT") && len(c.Args) > 1 {
		db, err := strconv.Atoi(string(c.Args[1]))
		if err != nil {
			return fmt.Errorf("journal: the stream selects database %q", c.Args[1])
		}
		rec.pos.db = db
	}
	rec.w.SetEndDB(rec.pos.db)
	if rec.w.Size() >= rec.opts.SegmentSize {
		return rec.closeSegment()
	}
	return nil
}

// closeSegment commits the open segment, if any. Called with mu held.
func (rec *recorder) closeSegment() error {
	if rec.w == nil {
		return nil
	}
	w := rec.w
	rec.w = nil
	cctx, cancel := context.WithTimeout(context.WithoutCancel(rec.ctx), time.Minute)
	defer cancel()
	m, err := w.Commit(cctx)
	if err != nil {
		return err
	}
	if rec.opts.OnSegment != nil {
		rec.opts.OnSegment(m)
	}
	return nil
}

// closeOnInterval commits the open segment once its first command is SegmentInterval old, also
// while the source sends nothing. A failed commit ends the link, so that record returns.
func (rec *recorder) closeOnInterval(fs *replication.FullSync) {
	tick := time.NewTicker(min(max(rec.opts.SegmentInterval/10, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	for {
		select {
		case <-rec.done:
			return
		case <-tick.C:
		}
		rec.mu.Lock()
		if rec.w != nil && rec.err == nil && time.Since(rec.w.Manifest().FirstTime) >= rec.opts.SegmentInterval {
			if err := rec.closeSegment(); err != nil {
				rec.err = err
				fs.Close()
			}
		}
		rec.mu.Unlock()
	}
}
