package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
)

// replayBatch bounds one transaction of a replay: commands, and bytes (a command larger than
// that is a transaction of its own). Enough to keep the target busy, small enough that the
// target's queue and the replies stay small.
const (
	replayBatch      = 512
	replayBatchBytes = 8 << 20
)

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Segments int
	// Commands were sent to the target; Skipped were stream housekeeping (PING, REPLCONF)
	// that a replica does not execute either.
	Commands, Skipped int64
	// Offset is the replication offset the target's data is at after the replay: the end of
	// the last command applied (or the offset the replay started from).
	Offset int64
	// Time is when the last command applied ran on the source: the time of the last source
	// mark at or before it, in a chain whose source marks its stream; else when the follower
	// received it, to a mark's span (the instant of the mark or segment end at or before it).
	// Zero if none was applied.
	Time time.Time
}

// RefusedError is a command of the journal that the target refused (an error reply, or a
// database the target does not have). The replay stops there: the commands before it are
// applied, it and those after it are not (see RanAfter for the one exception).
type RefusedError struct {
	// Command is the command's number among the commands the replay read (1 is the first),
	// Name its name, Offset the replication offset where it starts, and Time when the follower
	// received it (to a mark's span).
	Command int64
	Name    string
	Offset  int64
	Time    time.Time
	// Reply is the target's error reply (a resp.Error), or why the command was not sent.
	Reply error
	// RanAfter is non-zero when the target refused the command while executing a transaction
	// it had accepted (an error at run time, WRONGTYPE for instance, which no server can
	// announce before): the RanAfter commands after it in that transaction ran, up to RanTo.
	RanAfter int
	RanTo    int64
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("the target refused command %d of the replay (%s at offset %d, received %s): %v",
		e.Command, e.Name, e.Offset, e.Time.UTC().Format(time.RFC3339Nano), e.Reply)
	if e.RanAfter > 0 {
		s += fmt.Sprintf("; it refused it while executing a transaction, and ran the %d commands after it in that transaction (up to offset %d)", e.RanAfter, e.RanTo)
	}
	return s
}

func (e *RefusedError) Unwrap() error { return e.Reply }

// Replay sends the commands of segs to the target, in stream order: SELECT as the stream
// selects (the first segment's DB first), MULTI/EXEC blocks whole. from is the replication
// offset the target's data is at (a base snapshot's ReplOffset); the segments must continue it
// without a gap or an overlap, which is checked before anything is sent. Every segment is
// verified as it is read; an altered one stops the replay with an error that wraps
// crypt.ErrIntegrity and names it, after the segments before it were applied (and possibly some
// of its first commands: age authenticates 64 KiB at a time).
//
// The commands go to the target in transactions of up to replayBatch commands (a stream block
// is one unit within one), one transaction at a time: a command the target refuses when it is
// queued (ACL, out of memory, a read-only replica, an unknown command) aborts its transaction,
// and the replay then applies the units before it and stops, with a *RefusedError that says
// where. A pipeline without transactions would have run up to a window of commands after the
// refused one, on a state the source never had.
func Replay(ctx context.Context, r *repo.Repository, from int64, segs []Manifest, target redisconn.Options) (ReplayStats, error) {
	return ReplayTo(ctx, r, from, segs, target, NoStop)
}

// ReplayTo is Replay up to stop (see Stop): it reads only the segments it needs, applies a
// MULTI/EXEC block only once its EXEC is read and within the stop (a block is held in memory
// until then), and reads the segment it stops in to its end, so that the segment is verified
// before the replay reports success. ReplayStats.Offset says where the target's data is, also
// on error.
func ReplayTo(ctx context.Context, r *repo.Repository, from int64, segs []Manifest, target redisconn.Options, stop Stop) (ReplayStats, error) {
	st := ReplayStats{Offset: from}
	if err := CheckContiguous(from, segs); err != nil {
		return st, err
	}
	segs = stop.Needed(segs)
	if len(segs) == 0 {
		return st, nil
	}
	c, err := target.Dial(ctx, 0)
	if err != nil {
		return st, err
	}
	defer c.Close()
	rp := &replayer{c: c, stop: stop, st: &st, db: segs[0].DB, dbs: databases(c)}
	if rp.dbs > 0 && rp.db >= rp.dbs {
		return st, fmt.Errorf("the journal starts in database %d and the target has %d (raise its databases setting); nothing of the journal was applied", rp.db, rp.dbs)
	}
	if err := c.Select(rp.db); err != nil {
		return st, fmt.Errorf("the journal starts in database %d: %w; nothing of the journal was applied", rp.db, err)
	}
	for _, m := range segs {
		err := rp.segment(ctx, r, m)
		// Each segment is applied before the next is read: a replay that stops at an altered
		// segment has applied every segment before it, and the commands of its chunks that
		// were authenticated before the damage, so that ReplayStats.Offset says exactly where
		// the target is.
		if ferr := rp.flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return st, fmt.Errorf("replay of journal segment %s: %w", m.Name(), err)
		}
		st.Segments++
		if rp.done {
			break
		}
	}
	return st, nil
}

