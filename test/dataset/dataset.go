// Package dataset fills a test server with every type and encoding its version has, and
// compares two servers the way the project proves a backup: DEBUG DIGEST of the whole server,
// the key count of every database, each key's PEXPIRETIME, and what DEBUG DIGEST does not
// cover (hash field TTLs, function libraries, vector sets).
package dataset

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/redistest"
)

// DBs are the databases Fill writes to.
var DBs = []int{0, 1, 7}

// Library is the function library Fill loads (FUNCTION LOAD).
const Library = "#!lua name=stashlib\nredis.register_function('stash_ping', function(keys, args) return 'pong' end)"

// HasFieldTTL reports whether the server's version has hash field TTLs (Redis 7.4+, not Valkey 8).
func HasFieldTTL(s *redistest.Server) bool { return s.Flavor == redistest.Redis80 }

// HasVectorSet reports whether the server has vector sets (Redis 8.0).
func HasVectorSet(s *redistest.Server) bool { return s.Flavor == redistest.Redis80 }

// Fill writes every type in small and big encodings into DBs of s: strings (raw, int, long and
// compressible, binary), lists (listpack, quicklist, a plain node), sets (listpack, intset,
// hashtable), sorted sets (listpack, skiplist), hashes (listpack, hashtable), a stream with
// consumer groups, pending entries and deleted entries, keys with TTLs, and where the server has
// them hash field TTLs (small and big) and a vector set, and a function library.
func Fill(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, s, true)
	if err := Client(s, 0).Do(context.Background(), "FUNCTION", "LOAD", Library).Err(); err != nil {
		t.Fatalf("function load on %s: %v", s.Flavor.Name, err)
	}
}

// FillKeys writes what Fill writes but the function library: what a snapshot carries
// (snapshots hold keys, not function libraries).
func FillKeys(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, s, true)
}

// FillCommon writes what every server here can hold (Redis 7.0, Redis 8.0, Valkey 8.1): what
// Fill writes but hash field TTLs, vector sets and the function library.
func FillCommon(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, s, false)
}

// VersionKeys are the keys of each database in DBs that Fill writes beyond FillCommon on s.
func VersionKeys(s *redistest.Server) []string {
	var keys []string
	if HasFieldTTL(s) {
		keys = append(keys, "hfe", "bighfe")
	}
	if HasVectorSet(s) {
		keys = append(keys, "vset", "vset-q8", "vset-bin")
	}
	return keys
}

