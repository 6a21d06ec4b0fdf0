package journal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/redistest"
)

// segment commits cmds as one segment that begins at s.
func segment(t *testing.T, r *repo.Repository, s journal.Start, cmds ...[]string) journal.Manifest {
	t.Helper()
	ctx := context.Background()
	w, err := journal.NewWriter(ctx, r, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		w.BeginCommand(time.Now())
		if _, err := w.Write(resp.AppendCommand(nil, c...)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReplay: replay sends each segment's commands in order, selecting the segment's database
// first and then as the stream selects, MULTI/EXEC as a unit, and skips PING and REPLCONF. A
// gap before or between segments is refused before anything is sent; an altered segment stops
// the replay after the segments before it, with an error that names it.
func TestReplay(t *testing.T) {
	ctx := context.Background()
	r, dir := openRepo(t)
	id := strings.Repeat("f", 40)
	s1 := segment(t, r, journal.Start{Chain: "c", ReplID: id, Offset: 100, DB: 0},
		[]string{"SELECT", "2"}, []string{"SET", "a", "1"}, []string{"PING"},
		[]string{"MULTI"}, []string{"INCR", "c"}, []string{"INCR", "c"}, []string{"EXEC"},
		[]string{"REPLCONF", "GETACK", "*"})
	// The second segment starts in database 2 without a SELECT of its own.
	s2 := segment(t, r, journal.Start{Chain: "c", ReplID: id, Offset: s1.EndOffset, DB: 2},
		[]string{"SET", "b", "2"}, []string{"SELECT", "0"}, []string{"SET", "z", "1"})
	segs := []journal.Manifest{s1, s2}

	dst := redistest.Start(t)
	target := redisconn.Options{Network: "tcp", Addr: dst.Addr}
	if _, err := journal.Replay(ctx, r, 99, segs, target); !errors.Is(err, journal.ErrGap) {
		t.Fatalf("replay after a gap: %v", err)
	}
	if _, err := journal.Replay(ctx, r, 100, []journal.Manifest{s2}, target); !errors.Is(err, journal.ErrGap) {
		t.Fatalf("replay without the first segment: %v", err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("a refused replay wrote %d keys", n)
	}
	st, err := journal.Replay(ctx, r, 100, segs, target)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 2 || st.Commands != 9 || st.Skipped != 2 {
		t.Fatalf("stats %+v", st)
	}
	got := func(s *redistest.Server, db int, key string) string {
		v, _ := s.Client.Do(ctx, "EVAL", fmt.Sprintf("redis.call('SELECT', %d) return redis.call('GET', KEYS[1])", db), 1, key).Text()
		return v
	}
	if got(dst, 2, "a") != "1" || got(dst, 2, "c") != "2" || got(dst, 2, "b") != "2" || got(dst, 0, "z") != "1" {
		t.Fatalf("after replay: db2 a=%q c=%q b=%q, db0 z=%q", got(dst, 2, "a"), got(dst, 2, "c"), got(dst, 2, "b"), got(dst, 0, "z"))
	}

	path := filepath.Join(dir, "journal", "c", fmt.Sprintf("%020d.data", s2.StartOffset))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-20] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dst2 := redistest.Start(t)
	_, err = journal.Replay(ctx, r, 100, segs, redisconn.Options{Network: "tcp", Addr: dst2.Addr})
	if !errors.Is(err, crypt.ErrIntegrity) || !strings.Contains(err.Error(), "journal segment "+s2.Name()) {
		t.Fatalf("replay of an altered segment: %v", err)
	}
	if got(dst2, 2, "a") != "1" || got(dst2, 0, "z") != "" {
		t.Fatalf("after the refused segment: db2 a=%q, db0 z=%q; want the first segment only", got(dst2, 2, "a"), got(dst2, 0, "z"))
	}
}
