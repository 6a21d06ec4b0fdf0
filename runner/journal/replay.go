package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

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
}

// Replay sends the commands of segs to the target, pipelined on one connection, in stream
// order: SELECT as the stream selects (and each segment's DB first), MULTI/EXEC blocks as they
// were sent. from is the replication offset the target's data is at (a base snapshot's
// ReplOffset); the segments must continue it without a gap or an overlap, which is checked
// before anything is sent. Every segment is verified as it is read; an altered one stops the
// replay with an error that wraps crypt.ErrIntegrity and names it, after the segments before it
// were applied (and possibly some of its first commands: age authenticates 64 KiB at a time).
func Replay(ctx context.Context, r *repo.Repository, from int64, segs []Manifest, target redisconn.Options) (ReplayStats, error) {
	var st ReplayStats
	if err := CheckContiguous(from, segs); err != nil {
		return st, err
	}
	c, err := target.Dial(ctx, 0)
	if err != nil {
		return st, err
	}
	defer c.Close()
	p := &pipeline{c: c}
	for _, m := range segs {
		err := replaySegment(ctx, r, m, p, &st)
		if err == nil {
			// Each segment is answered before the next is read: a replay that stops at an
			// altered segment has applied every segment before it.
			err = p.sync()
		}
		if err != nil {
			return st, fmt.Errorf("replay of journal segment %s: %w", m.Name(), err)
		}
		st.Segments++
	}
	return st, nil
}

func replaySegment(ctx context.Context, r *repo.Repository, m Manifest, p *pipeline, st *ReplayStats) error {
	jr, err := Open(ctx, r, m)
	if err != nil {
		return err
	}
	defer jr.Close()
	cr := NewCommandReader(bufio.NewReaderSize(jr, 64<<10))
	// Writes to the connection's buffer fail sticky: the error surfaces at the next flush.
	p.c.W.Write(resp.AppendCommand(p.buf[:0], "SELECT", strconv.Itoa(m.DB)))
	if err := p.sent(); err != nil {
		return err
	}
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
		if cmd.Is("PING") || cmd.Is("REPLCONF") {
			st.Skipped++
			continue
		}
		w := p.c.W
		w.Write(resp.AppendArray(p.buf[:0], len(cmd.Args)))
		for _, a := range cmd.Args {
			p.buf = resp.AppendBulk(p.buf[:0], a)
			w.Write(p.buf)
		}
		st.Commands++
		if err := p.sent(); err != nil {
			return err
		}
	}
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
