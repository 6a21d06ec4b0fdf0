package follow_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/follow"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

func openRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, _ := openRepoDir(t)
	return r
}

// openRepoDir is openRepo that also returns the repository's directory.
func openRepoDir(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	return runnertest.OpenRepo(t, "file://"+dir, nil), dir
}

func conn(s *redistest.Server) redisconn.Options {
	return redisconn.Options{Network: "tcp", Addr: s.Addr, Password: s.Password}
}

// follower runs follow.Run in the background; stop cancels it and returns its error.
type follower struct {
	cancel context.CancelFunc
	done   chan error
	bases  chan backup.Result
	mu     sync.Mutex
	segs   []journal.Manifest
}

func startFollower(t *testing.T, opts follow.Options) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel, done: make(chan error, 1), bases: make(chan backup.Result, 10)}
	opts.OnBase = func(r backup.Result) { f.bases <- r }
	opts.OnSegment = func(m journal.Manifest) { f.mu.Lock(); f.segs = append(f.segs, m); f.mu.Unlock() }
	opts.Logf = t.Logf
	go func() { f.done <- follow.Run(ctx, opts) }()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

func (f *follower) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- nil // for the cleanup
		if err != nil {
			t.Fatalf("follow: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not stop within 30 s of its cancellation")
	}
}

func (f *follower) base(t *testing.T) backup.Result {
	t.Helper()
	select {
	case b := <-f.bases:
		return b
	case err := <-f.done:
		t.Fatalf("follow ended before its base snapshot: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no base snapshot within 30 s")
	}
	return backup.Result{}
}

func (f *follower) segments() []journal.Manifest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]journal.Manifest(nil), f.segs...)
}

// ackedOffset is the offset the source's only replica acknowledged, -1 while it has none.
func ackedOffset(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	info, err := s.Client.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "slave0:"); ok {
			for f := range strings.SplitSeq(v, ",") {
				if o, ok := strings.CutPrefix(f, "offset="); ok {
					n, _ := strconv.ParseInt(o, 10, 64)
					return n
				}
			}
		}
	}
	return -1
}

