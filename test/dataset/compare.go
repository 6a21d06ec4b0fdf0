package dataset

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/redistest"
)

// Instance is what the oracle compares: one standalone server, or the masters of a cluster
// (every key is read from the master that holds it, so two clusters of different shapes, or a
// cluster and a standalone server, compare by their keys).
type Instance struct {
	// Name says which instance a difference is about ("source", "restored").
	Name    string
	Servers []*redistest.Server
}

// Standalone is the instance of one server.
func Standalone(s *redistest.Server) Instance {
	return Instance{Name: s.Flavor.Name, Servers: []*redistest.Server{s}}
}

// ClusterOf is the instance of a cluster's masters.
func ClusterOf(c *redistest.Cluster) Instance {
	name := "cluster"
	if len(c.Masters) > 0 {
		name = c.Masters[0].Flavor.Name + " cluster"
	}
	return Instance{Name: name, Servers: c.Masters}
}

// Options tune Compare.
type Options struct {
	// Limit is the number of keys whose differences are reported (default 20).
	Limit int
	// TTLTolerance is how far two expiry times (of keys and of hash fields, in ms) may be apart
	// and still be equal: 0 means equal to the millisecond, as a snapshot restores them (absolute
	// times).
	TTLTolerance time.Duration
	// Skip leaves keys out of the comparison on both sides (keys a lossy restore left out).
	Skip func(db int, key string) bool
	// DBs, when set, are the only databases compared.
	DBs []int
}

// Difference is one way a key differs between two instances.
type Difference struct {
	DB   int
	Key  string
	What string // "missing", "type", "expiry", "value", "field TTLs", "stream …", "group …"
	A, B string // the two sides, shortened
}

func (d Difference) String() string {
	return fmt.Sprintf("db %d key %.60q: %s: %.200s ≠ %.200s", d.DB, d.Key, d.What, d.A, d.B)
}

// record is what the oracle reads of one key.
type record struct {
	node   int // index into Instance.Servers
	typ    string
	expire int64 // PEXPIRETIME: -1 without expiry
	// facets are the key's parts compared as strings: "value", and for streams and vector sets
	// their metadata one facet each, so that a difference names the part.
	facets map[string]string
	// fieldTTL holds the hash fields that have a TTL (HPEXPIRETIME), where the server has field
	// TTLs (hasFieldTTL).
	fieldTTL    map[string]int64
	hasFieldTTL bool
	fields      []string // hash fields, for HPEXPIRETIME
	elements    []string // vector set elements, for VEMB
}

type dbKey struct {
	db  int
	key string
}

// Compare reads both instances and returns how they differ, key by key, in the order of
// database and key, for at most opts.Limit keys: every key's type, value (strings, lists, sets,
// sorted sets with their scores as doubles, hashes, vector sets element by element, other types
// by DEBUG DIGEST-VALUE), expiry (PEXPIRETIME) and hash field TTLs (HPEXPIRETIME, where the
// server has the command), and of streams the entries, last id, entries added, first and
// max-deleted ids, consumer groups (last-delivered id, entries read), their consumers and each
// pending entry (owner, delivery count, delivery time). It reads with SCAN and pipelines, both
// instances at once. DEBUG DIGEST is no substitute: Valkey 9's leaves out hash field TTLs and
// stream consumer groups.
func Compare(ctx context.Context, a, b Instance, opts Options) ([]Difference, error) {
	if opts.Limit <= 0 {
		opts.Limit = 20
	}
	var ra, rb map[dbKey]*record
	var ea, eb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ra, ea = read(ctx, a, opts) }()
	go func() { defer wg.Done(); rb, eb = read(ctx, b, opts) }()
	wg.Wait()
	if err := errors.Join(ea, eb); err != nil {
		return nil, err
	}
	keys := make([]dbKey, 0, len(ra)+len(rb))
	for k := range ra {
		keys = append(keys, k)
	}
	for k := range rb {
		if _, ok := ra[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(x, y dbKey) int {
		if x.db != y.db {
			return x.db - y.db
		}
		return strings.Compare(x.key, y.key)
	})
	var out []Difference
	n := 0
	for _, k := range keys {
		d := diffRecord(k, ra[k], rb[k], a, b, opts)
		if len(d) == 0 {
			continue
		}
		out = append(out, d...)
		if n++; n >= opts.Limit {
			break
		}
	}
	return out, nil
}