func fill(t testing.TB, s *redistest.Server, versionTypes bool) {
	t.Helper()
	ctx := context.Background()
	for _, db := range DBs {
		c := Client(s, db)
		defer c.Close()
		p := c.Pipeline()
		pre := "db" + strconv.Itoa(db) + ":"
		p.Set(ctx, pre+"str", "value", 0)
		p.Set(ctx, pre+"int", "12345", 0)
		p.Set(ctx, pre+"neg", "-70000", 0)
		p.Set(ctx, pre+"bin", string([]byte{0, 0xff, '\r', '\n', 7}), 0)
		p.Set(ctx, pre+"long", strings.Repeat("compressible ", 2000), 0)
		p.Set(ctx, "12345", "an integer key", 0)
		p.Set(ctx, strings.Repeat("k", 20000), "a long key", 0)
		p.Set(ctx, pre+"ttl", "soon", time.Hour)
		p.Set(ctx, pre+"ttl-sec", "later", 0)
		p.ExpireAt(ctx, pre+"ttl-sec", time.Now().Add(2*time.Hour).Truncate(time.Second))
		p.RPush(ctx, pre+"list", "a", "b", 3, -4)
		p.RPush(ctx, pre+"list-plain", strings.Repeat("p", 10000), "x") // a node larger than a listpack may be
		p.SAdd(ctx, pre+"set", "m", "n", "o")
		p.SAdd(ctx, pre+"intset", 1, 2, 3, 1<<40)
		p.ZAdd(ctx, pre+"zset", redis.Z{Score: 1.5, Member: "a"}, redis.Z{Score: -2, Member: "b"})
		p.HSet(ctx, pre+"hash", "a", 1, "b", "two")
		p.PExpire(ctx, pre+"hash", 3*time.Hour)
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("fill %s db %d: %v", s.Flavor.Name, db, err)
		}
		// Big encodings, written by the server itself for speed.
		eval(t, c, `for i = 1, 3000 do
			redis.call('RPUSH', KEYS[1]..'biglist', string.rep('e', 50)..i)
			redis.call('SADD', KEYS[1]..'bigset', 'member'..i)
			redis.call('SADD', KEYS[1]..'bigintset', i * 1000003)
			redis.call('ZADD', KEYS[1]..'bigzset', i / 7, 'member'..i)
			redis.call('HSET', KEYS[1]..'bighash', 'field'..i, string.rep('v', i % 100))
		end
		redis.call('ZADD', KEYS[1]..'bigzset', 'inf', 'top', '-inf', 'bottom')
		for i = 1, 400 do
			redis.call('XADD', KEYS[1]..'stream', '*', 'n', i, 'payload', string.rep('s', i % 30))
		end
		return 1`, pre)
		stream := pre + "stream"
		p = c.Pipeline()
		p.XGroupCreate(ctx, stream, "g1", "0")
		p.XGroupCreate(ctx, stream, "g2", "$")
		p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "alice", Streams: []string{stream, ">"}, Count: 20})
		p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "bob", Streams: []string{stream, ">"}, Count: 5})
		p.XGroupCreateConsumer(ctx, stream, "g2", "idle")
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("stream groups on %s: %v", s.Flavor.Name, err)
		}
		ids, err := c.XRangeN(ctx, stream, "-", "+", 30).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.XAck(ctx, stream, "g1", ids[0].ID, ids[1].ID).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.XDel(ctx, stream, ids[25].ID, ids[26].ID).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: pre + "stream-small", Values: []any{"f", "v"}}).Err(); err != nil {
			t.Fatal(err)
		}
		if versionTypes && HasFieldTTL(s) {
			p = c.Pipeline()
			p.HSet(ctx, pre+"hfe", "a", 1, "b", 2, "c", 3)
			p.Do(ctx, "HPEXPIRE", pre+"hfe", 3600000, "FIELDS", 2, "a", "b")
			p.Do(ctx, "HEXPIREAT", pre+"hfe", time.Now().Add(5*time.Hour).Unix(), "FIELDS", 1, "c")
			if _, err := p.Exec(ctx); err != nil {
				t.Fatalf("hash field TTLs: %v", err)
			}
			eval(t, c, `for i = 1, 1000 do
				redis.call('HSET', KEYS[1], 'field'..i, i)
				if i % 3 == 0 then redis.call('HPEXPIRE', KEYS[1], 3600000 + i, 'FIELDS', 1, 'field'..i) end
			end
			return 1`, pre+"bighfe")
		}
		if versionTypes && HasVectorSet(s) {
			eval(t, c, `for i = 1, 200 do
				redis.call('VADD', KEYS[1], 'VALUES', 3, i, i % 7, -i, 'el'..i)
			end
			redis.call('VADD', KEYS[1]..'-q8', 'VALUES', 2, 0.5, 0.25, 'a')
			redis.call('VADD', KEYS[1]..'-bin', 'VALUES', 2, 0.5, -0.25, 'a', 'BIN')
			return 1`, pre+"vset")
		}
	}
}

// FillBig writes keys of n elements each in database 0: a list (quicklist) and a sorted set
// (skiplist).
func FillBig(t testing.TB, s *redistest.Server, n int) {
	t.Helper()
	eval(t, Client(s, 0), `local n = tonumber(ARGV[1])
	for i = 1, n, 1000 do
		local l, z = {}, {}
		for j = i, math.min(i + 999, n) do
			l[#l+1] = j
			z[#z+1] = j; z[#z+1] = 'm'..j
		end
		redis.call('RPUSH', 'huge:list', unpack(l))
		redis.call('ZADD', 'huge:zset', unpack(z))
	end
	return 1`, "", strconv.Itoa(n))
}

func eval(t testing.TB, c *redis.Client, script, key string, args ...any) {
	t.Helper()
	if err := c.Eval(context.Background(), script, []string{key}, args...).Err(); err != nil {
		t.Fatalf("fill script: %v", err)
	}
}

// Client returns a new client of s on database db; the caller closes it.
func Client(s *redistest.Server, db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, DB: db, Protocol: 2, DisableIdentity: true, MaxRetries: -1, ReadTimeout: 2 * time.Minute})
}

// Counts returns the number of keys of every non-empty database of s.
func Counts(t testing.TB, s *redistest.Server) map[int]int64 {
	t.Helper()
	info, err := s.Client.Info(context.Background(), "keyspace").Result()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int64{}
	for _, line := range strings.Split(info, "\n") {
		var db int
		var keys int64
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "db%d:keys=%d", &db, &keys); err == nil {
			counts[db] = keys
		}
	}
	return counts
}

