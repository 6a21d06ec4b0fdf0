package follow

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
)

// markScript publishes the source's own clock (TIME, in microseconds) on the mark channel. A
// master propagates the PUBLISH to its replicas in stream order, so the mark travels with the
// stream: the commands before it ran at or before that instant, those after it at or after,
// however late the follower reads them (after an outage, from the backlog; after a base, from
// the buffer the source kept during the transfer).
const markScript = "local t = redis.call('TIME') return redis.call('PUBLISH', ARGV[1], t[1] .. string.format('%06d', tonumber(t[2])))"

// marker has the source mark its stream every journal.MarkInterval, on a connection of its own,
// while a link is followed.
type marker struct {
	src  redisconn.Options
	logf func(string, ...any)

	mu       sync.Mutex
	c        *redisconn.Conn
	byScript bool // false: PUBLISH of the follower's clock, for a source that refuses EVAL
	failing  bool // the last mark failed (logged once until one succeeds)

	stop context.CancelFunc
	done chan struct{}
}

// startMarker makes a first mark and, if the source takes it, goes on marking until stopped.
// ok is false when the source refuses marks (EVAL and PUBLISH both refused): the follower then
// records receive times only, as older followers did.
func startMarker(ctx context.Context, src redisconn.Options, logf func(string, ...any)) (mk *marker, ok bool) {
	mctx, cancel := context.WithCancel(ctx)
	mk = &marker{src: src, logf: logf, byScript: true, stop: cancel, done: make(chan struct{})}
	if err := mk.mark(mctx); err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			logf("the source refuses time marks (%v): restores to a time go by when the follower received the commands", err)
		} else {
			logf("time marks: %v: restores to a time go by when the follower received the commands of this link", err)
		}
		cancel()
		mk.close()
		close(mk.done)
		return mk, false
	}
	go mk.run(mctx)
	return mk, true
}

func (mk *marker) run(ctx context.Context) {
	defer close(mk.done)
	defer mk.close()
	tick := time.NewTicker(journal.MarkInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := mk.mark(ctx); err != nil && ctx.Err() == nil {
			if !mk.failing {
				mk.logf("time mark: %v (marking again every %s; the stretch without marks is shown as inexact)", err, journal.MarkInterval)
			}
			mk.failing = true
			mk.close() // dial again at the next tick
		} else {
			mk.failing = false
		}
	}
}

// mark makes one mark, dialing first if needed.
func (mk *marker) mark(ctx context.Context) error {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	if mk.c == nil {
		c, err := mk.src.Dial(ctx, 0)
		if err != nil {
			return err
		}
		mk.c = c
	}
	if mk.byScript {
		err := mk.do("EVAL", markScript, "0", journal.MarkChannel)
		var re resp.Error
		if !errors.As(err, &re) {
			return err
		}
		// Scripts refused (ACL, a renamed EVAL): the follower's clock when it sends the mark,
		// which is at most one round trip before the source runs it.
		mk.byScript = false
	}
	return mk.do("PUBLISH", journal.MarkChannel, strconv.FormatInt(time.Now().UnixMicro(), 10))
}

func (mk *marker) do(args ...string) error {
	mk.c.W.Write(resp.AppendCommand(nil, args...))
	if err := mk.c.W.Flush(); err != nil {
		return mk.c.Err(err)
	}
	return mk.c.Err(mk.c.R.Discard())
}

func (mk *marker) close() {
	mk.mu.Lock()
	defer mk.mu.Unlock()
	if mk.c != nil {
		mk.c.Close()
		mk.c = nil
	}
}

// Stop ends the marking and waits for it.
func (mk *marker) Stop() {
	mk.stop()
	<-mk.done
}
