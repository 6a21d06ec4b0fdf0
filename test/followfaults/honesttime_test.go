package followfaults_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// truthWriter runs MULTI; INCR ctr; SET w:<n> <ms>; RPUSH log <n>; EXEC, about 300 times a
// second, and records when it sent and when the source acknowledged each transaction: the
// ground truth a restore to an instant is checked against.
type truthWriter struct {
	mu          sync.Mutex
	sent, acked []time.Time // of transaction n+1 (its INCR made ctr n+1)
	stop        context.CancelFunc
	done        chan error
}

func startTruthWriter(t *testing.T, addr string) *truthWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &truthWriter{stop: cancel, done: make(chan error, 1)}
	go func() {
		c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		defer c.Close()
		for n := 1; ctx.Err() == nil; n++ {
			sent := time.Now()
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, "ctr")
				p.Set(ctx, "w:"+strconv.Itoa(n), sent.UnixMilli(), 0)
				p.RPush(ctx, "log", n)
				return nil
			})
			if err != nil {
				if ctx.Err() == nil {
					w.done <- fmt.Errorf("transaction %d: %w", n, err)
				} else {
					w.done <- nil
				}
				return
			}
			acked := time.Now()
			w.mu.Lock()
			w.sent, w.acked = append(w.sent, sent), append(w.acked, acked)
			w.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
		w.done <- nil
	}()
	t.Cleanup(cancel)
	return w
}

func (w *truthWriter) end(t *testing.T) {
	t.Helper()
	w.stop()
	if err := <-w.done; err != nil {
		t.Fatal(err)
	}
}

// bounds says what a restore to T must hold: at least the transactions acknowledged before
// T − precision, at most those sent before T.
func (w *truthWriter) bounds(at time.Time, precision time.Duration) (lo, hi int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, a := range w.acked {
		if a.Before(at.Add(-precision)) {
			lo = i + 1
		}
	}
	for i, s := range w.sent {
		if s.Before(at) {
			hi = i + 1
		}
	}
	return lo, hi
}

