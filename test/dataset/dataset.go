// Package dataset fills a test server or cluster with every type and encoding it holds (asking
// the server what it has, never reading its version string), and compares two of them the way
// the project proves a backup: a differential oracle (Compare) that reads both key by key —
// type, value, expiry, hash field TTLs, stream entries, consumer groups, consumers and pending
// entries — beside DEBUG DIGEST, which leaves field TTLs and consumer groups out on Redis 8 and
// Valkey 9.
package dataset

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/test/redistest"
)

// DBs are the databases Fill writes to.
var DBs = []int{0, 1, 7}

// Library is the function library Fill loads (FUNCTION LOAD).
const Library = "#!lua name=stashlib\nredis.register_function('stash_ping', function(keys, args) return 'pong' end)"

// HasFieldTTL reports whether the server has hash field TTLs (HPEXPIRE: Redis 7.4+, Valkey 9),
// by asking it (COMMAND INFO), never by its version string.
func HasFieldTTL(s *redistest.Server) bool { return has(s, "HPEXPIRE") }

// HasVectorSet reports whether the server has vector sets (VADD: Redis 8), by asking it.
func HasVectorSet(s *redistest.Server) bool { return has(s, "VADD") }

// has reports whether s knows the command; a server that does not answer knows none.
func has(s *redistest.Server, command string) bool {
	ok, err := HasCommand(context.Background(), s.Client, command)
	return err == nil && ok
}

// Fill writes every type in small and big encodings into DBs of s: strings (raw, int, long and
// compressible, binary), lists (listpack, quicklist, a plain node), sets (listpack, intset,
// hashtable), sorted sets (listpack, skiplist), hashes (listpack, hashtable), a stream with
// consumer groups, pending entries and deleted entries, keys with TTLs, keys in many slots, and
// where the server has them hash field TTLs (small and big, by HPEXPIRE and by HSETEX) and vector
// sets, and a function library.
func Fill(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, Standalone(s), DBs, true)
	if err := Client(s, 0).Do(context.Background(), "FUNCTION", "LOAD", Library).Err(); err != nil {
		t.Fatalf("function load on %s: %v", s.Flavor.Name, err)
	}
}

// FillKeys writes what Fill writes but the function library: what a snapshot carries
// (snapshots hold keys, not function libraries).
func FillKeys(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, Standalone(s), DBs, true)
}

// FillCommon writes what every server here can hold (Redis 7.0 and 8, Valkey 8 and 9): what
// Fill writes but hash field TTLs, vector sets and the function library.
func FillCommon(t testing.TB, s *redistest.Server) {
	t.Helper()
	fill(t, Standalone(s), DBs, false)
}

// FillInstance writes what FillKeys writes into every database of Databases(inst): for a
// cluster, through the master that owns each key's slot.
func FillInstance(t testing.TB, inst Instance) {
	t.Helper()
	fill(t, inst, Databases(t, inst), true)
}

// Databases are the databases FillInstance writes: DBs, or for a cluster database 0 alone
// unless its servers have numbered cluster databases (Valkey 9's cluster-databases).
func Databases(t testing.TB, inst Instance) []int {
	t.Helper()
	if len(inst.Servers) == 1 && !IsCluster(t, inst.Servers[0]) {
		return DBs
	}
	n, err := inst.Servers[0].Client.ConfigGet(context.Background(), "cluster-databases").Result()
	if err != nil {
		t.Fatalf("CONFIG GET cluster-databases: %v", err)
	}
	if v, _ := strconv.Atoi(n["cluster-databases"]); v > slices.Max(DBs) {
		return DBs
	}
	return []int{0}
}

// IsCluster reports whether s runs in cluster mode (CLUSTER INFO answers).
func IsCluster(t testing.TB, s *redistest.Server) bool {
	t.Helper()
	return s.Client.ClusterInfo(context.Background()).Err() == nil
}

// VersionKeys are the keys of each database in DBs that Fill writes beyond FillCommon on s.
func VersionKeys(s *redistest.Server) []string {
	var keys []string
	if HasFieldTTL(s) {
		keys = append(keys, "hfe", "bighfe")
		if has(s, "HSETEX") {
			keys = append(keys, "hsetex")
		}
	}
	if HasVectorSet(s) {
		keys = append(keys, "vset", "vset-q8", "vset-bin")
	}
	return keys
}

// ManyKeys is the number of small keys of mixed types (a third with a TTL) that fill writes into
// each database, so that a cluster's keys are in many slots.
const ManyKeys = 300

