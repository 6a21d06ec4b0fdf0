package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
)

// replayWindow is how many commands a replay sends before it reads their replies: enough to
// keep the target busy, few enough that the replies it buffers stay small.
const replayWindow = 512

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Segments int
	// Commands were sent to the target; Skipped were stream housekeeping (PING, REPLCONF)
	// that a replica does not execute either.
	Commands, Skipped int64
	// Offset is the replication offset the target's data is at after the replay: the end of
	// the last command applied (or the offset the replay started from).
	Offset int64
	// Time is when the follower received the last command applied, to a mark's span (the
	// instant of the mark or segment end at or before it); zero if none was applied.
	Time time.Time
}

// Replay sends the commands of segs to the target, pipelined on one connection, in stream
// order: SELECT as the stream selects (and each segment's DB first), MULTI/EXEC blocks as they
// were sent. from is the replication offset the target's data is at (a base snapshot's
// ReplOffset); the segments must continue it without a gap or an overlap, which is checked
// before anything is sent. Every segment is verified as it is read; an altered one stops the
// replay with an error that wraps crypt.ErrIntegrity and names it, after the segments before it
// were applied (and possibly some of its first commands: age authenticates 64 KiB at a time).
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
	rp := &replayer{p: &pipeline{c: c}, stop: stop, st: &st}
	for _, m := range segs {
		applied := st // what the target holds once the commands sent so far are answered
		err := rp.segment(ctx, r, m, &applied)
		// Each segment is answered before the next is read: a replay that stops at an altered
		// segment has applied every segment before it, and the commands of its chunks that
		// were authenticated before the damage, which are answered here too so that
		// ReplayStats.Offset says exactly where the target is.
		if serr := rp.p.sync(); serr == nil {
			st.Offset, st.Time = applied.Offset, applied.Time
		} else if err == nil {
			err = serr
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

// replayer carries what a replay knows between segments: an open MULTI block and whether the
// stop was reached.
type replayer struct {
	p    *pipeline
	stop Stop
	st   *ReplayStats
	// block holds the commands of a MULTI not yet closed by its EXEC; inBlock says one is open.
	block   []byte
	inBlock bool
	blockN  int64
	done    bool
}

func (rp *replayer) segment(ctx context.Context, r *repo.Repository, m Manifest, applied *ReplayStats) error {
	jr, err := Open(ctx, r, m)
	if err != nil {
		return err
	}
	defer jr.Close()
	p := rp.p
	cr := NewCommandReader(bufio.NewReaderSize(jr, 64<<10))
	// Writes to the connection's buffer fail sticky: the error surfaces at the next flush.
	p.c.W.Write(resp.AppendCommand(p.buf[:0], "SELECT", strconv.Itoa(m.DB)))
	if err := p.sent(); err != nil {
		return err
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
		for mark < len(m.Marks) && m.Marks[mark].Offset <= start {
			markTime = m.Marks[mark].Time
			mark++
		}
		if rp.stop.HasThrough && start == rp.stop.Through {
			limit = max(limit, end)
		}
		if end > limit {
			// Beyond the stop: an open block is left out whole.
			rp.done, rp.inBlock, rp.block = true, false, rp.block[:0]
			continue
		}
		when := markTime
		if end == m.EndOffset {
			when = m.LastTime
		}
		switch {
		case cmd.Is("PING") || cmd.Is("REPLCONF"):
			rp.st.Skipped++
		case cmd.Is("MULTI") && !rp.inBlock:
			rp.inBlock, rp.blockN = true, 0
			rp.block = appendCommand(rp.block[:0], cmd)
			rp.blockN++
			continue
		case rp.inBlock:
			rp.block = appendCommand(rp.block, cmd)
			rp.blockN++
			if !cmd.Is("EXEC") && !cmd.Is("DISCARD") {
				continue
			}
			rp.inBlock = false
			p.c.W.Write(rp.block)
			rp.st.Commands += rp.blockN
			p.pending += int(rp.blockN) - 1
			if err := p.sent(); err != nil {
				return err
			}
		default:
			p.c.W.Write(appendCommand(p.buf[:0], cmd))
			rp.st.Commands++
			if err := p.sent(); err != nil {
				return err
			}
		}
		if !rp.inBlock {
			applied.Offset, applied.Time = end, when
		}
		if end >= limit && !rp.inBlock && !(rp.stop.HasThrough && rp.stop.Through >= end) {
			rp.done = true
		}
	}
}

// appendCommand appends cmd as a RESP array of bulk strings.
func appendCommand(b []byte, cmd Command) []byte {
	b = resp.AppendArray(b, len(cmd.Args))
	for _, a := range cmd.Args {
		b = resp.AppendBulk(b, a)
	}
	return b
}

// pipeline tracks the commands sent and not yet answered on a connection.
type pipeline struct {
	c       *redisconn.Conn
	buf     []byte
	pending int
}

// sent counts one command written to the connection's buffer; every replayWindow commands it
// reads the replies.
func (p *pipeline) sent() error {
	p.pending++
	if p.pending >= replayWindow {
		return p.sync()
	}
	return nil
}

// sync flushes the commands written and reads their replies. An error reply means the target
// does not hold what the source held when it ran the command: the replay stops.
func (p *pipeline) sync() error {
	if err := p.c.W.Flush(); err != nil {
		return p.c.Err(err)
	}
	for ; p.pending > 0; p.pending-- {
		if err := p.c.R.Discard(); err != nil {
			var re resp.Error
			if errors.As(err, &re) {
				return fmt.Errorf("the target refused a command of the journal: %w", err)
			}
			return p.c.Err(err)
		}
	}
	return nil
}