// databases asks the target how many databases it has; 0 when it does not say (CONFIG
// refused or renamed): a SELECT beyond them is then refused by the target itself.
func databases(c *redisconn.Conn) int {
	c.W.Write(resp.AppendCommand(nil, "CONFIG", "GET", "databases"))
	if err := c.W.Flush(); err != nil {
		return 0
	}
	n, err := c.R.ReadArrayLen()
	if err != nil || n != 2 {
		for i := 0; i < n; i++ {
			_ = c.R.Discard()
		}
		return 0
	}
	_ = c.R.Discard()
	v, _, err := c.R.AppendBulkReply(nil)
	if err != nil {
		return 0
	}
	dbs, err := strconv.Atoi(string(v))
	if err != nil {
		return 0
	}
	return dbs
}

// replayer carries what a replay knows between segments: the database the stream has
// selected, an open MULTI block, the transaction being gathered, and whether the stop was
// reached.
type replayer struct {
	c    *redisconn.Conn
	stop Stop
	st   *ReplayStats
	// dbs is the target's database count (0: unknown). db is the database the stream has
	// selected after the commands read so far (SELECTs inside an open block included: the
	// block runs whole or not at all).
	dbs, db int
	// read counts the commands read from the journal; sourceTime is the time of the last
	// source mark read.
	read       int64
	sourceTime time.Time
	// The open MULTI block of the stream: its commands without MULTI/EXEC, their count (with
	// them), and each command's description for a refusal.
	block      []byte
	blockSent  []sentCmd
	blockN     int64
	blockStart int64
	inBlock    bool
	// The transaction being gathered: the commands' bytes, each command's description, and
	// the units (a command or a whole block) it ends.
	batch []byte
	sent  []sentCmd
	units []unit
	done  bool
}

// sentCmd describes one command of a transaction, for a refusal.
type sentCmd struct {
	ordinal int64
	name    string
	start   int64
	when    time.Time
}

// unit is a command or a whole block of the stream in a transaction: it ends at byte end of
// the batch and command cmds of it; after it the source was at offset, received at when.
type unit struct {
	bytes, cmds int
	stream      int64
	offset      int64
	when        time.Time
}

