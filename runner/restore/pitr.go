package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
)

// Point is where a restore to a point in time stops: an instant (Time) or, with ByOffset, a
// replication offset of the source.
type Point struct {
	Time     time.Time
	Offset   int64
	ByOffset bool
}

func (p Point) String() string {
	if p.ByOffset {
		return fmt.Sprintf("offset %d", p.Offset)
	}
	return p.Time.UTC().Format(time.RFC3339Nano)
}

// ErrOutsideWindow is returned when no journal chain can restore the point; nothing has been
// written to the target then.
var ErrOutsideWindow = errors.New("the point is outside every recoverable window")

// PointResult describes a restore to a point in time: the base restored (Result) and the
// journal replayed on it.
type PointResult struct {
	Result
	Chain string `json:"chain"`
	// BaseOffset and BaseTime are the base's replication offset and time.
	BaseOffset int64     `json:"baseOffset"`
	BaseTime   time.Time `json:"baseTime"`
	// Offset is the replication offset the target's data is at, Time when the follower received
	// the last command replayed (to a mark's span, 100 ms; the base's time if none was).
	Offset   int64     `json:"offset"`
	Time     time.Time `json:"time"`
	Segments int       `json:"segments"`
	Commands int64     `json:"commands"`
	// Window is the chain's recoverable window.
	Window   journal.Window `json:"window"`
	Duration time.Duration  `json:"-"`
}

// ToPoint restores the state of the source at a point: the newest base snapshot at or before it
// that has a journal chain reaching it (or the chain of opts.Snapshot, when it names one), by
// Run as any snapshot, then the chain's journal replayed up to the point (journal.ReplayTo:
// pipelined, SELECT and MULTI/EXEC as the stream has them; expiries are absolute in the stream
// of Redis 7 and later, so a later replay keeps them). A point that no chain covers is refused
// with ErrOutsideWindow, naming the windows, before anything is written. Databases and
// KeyPattern do not apply (the journal's commands are not filtered), nor do cluster targets.
func ToPoint(ctx context.Context, opts Options, pt Point) (PointResult, error) {
	start := time.Now()
	r := opts.Repository
	if r == nil {
		return PointResult{}, errors.New("restore: no repository")
	}
	if err := v1alpha1.CheckPointInTimeSelection(len(opts.Databases), opts.KeyPattern); err != nil {
		return PointResult{}, err
	}
	wins, gaps, err := journal.Windows(ctx, r)
	if err != nil {
		return PointResult{}, err
	}
	pinned := ""
	if opts.Snapshot != "" && opts.Snapshot != "latest" {
		m, err := r.Resolve(ctx, opts.Snapshot)
		if err != nil {
			return PointResult{}, err
		}
		pinned = m.ID
	}
	w, stop, err := choose(wins, gaps, pinned, pt)
	if err != nil {
		return PointResult{}, err
	}
	segs := stop.Needed(w.Manifests)
	if opts.VerifyFirst {
		for _, m := range segs {
			if err := journal.Verify(ctx, r, m); err != nil {
				return PointResult{}, fmt.Errorf("verify the journal before restoring: %w; %s", err, canRestore(w, segs, m))
			}
		}
	}
	// The journal goes to the master the base goes to; a cluster would need each command routed.
	node, err := redisconn.Connect(ctx, redisconn.ConnectOptions{Redis: opts.Redis, Sentinel: opts.Sentinel, Mode: opts.Mode})
	if err != nil {
		return PointResult{}, err
	}
	target, mode := node.Redis, node.Info.Mode
	node.Client.Close()
	if mode == redisconn.ModeCluster {
		return PointResult{}, fmt.Errorf("restore to a point in time into a Redis Cluster is not supported: restore into a standalone server")
	}

	opts.Snapshot = w.Chain
	base, err := Run(ctx, opts)
	if err != nil {
		return PointResult{}, err
	}
	res := PointResult{Result: base, Chain: w.Chain, BaseOffset: w.StartOffset, BaseTime: w.Start, Window: w}
	st, err := journal.ReplayTo(ctx, r, w.StartOffset, segs, target, stop)
	res.Offset, res.Time, res.Segments, res.Commands = st.Offset, st.Time, st.Segments, st.Commands
	if res.Time.IsZero() {
		res.Time = w.Start
	}
	res.Duration = time.Since(start)
	if err != nil {
		held := fmt.Sprintf("the target holds base %s and the journal up to offset %d (received %s)", w.Chain, st.Offset, res.Time.UTC().Format(time.RFC3339Nano))
		if errors.Is(err, crypt.ErrIntegrity) && st.Segments < len(segs) {
			return res, fmt.Errorf("restore to %s: %w; %s; %s", pt, err, held, canRestore(w, segs, segs[st.Segments]))
		}
		return res, fmt.Errorf("restore to %s: %w; %s", pt, err, held)
	}
	return res, nil
}