func diffRecord(k dbKey, x, y *record, a, b Instance, opts Options) []Difference {
	d := func(what, l, r string) Difference { return Difference{DB: k.db, Key: k.key, What: what, A: l, B: r} }
	switch {
	case x == nil:
		return []Difference{d("missing", "(no key in "+a.Name+")", y.typ)}
	case y == nil:
		return []Difference{d("missing", x.typ, "(no key in "+b.Name+")")}
	case x.typ != y.typ:
		return []Difference{d("type", x.typ, y.typ)}
	}
	var out []Difference
	if !closeTo(x.expire, y.expire, opts.TTLTolerance) {
		out = append(out, d("expiry (PEXPIRETIME)", strconv.FormatInt(x.expire, 10), strconv.FormatInt(y.expire, 10)))
	}
	names := make([]string, 0, len(x.facets))
	for f := range x.facets {
		names = append(names, f)
	}
	for f := range y.facets {
		if _, ok := x.facets[f]; !ok {
			names = append(names, f)
		}
	}
	slices.Sort(names)
	for _, f := range names {
		l, lok := x.facets[f]
		r, rok := y.facets[f]
		if optionalFacet(f) && (!lok || !rok) {
			continue // a field one server version does not report
		}
		if !lok {
			l = "(none)"
		}
		if !rok {
			r = "(none)"
		}
		if l != r {
			out = append(out, d(f, excerptAt(l, r), excerptAt(r, l)))
		}
	}
	if x.typ == "hash" {
		if diff := diffFieldTTL(x, y, opts.TTLTolerance); diff != "" {
			out = append(out, d("field TTLs (HPEXPIRETIME)", fieldTTLString(x), fieldTTLString(y)+" ("+diff+")"))
		}
	}
	return out
}

// optionalFacet names the stream fields that some servers do not report (Redis 7.0 has no
// consumer active-time); they are compared only when both sides have them.
func optionalFacet(f string) bool { return strings.HasSuffix(f, "active-time") }

