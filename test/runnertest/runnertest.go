// Package runnertest holds what the tests of the runner's packages (dump, backup, restore)
// share: a repository to back up into, the connection options of a test server, a dataset
// of every type, and the checks that a failed backup left nothing behind.
package runnertest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/redistest"
)

// Password is the repository password of every test repository.
const Password = "correct horse battery staple"

// OpenRepo opens (creating it if need be) the repository at url, with a low key-derivation
// work factor so that tests stay fast; it is closed when the test ends.
func OpenRepo(t testing.TB, url string, env map[string]string) *repo.Repository {
	t.Helper()
	return OpenRepoWithPassword(t, url, Password, env)
}

// OpenRepoWithPassword is OpenRepo for a repository whose password the test chooses (the one
// its storage Secret holds).
func OpenRepoWithPassword(t testing.TB, url, password string, env map[string]string) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	b, err := store.Open(ctx, url, env)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(ctx, b, repo.Options{Password: password, Create: true, WorkFactor: 10})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// WriteSnapshot writes data as the snapshot m.ID and then m as its manifest, with the sizes and
// the hash of what was written: a committed snapshot as a backup leaves it, for the tests of
// what reads repositories (list, forget, windows, restore).
func WriteSnapshot(t testing.TB, r *repo.Repository, m repo.Manifest, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewSnapshotWriter(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	m.RawBytes, m.StoredBytes, m.SHA256 = w.RawBytes(), w.StoredBytes(), w.SHA256()
	if m.Databases == nil {
		m.Databases = map[int]int64{}
	}
	if err := r.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// Conn returns the options that connect to s.
func Conn(t testing.TB, s *redistest.Server) redisconn.Options {
	t.Helper()
	o, _, err := redisconn.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	o.Password = s.Password
	return o
}

// Fill writes every type into several databases (0, 3 and 15), including binary keys and
// values, ms TTLs and a stream with a consumer group; big > 0 adds a sorted set and a hash
// of big members each.
func Fill(t testing.TB, s *redistest.Server, big int) {
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

// FillRandom writes n keys of size incompressible bytes each, so that the stored snapshot is
// about n×size bytes (larger than one upload chunk, for a test that cuts an upload).
func FillRandom(t testing.TB, s *redistest.Server, n, size int) {
	t.Helper()
	ctx := context.Background()
	p := s.Client.Pipeline()
	for i := range n {
		v := make([]byte, size)
		rand.Read(v)
		p.Set(ctx, "rnd:"+strconv.Itoa(i), v, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// TTLs returns the absolute expiry (ms) of every key with a TTL in db.
func TTLs(t testing.TB, s *redistest.Server, db int) map[string]int64 {
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

// AssertNoSnapshot fails unless r lists no snapshot and a restore of "latest" finds none: what
// a failed backup must leave.
func AssertNoSnapshot(t testing.TB, r *repo.Repository) {
	t.Helper()
	ctx := context.Background()
	all, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Fatalf("a failed backup left %d snapshots: %+v", len(all), all)
	}
	dst := redistest.Start(t)
	_, err = restore.Run(ctx, restore.Options{Redis: Conn(t, dst), Repository: r, Snapshot: "latest"})
	if !errors.Is(err, repo.ErrSnapshotNotFound) {
		t.Fatalf("restore after failed backup: %v, want ErrSnapshotNotFound", err)
	}
}

// Bucket is a storage emulator's bucket (gcstest, miniotest, azuritetest): the URL of a prefix
// in it and the storage Secret's keys that reach it.
type Bucket interface {
	URL(prefix string) string
	Env() map[string]string
}