// write runs n rounds of writes in databases 0 and 5: plain SETs, a MULTI/EXEC counter, values
// larger than a segment, hashes, lists, deletes and expiries (far in the future, so that no key
// expires while the test compares digests).
func write(t *testing.T, s *redistest.Server, from, n int) {
	t.Helper()
	ctx := context.Background()
	c0 := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	c5 := redis.NewClient(&redis.Options{Addr: s.Addr, DB: 5, Protocol: 2, DisableIdentity: true})
	defer c0.Close()
	defer c5.Close()
	big := strings.Repeat("b", 40<<10)
	for i := from; i < from+n; i++ {
		k := strconv.Itoa(i)
		if err := c0.Set(ctx, "k:"+k, "v"+k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := c0.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "counter")
			p.Set(ctx, "t:"+k, time.Now().UnixMilli(), time.Hour)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := c5.LPush(ctx, "list", k).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c5.HSet(ctx, "h:"+strconv.Itoa(i%7), k, i).Err(); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := c0.Set(ctx, "big:"+k, big, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 0 {
			if err := c0.Expire(ctx, "k:"+k, 2*time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if i%5 == 0 && i > 5 {
			if err := c0.Del(ctx, "k:"+strconv.Itoa(i-5)).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// waitRecorded waits until the committed segments reach the source's current offset.
func waitRecorded(t *testing.T, src *redistest.Server, f *follower) {
	t.Helper()
	want := redistest.ReplOffset(t, src.Client)
	testproc.Eventually(t, 30*time.Second, fmt.Sprintf("the journal to reach offset %d", want), func() error {
		segs := f.segments()
		if len(segs) == 0 || segs[len(segs)-1].EndOffset < want {
			return fmt.Errorf("%d segments closed", len(segs))
		}
		return nil
	})
}

// verifyRestore restores the base snapshot into a new server, replays the chain's journal and
// compares the digest with the source's.
func verifyRestore(t *testing.T, fl redistest.Flavor, src *redistest.Server, r *repo.Repository, chain string) []journal.Manifest {
	t.Helper()
	ctx := context.Background()
	base, err := r.Manifest(ctx, chain)
	if err != nil {
		t.Fatal(err)
	}
	if base.Method != backup.MethodReplication || len(base.ReplID) != 40 {
		t.Fatalf("base manifest: method %q replid %q", base.Method, base.ReplID)
	}
	segs, err := journal.List(ctx, r, chain)
	if err != nil {
		t.Fatal(err)
	}
	if err := journal.CheckContiguous(base.ReplOffset, segs); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t, fl)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(dst), Repository: r, Snapshot: chain}); err != nil {
		t.Fatal(err)
	}
	st, err := journal.Replay(ctx, r, base.ReplOffset, segs, conn(dst))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Fatalf("digest after restore of base %s and replay of %d segments (%d commands): %s, source %s", chain, len(segs), st.Commands, b, a)
	}
	dataset.Same(t, src, dst)
	t.Logf("base %s (%d keys) + %d segments, %d commands replayed, %d skipped", chain, base.Keys, len(segs), st.Commands, st.Skipped)
	return segs
}

// TestFollowRecordsTheStream: a follower takes a base snapshot from its full resync and records
// the stream that follows into segments (closed by interval and by size, acknowledged as read);
// the base restored plus the journal replayed equals the source, for a diskless and a
// disk-based transfer and for Redis 7.0, 8.0 and Valkey 8.1.
func TestFollowRecordsTheStream(t *testing.T) {
	for _, tc := range []struct {
		fl       redistest.Flavor
		diskless string
	}{{redistest.Redis70, "yes"}, {redistest.Redis70, "no"}, {redistest.Redis80, "yes"}, {redistest.Valkey81, "yes"}} {
		t.Run(fmt.Sprintf("%s/diskless=%s", tc.fl.Name, tc.diskless), func(t *testing.T) {
			src := redistest.Start(t, tc.fl, redistest.WithConfig("repl-diskless-sync", tc.diskless))
			write(t, src, 0, 200) // before the base
			r := openRepo(t)
			f := startFollower(t, follow.Options{Redis: conn(src), Repository: r,
				SegmentInterval: 300 * time.Millisecond, SegmentSize: 64 << 10})
			base := f.base(t)
			write(t, src, 200, 600)
			// One value larger than a segment closes its segment by size, and a last small
			// write after everything is recorded opens a segment that only time can close.
			if err := src.Client.Set(context.Background(), "huge", strings.Repeat("h", 100<<10), 0).Err(); err != nil {
				t.Fatal(err)
			}
			waitRecorded(t, src, f)
			if err := src.Client.Set(context.Background(), "last", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			waitRecorded(t, src, f)
			want := redistest.ReplOffset(t, src.Client)
			testproc.Eventually(t, 10*time.Second, "the follower to acknowledge the stream", func() error {
				if n := ackedOffset(t, src); n < want {
					return fmt.Errorf("acknowledged offset %d", n)
				}
				return nil
			})
			f.stop(t)

			segs := verifyRestore(t, tc.fl, src, r, base.SnapshotID)
			bySize, byTime := 0, 0
			for _, m := range segs {
				if m.RawBytes >= 64<<10 {
					bySize++
				} else {
					byTime++
				}
				if m.Commands == 0 || m.FirstTime.After(m.LastTime) || len(m.Marks) == 0 || m.Marks[0].Offset != m.StartOffset {
					t.Fatalf("segment %s: %+v", m.Name(), m)
				}
			}
			if bySize == 0 || byTime == 0 {
				t.Fatalf("%d segments closed by size and %d by time; want both", bySize, byTime)
			}
			if len(segs[0].ReplID) != 40 {
				t.Fatalf("first segment %+v", segs[0])
			}
		})
	}
}

// TestFollowStopClosesTheOpenSegment: cancelling the follower (SIGTERM in the command) commits
// the segment it has open, however young, so the journal ends where the follower stopped
// reading.
func TestFollowStopClosesTheOpenSegment(t *testing.T) {
	src := redistest.Start(t)
	r := openRepo(t)
	f := startFollower(t, follow.Options{Redis: conn(src), Repository: r, SegmentInterval: time.Hour})
	base := f.base(t)
	write(t, src, 0, 50)
	want := redistest.ReplOffset(t, src.Client)
	testproc.Eventually(t, 10*time.Second, "the follower to read the stream", func() error {
		if n := ackedOffset(t, src); n < want {
			return fmt.Errorf("acknowledged offset %d", n)
		}
		return nil
	})
	if n := len(f.segments()); n != 0 {
		t.Fatalf("%d segments closed before the stop; the interval is an hour", n)
	}
	// The follower is a replica that acknowledges: WAIT counts it.
	if n, err := src.Client.Do(context.Background(), "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged (%v)", n, err)
	}
	f.stop(t)
	segs := f.segments()
	if len(segs) != 1 || segs[0].EndOffset < want {
		t.Fatalf("after the stop: segments %+v, source offset %d", segs, want)
	}
	verifyRestore(t, redistest.Redis70, src, r, base.SnapshotID)
}

// TestFollowRefusesASourceWithoutPSYNC: a source that does not serve replicas is an error that
// says so, not a retry loop.
func TestFollowRefusesASourceWithoutPSYNC(t *testing.T) {
	src := redistest.Start(t, redistest.WithConfig("rename-command", "PSYNC", ""))
	r := openRepo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := follow.Run(ctx, follow.Options{Redis: conn(src), Repository: r, Reconnect: true})
	if err == nil || !strings.Contains(err.Error(), "continuous backup needs a source that serves a replica") {
		t.Fatalf("follow of a source without PSYNC: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("follow retried instead of failing")
	}
}

// TestFollowResumesWithoutGap: the source drops the follower's link twice while a writer
// increments a counter in MULTI with each key it adds; the follower continues its chain with
// PSYNC <replid> <offset+1> (+CONTINUE), and so does a follower started again on the same
// repository. One base, one chain, segments without a gap or an overlap, and the base plus
// the journal equal the source: a lost or a doubled INCR would change the digest.
func TestFollowResumesWithoutGap(t *testing.T) {
	ctx := context.Background()
	// The backlog holds what the writer writes while the follower is away (the default 1 MB
	// does not, and the follower then rightly starts a new chain).
	src := redistest.Start(t, redistest.WithConfig("repl-backlog-size", "64mb"))
	r := openRepo(t)
	opts := follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond, Reconnect: true}
	f := startFollower(t, opts)
	base := f.base(t)

	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		c := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		for i := 0; wctx.Err() == nil; i++ {
			_, err := c.TxPipelined(wctx, func(p redis.Pipeliner) error {
				p.Incr(wctx, "counter")
				p.Set(wctx, "w:"+strconv.Itoa(i), i, 0)
				return nil
			})
			if err != nil && wctx.Err() == nil {
				writerDone <- err
				return
			}
			time.Sleep(time.Millisecond) // pace: the replay at the end stays short
		}
		writerDone <- nil
	}()
	for range 2 {
		from := redistest.ReplOffset(t, src.Client)
		testproc.Eventually(t, 10*time.Second, "the follower to acknowledge new writes", func() error {
			if n := ackedOffset(t, src); n <= from {
				return fmt.Errorf("acknowledged offset %d", n)
			}
			return nil
		})
		if n, err := src.Client.ClientKillByFilter(ctx, "TYPE", "replica").Result(); err != nil || n != 1 {
			t.Fatalf("client kill type replica: %d %v", n, err)
		}
		// The follower reconnects after a second; the source lists it again once it continues.
		testproc.Eventually(t, 10*time.Second, "the follower to reconnect", func() error {
			if n := ackedOffset(t, src); n <= from {
				return fmt.Errorf("acknowledged offset %d", n)
			}
			return nil
		})
	}
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	waitRecorded(t, src, f)
	f.stop(t)
	if len(f.bases) != 0 {
		t.Fatalf("a lost link took a new base %v", <-f.bases)
	}

	// A follower started again continues the same chain.
	f2 := startFollower(t, opts)
	write(t, src, 0, 50)
	waitRecorded(t, src, f2)
	f2.stop(t)
	if len(f2.bases) != 0 {
		t.Fatalf("a restarted follower took a new base %v", <-f2.bases)
	}
	if chains, err := journal.Chains(ctx, r); err != nil || len(chains) != 1 || chains[0] != base.SnapshotID {
		t.Fatalf("chains %v %v, want only %s", chains, err, base.SnapshotID)
	}
	if snaps, err := r.List(ctx); err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots: %d %v, want only the base", len(snaps), err)
	}
	verifyRestore(t, redistest.Redis70, src, r, base.SnapshotID)
}