func closeTo(a, b int64, tol time.Duration) bool {
	if a < 0 || b < 0 {
		return a == b
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= tol.Milliseconds()
}

func diffFieldTTL(x, y *record, tol time.Duration) string {
	if !x.hasFieldTTL || !y.hasFieldTTL {
		// One server has no field TTLs: equal only when the other has none either.
		if len(x.fieldTTL)+len(y.fieldTTL) > 0 {
			return "one server has no hash field TTLs"
		}
		return ""
	}
	if len(x.fieldTTL) != len(y.fieldTTL) {
		return fmt.Sprintf("%d fields with a TTL, %d", len(x.fieldTTL), len(y.fieldTTL))
	}
	for f, t := range x.fieldTTL {
		u, ok := y.fieldTTL[f]
		if !ok || !closeTo(t, u, tol) {
			return fmt.Sprintf("field %q: %d, %d", f, t, u)
		}
	}
	return ""
}

func fieldTTLString(r *record) string {
	if !r.hasFieldTTL {
		return "(server has no field TTLs)"
	}
	fs := make([]string, 0, len(r.fieldTTL))
	for f, t := range r.fieldTTL {
		fs = append(fs, f+"="+strconv.FormatInt(t, 10))
	}
	slices.Sort(fs)
	return fmt.Sprintf("%d fields: %s", len(fs), strings.Join(fs, " "))
}

// excerptAt shortens s around the first byte where it differs from other.
func excerptAt(s, other string) string {
	const width = 160
	if len(s) <= width {
		return s
	}
	i := 0
	for i < len(s) && i < len(other) && s[i] == other[i] {
		i++
	}
	start := max(0, i-40)
	end := min(len(s), start+width)
	return fmt.Sprintf("…[%d bytes, from %d] %s…", len(s), start, s[start:end])
}

// read reads every key of every node of inst.
func read(ctx context.Context, inst Instance, opts Options) (map[dbKey]*record, error) {
	out := map[dbKey]*record{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(inst.Servers))
	for i, s := range inst.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, err := readNode(ctx, i, s, opts)
			if err != nil {
				errs[i] = fmt.Errorf("read %s (%s): %w", inst.Name, s.Addr, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for k, r := range recs {
				if prev, ok := out[k]; ok {
					errs[i] = fmt.Errorf("read %s: db %d key %q on two nodes (%s and %s)", inst.Name, k.db, k.key, inst.Servers[prev.node].Addr, s.Addr)
					return
				}
				out[k] = r
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func readNode(ctx context.Context, node int, s *redistest.Server, opts Options) (map[dbKey]*record, error) {
	dbs, err := keyspace(ctx, s.Client)
	if err != nil {
		return nil, err
	}
	fieldTTL, err := HasCommand(ctx, s.Client, "HPEXPIRETIME")
	if err != nil {
		return nil, err
	}
	out := map[dbKey]*record{}
	for _, db := range dbs {
		if opts.DBs != nil && !slices.Contains(opts.DBs, db) {
			continue
		}
		c := Client(s, db)
		err := readDB(ctx, c, db, node, fieldTTL, opts, out)
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("db %d: %w", db, err)
		}
	}
	return out, nil
}

const batch = 1000

func readDB(ctx context.Context, c *redis.Client, db, node int, fieldTTL bool, opts Options, out map[dbKey]*record) error {
	var keys []string
	var cursor uint64
	for {
		ks, next, err := c.Scan(ctx, cursor, "", batch).Result()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		for _, k := range ks {
			if opts.Skip == nil || !opts.Skip(db, k) {
				keys = append(keys, k)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // SCAN may return a key twice
	for chunk := range slices.Chunk(keys, batch) {
		recs, err := readKeys(ctx, c, chunk, fieldTTL)
		if err != nil {
			return err
		}
		for i, r := range recs {
			if r == nil {
				continue // expired or deleted between SCAN and TYPE
			}
			r.node = node
			out[dbKey{db, chunk[i]}] = r
		}
	}
	return nil
}

// readKeys reads keys in three pipelined rounds: type and expiry; the value; what the value
// names (hash field TTLs, vector set elements).
func readKeys(ctx context.Context, c *redis.Client, keys []string, fieldTTL bool) ([]*record, error) {
	p := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	expires := make([]*redis.Cmd, len(keys))
	for i, k := range keys {
		types[i] = p.Type(ctx, k)
		expires[i] = p.Do(ctx, "PEXPIRETIME", k)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("TYPE, PEXPIRETIME: %w", err)
	}
	recs := make([]*record, len(keys))
	p = c.Pipeline()
	vals := make([][]*redis.Cmd, len(keys))
	for i, k := range keys {
		if types[i].Val() == "none" {
			continue
		}
		exp, err := expires[i].Int64()
		if err != nil {
			return nil, fmt.Errorf("PEXPIRETIME %q: %w", k, err)
		}
		recs[i] = &record{typ: types[i].Val(), expire: exp, facets: map[string]string{}, hasFieldTTL: fieldTTL}
		r := recs[i]
		vals[i] = valueCommands(ctx, p, r.typ, k)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("values: %w", err)
	}
	p = c.Pipeline()
	more := make([][]*redis.Cmd, len(keys))
	for i, k := range keys {
		r := recs[i]
		if r == nil {
			continue
		}
		if err := setValue(r, vals[i]); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		switch {
		case r.typ == "hash" && fieldTTL && len(r.fields) > 0:
			args := []any{"HPEXPIRETIME", k, "FIELDS", len(r.fields)}
			for _, f := range r.fields {
				args = append(args, f)
			}
			more[i] = []*redis.Cmd{p.Do(ctx, args...)}
		case r.typ == "vectorset":
			for _, el := range r.elements {
				more[i] = append(more[i], p.Do(ctx, "VEMB", k, el, "RAW"), p.Do(ctx, "VGETATTR", k, el))
			}
		}
	}
	if p.Len() > 0 {
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("field TTLs, vector elements: %w", err)
		}
	}
	for i, r := range recs {
		if r == nil || more[i] == nil {
			continue
		}
		switch r.typ {
		case "hash":
			ttls, err := more[i][0].Int64Slice()
			if err != nil {
				return nil, fmt.Errorf("HPEXPIRETIME %q: %w", keys[i], err)
			}
			r.fieldTTL = map[string]int64{}
			for j, t := range ttls {
				if t > 0 {
					r.fieldTTL[r.fields[j]] = t
				}
			}
		case "vectorset":
			els := make([]string, len(r.elements))
			for j, el := range r.elements {
				els[j] = el + "=" + canonical(more[i][2*j].Val()) + " attr=" + canonical(more[i][2*j+1].Val())
			}
			slices.Sort(els)
			r.facets["vector set elements"] = strings.Join(els, "\n")
		}
	}
	return recs, nil
}

func valueCommands(ctx context.Context, p redis.Pipeliner, typ, k string) []*redis.Cmd {
	switch typ {
	case "string":
		return []*redis.Cmd{p.Do(ctx, "GET", k)}
	case "list":
		return []*redis.Cmd{p.Do(ctx, "LRANGE", k, 0, -1)}
	case "set":
		return []*redis.Cmd{p.Do(ctx, "SMEMBERS", k)}
	case "zset":
		return []*redis.Cmd{p.Do(ctx, "ZRANGE", k, 0, -1, "WITHSCORES")}
	case "hash":
		return []*redis.Cmd{p.Do(ctx, "HGETALL", k)}
	case "stream":
		return []*redis.Cmd{p.Do(ctx, "XINFO", "STREAM", k, "FULL", "COUNT", 0)}
	case "vectorset":
		return []*redis.Cmd{p.Do(ctx, "VCARD", k), p.Do(ctx, "VDIM", k), p.Do(ctx, "VRANDMEMBER", k, 1<<30)}
	default:
		return []*redis.Cmd{p.Do(ctx, "DEBUG", "DIGEST-VALUE", k)}
	}
}

func setValue(r *record, cmds []*redis.Cmd) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	v := cmds[0].Val()
	switch r.typ {
	case "string":
		r.facets["value"] = v.(string)
	case "list":
		r.facets["value"] = canonical(v)
	case "set":
		m := strs(v)
		slices.Sort(m)
		r.facets["value"] = quoteJoin(m)
	case "zset":
		m := strs(v)
		var b strings.Builder
		for i := 0; i+1 < len(m); i += 2 {
			f, err := strconv.ParseFloat(m[i+1], 64)
			if err != nil {
				return fmt.Errorf("score %q: %w", m[i+1], err)
			}
			fmt.Fprintf(&b, "%q=%s ", m[i], strconv.FormatUint(math.Float64bits(f), 16))
		}
		r.facets["value"] = b.String()
	case "hash":
		m := strs(v)
		pairs := make([]string, 0, len(m)/2)
		for i := 0; i+1 < len(m); i += 2 {
			pairs = append(pairs, strconv.Quote(m[i])+"="+strconv.Quote(m[i+1]))
			r.fields = append(r.fields, m[i])
		}
		slices.Sort(pairs)
		r.facets["value"] = strings.Join(pairs, " ")
	case "stream":
		return streamFacets(r, v)
	case "vectorset":
		r.facets["vector set size"] = canonical(v)
		r.facets["vector set dimension"] = canonical(cmds[1].Val())
		r.elements = strs(cmds[2].Val())
	default:
		r.facets["DEBUG DIGEST-VALUE"] = canonical(v)
	}
	return nil
}

// streamFacets takes XINFO STREAM … FULL apart into the facets the oracle compares. Left out:
// the radix tree's shape (an encoding) and each group's lag (derived).
func streamFacets(r *record, v any) error {
	m, err := pairs(v)
	if err != nil {
		return fmt.Errorf("XINFO STREAM FULL: %w", err)
	}
	for _, f := range []string{"length", "last-generated-id", "max-deleted-entry-id", "entries-added", "recorded-first-entry-id"} {
		if x, ok := m[f]; ok {
			r.facets["stream "+f] = canonical(x)
		}
	}
	r.facets["stream entries"] = canonical(m["entries"])
	groups, _ := m["groups"].([]any)
	var names []string
	for _, g := range groups {
		gm, err := pairs(g)
		if err != nil {
			return fmt.Errorf("group: %w", err)
		}
		name := canonical(gm["name"])
		names = append(names, name)
		pre := "group " + name + " "
		r.facets[pre+"last-delivered-id"] = canonical(gm["last-delivered-id"])
		if x, ok := gm["entries-read"]; ok {
			r.facets[pre+"entries-read"] = canonical(x)
		}
		r.facets[pre+"PEL (id owner delivery-time delivery-count)"] = canonical(gm["pending"])
		cs, _ := gm["consumers"].([]any)
		var cnames []string
		for _, c := range cs {
			cm, err := pairs(c)
			if err != nil {
				return fmt.Errorf("consumer: %w", err)
			}
			cn := canonical(cm["name"])
			cnames = append(cnames, cn)
			cpre := pre + "consumer " + cn + " "
			r.facets[cpre+"seen-time"] = canonical(cm["seen-time"])
			if x, ok := cm["active-time"]; ok {
				r.facets[cpre+"active-time"] = canonical(x)
			}
			r.facets[cpre+"pending"] = canonical(cm["pending"])
		}
		sort.Strings(cnames)
		r.facets[pre+"consumers"] = quoteJoin(cnames)
	}
	sort.Strings(names)
	r.facets["stream groups"] = quoteJoin(names)
	return nil
}

// pairs reads a RESP2 flat array of names and values (or a RESP3 map) into a map.
func pairs(v any) (map[string]any, error) {
	switch v := v.(type) {
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = x
		}
		return out, nil
	case []any:
		if len(v)%2 != 0 {
			return nil, fmt.Errorf("odd reply of %d elements", len(v))
		}
		out := make(map[string]any, len(v)/2)
		for i := 0; i < len(v); i += 2 {
			out[fmt.Sprint(v[i])] = v[i+1]
		}
		return out, nil
	}
	return nil, fmt.Errorf("reply %T is not a map", v)
}

// canonical prints a reply so that equal replies print equally and no two different ones do.
func canonical(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = canonical(x)
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprint(v)
	}
}

func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = fmt.Sprint(x)
	}
	return out
}

func quoteJoin(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, " ")
}