// TestPITRHonestTime: a writer that records, on the client, when it sent each transaction and
// when the source acknowledged it, a base of 300,000 keys, and a follower that is SIGKILLed and
// started again, stopped with SIGTERM and started again, and whose link a proxy cuts. For 20
// random instants of the window, instants inside each outage and instants right after the
// base, a restore to the instant holds every transaction acknowledged before T − Precision
// and none sent after T, never part of one (ctr, the w: keys 1..ctr and the log agree), and
// the 300,000 keys; or it is refused as inexact, and then the window lists a stretch holding
// the instant. The instants inside the two outages where no follower ran are refused so.
func TestPITRHonestTime(t *testing.T) {
	began := time.Now()
	ctx := context.Background()
	src := redistest.Start(t, backlog)
	c1 := redis.NewClient(&redis.Options{Addr: src.Addr, DB: 1, Protocol: 2, DisableIdentity: true})
	defer c1.Close()
	const baseKeys = 300_000
	if err := c1.Do(ctx, "DEBUG", "POPULATE", baseKeys, "base", 16).Err(); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(src.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	repoURL := "file://" + t.TempDir()
	args := []string{"--redis", "redis://" + px.Addr(), "--redis-read-timeout", "3s"}
	w := startTruthWriter(t, src.Addr) // writing while the base is taken and transferred
	time.Sleep(200 * time.Millisecond)
	f := follow(t, repoURL, nil, args...)
	baseSaved := f.waitLine("base snapshot", time.Time{}, 60*time.Second)

	type outage struct {
		name       string
		from, to   time.Time
		mustRefuse bool
	}
	var outages []outage
	time.Sleep(1500 * time.Millisecond)
	killed := time.Now()
	f.kill()
	time.Sleep(1500 * time.Millisecond)
	restarted := time.Now()
	f = follow(t, repoURL, nil, args...)
	f.waitLine("continuing chain", restarted, 30*time.Second)
	outages = append(outages, outage{"SIGKILL", killed, restarted, true})

	time.Sleep(1500 * time.Millisecond)
	termed := time.Now()
	f.stop()
	time.Sleep(1500 * time.Millisecond)
	restarted = time.Now()
	f = follow(t, repoURL, nil, args...)
	f.waitLine("continuing chain", restarted, 30*time.Second)
	outages = append(outages, outage{"SIGTERM", termed, restarted, true})

	time.Sleep(1500 * time.Millisecond)
	cut := time.Now()
	px.Set(faultproxy.Fault{Kind: faultproxy.Cut, Dir: faultproxy.Both})
	f.waitLine("reconnecting in", cut, 20*time.Second)
	time.Sleep(time.Second)
	px.Clear()
	healed := time.Now()
	f.waitLine("continuing chain", cut, 30*time.Second)
	outages = append(outages, outage{"link cut", cut, healed, false})
	time.Sleep(1500 * time.Millisecond)
	w.end(t)

	r := runnertest.OpenRepo(t, repoURL, nil)
	waitJournal(t, r, redistest.ReplOffset(t, src.Client), 30*time.Second)
	f.stop()
	wins, _, err := journal.Windows(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(wins) != 1 || !wins[0].SourceTime {
		t.Fatalf("windows %+v; want one chain with the source's time", wins)
	}
	win := wins[0]
	t.Logf("window %s to %s; inexact stretches %v; base saved %s", win.Start.Format(time.RFC3339Nano), win.End.Format(time.RFC3339Nano), win.Inexact, baseSaved.Format(time.RFC3339Nano))
	if win.Start.After(baseSaved) {
		t.Fatalf("the window starts at %s, after the base was saved (%s): the instants of the transfer are not reached", win.Start, baseSaved)
	}

	type instant struct {
		what       string
		at         time.Time
		mustRefuse bool
	}
	var instants []instant
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 26))
	for range 20 {
		instants = append(instants, instant{"random", win.Start.Add(time.Duration(rng.Int64N(int64(win.End.Sub(win.Start))))), false})
	}
	for _, o := range outages {
		instants = append(instants, instant{o.name, o.from.Add(o.to.Sub(o.from) / 2), o.mustRefuse})
	}
	instants = append(instants, instant{"right after the window's start", win.Start.Add(10 * time.Millisecond), false},
		instant{"when the base was saved", baseSaved, false})
	slices.SortFunc(instants, func(a, b instant) int { return a.at.Compare(b.at) })

	dst := redistest.Start(t)
	refused := 0
	for _, in := range instants {
		if err := dst.Client.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := restore.ToPoint(ctx, restore.Options{Redis: redisconn.Options{Network: "tcp", Addr: dst.Addr}, Repository: r}, restore.Point{Time: in.at})
		if errors.Is(err, restore.ErrInexact) {
			refused++
			if _, ok := win.InexactAt(in.at); !ok {
				t.Errorf("%s %s: refused as inexact, but the window lists no stretch there: %v", in.what, in.at.Format(time.RFC3339Nano), err)
			}
			if n := dst.Client.DBSize(ctx).Val(); n != 0 {
				t.Errorf("%s: a refused restore wrote %d keys", in.what, n)
			}
			t.Logf("%s %s: refused: %v", in.what, in.at.Format(time.RFC3339Nano), err)
			continue
		}
		if err != nil {
			t.Fatalf("%s %s: %v", in.what, in.at.Format(time.RFC3339Nano), err)
		}
		if in.mustRefuse {
			t.Errorf("%s %s: restored, though no follower marked the source's stream then (stretches %v)", in.what, in.at.Format(time.RFC3339Nano), win.Inexact)
		}
		ctr, _ := dst.Client.Get(ctx, "ctr").Int()
		lo, hi := w.bounds(in.at, journal.Precision)
		logLen := dst.Client.LLen(ctx, "log").Val()
		keys := dst.Client.DBSize(ctx).Val()
		wantKeys := int64(ctr) + 2
		if ctr == 0 {
			wantKeys = 0
		}
		last := dst.Client.Exists(ctx, "w:"+strconv.Itoa(ctr)).Val()
		next := dst.Client.Exists(ctx, "w:"+strconv.Itoa(ctr+1)).Val()
		c1d := redis.NewClient(&redis.Options{Addr: dst.Addr, DB: 1, Protocol: 2, DisableIdentity: true})
		base := c1d.DBSize(ctx).Val()
		c1d.Close()
		t.Logf("%s %s: ctr %d, between %d and %d (time %s)", in.what, in.at.Format(time.RFC3339Nano), ctr, lo, hi, res.Time.Format(time.RFC3339Nano))
		switch {
		case ctr < lo || ctr > hi:
			t.Errorf("%s %s: ctr %d; acknowledged before T-%s: %d, sent before T: %d", in.what, in.at.Format(time.RFC3339Nano), ctr, journal.Precision, lo, hi)
		case logLen != int64(ctr) || keys != wantKeys || (ctr > 0 && last != 1) || next != 0:
			t.Errorf("%s: a transaction was cut: ctr %d, log %d, %d keys in db 0", in.what, ctr, logLen, keys)
		case base != baseKeys:
			t.Errorf("%s: %d keys of the base in db 1, want %d", in.what, base, baseKeys)
		}
	}
	t.Logf("%d instants, %d refused as inexact; %s in all", len(instants), refused, time.Since(began).Round(time.Second))
}