// TestFollowStartsANewChainWhenTheSourceCannotContinue: a source restarted (a new replication
// id, its backlog gone) answers the follower's PSYNC with a full resync: the follower takes a
// new base, which starts a new chain; the old chain keeps what it recorded.
func TestFollowStartsANewChainWhenTheSourceCannotContinue(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	r := openRepo(t)
	opts := follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond, Reconnect: true}
	f := startFollower(t, opts)
	first := f.base(t)
	write(t, src, 0, 20)
	waitRecorded(t, src, f)
	f.stop(t)

	// Another replication history: the follower's position is unknown to the source.
	replID := func() string {
		info := src.Client.Info(ctx, "replication").Val()
		_, rest, _ := strings.Cut(info, "master_replid:")
		return strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0])
	}
	old := replID()
	if err := src.Client.Do(ctx, "DEBUG", "CHANGE-REPL-ID").Err(); err != nil {
		t.Fatal(err)
	}
	if replID() == old {
		t.Fatal("DEBUG CHANGE-REPL-ID kept the replication id")
	}
	f2 := startFollower(t, opts)
	second := f2.base(t)
	write(t, src, 20, 20)
	waitRecorded(t, src, f2)
	f2.stop(t)
	// Ids have a second's resolution: two bases of the same second sort by their random suffix.
	if chains, err := journal.Chains(ctx, r); err != nil || len(chains) != 2 || !slices.Contains(chains, first.SnapshotID) || !slices.Contains(chains, second.SnapshotID) {
		t.Fatalf("chains %v %v, want %s and %s", chains, err, first.SnapshotID, second.SnapshotID)
	}
	verifyRestore(t, redistest.Redis70, src, r, second.SnapshotID)
}

