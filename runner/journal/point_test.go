package journal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/redistest"
)

// TestStopAtTime: a time before a segment stops before it, one after its last command takes it
// whole, and one inside it stops at the marks: the span of the last mark at or before the time
// is taken whole once the time is past that span, else only the mark's own command.
func TestStopAtTime(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(1_700_000_000_000 + ms) }
	s1 := journal.Manifest{StartOffset: 100, EndOffset: 200, FirstTime: at(0), LastTime: at(450), MarkResolution: 100 * time.Millisecond,
		Marks: []journal.Mark{{Offset: 100, Time: at(0)}, {Offset: 150, Time: at(230)}, {Offset: 180, Time: at(440)}}}
	s2 := journal.Manifest{StartOffset: 200, EndOffset: 300, FirstTime: at(2000), LastTime: at(2000), MarkResolution: 100 * time.Millisecond,
		Marks: []journal.Mark{{Offset: 200, Time: at(2000)}}}
	old := journal.Manifest{StartOffset: 300, EndOffset: 400, FirstTime: at(3100), LastTime: at(3900), // marks of a second
		Marks: []journal.Mark{{Offset: 300, Time: at(3100)}}}
	segs := []journal.Manifest{s1, s2, old}
	for _, tc := range []struct {
		ms   int64
		want journal.Stop
	}{
		{-5, journal.Stop{Offset: 100}},
		{0, journal.Stop{Offset: 100, Through: 100, HasThrough: true}},
		{99, journal.Stop{Offset: 100, Through: 100, HasThrough: true}},
		{100, journal.Stop{Offset: 150}},
		{229, journal.Stop{Offset: 150}},
		{250, journal.Stop{Offset: 150, Through: 150, HasThrough: true}},
		{300, journal.Stop{Offset: 180}},
		{445, journal.Stop{Offset: 180, Through: 180, HasThrough: true}},
		{450, journal.Stop{Offset: 200}},
		{1999, journal.Stop{Offset: 200}},
		{2000, journal.Stop{Offset: 300}},
		{3500, journal.Stop{Offset: 300, Through: 300, HasThrough: true}},
		{3900, journal.Stop{Offset: 400}},
	} {
		if got := journal.StopAtTime(100, segs, at(tc.ms)); got != tc.want {
			t.Errorf("at +%d ms: %+v, want %+v", tc.ms, got, tc.want)
		}
	}
}

// TestReplayToStopsBeforeAnOpenBlock: a replay stops at an offset, never inside MULTI/EXEC (a
// block whose EXEC is beyond the stop is left out whole, also when it spans two segments), and
// reports the offset the target is at.
func TestReplayToStopsBeforeAnOpenBlock(t *testing.T) {
	ctx := context.Background()
	r, _ := openRepo(t)
	id := strings.Repeat("a", 40)
	cmds := [][]string{{"SET", "a", "1"}, {"MULTI"}, {"INCR", "c"}, {"SET", "b", "1"}}
	s1 := segment(t, r, journal.Start{Chain: "c", ReplID: id, Offset: 0}, cmds...)
	s2 := segment(t, r, journal.Start{Chain: "c", ReplID: id, Offset: s1.EndOffset}, []string{"EXEC"}, []string{"SET", "z", "1"})
	size := func(c ...string) int64 { return int64(len(resp.AppendCommand(nil, c...))) }
	afterA := size("SET", "a", "1")
	afterExec := s1.EndOffset + size("EXEC")
	dst := redistest.Start(t)
	target := redisconn.Options{Network: "tcp", Addr: dst.Addr}
	for _, tc := range []struct {
		stop    int64
		reached int64
		keys    int64
	}{
		{afterA + 3, afterA, 1},         // inside MULTI: stop before it
		{s1.EndOffset, afterA, 1},       // the block's EXEC is in the next segment
		{afterExec, afterExec, 3},       // the block whole
		{s2.EndOffset, s2.EndOffset, 4}, // everything
	} {
		dst.Client.FlushAll(ctx)
		st, err := journal.ReplayTo(ctx, r, 0, []journal.Manifest{s1, s2}, target, journal.StopAtOffset(tc.stop))
		if err != nil {
			t.Fatal(err)
		}
		if n := dst.Client.DBSize(ctx).Val(); st.Offset != tc.reached || n != tc.keys {
			t.Errorf("stop %d: reached %d with %d keys, want %d with %d", tc.stop, st.Offset, n, tc.reached, tc.keys)
		}
	}
}
