package matrix

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// flavors are the servers of the matrix, in the order of the table.
var flavors = []redistest.Flavor{redistest.Redis70, redistest.Redis80, redistest.RedisSid, redistest.Valkey81, redistest.ValkeySid}

// backupMethods and restoreMethods are the runner's --method values.
var (
	backupMethods  = []string{"replication", "dump"}
	restoreMethods = []string{"replication", "restore"}
)

// deployment is a standalone server or a 3-master cluster of one flavor.
type deployment struct {
	flavor  redistest.Flavor
	cluster bool
	opts    []redistest.Option // what its servers start with
	one     *redistest.Server
	cl      *redistest.Cluster
}

func (d *deployment) name() string {
	if d.cluster {
		return d.flavor.Name + " cluster"
	}
	return d.flavor.Name
}

func (d *deployment) start(t testing.TB) {
	if d.cluster {
		d.cl = redistest.StartCluster(t, 3, append([]redistest.Option{d.flavor}, d.opts...)...)
	} else {
		d.one = redistest.Start(t, d.flavor)
	}
}

func (d *deployment) servers() []*redistest.Server {
	if d.cluster {
		return d.cl.Masters
	}
	return []*redistest.Server{d.one}
}

func (d *deployment) instance() dataset.Instance {
	if d.cluster {
		return dataset.ClusterOf(d.cl)
	}
	return dataset.Standalone(d.one)
}

func (d *deployment) url() string { return d.servers()[0].URL() }