// TestFollowReplaysDatabaseChanges: what a source sends when its clients change databases —
// MULTI/EXEC blocks with SELECT in them, a script's and a function's effects in two databases,
// SWAPDB, MOVE, FLUSHDB, FLUSHALL, a function library loaded, writes to database 5 — recorded
// with every command in a segment of its own (so that a segment boundary falls before each
// command of every block) and with 4 KiB segments, restores to the end of the window equal to
// the source in every database (digest, keys per database, expiries, functions).
func TestFollowReplaysDatabaseChanges(t *testing.T) {
	for _, tc := range []struct {
		fl   redistest.Flavor
		size int64
	}{{redistest.Redis70, 1}, {redistest.Redis70, 4 << 10}, {redistest.Redis80, 1}, {redistest.Valkey81, 4 << 10}} {
		t.Run(fmt.Sprintf("%s/segment-size=%d", tc.fl.Name, tc.size), func(t *testing.T) {
			ctx := context.Background()
			src := redistest.Start(t, tc.fl)
			if err := src.Client.Set(ctx, "before", "the base", 0).Err(); err != nil {
				t.Fatal(err)
			}
			r := openRepo(t)
			f := startFollower(t, follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond, SegmentSize: tc.size})
			base := f.base(t)
			// FLUSHALL ends the fork of a transfer whose child has not exited yet, and with it the
			// link of a replica waiting for it: write once the source has the follower online.
			testproc.Eventually(t, 10*time.Second, "the source to have its replica online", func() error {
				if info := src.Client.Info(ctx, "replication").Val(); !strings.Contains(info, "state=online") {
					return errors.New(info)
				}
				return nil
			})
			c := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, DisableIdentity: true, PoolSize: 1})
			defer c.Close()
			do := func(args ...any) {
				t.Helper()
				if err := c.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
					t.Fatalf("%v: %v", args, err)
				}
			}
			big := strings.Repeat("b", 5000)
			do("SELECT", 9)
			do("SET", "gone", "1")
			do("FLUSHALL")
			do("SELECT", 2)
			do("SET", "after-flushall", "1")
			for round := range 3 {
				k := strconv.Itoa(round)
				do("SELECT", 0)
				do("MULTI")
				do("SET", "a"+k, "in-db0")
				do("SELECT", 1)
				do("SET", "b"+k, big)
				do("SET", "c"+k, "in-db1")
				do("EXEC")
				do("SET", "d"+k, "after the block, in db1")
				do("SELECT", 5)
				do("SET", "e"+k, "five", "PX", 3600000)
				do("EVAL", "redis.call('SELECT', 2) redis.call('INCR', KEYS[1]) redis.call('SELECT', 6) redis.call('HSET', KEYS[1], 'f', ARGV[1]) return 1", 1, "n"+k, k)
				do("SET", "after-eval"+k, "in db5")
				if round == 0 {
					do("FUNCTION", "LOAD", "#!lua name=stashtest\nredis.register_function('twodb', function(keys, args) redis.call('SELECT', 3) redis.call('RPUSH', keys[1], args[1]) redis.call('SELECT', 4) return redis.call('SET', keys[1], args[1]) end)")
				}
				do("FCALL", "twodb", 1, "fn"+k, k)
				do("SET", "after-fcall"+k, "in db5")
				do("SWAPDB", 5, 8)
				do("SET", "g"+k, "in 5 after the swap")
				do("MOVE", "g"+k, 0)
				do("SELECT", 7)
				do("SET", "tmp"+k, "1")
				do("FLUSHDB")
				do("SET", "kept"+k, "7")
			}
			do("SELECT", 0)
			do("SET", "last", "1")
			waitRecorded(t, src, f)
			f.stop(t)
			segs := f.segments()
			if tc.size == 1 && len(segs) < 50 {
				t.Fatalf("%d segments; want one per command", len(segs))
			}
			dst := redistest.Start(t, tc.fl)
			res, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r}, restore.Point{Offset: segs[len(segs)-1].EndOffset, ByOffset: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Chain != base.SnapshotID || res.Offset != segs[len(segs)-1].EndOffset {
				t.Fatalf("restored chain %s to offset %d; want %s to %d", res.Chain, res.Offset, base.SnapshotID, segs[len(segs)-1].EndOffset)
			}
			dataset.Equal(t, src, dst)
			t.Logf("%d segments, %d commands replayed", res.Segments, res.Commands)
		})
	}
}