// keyspace lists the databases of c's server that hold keys (INFO keyspace).
func keyspace(ctx context.Context, c *redis.Client) ([]int, error) {
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil {
		return nil, fmt.Errorf("INFO keyspace: %w", err)
	}
	var dbs []int
	for line := range strings.Lines(info) {
		var db int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "db%d:", &db); err == nil {
			dbs = append(dbs, db)
		}
	}
	return dbs, nil
}

// HasCommand reports whether c's server knows the command (COMMAND INFO): how the tests tell
// what a server can hold, never by its version string.
func HasCommand(ctx context.Context, c *redis.Client, name string) (bool, error) {
	v, err := c.Do(ctx, "COMMAND", "INFO", name).Slice()
	if err != nil {
		return false, fmt.Errorf("COMMAND INFO %s: %w", name, err)
	}
	return len(v) == 1 && v[0] != nil, nil
}

// Key is a key of a database.
type Key struct {
	DB  int
	Key string
}

// KeyInfo is what Keys tells of a key: its type and how many of a hash's fields have a TTL.
type KeyInfo struct {
	Type      string
	FieldTTLs int
}

// Keys lists every key of inst with its type and field TTLs, read as Compare reads them: what a
// test needs to say which keys a target cannot hold.
func Keys(ctx context.Context, inst Instance) (map[Key]KeyInfo, error) {
	recs, err := read(ctx, inst, Options{})
	if err != nil {
		return nil, err
	}
	out := make(map[Key]KeyInfo, len(recs))
	for k, r := range recs {
		out[Key{k.db, k.key}] = KeyInfo{Type: r.typ, FieldTTLs: len(r.fieldTTL)}
	}
	return out, nil
}
