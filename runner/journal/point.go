package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"stash.dev/redis/runner/repo"
)

// Stop says where a replay to a point ends. A replay applies the commands that end at or
// before Offset (a replication offset: after them the source was at Offset), plus, when
// Through is set, the command that starts at Through (and those before it), and a MULTI/EXEC
// block only whole: a block whose EXEC lies beyond the stop is left out with everything after it.
type Stop struct {
	Offset int64
	// Through, if HasThrough, is the start offset of one more command to apply: a time mark's
	// command, received at a known instant, whose end the manifest does not record.
	Through    int64
	HasThrough bool
}

// NoStop replays everything.
var NoStop = Stop{Offset: math.MaxInt64}

// StopAtOffset stops where the source's replication offset was off: a command that spans off
// is not applied (the target then holds the stream up to the command before).
func StopAtOffset(off int64) Stop { return Stop{Offset: off} }

// StopAtTime stops after the last command the follower received at or before t, as far as the
// manifests tell: they record the receive time of each segment's first and last command and
// of the first command of each span of Manifest.Resolution (100 ms; a second in older
// segments). Within the span of t, the commands after that span's first are not known to
// precede t and are left out: the stop is exact to the span, rounding down (every command
// received before the start of t's span is applied, none received after t). from is the offset
// before the first segment (the base's).
func StopAtTime(from int64, segs []Manifest, t time.Time) Stop {
	stop := Stop{Offset: from}
	for _, m := range segs {
		if t.Before(m.FirstTime) {
			break
		}
		if !t.Before(m.LastTime) {
			stop.Offset = m.EndOffset
			continue
		}
		// t falls inside m: find the last mark at or before it.
		i := -1
		for j, mk := range m.Marks {
			if mk.Time.After(t) {
				break
			}
			i = j
		}
		if i < 0 {
			stop.Offset = m.StartOffset // no mark: nothing of m is known to precede t
			break
		}
		mk := m.Marks[i]
		// The commands between two marks were received in the first mark's span.
		res := int64(m.Resolution())
		spanEnd := time.Unix(0, (mk.Time.UnixNano()/res+1)*res)
		if i+1 < len(m.Marks) && !t.Before(spanEnd) {
			stop.Offset = m.Marks[i+1].Offset
		} else {
			stop.Offset, stop.Through, stop.HasThrough = mk.Offset, mk.Offset, true
		}
		break
	}
	return stop
}

// StopAtSourceTime stops at the last source mark at or before t (the mark before the first one
// after t): every command before it ran at or before t on the source's clock. segs are a chain
// whose follower had the source mark its stream (Manifest.SourceTime); from is the base's
// offset.
//
// Past the last mark, when nothing but housekeeping follows it, the stop is the end of the
// journal: the same state, and the offset a restore to the end of the window reports.
func StopAtSourceTime(from int64, segs []Manifest, t time.Time) Stop {
	stop := Stop{Offset: from}
	var tail int64
	for _, m := range segs {
		for _, mk := range m.SourceMarks {
			if mk.Time.After(t) {
				return stop
			}
			stop.Offset, tail = mk.Offset, 0
		}
		if m.SourceTime {
			tail += m.TailWrites
		} else {
			tail += m.Commands
		}
	}
	if tail == 0 && len(segs) > 0 && stop.Offset > from {
		stop.Offset = segs[len(segs)-1].EndOffset
	}
	return stop
}

// Precision is how close a restore to a time comes in a chain whose follower had the source
// mark its stream (every MarkInterval): it holds every write the source acknowledged before
// T − Precision and none that it ran after T. Where two consecutive marks are further apart
// than this and the source ran writes between them (the follower was down, or could not reach
// the source to have it mark), the stretch between them is inexact: a restore to an instant
// inside it is refused, naming it.
const Precision = 500 * time.Millisecond

// MarkInterval is how often a follower has the source mark its stream.
const MarkInterval = 100 * time.Millisecond

// Stretch is a span of a chain's window that the journal cannot place writes in to Precision:
// between the source marks at From (offset FromOffset) and To (ToOffset), Writes ran.
type Stretch struct {
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	FromOffset int64     `json:"fromOffset"`
	ToOffset   int64     `json:"toOffset"`
	Writes     int64     `json:"writes"`
}

func (s Stretch) String() string {
	return fmt.Sprintf("from %s to %s (offsets %d-%d: %d writes the source ran while the follower was not marking its stream)",
		s.From.UTC().Format(time.RFC3339Nano), s.To.UTC().Format(time.RFC3339Nano), s.FromOffset, s.ToOffset, s.Writes)
}

// Contains reports whether t lies strictly inside the stretch.
func (s Stretch) Contains(t time.Time) bool { return t.After(s.From) && t.Before(s.To) }