// TestFollowChainWithAMissingSegment: a segment deleted from the middle of a chain ends its
// window before the hole: an instant before it still restores (with what the segments before
// it hold), an offset or an instant after it is refused with the hole named and nothing
// written, and a follower started again starts a new chain rather than extend one that
// nothing after the hole can be restored from.
func TestFollowChainWithAMissingSegment(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	r, dir := openRepoDir(t)
	opts := follow.Options{Redis: conn(src), Repository: r, SegmentInterval: time.Hour, SegmentSize: 1}
	f := startFollower(t, opts)
	base := f.base(t)
	for i := range 5 {
		if err := src.Client.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitRecorded(t, src, f)
	f.stop(t)
	segs, err := journal.List(ctx, r, base.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	// The segment of k3's SET is deleted: data and manifest.
	hole := segs[len(segs)-2]
	for _, suffix := range []string{".json", ".data"} {
		if err := os.Remove(filepath.Join(dir, "journal", base.SnapshotID, fmt.Sprintf("%020d%s", hole.StartOffset, suffix))); err != nil {
			t.Fatal(err)
		}
	}
	wins, _, err := journal.Windows(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(wins) != 1 || wins[0].Problem != "" || wins[0].Hole == nil || wins[0].EndOffset != hole.StartOffset || wins[0].Hole.Beyond != 1 {
		t.Fatalf("windows %+v; want one restorable window ending at offset %d before a hole", wins, hole.StartOffset)
	}
	before := segs[len(segs)-3]
	dst := redistest.Start(t)
	res, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r}, restore.Point{Offset: before.EndOffset, ByOffset: true})
	if err != nil {
		t.Fatalf("restore to an offset before the hole: %v", err)
	}
	if n := dst.Client.Exists(ctx, "k0", "k1", "k2").Val(); n != 3 || res.Offset != before.EndOffset {
		t.Fatalf("restored %d of k0..k2 to offset %d; want 3 to %d", n, res.Offset, before.EndOffset)
	}
	for _, pt := range []restore.Point{{Offset: segs[len(segs)-1].EndOffset, ByOffset: true}, {Time: time.Now()}} {
		empty := redistest.Start(t)
		_, err := restore.ToPoint(ctx, restore.Options{Redis: conn(empty), Repository: r}, pt)
		if !errors.Is(err, restore.ErrOutsideWindow) || !strings.Contains(err.Error(), fmt.Sprintf("the journal between offsets %d and %d", hole.StartOffset, hole.EndOffset)) {
			t.Fatalf("restore to %v after the hole: %v", pt, err)
		}
		t.Logf("%v", err)
		if n := empty.Client.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("a refused restore wrote %d keys", n)
		}
	}
	f2 := startFollower(t, opts)
	if b := f2.base(t); b.SnapshotID == base.SnapshotID {
		t.Fatal("the follower continued a chain with a hole")
	}
	f2.stop(t)
}