func (rp *replayer) segment(ctx context.Context, r *repo.Repository, m Manifest) error {
	jr, err := Open(ctx, r, m)
	if err != nil {
		return err
	}
	defer jr.Close()
	cr := NewCommandReader(bufio.NewReaderSize(jr, 64<<10))
	if !rp.inBlock && m.DB != rp.db {
		// The stream carries its SELECTs, so a segment starts where the one before ended; a
		// manifest that says otherwise is followed.
		rp.db = m.DB
		if err := rp.add(resp.AppendCommand(nil, "SELECT", strconv.Itoa(m.DB)),
			[]sentCmd{{ordinal: rp.read + 1, name: "SELECT", start: m.StartOffset, when: m.FirstTime}}, 0, m.StartOffset, m.FirstTime); err != nil {
			return err
		}
	}
	limit := rp.stop.Offset
	at, mark, markTime := m.StartOffset, 0, m.FirstTime
	for {
		err := cr.ReadHeader()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		cmd, err := cr.ReadBody(nil, true)
		if err != nil {
			return err
		}
		start, end := at, at+cmd.Size
		at = end
		if rp.done {
			continue // read on to the end of the segment, which verifies it
		}
		rp.read++
		for mark < len(m.Marks) && m.Marks[mark].Offset <= start {
			markTime = m.Marks[mark].Time
			mark++
		}
		if rp.stop.HasThrough && start == rp.stop.Through {
			limit = max(limit, end)
		}
		if end > limit {
			// Beyond the stop: an open block is left out whole.
			rp.done, rp.inBlock = true, false
			if t, ok := MarkTime(cmd); ok && m.SourceTime && start == limit {
				// Stopped at a source mark: the target holds the source at its instant.
				rp.units = append(rp.units, unit{bytes: len(rp.batch), cmds: len(rp.sent), offset: start, when: t})
			}
			continue
		}
		when := markTime
		if end == m.EndOffset {
			when = m.LastTime
		}
		if m.SourceTime {
			// The source's clock: the last mark the replay passed.
			if t, ok := MarkTime(cmd); ok {
				rp.sourceTime = t
			}
			when = rp.sourceTime
		}
		switch {
		case housekeeping(cmd):
			rp.st.Skipped++
			if !rp.inBlock {
				rp.units = append(rp.units, unit{bytes: len(rp.batch), cmds: len(rp.sent), offset: end, when: when})
			}
		case cmd.Is("MULTI") && !rp.inBlock:
			rp.inBlock, rp.blockN, rp.blockStart = true, 1, start
			rp.block, rp.blockSent = rp.block[:0], rp.blockSent[:0]
		case rp.inBlock && (cmd.Is("EXEC") || cmd.Is("DISCARD")):
			rp.inBlock = false
			rp.blockN++
			if cmd.Is("EXEC") {
				if err := rp.add(rp.block, rp.blockSent, rp.blockN, end, when); err != nil {
					return err
				}
			}
		default:
			sc := sentCmd{ordinal: rp.read, name: commandName(cmd), start: start, when: when}
			if cmd.Is("SELECT") && len(cmd.Args) > 1 {
				db, err := strconv.Atoi(string(cmd.Args[1]))
				if err != nil || db < 0 {
					return fmt.Errorf("the journal selects database %q at offset %d", cmd.Args[1], start)
				}
				if rp.dbs > 0 && db >= rp.dbs {
					// A target without the database would refuse the SELECT and run what
					// follows in the database selected before: stop before it.
					if rp.inBlock {
						sc.start = rp.blockStart // the block is left out whole
					}
					rp.done = true
					if err := rp.flush(); err != nil {
						return err
					}
					return &RefusedError{Command: sc.ordinal, Name: sc.name, Offset: sc.start, Time: when,
						Reply: fmt.Errorf("the journal selects database %d and the target has %d (raise its databases setting)", db, rp.dbs)}
				}
				rp.db = db
			}
			if rp.inBlock {
				rp.block = appendCommand(rp.block, cmd)
				rp.blockSent = append(rp.blockSent, sc)
				rp.blockN++
				break
			}
			if err := rp.add(appendCommand(nil, cmd), []sentCmd{sc}, 1, end, when); err != nil {
				return err
			}
		}
		if end >= limit && !rp.inBlock && !(rp.stop.HasThrough && rp.stop.Through >= end) {
			rp.done = true
		}
	}
}

// commandName is a command's name for a message: its first argument, and the second for the
// commands that have subcommands in the stream.
func commandName(cmd Command) string {
	name := strings.ToUpper(string(cmd.Args[0]))
	if len(name) > 32 {
		name = name[:32]
	}
	if (cmd.Is("FUNCTION") || cmd.Is("SCRIPT")) && len(cmd.Args) > 1 && len(cmd.Args[1]) <= 32 {
		name += " " + strings.ToUpper(string(cmd.Args[1]))
	}
	return name
}

// add puts one unit (a command, or a block's commands) into the transaction being gathered,
// and sends the transaction once it is full.
func (rp *replayer) add(cmds []byte, sent []sentCmd, stream int64, end int64, when time.Time) error {
	rp.batch = append(rp.batch, cmds...)
	rp.sent = append(rp.sent, sent...)
	rp.units = append(rp.units, unit{bytes: len(rp.batch), cmds: len(rp.sent), stream: stream, offset: end, when: when})
	if len(rp.sent) >= replayBatch || len(rp.batch) >= replayBatchBytes {
		return rp.flush()
	}
	return nil
}

