package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// stamped is one write of the test's writer: the key SET t:<sent ms> in a MULTI with an INCR,
// and when its EXEC was answered.
type stamped struct {
	key         string
	sent, acked time.Time
}

type pitrWindow struct {
	Chain       string
	Start, End  time.Time
	StartOffset int64
	EndOffset   int64
	Segments    int
}

// offsetsRE reads the end offset of the segments the follow command reports.
var offsetsRE = regexp.MustCompile(`offsets \d+-(\d+)`)

// expireAll makes the source delete (and propagate the DEL of) every key whose time has passed:
// SCAN expires what it visits.
func expireAll(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for db := range 2 {
		cc := redis.NewClient(&redis.Options{Addr: c.Options().Addr, DB: db, Protocol: 2, DisableIdentity: true})
		var cur uint64
		for {
			_, next, err := cc.Scan(ctx, cur, "*", 1000).Result()
			if err != nil {
				t.Fatal(err)
			}
			if cur = next; cur == 0 {
				break
			}
		}
		cc.Close()
	}
}

// TestPITR: a follower records a writer that stamps each write with its wall time (SET
// t:<ms> in a MULTI with an INCR), with a short-lived key now and then, closing a segment every
// second. Then, on Redis 7.0 and 8.0: `restore --to-time T` for random instants T of the window
// holds every write acknowledged before T − 1 s (the segment interval) and none sent after
// T + 1 s, and the counter equals the writes it holds (no MULTI cut); `--to-offset` of an
// offset read while the writer paused equals the digest of that moment; a restore to the end of
// the window equals the source (digest, absolute expiries, expired keys not resurrected); points
// before the base or after the window are refused with an empty target; on 7.0, a flipped byte
// in a segment stops the restore with how far the target and the journal reach.
func TestPITR(t *testing.T) {
	for _, fl := range []redistest.Flavor{redistest.Redis70, redistest.Redis80} {
		t.Run(fl.Name, func(t *testing.T) { testPITR(t, fl, fl == redistest.Redis70) })
	}
}