// TestFollowBaseInterval: with a base interval, the follower takes a new base on a second link
// while the first goes on recording, and the old chain ends after the new one begins: the
// windows overlap, no gap. Restores to instants right before, at and after each switch pick the
// newest base at or before them and hold every transaction acknowledged before
// T − journal.Precision and none sent after T (the writer's own clock), never half of one; the
// end of the last window equals the source.
func TestFollowBaseInterval(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.WithConfig("repl-backlog-size", "16mb"))
	r := openRepo(t)
	f := startFollower(t, follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond, BaseInterval: 1500 * time.Millisecond})
	f.base(t)
	var mu sync.Mutex
	var sent, acked []time.Time
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		c := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		for n := 1; wctx.Err() == nil; n++ {
			s := time.Now()
			_, err := c.TxPipelined(wctx, func(p redis.Pipeliner) error {
				p.Incr(wctx, "ctr")
				p.Set(wctx, "w:"+strconv.Itoa(n), s.UnixMilli(), 0)
				return nil
			})
			if err != nil {
				writerDone <- nil
				return
			}
			mu.Lock()
			sent, acked = append(sent, s), append(acked, time.Now())
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		writerDone <- nil
	}()
	for range 3 {
		f.base(t) // a new base every 1.5 s
	}
	stopWriter()
	<-writerDone
	time.Sleep(300 * time.Millisecond)
	waitRecorded(t, src, f)
	f.stop(t)
	wins, gaps, err := journal.Windows(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(wins) < 4 || len(gaps) != 0 {
		t.Fatalf("%d windows, gaps %v; want 4 or more chains and no gap", len(wins), gaps)
	}
	var instants []time.Time
	for i := 1; i < len(wins); i++ {
		a, b := wins[i-1], wins[i]
		if !journal.Continues(a, b) || a.End.Before(b.Start) || len(a.Inexact)+len(b.Inexact) > 0 {
			t.Fatalf("chain %s (%s to %s, offsets %d-%d) then %s (%s to %s, from %d): not one continuous window",
				a.Chain, a.Start, a.End, a.StartOffset, a.EndOffset, b.Chain, b.Start, b.End, b.StartOffset)
		}
		instants = append(instants, b.Start.Add(-50*time.Millisecond), b.Start, b.Start.Add(50*time.Millisecond), a.End)
	}
	dst := redistest.Start(t)
	for _, at := range instants {
		if err := dst.Client.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r}, restore.Point{Time: at})
		if err != nil {
			t.Fatalf("restore to %s: %v", at.Format(time.RFC3339Nano), err)
		}
		want := ""
		for _, w := range wins {
			if !w.Start.After(at) {
				want = w.Chain
			}
		}
		if res.Chain != want {
			t.Errorf("restore to %s used chain %s; want the newest base at or before it, %s", at.Format(time.RFC3339Nano), res.Chain, want)
		}
		ctr, _ := dst.Client.Get(ctx, "ctr").Int()
		lo, hi := 0, 0
		for i := range sent {
			if acked[i].Before(at.Add(-journal.Precision)) {
				lo = i + 1
			}
			if sent[i].Before(at) {
				hi = i + 1
			}
		}
		if keys := dst.Client.DBSize(ctx).Val(); ctr < lo || ctr > hi || (ctr > 0 && keys != int64(ctr)+1) {
			t.Errorf("restore to %s (chain %s): ctr %d and %d keys; want ctr between %d and %d, one w: key each", at.Format(time.RFC3339Nano), res.Chain, ctr, keys, lo, hi)
		}
	}
	last := wins[len(wins)-1]
	res, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r, Flush: true}, restore.Point{Offset: last.EndOffset, ByOffset: true})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := src.Digest(t), dst.Digest(t); a != b || res.Chain != last.Chain {
		t.Fatalf("restore to the end (chain %s): digest %s, source %s", res.Chain, b, a)
	}
	t.Logf("%d chains, %d instants at the switches, %d writes", len(wins), len(instants), len(sent))
}

