package journal_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// dbStream is a replication stream as a Redis 7+ source sends it, with every way the stream
// changes databases: SELECT outside and inside MULTI/EXEC blocks (a script's or a function's
// effects that write to two databases are one block with SELECTs in it), SWAPDB, MOVE,
// FLUSHDB, FLUSHALL, and writes to database 5 and beyond.
func dbStream() [][]string {
	big := strings.Repeat("b", 5000)
	return [][]string{
		{"SELECT", "0"},
		{"SET", "gone", "1"},
		{"FLUSHALL"},
		{"SET", "x", "0"},
		{"MULTI"},
		{"SET", "a", "in-db0"},
		{"SELECT", "1"},
		{"SET", "b", big},
		{"SET", "c", "in-db1"},
		{"EXEC"},
		{"SET", "d", "after-the-block"},
		{"SELECT", "5"},
		{"SET", "e", "five"},
		{"MULTI"},
		{"SELECT", "2"},
		{"INCR", "n"},
		{"SELECT", "5"},
		{"HSET", "h", "f", "v"},
		{"EXEC"},
		{"SWAPDB", "5", "3"},
		{"SET", "g", "in-5-after-the-swap"},
		{"MOVE", "g", "0"},
		{"SELECT", "3"},
		{"DEL", "e"},
		{"PING"},
		{"SELECT", "7"},
		{"SET", "tmp", "1"},
		{"FLUSHDB"},
		{"SET", "k", "7"},
		{"REPLCONF", "GETACK", "*"},
		{"SELECT", "0"},
		{"SET", "z", "last"},
	}
}

// splitSegments commits cmds as consecutive segments of one chain starting at offset from, a
// new segment beginning before each command index in cuts, with the databases a follower
// records (SELECTs inside blocks included).
func splitSegments(t *testing.T, r *repo.Repository, chain string, from int64, cmds [][]string, cuts map[int]bool) []journal.Manifest {
	t.Helper()
	ctx := context.Background()
	var segs []journal.Manifest
	var w *journal.Writer
	at, db := from, 0
	commit := func() {
		if w == nil {
			return
		}
		m, err := w.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, m)
		w = nil
	}
	for i, c := range cmds {
		if cuts[i] {
			commit()
		}
		if w == nil {
			var err error
			w, err = journal.NewWriter(ctx, r, journal.Start{Chain: chain, ReplID: strings.Repeat("e", 40), Offset: at, DB: db})
			if err != nil {
				t.Fatal(err)
			}
		}
		w.BeginCommand(time.Now())
		raw := resp.AppendCommand(nil, c...)
		if _, err := w.Write(raw); err != nil {
			t.Fatal(err)
		}
		at += int64(len(raw))
		if strings.EqualFold(c[0], "SELECT") {
			db, _ = strconv.Atoi(c[1])
		}
		w.SetEndDB(db)
	}
	commit()
	return segs
}