// ping fails unless every server of d runs and answers PING.
func (d *deployment) ping() error {
	for _, s := range d.servers() {
		if !s.Alive() {
			return fmt.Errorf("%s exited", s.Addr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Client.Ping(ctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("%s does not answer PING: %w", s.Addr, err)
		}
	}
	return nil
}

// keys counts the keys of every database of every server of d.
func (d *deployment) keys() (int64, error) {
	var n int64
	for _, s := range d.servers() {
		info, err := s.Client.Info(context.Background(), "keyspace").Result()
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(info) {
			var db int
			var k int64
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "db%d:keys=%d", &db, &k); err == nil {
				n += k
			}
		}
	}
	return n, nil
}

func (d *deployment) flush() error {
	for _, s := range d.servers() {
		if err := s.Client.FlushAll(context.Background()).Err(); err != nil {
			return fmt.Errorf("FLUSHALL %s: %w", s.Addr, err)
		}
	}
	return nil
}

// capabilities is what a target can hold, asked of it.
type capabilities struct {
	fieldTTL, vectorSet bool
	// redisVersion is the target's redis_version: a vector set is held only when the source's
	// is not newer (patch included), as a newer server may write a layout an older one misreads.
	redisVersion string
	onlyDB0      bool // a cluster without numbered databases
}

// snapshot is one backup of a source.
type snapshot struct {
	src    *deployment
	method string
	repo   string
	id     string
	failed string // why the backup failed
	// unsupported says why the runner refused the backup as a documented limitation (a
	// cluster by replication): its cells are not run.
	unsupported string
	keys        map[dataset.Key]dataset.KeyInfo
	// redisVersion is the source's redis_version.
	redisVersion string
}

// redisVersion is what s reports as redis_version in INFO server.
func redisVersion(t testing.TB, s *redistest.Server) string {
	info, err := s.Client.InfoMap(context.Background(), "server").Result()
	if err != nil {
		t.Errorf("INFO server of %s: %v", s.Addr, err)
		return ""
	}
	return info["Server"]["redis_version"]
}

// cell is one restore of a snapshot into a target.
type cell struct {
	snap   *snapshot
	dst    *deployment
	method string
	took   time.Duration
	code   string // "=", "lossy: …", or "✗"
	note   string // why it failed
}

// lossy returns the codes of what a target cannot hold: f hash field TTLs, v vector sets (on a
// server without them, or of a newer Redis than the target; srcVersion is the source's version),
// d a database other than 0 in a cluster.
func lossy(keys map[dataset.Key]dataset.KeyInfo, c capabilities, srcVersion string) map[dataset.Key]string {
	out := map[dataset.Key]string{}
	for k, info := range keys {
		switch {
		case c.onlyDB0 && k.DB != 0:
			out[k] = "d"
		case info.Type == "vectorset" && (!c.vectorSet || versionBefore(c.redisVersion, srcVersion)):
			out[k] = "v"
		case info.FieldTTLs > 0 && !c.fieldTTL:
			out[k] = "f"
		}
	}
	return out
}

// versionBefore reports whether dotted version a is older than b, number by number.
func versionBefore(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestMatrix: every source × backup method × target × restore method (replication only into a
// standalone target). Each cell restores equal by the oracle, or is refused before anything is
// written with a message that names what the target cannot hold, and then --allow-lossy
// restores the rest, equal by the oracle, listing exactly the keys left out. After every
// restore every server of the target answers PING.
func TestMatrix(t *testing.T) {
	begin := time.Now()
	ctx := context.Background()
	dir := t.TempDir()
	var sources, targets []*deployment
	for _, fl := range flavors {
		for _, cluster := range []bool{false, true} {
			sources = append(sources, &deployment{flavor: fl, cluster: cluster})
			targets = append(targets, &deployment{flavor: fl, cluster: cluster})
		}
	}
	// Standalone servers first: they tell what cluster options their program has.
	parallel(t, sources, func(d *deployment) {
		if !d.cluster {
			d.start(t)
			t.Logf("%s: %s", d.name(), version(t, d.one))
		}
	})
	for i, d := range sources {
		if d.cluster {
			d.opts = clusterOptions(t, sources[i-1].one)
			targets[i].opts = d.opts
		}
	}
	all := append(slices.Clone(sources), targets...)
	parallel(t, all, func(d *deployment) {
		if d.one == nil && d.cl == nil {
			d.start(t)
		}
	})
	parallel(t, sources, func(d *deployment) { dataset.FillInstance(t, d.instance()) })
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("servers started and filled in %s", time.Since(begin).Round(100*time.Millisecond))

	// Back up each source once by each method.
	mark := time.Now()
	var snaps []*snapshot
	for _, src := range sources {
		repo := "file://" + filepath.Join(dir, "repo-"+strings.ReplaceAll(src.name(), " ", "-"))
		for _, m := range backupMethods {
			snaps = append(snaps, &snapshot{src: src, method: m, repo: repo})
		}
	}
	parallel(t, snaps, func(s *snapshot) {
		keys, err := dataset.Keys(ctx, s.src.instance())
		if err != nil {
			t.Errorf("keys of %s: %v", s.src.name(), err)
			return
		}
		s.keys, s.redisVersion = keys, redisVersion(t, s.src.servers()[0])
		o := runner(dir, "backup", "--redis", s.src.url(), "--repository", s.repo, "--method", s.method)
		if o.err != nil && s.src.cluster && s.method == "replication" && strings.Contains(o.message, "does not support cluster mode") {
			s.unsupported = o.message
			t.Logf("%s by %s: refused: %s", s.src.name(), s.method, o.message)
			return
		}
		if o.err != nil {
			s.failed = "backup failed: " + o.message
			t.Errorf("%s by %s: backup failed: %s\n%s", s.src.name(), s.method, o.message, tail(o.stderr))
			return
		}
		s.id = o.result.Result.SnapshotID
		if n := int64(len(keys)); o.result.Result.Keys != n {
			t.Errorf("%s by %s: backup holds %d keys, the source %d", s.src.name(), s.method, o.result.Result.Keys, n)
		}
	})
	t.Logf("%d backups in %s", len(snaps), time.Since(mark).Round(100*time.Millisecond))

	// Restore every snapshot into every target, each target's cells one after another (a
	// target is flushed between cells), the targets in parallel.
	mark = time.Now()
	var cells []*cell
	byTarget := map[*deployment][]*cell{}
	for _, s := range snaps {
		for _, d := range targets {
			for _, m := range restoreMethods {
				if m == "replication" && d.cluster {
					continue
				}
				c := &cell{snap: s, dst: d, method: m}
				cells = append(cells, c)
				byTarget[d] = append(byTarget[d], c)
			}
		}
	}
	sem := make(chan struct{}, 6)
	parallel(t, targets, func(d *deployment) {
		caps := capabilities{fieldTTL: dataset.HasFieldTTL(d.servers()[0]), vectorSet: dataset.HasVectorSet(d.servers()[0]),
			redisVersion: redisVersion(t, d.servers()[0])}
		caps.onlyDB0 = d.cluster && slices.Equal(dataset.Databases(t, d.instance()), []int{0})
		for _, c := range byTarget[d] {
			sem <- struct{}{}
			start := time.Now()
			runCell(t, dir, c, caps)
			c.took = time.Since(start)
			<-sem
			if c.code == "✗" {
				t.Errorf("%s by %s → %s by %s: %s", c.snap.src.name(), c.snap.method, d.name(), c.method, c.note)
			}
		}
	})
	t.Logf("%d cells in %s; the whole matrix in %s", len(cells), time.Since(mark).Round(100*time.Millisecond), time.Since(begin).Round(100*time.Millisecond))
	slices.SortFunc(cells, func(a, b *cell) int { return int(b.took - a.took) })
	for _, c := range cells[:5] {
		t.Logf("slow cell: %s by %s → %s by %s: %s (%s)", c.snap.src.name(), c.snap.method, c.dst.name(), c.method, c.took.Round(time.Millisecond), c.code)
	}
	checkTable(t, table(snaps, targets, cells))
}

// runCell restores c's snapshot into c's target and judges it.
func runCell(t *testing.T, dir string, c *cell, caps capabilities) {
	fail := func(format string, args ...any) {
		c.code, c.note = "✗", fmt.Sprintf(format, args...)
	}
	d, s := c.dst, c.snap
	if err := d.ping(); err != nil {
		d.start(t) // a server an earlier cell killed: start the target again
	}
	if err := d.flush(); err != nil {
		fail("%v", err)
		return
	}
	if s.failed != "" {
		fail("%s", s.failed)
		return
	}
	if s.unsupported != "" {
		c.code, c.note = "—", s.unsupported
		return
	}
	restore := func(extra ...string) outcome {
		args := append([]string{"restore", "--redis", d.url(), "--repository", s.repo, "--snapshot", s.id, "--method", c.method}, extra...)
		o := runner(dir, args...)
		if err := d.ping(); err != nil {
			o.err = errors.Join(o.err, err)
			o.message = "TARGET DOWN after the restore (" + err.Error() + "); the runner said: " + o.message
		}
		return o
	}
	want := lossy(s.keys, caps, s.redisVersion)
	o := restore()
	if strings.HasPrefix(o.message, "TARGET DOWN") {
		fail("%s", o.message)
		return
	}
	if o.err == nil {
		if o.result.Result.Dropped != 0 {
			fail("left out %d keys without --allow-lossy", o.result.Result.Dropped)
			return
		}
		if diffs := compare(s.src, d, nil, nil); diffs != "" {
			fail("restored, but differs: %s", diffs)
			return
		}
		c.code = "="
		return
	}
	if len(want) == 0 {
		fail("%s", o.message)
		return
	}
	if n, err := d.keys(); err != nil || n != 0 {
		fail("refused (%s) after writing %d keys (%v)", o.message, n, err)
		return
	}
	if !names(o.message, want) {
		fail("refused without naming a key or database it cannot hold: %s", o.message)
		return
	}
	o = restore("--allow-lossy")
	var dbs []int
	if o.err != nil && strings.Contains(o.message, "has only database 0") {
		// A cluster target holds database 0 alone: the runner asks for it by name.
		dbs = []int{0}
		if err := d.flush(); err != nil {
			fail("%v", err)
			return
		}
		o = restore("--allow-lossy", "--databases", "0")
	}
	if o.err != nil {
		fail("--allow-lossy: %s", o.message)
		return
	}
	wantDropped := map[dataset.Key]bool{}
	reasons := map[string]bool{}
	for k, r := range want {
		reasons[r] = true
		if dbs == nil || k.DB == 0 {
			wantDropped[k] = true
		}
	}
	res := o.result.Result
	if res.Dropped != int64(len(wantDropped)) {
		fail("--allow-lossy left out %d keys, want %d", res.Dropped, len(wantDropped))
		return
	}
	for _, k := range res.DroppedKeys {
		if !wantDropped[dataset.Key{DB: k.DB, Key: k.Key}] {
			fail("--allow-lossy left out db %d key %q (%s), which the target can hold", k.DB, k.Key, k.Reason)
			return
		}
	}
	if diffs := compare(s.src, d, want, dbs); diffs != "" {
		fail("--allow-lossy restored the rest, but it differs: %s", diffs)
		return
	}
	var codes []string
	for _, r := range []string{"f", "v", "d"} {
		if reasons[r] {
			codes = append(codes, r)
		}
	}
	c.code = "lossy: " + strings.Join(codes, "")
}

// names reports whether msg names one of the keys (or, for a cluster, one of the databases) a
// target cannot hold.
func names(msg string, want map[dataset.Key]string) bool {
	for k, r := range want {
		if r == "d" && strings.Contains(msg, "database "+strconv.Itoa(k.DB)) {
			return true
		}
		if r != "d" && strings.Contains(msg, k.Key) {
			return true
		}
	}
	return false
}

// compare runs the oracle over src and dst, leaving out skip, and returns its first
// differences, or "".
func compare(src, dst *deployment, skip map[dataset.Key]string, dbs []int) string {
	opts := dataset.Options{Limit: 3, DBs: dbs}
	if skip != nil {
		opts.Skip = func(db int, key string) bool { _, ok := skip[dataset.Key{DB: db, Key: key}]; return ok }
	}
	a, b := src.instance(), dst.instance()
	a.Name, b.Name = "source", "target"
	diffs, err := dataset.Compare(context.Background(), a, b, opts)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, d := range diffs {
		out = append(out, d.String())
	}
	return strings.Join(out, "; ")
}

// clusterOptions are the options a cluster of s's program starts with: numbered databases
// where the program has them (CONFIG GET cluster-databases answers: Valkey 9).
func clusterOptions(t *testing.T, s *redistest.Server) []redistest.Option {
	v, err := s.Client.ConfigGet(context.Background(), "cluster-databases").Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v["cluster-databases"]; ok {
		return []redistest.Option{redistest.WithConfig("cluster-databases", "16")}
	}
	return nil
}

func version(t *testing.T, s *redistest.Server) string {
	info, err := s.Client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(info) {
		for _, f := range []string{"redis_version:", "valkey_version:", "server_name:"} {
			if strings.HasPrefix(line, f) {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	return strings.Join(out, " ")
}

// parallel calls f for every item at once and waits for all. f reports failures on t (Errorf;
// a Fatal ends only its own goroutine).
func parallel[T any](t *testing.T, items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(it)
		}()
	}
	wg.Wait()
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// table renders the cells: a row per source and backup method, a column per target and
// restore method; failures are numbered notes under it.
func table(snaps []*snapshot, targets []*deployment, cells []*cell) string {
	type col struct {
		dst    *deployment
		method string
	}
	var cols []col
	for _, d := range targets {
		for _, m := range restoreMethods {
			if m == "replication" && d.cluster {
				continue
			}
			cols = append(cols, col{d, m})
		}
	}
	at := map[string]*cell{}
	key := func(s *snapshot, d *deployment, m string) string { return fmt.Sprintf("%p %p %s", s, d, m) }
	for _, c := range cells {
		at[key(c.snap, c.dst, c.method)] = c
	}
	var w strings.Builder
	w.WriteString("| source, backup ↓ / target, restore → |")
	for _, c := range cols {
		fmt.Fprintf(&w, " %s, %s |", c.dst.name(), short(c.method))
	}
	w.WriteString("\n| --- |" + strings.Repeat(" --- |", len(cols)) + "\n")
	var notes, refusals []string
	for _, s := range snaps {
		fmt.Fprintf(&w, "| %s, %s |", s.src.name(), short(s.method))
		for _, c := range cols {
			x := at[key(s, c.dst, c.method)]
			code := "?"
			if x != nil {
				code = x.code
				if code == "—" && !slices.Contains(refusals, excerpt(x.note)) {
					refusals = append(refusals, excerpt(x.note))
				}
				if code == "✗" {
					n := excerpt(x.note)
					i := slices.Index(notes, n)
					if i < 0 {
						notes = append(notes, n)
						i = len(notes) - 1
					}
					code = fmt.Sprintf("✗ %d", i+1)
				}
			}
			fmt.Fprintf(&w, " %s |", code)
		}
		w.WriteString("\n")
	}
	for _, r := range refusals {
		fmt.Fprintf(&w, "\n—: the backup is refused: `%s`\n", r)
	}
	if len(notes) > 0 {
		w.WriteString("\nFailures:\n\n")
		for i, n := range notes {
			fmt.Fprintf(&w, "%d. `%s`\n", i+1, n)
		}
	}
	return w.String()
}

func short(method string) string {
	switch method {
	case "replication":
		return "repl."
	case "restore":
		return "RESTORE"
	}
	return method
}