// stampWriter runs MULTI; INCR ctr; SET w:<n> <ms>; EXEC about 300 times a second and records
// when it sent each transaction and when the source acknowledged it.
type stampWriter struct {
	mu          sync.Mutex
	sent, acked []time.Time
	cancel      context.CancelFunc
	done        chan struct{}
}

func startStampWriter(t *testing.T, s *redistest.Server) *stampWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &stampWriter{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		for n := 1; ctx.Err() == nil; n++ {
			sent := time.Now()
			if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, "ctr")
				p.Set(ctx, "w:"+strconv.Itoa(n), sent.UnixMilli(), 0)
				return nil
			}); err != nil {
				return
			}
			w.mu.Lock()
			w.sent, w.acked = append(w.sent, sent), append(w.acked, time.Now())
			w.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

func (w *stampWriter) stop() { w.cancel(); <-w.done }

// check fails unless dst holds what a restore to at must: ctr at least the transactions
// acknowledged before at − journal.Precision, at most those sent before at, one w: key each.
func (w *stampWriter) check(t *testing.T, dst *redistest.Server, at time.Time, what string) {
	t.Helper()
	ctx := context.Background()
	ctr, _ := dst.Client.Get(ctx, "ctr").Int()
	lo, hi := 0, 0
	w.mu.Lock()
	for i := range w.sent {
		if w.acked[i].Before(at.Add(-journal.Precision)) {
			lo = i + 1
		}
		if w.sent[i].Before(at) {
			hi = i + 1
		}
	}
	w.mu.Unlock()
	if keys := dst.Client.DBSize(ctx).Val(); ctr < lo || ctr > hi || (ctr > 0 && keys != int64(ctr)+1) {
		t.Errorf("restore to %s (%s): ctr %d and %d keys; want ctr between %d and %d, one w: key each", at.Format(time.RFC3339Nano), what, ctr, keys, lo, hi)
	}
}