// applyStream runs the stream on s as its replica would: on one connection, in order.
func applyStream(t *testing.T, s *redistest.Server, cmds [][]string) {
	t.Helper()
	c, err := redisconn.Options{Network: "tcp", Addr: s.Addr}.Dial(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for _, cmd := range cmds {
		if strings.EqualFold(cmd[0], "REPLCONF") {
			continue
		}
		c.W.Write(resp.AppendCommand(nil, cmd...))
		n++
	}
	if err := c.W.Flush(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := c.R.Discard(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplayAcrossSegmentsKeepsTheDatabase: the stream split into two segments before every
// one of its commands (a MULTI/EXEC block with SELECTs in it cut at each of its commands
// among them), and into one segment per command, replays to what the stream itself gives: the
// same digest, keys per database and expiries in every database. A replay that selected the
// next segment's database while it still held a block ran the block's first writes in the
// wrong database.
func TestReplayAcrossSegmentsKeepsTheDatabase(t *testing.T) {
	ctx := context.Background()
	cmds := dbStream()
	src := redistest.Start(t)
	applyStream(t, src, cmds)
	dst := redistest.Start(t)
	r, _ := openRepo(t)
	placements := [][]int{nil}
	for i := 1; i < len(cmds); i++ {
		placements = append(placements, []int{i})
	}
	every := []int{}
	for i := 1; i < len(cmds); i++ {
		every = append(every, i)
	}
	placements = append(placements, every)
	for n, cuts := range placements {
		t.Run(fmt.Sprintf("cuts=%v", cuts), func(t *testing.T) {
			set := map[int]bool{}
			for _, c := range cuts {
				set[c] = true
			}
			chain := fmt.Sprintf("chain%02d", n)
			segs := splitSegments(t, r, chain, 1000, cmds, set)
			if err := dst.Client.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			st, err := journal.Replay(ctx, r, 1000, segs, redisconn.Options{Network: "tcp", Addr: dst.Addr})
			if err != nil {
				t.Fatal(err)
			}
			if st.Segments != len(segs) || st.Offset != segs[len(segs)-1].EndOffset || st.Skipped != 2 {
				t.Fatalf("stats %+v of %d segments ending at %d", st, len(segs), segs[len(segs)-1].EndOffset)
			}
			dataset.Equal(t, src, dst)
		})
	}
	if len(placements) < 20 {
		t.Fatalf("only %d placements", len(placements))
	}
}

// TestReplayStopsAtTheFirstRefusal: a command the target refuses stops the replay there: the
// commands before it are applied, none after it, and the error says which command, at which
// offset, and the stats say where the target is. A database the target does not have (4
// databases, the journal writes to 12), a command the target's user may not run (FLUSHDB),
// one inside a block (the block is left out whole), and a refusal at run time (WRONGTYPE),
// which no server announces before: then the error says what ran after it.
func TestReplayStopsAtTheFirstRefusal(t *testing.T) {
	ctx := context.Background()
	r, _ := openRepo(t)
	offsetOf := func(cmds [][]string, i int) int64 {
		at := int64(1000)
		for _, c := range cmds[:i] {
			at += int64(len(resp.AppendCommand(nil, c...)))
		}
		return at
	}
	type check func(t *testing.T, s *redistest.Server)
	has := func(db int, keys ...string) check {
		return func(t *testing.T, s *redistest.Server) {
			c := dataset.Client(s, db)
			defer c.Close()
			for _, k := range keys {
				if n, _ := c.Exists(ctx, k).Result(); n != 1 {
					t.Errorf("db %d: %s missing", db, k)
				}
			}
		}
	}
	hasNot := func(db int, keys ...string) check {
		return func(t *testing.T, s *redistest.Server) {
			c := dataset.Client(s, db)
			defer c.Close()
			for _, k := range keys {
				if n, _ := c.Exists(ctx, k).Result(); n != 0 {
					t.Errorf("db %d: %s was written after the refusal", db, k)
				}
			}
		}
	}
	for _, tc := range []struct {
		name     string
		opts     []redistest.Option
		user     string
		prepare  []string
		cmds     [][]string
		refused  int // index in cmds of the command named
		stopAt   int // index in cmds of the first command not applied
		ranAfter int
		cut      int // a new segment starts before this command (each segment is applied whole)
		checks   []check
	}{{
		name:    "database out of range",
		opts:    []redistest.Option{redistest.WithConfig("databases", "4")},
		cmds:    [][]string{{"SET", "a", "1"}, {"SELECT", "2"}, {"SET", "b", "1"}, {"SELECT", "12"}, {"SET", "c", "12"}, {"SET", "d", "12"}},
		refused: 3, stopAt: 3,
		checks: []check{has(0, "a"), has(2, "b"), hasNot(0, "c", "d"), hasNot(2, "c", "d")},
	}, {
		name:    "command the user may not run",
		opts:    []redistest.Option{redistest.WithACLUser("replay on >pw ~* &* +@all -flushdb")},
		user:    "replay",
		cmds:    [][]string{{"SET", "a", "1"}, {"SET", "b", "1"}, {"FLUSHDB"}, {"SET", "c", "1"}},
		refused: 2, stopAt: 2,
		checks: []check{has(0, "a", "b"), hasNot(0, "c")},
	}, {
		name:    "refused inside a block",
		opts:    []redistest.Option{redistest.WithACLUser("replay on >pw ~* &* +@all -flushdb")},
		user:    "replay",
		cmds:    [][]string{{"SET", "a", "1"}, {"MULTI"}, {"SET", "b", "1"}, {"FLUSHDB"}, {"SET", "c", "1"}, {"EXEC"}, {"SET", "d", "1"}},
		refused: 3, stopAt: 1,
		checks: []check{has(0, "a"), hasNot(0, "b", "c", "d")},
	}, {
		name:    "refused at run time",
		prepare: []string{"SET", "l", "a string"},
		cmds:    [][]string{{"SET", "a", "1"}, {"LPUSH", "l", "x"}, {"SET", "b", "1"}, {"SET", "c", "1"}},
		refused: 1, stopAt: 1, ranAfter: 1, cut: 3,
		checks: []check{has(0, "a", "b"), hasNot(0, "c")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dst := redistest.Start(t, tc.opts...)
			if tc.prepare != nil {
				if err := dst.Client.Do(ctx, toAny(tc.prepare)...).Err(); err != nil {
					t.Fatal(err)
				}
			}
			chain := strings.ReplaceAll(tc.name, " ", "-")
			cut := tc.cut
			if cut == 0 {
				cut = 2
			}
			segs := splitSegments(t, r, chain, 1000, tc.cmds, map[int]bool{cut: true})
			target := redisconn.Options{Network: "tcp", Addr: dst.Addr}
			if tc.user != "" {
				target.Username, target.Password = tc.user, "pw"
			}
			st, err := journal.Replay(ctx, r, 1000, segs, target)
			var re *journal.RefusedError
			if !errors.As(err, &re) {
				t.Fatalf("replay: %v; want a refusal", err)
			}
			t.Logf("%v", err)
			name := tc.cmds[tc.refused][0]
			if re.Command != int64(tc.refused+1) || re.Name != name || re.Offset != offsetOf(tc.cmds, tc.refused) || re.RanAfter != tc.ranAfter ||
				!strings.Contains(err.Error(), fmt.Sprintf("command %d of the replay (%s at offset %d", tc.refused+1, name, re.Offset)) {
				t.Errorf("refusal %+v; want command %d (%s) at offset %d, %d ran after it", re, tc.refused+1, name, offsetOf(tc.cmds, tc.refused), tc.ranAfter)
			}
			if want := offsetOf(tc.cmds, tc.stopAt); st.Offset != want {
				t.Errorf("the replay says the target is at offset %d; want %d", st.Offset, want)
			}
			for _, c := range tc.checks {
				c(t, dst)
			}
		})
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