// canRestore says how far the journal can restore when segment bad fails verification: to the
// end of the segment before it.
func canRestore(w journal.Window, segs []journal.Manifest, bad journal.Manifest) string {
	upTo, off := w.Start, w.StartOffset
	for _, m := range segs {
		if m.StartOffset >= bad.StartOffset {
			break
		}
		upTo, off = m.LastTime, m.EndOffset
	}
	return fmt.Sprintf("the journal can restore up to %s (offset %d) of chain %s: restore to a point at or before that",
		upTo.UTC().Format(time.RFC3339Nano), off, w.Chain)
}

// choose finds the chain that restores pt (the pinned one, or the newest restorable one whose
// base is at or before pt) and where its replay stops.
func choose(wins []journal.Window, gaps []journal.Gap, pinned string, pt Point) (journal.Window, journal.Stop, error) {
	var best = -1
	for i, w := range wins {
		if pinned != "" && w.Chain != pinned {
			continue
		}
		if w.Problem != "" {
			if pinned != "" {
				return journal.Window{}, journal.Stop{}, fmt.Errorf("chain %s cannot be restored: %s", w.Chain, w.Problem)
			}
			continue
		}
		if pt.ByOffset {
			if w.StartOffset <= pt.Offset && pt.Offset <= w.EndOffset {
				best = i
			} else if w.Hole != nil && w.EndOffset < pt.Offset && (pinned != "" || i == len(wins)-1) && best < 0 {
				return journal.Window{}, journal.Stop{}, fmt.Errorf("restore to %s: %w: chain %s restores up to offset %d: %s; nothing was written",
					pt, ErrOutsideWindow, w.Chain, w.EndOffset, w.Hole)
			}
		} else if !w.Start.After(pt.Time) {
			best = i
		}
	}
	if best < 0 {
		if pinned != "" && !hasChain(wins, pinned) {
			return journal.Window{}, journal.Stop{}, &NoJournalError{Snapshot: pinned}
		}
		return journal.Window{}, journal.Stop{}, outside(wins, gaps, pt, "")
	}
	w := wins[best]
	if pt.ByOffset {
		return w, journal.StopAtOffset(pt.Offset), nil
	}
	if pt.Time.After(w.End) {
		// A next chain that continues this one holds nothing this one lacks: this one covers
		// the time up to the next base.
		// (Not by the source's marks: the commands after the last mark ran at instants
		// the journal does not know.)
		if !w.SourceTime && best+1 < len(wins) && pinned == "" && wins[best+1].Problem == "" && journal.Continues(w, wins[best+1]) && pt.Time.Before(wins[best+1].Start) {
			return w, journal.NoStop, nil
		}
		if w.Hole != nil && (pinned != "" || best+1 >= len(wins) || pt.Time.Before(wins[best+1].Start)) {
			return journal.Window{}, journal.Stop{}, fmt.Errorf("restore to %s: %w: chain %s restores up to %s (offset %d): %s; nothing was written",
				pt, ErrOutsideWindow, w.Chain, w.End.UTC().Format(time.RFC3339Nano), w.EndOffset, w.Hole)
		}
		return journal.Window{}, journal.Stop{}, outside(wins, gaps, pt, w.Chain)
	}
	if st, ok := w.InexactAt(pt.Time); ok {
		return journal.Window{}, journal.Stop{}, fmt.Errorf("restore to %s: %w: chain %s cannot place the source's writes to %s %s; restore to its start or its end instead; nothing was written",
			pt, ErrInexact, w.Chain, journal.Precision, st)
	}
	return w, w.StopAt(pt.Time), nil
}

// ErrInexact is returned for an instant inside a stretch of a window where the journal cannot
// place the source's writes to journal.Precision (the follower was down); nothing has been
// written to the target then.
var ErrInexact = errors.New("the point is in a stretch the journal cannot restore exactly")

func hasChain(wins []journal.Window, chain string) bool {
	for _, w := range wins {
		if w.Chain == chain {
			return true
		}
	}
	return false
}

// outside is the refusal of a point that no chain covers: it names the windows and gaps.
func outside(wins []journal.Window, gaps []journal.Gap, pt Point, near string) error {
	var ws []string
	for _, w := range wins {
		if w.Problem != "" {
			continue
		}
		ws = append(ws, fmt.Sprintf("chain %s from %s to %s (offsets %d-%d)", w.Chain,
			w.Start.UTC().Format(time.RFC3339Nano), w.End.UTC().Format(time.RFC3339Nano), w.StartOffset, w.EndOffset))
	}
	if len(ws) == 0 {
		return fmt.Errorf("restore to %s: %w: the repository has no journal (run stash-runner follow); nothing was written", pt, ErrOutsideWindow)
	}
	var in string
	for _, g := range gaps {
		if !pt.ByOffset && g.After == near && pt.Time.After(g.From) && pt.Time.Before(g.To) {
			in = fmt.Sprintf("; the point is in the gap between chain %s and chain %s, whose commands are not in the repository", g.After, g.Before)
		}
	}
	return fmt.Errorf("restore to %s: %w: the recoverable windows are %s%s; nothing was written", pt, ErrOutsideWindow, strings.Join(ws, "; "), in)
}