// TestFollowWindowRetention: a follower with a base every second that keeps the window of the
// last 3 seconds removes the older chains after each new base (scaled down from a base a
// minute and a window of 5 minutes: the same rules at another scale). Afterwards the
// repository holds only the chains the window needs, with their bytes reported; random
// instants of the window restore exactly (by the writer's own clock), and an instant before
// the oldest chain kept is refused with the windows named.
func TestFollowWindowRetention(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.WithConfig("repl-backlog-size", "16mb"))
	r := openRepo(t)
	const window = 3 * time.Second
	var mu sync.Mutex
	var passes []journal.WindowRetention
	opts := follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond,
		BaseInterval: time.Second, KeepWithinWindow: window,
		OnRetention: func(res journal.WindowRetention) { mu.Lock(); passes = append(passes, res); mu.Unlock() }}
	f := startFollower(t, opts)
	f.base(t)
	w := startStampWriter(t, src)
	began := time.Now()
	for range 7 {
		f.base(t)
	}
	w.stop()
	waitRecorded(t, src, f)
	f.stop(t)
	now := time.Now()
	res, err := journal.KeepWithin(ctx, r, window, now, false)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	removed := 0
	for _, p := range passes {
		removed += len(p.Removed)
	}
	mu.Unlock()
	wins, gaps, err := journal.Windows(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after %s: the follower removed %d chains in %d passes; %d chains kept (%d bytes), the window starts at %s (since %s)",
		now.Sub(began).Round(time.Millisecond), removed, len(passes), len(res.Kept), res.KeptBytes, res.Start.Format(time.RFC3339Nano), res.Since.Format(time.RFC3339Nano))
	if removed == 0 || len(gaps) != 0 || len(wins) != len(res.Kept) || len(wins) > 5 || res.Start.After(res.Since) || res.KeptBytes <= 0 {
		t.Fatalf("%d windows (gaps %v) after retention %+v; want at most 5, the first starting at or before %s", len(wins), gaps, res, res.Since)
	}
	snaps, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != len(wins) {
		t.Fatalf("%d snapshots for %d chains: a removed chain left its base", len(snaps), len(wins))
	}
	dst := redistest.Start(t)
	rng := rand.New(rand.NewPCG(uint64(now.UnixNano()), 3))
	end := wins[len(wins)-1].End
	for range 8 {
		at := res.Since.Add(time.Duration(rng.Int64N(int64(end.Sub(res.Since)))))
		if err := dst.Client.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		pr, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r}, restore.Point{Time: at})
		if err != nil {
			t.Fatalf("restore to %s, inside the window: %v", at.Format(time.RFC3339Nano), err)
		}
		w.check(t, dst, at, "chain "+pr.Chain)
	}
	before := wins[0].Start.Add(-500 * time.Millisecond)
	if err := dst.Client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := restore.ToPoint(ctx, restore.Options{Redis: conn(dst), Repository: r}, restore.Point{Time: before}); !errors.Is(err, restore.ErrOutsideWindow) {
		t.Fatalf("restore to %s, before the window kept: %v", before.Format(time.RFC3339Nano), err)
	} else {
		t.Logf("%v", err)
	}
}