// flush sends the transaction gathered, and on a refusal applies the units before the refused
// one and stops the replay with a *RefusedError.
func (rp *replayer) flush() error {
	defer func() { rp.batch, rp.sent, rp.units = rp.batch[:0], rp.sent[:0], rp.units[:0] }()
	if len(rp.units) == 0 {
		return nil
	}
	ref, err := rp.exec(len(rp.units))
	if err != nil || ref == nil {
		return err
	}
	rp.done = true
	if ref.unit > 0 && !ref.ran {
		// Queued commands were refused: nothing of the transaction ran. Run the units before
		// the refused one, so that the target holds the journal up to it.
		if again, err := rp.exec(ref.unit); err != nil {
			return err
		} else if again != nil {
			ref = again
		}
	}
	c := rp.sent[ref.cmd]
	return &RefusedError{Command: c.ordinal, Name: c.name, Offset: c.start, Time: c.when, Reply: ref.reply,
		RanAfter: ref.ranAfter, RanTo: ref.ranTo}
}

// refusal says which command of a transaction the target refused: its index in rp.sent, the
// index of its unit, and, for a refusal at run time, what ran after it.
type refusal struct {
	cmd, unit int
	reply     error
	// ran says the transaction ran (the refusal was at run time); ranAfter commands after
	// the refused one ran too, up to offset ranTo.
	ran      bool
	ranAfter int
	ranTo    int64
}

var (
	multiCmd = resp.AppendCommand(nil, "MULTI")
	execCmd  = resp.AppendCommand(nil, "EXEC")
)

// exec runs the first k units of the transaction gathered as one MULTI/EXEC and advances the
// replay's stats by what the target applied. A refused command is returned as a refusal: when
// it was refused as it was queued (or the EXEC was), nothing ran.
func (rp *replayer) exec(k int) (*refusal, error) {
	last := rp.units[k-1]
	applied := func(n int) {
		for _, u := range rp.units[:n] {
			rp.st.Commands += u.stream
		}
		if n > 0 {
			rp.st.Offset, rp.st.Time = rp.units[n-1].offset, rp.units[n-1].when
		}
	}
	if last.cmds == 0 {
		applied(k) // only PING and REPLCONF
		return nil, nil
	}
	c := rp.c
	// MULTI is answered before the commands are sent: were it refused, they would run one by
	// one, past a refusal.
	if err := c.Simple("MULTI"); err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return &refusal{cmd: 0, unit: 0, reply: fmt.Errorf("MULTI: %w", err)}, nil
		}
		return nil, err
	}
	c.W.Write(rp.batch[:last.bytes])
	c.W.Write(execCmd)
	if err := c.W.Flush(); err != nil {
		return nil, c.Err(err)
	}
	first := -1
	var firstErr error
	for i := range last.cmds {
		if err := c.R.Discard(); err != nil {
			var re resp.Error
			if !errors.As(err, &re) {
				return nil, c.Err(err)
			}
			if first < 0 {
				first, firstErr = i, err
			}
		}
	}
	n, err := c.R.ReadArrayLen()
	if err != nil {
		var re resp.Error
		if !errors.As(err, &re) {
			return nil, c.Err(err)
		}
		if first < 0 { // the EXEC itself was refused (out of memory, for one): nothing ran
			first, firstErr = 0, err
		}
		return &refusal{cmd: first, unit: rp.unitOf(first), reply: firstErr}, nil
	}
	if first >= 0 {
		return nil, fmt.Errorf("the target ran a transaction with a refused command (%v): %w", firstErr, resp.ErrProtocol)
	}
	for i := range n {
		if err := c.R.Discard(); err != nil {
			var re resp.Error
			if !errors.As(err, &re) {
				return nil, c.Err(err)
			}
			if first < 0 {
				first, firstErr = i, err
			}
		}
	}
	if first < 0 {
		applied(k)
		return nil, nil
	}
	// Refused at run time: the commands after it in the transaction ran as well.
	u := rp.unitOf(first)
	applied(u)
	return &refusal{cmd: first, unit: u, reply: firstErr, ran: true, ranAfter: last.cmds - first - 1, ranTo: last.offset}, nil
}

// unitOf is the index of the unit that holds command i of the transaction.
func (rp *replayer) unitOf(i int) int {
	for u, un := range rp.units {
		if un.cmds > i {
			return u
		}
	}
	return len(rp.units) - 1
}

// appendCommand appends cmd as a RESP array of bulk strings.
func appendCommand(b []byte, cmd Command) []byte {
	b = resp.AppendArray(b, len(cmd.Args))
	for _, a := range cmd.Args {
		b = resp.AppendBulk(b, a)
	}
	return b
}