func fill(t testing.TB, inst Instance, dbs []int, versionTypes bool) {
	t.Helper()
	ctx := context.Background()
	s := inst.Servers[0]
	fieldTTL, hsetex, vset := versionTypes && HasFieldTTL(s), versionTypes && has(s, "HSETEX"), versionTypes && HasVectorSet(s)
	for _, db := range dbs {
		w := newWriter(t, inst, db)
		pre := "db" + strconv.Itoa(db) + ":"
		w.do(pre+"str", "SET", pre+"str", "value")
		w.do(pre+"int", "SET", pre+"int", "12345")
		w.do(pre+"neg", "SET", pre+"neg", "-70000")
		w.do(pre+"bin", "SET", pre+"bin", string([]byte{0, 0xff, '\r', '\n', 7}))
		w.do(pre+"long", "SET", pre+"long", strings.Repeat("compressible ", 2000))
		w.do("12345", "SET", "12345", "an integer key")
		long := strings.Repeat("k", 20000)
		w.do(long, "SET", long, "a long key")
		w.do(pre+"ttl", "SET", pre+"ttl", "soon", "PX", time.Hour.Milliseconds())
		w.do(pre+"ttl-sec", "SET", pre+"ttl-sec", "later", "EXAT", time.Now().Add(2*time.Hour).Unix())
		w.do(pre+"list", "RPUSH", pre+"list", "a", "b", 3, -4)
		w.do(pre+"list-plain", "RPUSH", pre+"list-plain", strings.Repeat("p", 10000), "x") // a node larger than a listpack may be
		w.do(pre+"set", "SADD", pre+"set", "m", "n", "o")
		w.do(pre+"intset", "SADD", pre+"intset", 1, 2, 3, 1<<40)
		w.do(pre+"zset", "ZADD", pre+"zset", 1.5, "a", -2, "b")
		w.do(pre+"hash", "HSET", pre+"hash", "a", 1, "b", "two")
		w.do(pre+"hash", "PEXPIRE", pre+"hash", 3*time.Hour.Milliseconds())
		// Big encodings.
		list, set, intset, zset, hash := []any{"RPUSH", pre + "biglist"}, []any{"SADD", pre + "bigset"}, []any{"SADD", pre + "bigintset"}, []any{"ZADD", pre + "bigzset"}, []any{"HSET", pre + "bighash"}
		for i := 1; i <= 3000; i++ {
			list = append(list, strings.Repeat("e", 50)+strconv.Itoa(i))
			set = append(set, "member"+strconv.Itoa(i))
			intset = append(intset, i*1000003)
			zset = append(zset, float64(i)/7, "member"+strconv.Itoa(i))
			hash = append(hash, "field"+strconv.Itoa(i), strings.Repeat("v", i%100))
		}
		zset = append(zset, "inf", "top", "-inf", "bottom")
		for _, cmd := range [][]any{list, set, intset, zset, hash} {
			w.do(cmd[1].(string), cmd...)
		}
		stream := pre + "stream"
		for i := 1; i <= 400; i++ {
			w.do(stream, "XADD", stream, "*", "n", i, "payload", strings.Repeat("s", i%30))
		}
		w.do(pre+"stream-small", "XADD", pre+"stream-small", "*", "f", "v")
		// Keys in many slots, of every common type, a third with a TTL.
		for i := range ManyKeys {
			k := fmt.Sprintf("%smany:%d", pre, i)
			switch i % 5 {
			case 0:
				w.do(k, "SET", k, strings.Repeat("v", i%50))
			case 1:
				w.do(k, "RPUSH", k, "a", i)
			case 2:
				w.do(k, "HSET", k, "f", i)
			case 3:
				w.do(k, "ZADD", k, i, "m")
			case 4:
				w.do(k, "SADD", k, i, "x")
			}
			if i%3 == 0 {
				w.do(k, "PEXPIREAT", k, time.Now().Add(time.Hour+time.Duration(i)*time.Millisecond).UnixMilli())
			}
		}
		if fieldTTL {
			w.do(pre+"hfe", "HSET", pre+"hfe", "a", 1, "b", 2, "c", 3)
			w.do(pre+"hfe", "HPEXPIRE", pre+"hfe", 3600000, "FIELDS", 2, "a", "b")
			w.do(pre+"hfe", "HEXPIREAT", pre+"hfe", time.Now().Add(5*time.Hour).Unix(), "FIELDS", 1, "c")
			for i := 1; i <= 1000; i++ {
				f := "field" + strconv.Itoa(i)
				w.do(pre+"bighfe", "HSET", pre+"bighfe", f, i)
				if i%3 == 0 {
					w.do(pre+"bighfe", "HPEXPIRE", pre+"bighfe", 3600000+i, "FIELDS", 1, f)
				}
			}
		}
		if hsetex {
			w.do(pre+"hsetex", "HSETEX", pre+"hsetex", "PX", 7200000, "FIELDS", 2, "x", "1", "y", "2")
			w.do(pre+"hsetex", "HSET", pre+"hsetex", "z", "no ttl")
		}
		if vset {
			for i := 1; i <= 200; i++ {
				w.do(pre+"vset", "VADD", pre+"vset", "VALUES", 3, i, i%7, -i, "el"+strconv.Itoa(i))
			}
			w.do(pre+"vset-q8", "VADD", pre+"vset-q8", "VALUES", 2, 0.5, 0.25, "a")
			w.do(pre+"vset-bin", "VADD", pre+"vset-bin", "VALUES", 2, 0.5, -0.25, "a", "BIN")
		}
		w.exec(t)
		// Consumer groups, pending entries (some acknowledged) and deleted entries.
		c := w.client(stream)
		p := c.Pipeline()
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
		w.close()
	}
}