func testPITR(t *testing.T, fl redistest.Flavor, flip bool) {
	ctx := context.Background()
	src := redistest.Start(t, fl)
	for i := range 50 { // before the base
		src.Client.Set(ctx, "pre:"+strconv.Itoa(i), i, 0)
	}
	dir := t.TempDir()
	repoURL := "file://" + dir

	f := startFollow(t, "--redis", src.URL(), "--repository", repoURL, "--segment-interval", "1s")
	f.waitFor(t, "the base snapshot", func(out string) bool { return strings.Contains(out, "base snapshot ") })

	// The writer: stamped MULTI writes every 10 ms for about 6 s; in the first half second also
	// keys that live 300 ms; half-way a pause in which the offset and the digest are read.
	wc := redis.NewClient(&redis.Options{Addr: src.Addr, Protocol: 2, DisableIdentity: true})
	defer wc.Close()
	var writes []stamped
	var midOffset int64
	var midDigest string
	began := time.Now()
	for i := 0; time.Since(began) < 6*time.Second; i++ {
		sent := time.Now()
		key := fmt.Sprintf("t:%d:%d", sent.UnixMilli(), i)
		if _, err := wc.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, i, time.Hour)
			p.Incr(ctx, "counter")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		writes = append(writes, stamped{key: key, sent: sent, acked: time.Now()})
		if time.Since(began) < 500*time.Millisecond && i%5 == 0 {
			wc.Set(ctx, "short:"+strconv.Itoa(i), i, 300*time.Millisecond)
		}
		if midOffset == 0 && time.Since(began) > 3*time.Second {
			expireAll(t, src.Client)
			for midOffset == 0 {
				o := redistest.ReplOffset(t, wc)
				d := src.Digest(t)
				if redistest.ReplOffset(t, wc) == o {
					midOffset, midDigest = o, d
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(400 * time.Millisecond)
	expireAll(t, src.Client)
	final := redistest.ReplOffset(t, wc)
	f.waitFor(t, "the journal to reach the source's offset", func(out string) bool {
		for _, m := range offsetsRE.FindAllStringSubmatch(out, -1) {
			if n, _ := strconv.ParseInt(m[1], 10, 64); n >= final {
				return true
			}
		}
		return false
	})
	f.stop(t)
	srcDigest := src.Digest(t)
	srcExpiry := src.Client.PExpireTime(ctx, writes[len(writes)/2].key).Val()

	var listed struct {
		Windows []pitrWindow
		Gaps    []json.RawMessage
	}
	js := mustRun(t, nil, "snapshots", "--repository", repoURL, "--windows", "--json")
	if err := json.Unmarshal([]byte(js), &listed); err != nil || len(listed.Windows) != 1 || len(listed.Gaps) != 0 {
		t.Fatalf("snapshots --windows --json: %v\n%s", err, js)
	}
	w := listed.Windows[0]
	if w.Segments < 5 || w.End.Before(writes[len(writes)-1].acked.Add(-time.Second)) {
		t.Fatalf("window %+v; last write acknowledged %s", w, writes[len(writes)-1].acked)
	}
	if list := mustRun(t, nil, "snapshots", "--repository", repoURL); !strings.Contains(list, "CHAIN") || !strings.Contains(list, w.Chain+"  ") {
		t.Fatalf("snapshots does not show the window:\n%s", list)
	}

	dst := redistest.Start(t, fl)
	restoreTo := func(args ...string) (string, error) {
		t.Helper()
		if err := dst.Client.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		o, eo, err := run(t, nil, append([]string{"restore", "--redis", dst.URL(), "--repository", repoURL}, args...)...)
		if err != nil {
			return o + eo, err
		}
		return o, nil
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for range 10 {
		at := w.Start.Add(time.Duration(rng.Int64N(int64(w.End.Sub(w.Start)))))
		o, err := restoreTo("--to-time", at.Format(time.RFC3339Nano))
		if err != nil {
			t.Fatalf("restore --to-time %s: %v\n%s", at.Format(time.RFC3339Nano), err, o)
		}
		have := map[string]bool{}
		for _, k := range dst.Client.Keys(ctx, "t:*").Val() {
			have[k] = true
		}
		for _, wr := range writes {
			switch {
			case wr.acked.Before(at.Add(-time.Second)) && !have[wr.key]:
				t.Fatalf("restore to %s lacks %s, acknowledged at %s\n%s\n%s", at.Format(time.RFC3339Nano), wr.key, wr.acked.Format(time.RFC3339Nano), o, f.out.String())
			case wr.sent.After(at.Add(time.Second)) && have[wr.key]:
				t.Fatalf("restore to %s holds %s, sent at %s", at.Format(time.RFC3339Nano), wr.key, wr.sent.Format(time.RFC3339Nano))
			}
		}
		if n, _ := dst.Client.Get(ctx, "counter").Int(); n != len(have) {
			t.Fatalf("restore to %s: counter %d, %d stamped keys: a MULTI was cut", at.Format(time.RFC3339Nano), n, len(have))
		}
		if n := len(dst.Client.Keys(ctx, "short:*").Val()); n != 0 {
			t.Fatalf("restore to %s resurrected %d expired keys", at.Format(time.RFC3339Nano), n)
		}
		if !strings.Contains(o, "journal segments") {
			t.Fatalf("restore output: %s", o)
		}
	}

	// To an offset read while the writer paused: exactly the source then.
	if o, err := restoreTo("--to-offset", strconv.FormatInt(midOffset, 10)); err != nil {
		t.Fatalf("restore --to-offset %d: %v\n%s", midOffset, err, o)
	}
	if d := dst.Digest(t); d != midDigest {
		t.Fatalf("restore --to-offset %d: digest %s, the source had %s", midOffset, d, midDigest)
	}
	// To the end of the window: the source after the writer stopped.
	resultFile := filepath.Join(t.TempDir(), "result.json")
	if o, err := restoreTo("--to-time", w.End.Format(time.RFC3339Nano), "--result-file", resultFile); err != nil {
		t.Fatalf("restore to the end of the window: %v\n%s", err, o)
	}
	if d := dst.Digest(t); d != srcDigest {
		t.Fatalf("restore to the end of the window: digest %s, source %s", d, srcDigest)
	}
	dataset.Same(t, src, dst)
	if got := dst.Client.PExpireTime(ctx, writes[len(writes)/2].key).Val(); got != srcExpiry {
		t.Fatalf("expiry after the replay %v, source %v", got, srcExpiry)
	}
	var rf struct {
		Success bool
		Result  struct {
			Chain    string
			Offset   int64
			Segments int
			Commands int64
		}
	}
	if b, _ := os.ReadFile(resultFile); json.Unmarshal(b, &rf) != nil || !rf.Success || rf.Result.Chain != w.Chain ||
		rf.Result.Offset != w.EndOffset || rf.Result.Segments != w.Segments || rf.Result.Commands == 0 {
		t.Fatalf("result file: %s (window %+v)", b, w)
	}

	// Outside the window: refused, nothing written.
	for _, at := range []time.Time{w.Start.Add(-time.Hour), w.End.Add(time.Hour)} {
		o, err := restoreTo("--to-time", at.Format(time.RFC3339))
		if err == nil || !strings.Contains(err.Error(), "outside every recoverable window") || !strings.Contains(err.Error(), w.Chain) {
			t.Fatalf("restore to %s: %v\n%s", at, err, o)
		}
		if n := dst.Client.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("a refused restore wrote %d keys", n)
		}
	}
	if _, err := restoreTo("--to-offset", strconv.FormatInt(w.EndOffset+1, 10)); err == nil || !strings.Contains(err.Error(), "outside every recoverable window") {
		t.Fatalf("restore past the window's offset: %v", err)
	}
	if _, _, err := run(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--to-offset", "1", "--to-time", "2026-01-01T00:00:00Z"); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both --to-time and --to-offset: %v", err)
	}

	if !flip {
		return
	}
	// A flipped byte in a segment's data: the restore stops there and says how far it got.
	datas, _ := filepath.Glob(filepath.Join(dir, "journal", w.Chain, "*.data"))
	slices.Sort(datas)
	bad := datas[len(datas)/2]
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := restoreTo("--to-time", w.End.Format(time.RFC3339Nano))
	if err == nil || !strings.Contains(err.Error(), "can restore up to") || !strings.Contains(err.Error(), "the target holds") {
		t.Fatalf("restore through a flipped byte: %v\n%s", err, o)
	}
	t.Logf("refused: %v", err)
}