// Timeline reads the source marks of a chain's segments, added in offset order: the first and
// the last mark's time (the window) and the inexact stretches between them.
type Timeline struct {
	Start, End time.Time
	Inexact    []Stretch
	prev       *SourceMark
	writes     int64
}

// Add reads the marks of the next segment.
func (tl *Timeline) Add(m Manifest) {
	if !m.SourceTime {
		tl.writes += m.Commands // a follower that did not mark: its commands have no source time
		return
	}
	for j := range m.SourceMarks {
		mk := m.SourceMarks[j]
		tl.writes += mk.Writes
		if tl.prev == nil {
			tl.Start = mk.Time
		} else if tl.writes > 0 && mk.Time.Sub(tl.prev.Time) > Precision {
			tl.Inexact = append(tl.Inexact, Stretch{From: tl.prev.Time, To: mk.Time, FromOffset: tl.prev.Offset, ToOffset: mk.Offset, Writes: tl.writes})
		}
		tl.prev, tl.writes, tl.End = &mk, 0, mk.Time
	}
	tl.writes += m.TailWrites
}

// Window returns the first and the last mark's time; ok is false before the first mark.
func (tl *Timeline) Window() (start, end time.Time, ok bool) {
	return tl.Start, tl.End, tl.prev != nil
}

// sourceTimeline reads the source marks of a chain's segments (see Timeline). ok is false when
// the chain has no source mark.
func sourceTimeline(segs []Manifest) (start, end time.Time, inexact []Stretch, ok bool) {
	var tl Timeline
	for _, m := range segs {
		tl.Add(m)
	}
	start, end, ok = tl.Window()
	return start, end, tl.Inexact, ok
}

// needs reports whether a replay that stops at s reads segment m.
func (s Stop) needs(m Manifest) bool {
	return m.StartOffset < s.Offset || (s.HasThrough && m.StartOffset <= s.Through)
}

// Needed returns the leading segments that a replay stopping at s reads.
func (s Stop) Needed(segs []Manifest) []Manifest {
	n := 0
	for n < len(segs) && s.needs(segs[n]) {
		n++
	}
	return segs[:n]
}

// Window is what one chain can restore: the base's instant and offset, up to the last command
// of its last segment. Times are when the follower received the commands.
type Window struct {
	Chain string `json:"chain"`
	// ReplID is the base's replication id, EndReplID the last segment's.
	ReplID    string    `json:"replID"`
	EndReplID string    `json:"endReplID"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// StartOffset is the base's replication offset, EndOffset the end of the last segment.
	StartOffset int64 `json:"startOffset"`
	EndOffset   int64 `json:"endOffset"`
	Segments    int   `json:"segments"`
	Commands    int64 `json:"commands"`
	// Problem says why the chain cannot be restored (its base is gone); empty when it can.
	Problem string `json:"problem,omitempty"`
	// Hole, if set, is where the chain's segments stop following each other (a segment deleted
	// or never committed): the window ends before it, and the segments after it (Beyond) reach
	// nothing, for want of what the hole held.
	Hole *Hole `json:"hole,omitempty"`
	// Manifests are the chain's segments in offset order, up to the hole.
	Manifests []Manifest `json:"-"`
	// SourceTime says the window's times are the source's own (its follower had it mark its
	// stream): Start and End are then the first and the last mark's, and Inexact lists the
	// stretches where a restore to a time cannot be exact to Precision. Without it, times are
	// when the follower received the commands (older followers).
	SourceTime bool      `json:"sourceTime,omitempty"`
	Inexact    []Stretch `json:"inexact,omitempty"`
}

// InexactAt returns the inexact stretch that holds t, if any.
func (w Window) InexactAt(t time.Time) (Stretch, bool) {
	for _, s := range w.Inexact {
		if s.Contains(t) {
			return s, true
		}
	}
	return Stretch{}, false
}

// StopAt is where a replay of the window to t stops: by the source's marks when it has them,
// else by receive times.
func (w Window) StopAt(t time.Time) Stop {
	if w.SourceTime {
		return StopAtSourceTime(w.StartOffset, w.Manifests, t)
	}
	return StopAtTime(w.StartOffset, w.Manifests, t)
}

// Hole is a stretch of a chain's journal that is missing: the stream from FromOffset (the end
// of the segments before it, received up to From) to ToOffset (where the next segment found
// starts, received from To); Beyond segments follow it.
type Hole struct {
	FromOffset int64     `json:"fromOffset"`
	ToOffset   int64     `json:"toOffset"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Beyond     int       `json:"beyond"`
}

// String names the hole for a message.
func (h Hole) String() string {
	return fmt.Sprintf("the journal between offsets %d and %d (received between %s and %s) is missing, %d segments after it are unreachable",
		h.FromOffset, h.ToOffset, h.From.UTC().Format(time.RFC3339Nano), h.To.UTC().Format(time.RFC3339Nano), h.Beyond)
}