// writer sends each command to the server that holds its key: the one server of a standalone
// instance, or the master that owns the key's slot (CLUSTER SLOTS) in a cluster.
type writer struct {
	ctx     context.Context
	clients []*redis.Client
	pipes   []redis.Pipeliner
	owner   []int // slot → index into clients; nil for a standalone server
}

func newWriter(t testing.TB, inst Instance, db int) *writer {
	t.Helper()
	ctx := context.Background()
	w := &writer{ctx: ctx}
	for _, s := range inst.Servers {
		c := Client(s, db)
		w.clients = append(w.clients, c)
		w.pipes = append(w.pipes, c.Pipeline())
	}
	if len(inst.Servers) == 1 && !IsCluster(t, inst.Servers[0]) {
		return w
	}
	slots, err := inst.Servers[0].Client.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	w.owner = make([]int, 16384)
	for i := range w.owner {
		w.owner[i] = -1
	}
	for _, r := range slots {
		idx := slices.IndexFunc(inst.Servers, func(s *redistest.Server) bool { return s.Addr == r.Nodes[0].Addr })
		if idx < 0 {
			t.Fatalf("slots %d-%d are served by %s, not one of the instance's servers", r.Start, r.End, r.Nodes[0].Addr)
		}
		for slot := r.Start; slot <= r.End; slot++ {
			w.owner[slot] = idx
		}
	}
	return w
}

func (w *writer) node(key string) int {
	if w.owner == nil {
		return 0
	}
	return w.owner[cluster.Slot([]byte(key))]
}

// client is the client of the server that holds key.
func (w *writer) client(key string) *redis.Client { return w.clients[w.node(key)] }

// do queues a command whose key is key.
func (w *writer) do(key string, args ...any) { w.pipes[w.node(key)].Do(w.ctx, args...) }

// exec sends what is queued.
func (w *writer) exec(t testing.TB) {
	t.Helper()
	for i, p := range w.pipes {
		if _, err := p.Exec(w.ctx); err != nil {
			t.Fatalf("fill %s: %v", w.clients[i].Options().Addr, err)
		}
	}
}

func (w *writer) close() {
	for _, c := range w.clients {
		c.Close()
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

// Equal fails the test unless dst holds what src holds, by the differential oracle (Compare:
// every key's type, value, expiry, hash field TTLs, stream groups, consumers and pending
// entries) and, between servers of the same program and version, by DEBUG DIGEST too (across
// versions the digests of equal data differ: Redis 7.0 prints sorted-set scores another way),
// and the function libraries are the same.
func Equal(t testing.TB, src, dst *redistest.Server) {
	t.Helper()
	EqualInstances(t, Standalone(src), Standalone(dst), Options{})
	ctx := context.Background()
	a := src.Client.Do(ctx, "FUNCTION", "LIST", "WITHCODE").String()
	b := dst.Client.Do(ctx, "FUNCTION", "LIST", "WITHCODE").String()
	if a != b {
		t.Errorf("functions: source %s, restored %s", a, b)
	}
}

// EqualInstances fails the test unless dst holds what src holds by the oracle (Compare with
// opts) and, for two standalone servers of the same program and version, by DEBUG DIGEST.
func EqualInstances(t testing.TB, src, dst Instance, opts Options) {
	t.Helper()
	src.Name, dst.Name = "source", "restored"
	diffs, err := Compare(context.Background(), src, dst, opts)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	for _, d := range diffs {
		t.Errorf("source and restored differ: %s", d)
	}
	if len(src.Servers) == 1 && len(dst.Servers) == 1 && src.Servers[0].Flavor == dst.Servers[0].Flavor && opts.Skip == nil && opts.DBs == nil {
		if a, b := src.Servers[0].Digest(t), dst.Servers[0].Digest(t); a != b {
			t.Errorf("DEBUG DIGEST: source %s, restored %s", a, b)
		}
	}
}

// Same fails the test unless dst holds the keys src holds, by the oracle and, between servers
// of the same program and version, by DEBUG DIGEST: what a snapshot's round trip must keep
// (keys; function libraries are not part of a snapshot).
func Same(t testing.TB, src, dst *redistest.Server) {
	t.Helper()
	EqualInstances(t, Standalone(src), Standalone(dst), Options{})
}