// Equal fails the test unless dst holds what src holds: the same DEBUG DIGEST, key counts per
// database, PEXPIRETIME of every key, field TTLs of every hash, vector sets and functions.
func Equal(t testing.TB, src, dst *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		// Redis 7.0 digests sorted-set scores printed one way, 7.2 and later another: between
		// those the digests of equal sorted sets differ, and their members and scores are
		// compared instead.
		if diff := differentValues(t, src, dst); src.Flavor == dst.Flavor || len(diff) > 0 {
			t.Errorf("DEBUG DIGEST: source %s, restored %s; keys whose values differ: %v", a, b, diff)
		}
	}
	if a, b := Counts(t, src), Counts(t, dst); !reflect.DeepEqual(a, b) {
		t.Errorf("keys per database: source %v, restored %v", a, b)
	}
	for db := range Counts(t, src) {
		sc, dc := Client(src, db), Client(dst, db)
		defer sc.Close()
		defer dc.Close()
		keys, err := sc.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		for _, k := range keys {
			a, _ := sc.PExpireTime(ctx, k).Result()
			b, _ := dc.PExpireTime(ctx, k).Result()
			if a != b {
				t.Errorf("db %d key %.40q: PEXPIRETIME source %v, restored %v", db, k, a, b)
			}
			typ, _ := sc.Type(ctx, k).Result()
			switch {
			case typ == "hash" && HasFieldTTL(src) && HasFieldTTL(dst):
				fields, _ := sc.HKeys(ctx, k).Result()
				a := sc.Do(ctx, append([]any{"HPEXPIRETIME", k, "FIELDS", len(fields)}, toAny(fields)...)...).String()
				b := dc.Do(ctx, append([]any{"HPEXPIRETIME", k, "FIELDS", len(fields)}, toAny(fields)...)...).String()
				if a != b {
					t.Errorf("db %d hash %q: field TTLs differ: source %.200s, restored %.200s", db, k, a, b)
				}
			case typ == "vectorset":
				el, _ := sc.Do(ctx, "VRANDMEMBER", k).Text()
				for _, cmd := range [][]any{{"VCARD", k}, {"VDIM", k}, {"VEMB", k, el, "RAW"}} {
					a, b := sc.Do(ctx, cmd...).String(), dc.Do(ctx, cmd...).String()
					if a != b {
						t.Errorf("db %d vector set %q: %v: source %.200s, restored %.200s", db, k, cmd[0], a, b)
					}
				}
				if a, b := similarity(ctx, sc, k, el), similarity(ctx, dc, k, el); a != b {
					t.Errorf("db %d vector set %q: VSIM: source %.200s, restored %.200s", db, k, a, b)
				}
			}
		}
	}
	a := src.Client.Do(ctx, "FUNCTION", "LIST", "WITHCODE").String()
	b := dst.Client.Do(ctx, "FUNCTION", "LIST", "WITHCODE").String()
	if a != b {
		t.Errorf("functions: source %s, restored %s", a, b)
	}
}

// differentValues names the keys of src whose DEBUG DIGEST-VALUE differs in dst, to say where
// two servers' digests part.
func differentValues(t testing.TB, src, dst *redistest.Server) []string {
	ctx := context.Background()
	var out []string
	for db := range Counts(t, src) {
		sc, dc := Client(src, db), Client(dst, db)
		keys, _ := sc.Keys(ctx, "*").Result()
		slices.Sort(keys)
		for _, k := range keys {
			a := sc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).String()
			b := dc.Do(ctx, "DEBUG", "DIGEST-VALUE", k).String()
			if a != b && !(src.Flavor != dst.Flavor && sameSortedSet(ctx, sc, dc, k)) {
				out = append(out, fmt.Sprintf("db %d %.40q", db, k))
			}
		}
		sc.Close()
		dc.Close()
	}
	return out
}

// sameSortedSet reports whether k is a sorted set with the same members and scores (as
// binary doubles) in both servers.
func sameSortedSet(ctx context.Context, a, b *redis.Client, k string) bool {
	x, err1 := a.ZRangeWithScores(ctx, k, 0, -1).Result()
	y, err2 := b.ZRangeWithScores(ctx, k, 0, -1).Result()
	return err1 == nil && err2 == nil && len(x) > 0 && reflect.DeepEqual(x, y)
}

// similarity lists every element of vector set k with its similarity to el, by element. The scan
// is exhaustive (TRUTH) and sorted because the graph a server rebuilds on load may visit
// elements of equal score in another order, and an approximate search may reach others.
func similarity(ctx context.Context, c *redis.Client, k, el string) string {
	reply, err := c.Do(ctx, "VSIM", k, "ELE", el, "WITHSCORES", "COUNT", 1000000, "TRUTH").StringSlice()
	if err != nil {
		return "error: " + err.Error()
	}
	pairs := make([]string, 0, len(reply)/2)
	for i := 0; i+1 < len(reply); i += 2 {
		pairs = append(pairs, reply[i]+"="+reply[i+1])
	}
	slices.Sort(pairs)
	return strings.Join(pairs, " ")
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