// contiguous returns the leading segments that continue from without a gap, and the hole
// after them, if any.
func contiguous(from int64, fromTime time.Time, segs []Manifest) ([]Manifest, *Hole) {
	at, last := from, fromTime
	for i, m := range segs {
		if m.StartOffset != at {
			return segs[:i], &Hole{FromOffset: at, ToOffset: m.StartOffset, From: last, To: m.FirstTime, Beyond: len(segs) - i}
		}
		at, last = m.EndOffset, m.LastTime
	}
	return segs, nil
}

// Gap is a stretch of the source's history that no chain holds: between the end of one chain
// and the base of the next, when the next does not continue the same replication history from
// an offset the first one reached.
type Gap struct {
	After      string    `json:"after"`
	Before     string    `json:"before"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	FromOffset int64     `json:"fromOffset"`
	ToOffset   int64     `json:"toOffset"`
	FromReplID string    `json:"fromReplID"`
	ToReplID   string    `json:"toReplID"`
}

// Continues reports whether chain b (newer) starts where chain a left off or before: same
// replication history, its base at an offset a reached. Nothing of the source is then missing
// between them.
func Continues(a, b Window) bool {
	return b.ReplID == a.EndReplID && b.StartOffset <= a.EndOffset
}

// Windows lists every chain of the repository with its recoverable window, oldest base first, and
// the gaps between consecutive restorable chains. A chain whose base is missing or whose
// segments do not follow each other is listed with its Problem.
func Windows(ctx context.Context, r *repo.Repository) ([]Window, []Gap, error) {
	chains, err := Chains(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	var wins []Window
	for _, chain := range chains {
		segs, err := List(ctx, r, chain)
		if err != nil {
			return nil, nil, err
		}
		w := Window{Chain: chain, Segments: len(segs), Manifests: segs}
		for _, m := range segs {
			w.Commands += m.Commands
		}
		base, err := r.Manifest(ctx, chain)
		switch {
		case errors.Is(err, repo.ErrSnapshotNotFound):
			w.Problem = "its base snapshot is missing"
			if len(segs) > 0 {
				w.Start, w.StartOffset, w.ReplID = segs[0].FirstTime, segs[0].StartOffset, segs[0].ReplID
			}
		case err != nil:
			return nil, nil, err
		default:
			w.Start, w.StartOffset, w.ReplID = base.Time, base.ReplOffset, base.ReplID
			// A missing segment ends the window before it: the instants before the hole stay
			// restorable.
			segs, w.Hole = contiguous(base.ReplOffset, base.Time, segs)
			w.Manifests, w.Segments, w.Commands = segs, len(segs), 0
			for _, m := range segs {
				w.Commands += m.Commands
			}
		}
		w.End, w.EndOffset, w.EndReplID = w.Start, w.StartOffset, w.ReplID
		if n := len(segs); n > 0 {
			w.End, w.EndOffset, w.EndReplID = segs[n-1].LastTime, segs[n-1].EndOffset, segs[n-1].ReplID
			if w.Problem == "" && segs[0].SourceTime {
				// The window is where the source's marks place every write to Precision: from
				// the first mark after the base (the writes between the base's fork and it ran
				// at unknown instants) to the last.
				w.SourceTime, w.End = true, w.Start
				if start, end, inexact, ok := sourceTimeline(segs); ok {
					w.Start, w.End, w.Inexact = start, end, inexact
				}
			}
		}
		if len(segs) == 0 && w.Problem != "" {
			continue // an empty chain directory without a base: nothing to show
		}
		wins = append(wins, w)
	}
	// Chain ids have a second's resolution: order by the base's time, which has more.
	slices.SortStableFunc(wins, func(a, b Window) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Chain, b.Chain)
	})
	var gaps []Gap
	var prev *Window
	for i := range wins {
		w := &wins[i]
		if w.Problem != "" {
			continue
		}
		if prev != nil && !Continues(*prev, *w) {
			gaps = append(gaps, Gap{After: prev.Chain, Before: w.Chain, From: prev.End, To: w.Start,
				FromOffset: prev.EndOffset, ToOffset: w.StartOffset, FromReplID: prev.EndReplID, ToReplID: w.ReplID})
		}
		prev = w
	}
	return wins, gaps, nil
}

// Verify reads the whole data of segment m and checks it against its manifest.
func Verify(ctx context.Context, r *repo.Repository, m Manifest) error {
	jr, err := Open(ctx, r, m)
	if err != nil {
		return err
	}
	defer jr.Close()
	if _, err := io.Copy(io.Discard, jr); err != nil {
		return fmt.Errorf("verify journal segment %s: %w", m.Name(), err)
	}
	return nil
}
