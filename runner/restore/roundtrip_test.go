package restore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/redistest"
)

const password = "correct horse battery staple"

func openRepo(t *testing.T, url string, env map[string]string) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	b, err := store.Open(ctx, url, env)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, b, repo.Options{Password: password, Create: true, WorkFactor: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func conn(t *testing.T, s *redistest.Server) redisconn.Options {
	t.Helper()
	o, _, err := redisconn.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	o.Password = s.Password
	return o
}

// fill writes every type into several databases, including binary keys and values and ms TTLs.
func fill(t *testing.T, s *redistest.Server, big int) {
	t.Helper()
	ctx := context.Background()
	for _, db := range []int{0, 3, 15} {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DB: db, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		p := c.Pipeline()
		for i := range 300 {
			k := fmt.Sprintf("db%d:%d", db, i)
			switch i % 7 {
			case 0:
				p.Set(ctx, k+":str", "v"+strconv.Itoa(i), 0)
			case 1:
				p.HSet(ctx, k+":hash", "a", i, "b", "x")
			case 2:
				p.RPush(ctx, k+":list", 1, 2, 3, i)
			case 3:
				p.SAdd(ctx, k+":set", "x", "y", i)
			case 4:
				p.ZAdd(ctx, k+":zset", redis.Z{Score: float64(i) / 3, Member: "m"}, redis.Z{Score: -1, Member: "n"})
			case 5:
				p.XAdd(ctx, &redis.XAddArgs{Stream: k + ":stream", Values: []any{"f", i}})
			case 6:
				p.Set(ctx, k+":ttl", "expiring", time.Duration(30+i)*time.Minute+123*time.Millisecond)
			}
		}
		bin := []byte{0, 1, 2, 0xff, '\r', '\n', '*', '$'}
		p.Set(ctx, string(bin)+strconv.Itoa(db), string(append(bin, bin...)), 0)
		p.HSet(ctx, "bin-hash\x00", string(bin), string(bin))
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := s.Client
	// A stream with consumer groups and pending entries.
	for i := range 50 {
		c.XAdd(ctx, &redis.XAddArgs{Stream: "events", Values: []any{"n", i}})
	}
	c.XGroupCreate(ctx, "events", "g1", "0")
	c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "c1", Streams: []string{"events", ">"}, Count: 10})
	if big > 0 {
		// Built inside the server: a client-side loop under -race is what would take the time.
		const script = `for i = 1, tonumber(ARGV[1]) do
			redis.call('ZADD', KEYS[1], i, 'member:' .. i)
			redis.call('HSET', KEYS[2], 'field:' .. i, i)
		end`
		if err := c.Eval(ctx, script, []string{"bigzset", "bighash"}, big).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
	}
}

// ttls returns the absolute expiry (ms) of every key with a TTL in db.
func ttls(t *testing.T, s *redistest.Server, db int) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DB: db, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	out := map[string]int64{}
	it := c.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		ms, err := c.Do(ctx, "PEXPIRETIME", it.Val()).Int64()
		if err != nil {
			t.Fatal(err)
		}
		if ms > 0 {
			out[it.Val()] = ms
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRoundTripFile restores one backup with each method into an empty server.
func TestRoundTripFile(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	fill(t, src, 1_000_000)
	r := openRepo(t, "file://"+t.TempDir(), nil)

	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, RunnerVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %+v", res)

	for _, method := range []string{restore.MethodRestore, restore.MethodReplication} {
		t.Run(method, func(t *testing.T) {
			dst := redistest.Start(t)
			rres, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: "latest", Method: method})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("restore: %+v", rres)
			if rres.Method != method {
				t.Fatalf("restored by %s, want %s", rres.Method, method)
			}
			if s, d := src.Digest(t), dst.Digest(t); s != d {
				t.Fatalf("digest: source %s, restored %s", s, d)
			}
			for _, db := range []int{0, 3, 15} {
				want, got := ttls(t, src, db), ttls(t, dst, db)
				if len(want) == 0 || len(want) != len(got) {
					t.Fatalf("db %d: %d keys with ttl in source, %d restored", db, len(want), len(got))
				}
				for k, w := range want {
					if d := got[k] - w; d < -1000 || d > 1000 {
						t.Errorf("db %d key %q: expiry %d, want %d", db, k, got[k], w)
					}
				}
			}
			if method == restore.MethodReplication {
				assertPromoted(t, dst, "", "disabled")
			}
		})
	}
}

// assertPromoted fails unless s is a master again with the masterauth and repl-diskless-load
// it had before a restore through replication.
func assertPromoted(t *testing.T, s *redistest.Server, masterauth, disklessLoad string) {
	t.Helper()
	ctx := context.Background()
	info := s.Client.Info(ctx, "replication").Val()
	if !strings.Contains(info, "role:master") {
		t.Errorf("target is not a master after the restore:\n%s", info)
	}
	cfg := s.Client.ConfigGet(ctx, "*").Val()
	if cfg["masterauth"] != masterauth || cfg["repl-diskless-load"] != disklessLoad {
		t.Errorf("masterauth %q, repl-diskless-load %q after the restore; want %q, %q", cfg["masterauth"], cfg["repl-diskless-load"], masterauth, disklessLoad)
	}
}
