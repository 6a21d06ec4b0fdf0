// Package restore loads a snapshot from a repository into a Redis server and verifies the result.
// It is the library behind `stash-runner restore`, and what a controller calls in-process.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/repo"
)

// Options configure Run.
type Options struct {
	Redis      redisconn.Options
	Repository *repo.Repository
	// Snapshot is an id, a unique id prefix, or "latest" (the default).
	Snapshot string
	// Flush empties each restored database first.
	Flush bool
	// Replace overwrites existing keys. Without Flush or Replace a non-empty target database
	// fails the restore before anything is written.
	Replace bool
	// Databases restricts the restore to these databases; empty means all in the snapshot.
	Databases []int
	// KeyPattern restricts the restore to matching keys (Redis glob); empty means all.
	KeyPattern string
	// VerifyFirst reads and verifies the whole snapshot before writing anything to the target,
	// at the cost of reading it twice. Without it, data is verified while it is restored.
	VerifyFirst bool
	// Workers is the number of RESTORE connections; 0 means load.DefaultWorkers.
	Workers int
	// Progress, if set, is updated while the restore runs.
	Progress *progress.Counter
	// Warn receives non-fatal warnings; may be nil.
	Warn func(string)
	// Sentinel, if set, restores into the master the Sentinel names; Redis then carries only
	// the credentials and TLS settings of the data nodes.
	Sentinel *redisconn.Sentinel
	// Mode is the expected mode, "standalone" or "cluster"; empty means detect it from INFO.
	Mode string
	// Method is how the keys are written: MethodAuto (the default), MethodRestore or
	// MethodReplication.
	Method string
	// ListenHost is the runner's address as the target sees it, for MethodReplication; empty
	// means the runner's side of a connection to the target.
	ListenHost string
	// AllowLossy restores a snapshot into a server that cannot hold some of its values (hash
	// field TTLs or vector sets into Valkey or an older Redis): those keys are skipped and
	// listed in Result.DroppedKeys. Without it such a restore is refused before anything is
	// written.
	AllowLossy bool
	// AllowReplicaTarget restores into a server that is a replica of another (see
	// ErrTargetIsReplica); without it such a target is refused before anything is written.
	AllowReplicaTarget bool
}

// Methods of writing the keys into the target.
const (
	// MethodAuto uses MethodReplication when the target allows it (see replicationBlocker) and
	// MethodRestore otherwise, also when the target cannot connect back to the runner.
	MethodAuto = "auto"
	// MethodRestore, named after the Redis command it sends (not after this package), sends
	// pipelined RESTORE commands on several connections (load.Run). It works on any
	// target, keeps existing keys and restores into clusters; a failure can leave the keys
	// restored so far.
	MethodRestore = "restore"
	// MethodReplication makes an empty standalone target a replica of the runner for the
	// duration and sends the snapshot as the RDB file of a full resynchronization (see
	// replication.Serve): about twice as fast, and all or nothing.
	MethodReplication = "replication"
)

// CheckMethod fails unless m names a method.
func CheckMethod(m string) error {
	switch m {
	case MethodAuto, MethodRestore, MethodReplication:
		return nil
	}
	return fmt.Errorf("unknown restore method %q (use %s, %s or %s)", m, MethodAuto, MethodRestore, MethodReplication)
}

// ErrKeyCount is returned when the target does not hold the keys the snapshot says it should.
var ErrKeyCount = errors.New("key count verification failed")

// Result describes a verified restore.
type Result struct {
	SnapshotID string        `json:"snapshotID"`
	Keys       int64         `json:"keys"`
	Databases  map[int]int64 `json:"databases"`
	Expired    int64         `json:"expired"`
	Filtered   int64         `json:"filtered"`
	Bytes      int64         `json:"bytes"`
	// Method is how the keys were written: MethodRestore or MethodReplication.
	Method string `json:"method"`
	// Dropped keys were not restored because the target cannot hold their values
	// (Options.AllowLossy); DroppedKeys lists the first load.MaxDroppedListed of them.
	Dropped     int64             `json:"dropped,omitempty"`
	DroppedKeys []load.DroppedKey `json:"droppedKeys,omitempty"`
	// Functions is the number of function libraries restored and verified.
	Functions int           `json:"functions,omitempty"`
	Duration  time.Duration `json:"-"`
}

// Run restores the snapshot. Success is reported only after the whole data object was read and
// verified (size, sha256, authenticated decryption) and the key counts in the target match.
// Data is restored while it streams, so a failure can leave a partially restored target; the
// error says so.
func Run(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	if opts.Warn == nil {
		opts.Warn = func(string) {}
	}
	m, sr, err := openSnapshot(ctx, opts)
	if err != nil {
		return Result{}, err
	}
	defer sr.Close()
	t, err := connectTarget(ctx, &opts)
	if err != nil {
		return Result{}, err
	}
	defer t.client.Close()
	sel, err := selectKeys(ctx, opts, m, t.info)
	if err != nil {
		return Result{}, err
	}
	if err := checkFunctions(ctx, t.targets, m.Functions, opts.Replace || opts.Flush); err != nil {
		return Result{}, err
	}
	dbs, wasEmpty, err := prepareDatabases(ctx, opts, m, t)
	if err != nil {
		return Result{}, err
	}
	method, err := chooseMethod(ctx, opts, m, t)
	if err != nil {
		return Result{}, err
	}
	st, method, err := write(ctx, opts, m, sr, sel, t, dbs, method)
	if err != nil {
		return Result{}, err
	}
	if err := verifyCounts(ctx, opts, m, st, sel, t, dbs, wasEmpty); err != nil {
		return Result{}, err
	}
	if err := verifyFunctions(ctx, t.targets, m.Functions); err != nil {
		return Result{}, fmt.Errorf("restore snapshot %s: %w", m.ID, err)
	}
	return Result{
		SnapshotID: m.ID, Keys: st.Total, Databases: st.Keys, Expired: st.Expired, Filtered: st.Filtered,
		Bytes: st.Bytes, Method: method, Duration: time.Since(start), Dropped: st.Dropped, DroppedKeys: st.DroppedKeys,
		Functions: len(m.Functions),
	}, nil
}

// openSnapshot checks the options, resolves the snapshot and opens its data, before anything
// is written or flushed: a data object that does not match its manifest is refused with the
// target untouched.
func openSnapshot(ctx context.Context, opts Options) (repo.Manifest, *repo.SnapshotReader, error) {
	if opts.Repository == nil {
		return repo.Manifest{}, nil, errors.New("restore: no repository")
	}
	if opts.Method != "" {
		if err := CheckMethod(opts.Method); err != nil {
			return repo.Manifest{}, nil, err
		}
	}
	m, err := opts.Repository.Resolve(ctx, opts.Snapshot)
	if err != nil {
		return repo.Manifest{}, nil, err
	}
	if opts.VerifyFirst {
		if err := opts.Repository.Verify(ctx, m); err != nil {
			return repo.Manifest{}, nil, fmt.Errorf("verify snapshot %s before restoring: %w", m.ID, err)
		}
	}
	if err := checkDatabases(m, opts.Databases); err != nil {
		return repo.Manifest{}, nil, err
	}
	sr, err := opts.Repository.OpenSnapshot(ctx, m)
	if err != nil {
		return repo.Manifest{}, nil, err
	}
	return m, sr, nil
}

// target is the server (or the masters of the cluster) a restore writes to.
type target struct {
	client  *redis.Client
	info    redisconn.ServerInfo
	targets []redisconn.Options // the servers whose databases are counted
	routing *load.Routing       // nil but for a cluster
}

// connectTarget connects to the target (opts.Redis becomes the data node reached), undoes
// what a dead runner left on it, and finds a cluster's masters. The caller closes the client.
func connectTarget(ctx context.Context, opts *Options) (t target, err error) {
	node, err := redisconn.Connect(ctx, redisconn.ConnectOptions{Redis: opts.Redis, Sentinel: opts.Sentinel, Mode: opts.Mode})
	if err != nil {
		return target{}, err
	}
	opts.Redis = node.Redis
	t = target{client: node.Client, info: node.Info, targets: []redisconn.Options{opts.Redis}}
	defer func() {
		if err != nil {
			node.Client.Close()
		}
	}()
	if t.info.Mode != redisconn.ModeCluster {
		if opts.Sentinel == nil {
			// Before anything else looks at the target: a replica of a dead runner refuses writes.
			found, err := recoverLeftover(ctx, t.client, opts.Redis.Addr)
			if err != nil {
				return target{}, err
			}
			if found != "" {
				opts.Warn(found)
			}
			if !opts.AllowReplicaTarget {
				if err := checkNotReplica(ctx, t.client, opts.Redis.Addr); err != nil {
					return target{}, err
				}
			}
		}
		if w := evictionWarning(ctx, t.client, opts.Redis.Addr); w != "" {
			opts.Warn(w)
		}
		return t, nil
	}
	if w := evictionWarning(ctx, t.client, opts.Redis.Addr); w != "" {
		opts.Warn(w)
	}
	top, err := cluster.Discover(ctx, t.client)
	if err != nil {
		return target{}, err
	}
	own, err := top.Owners()
	if err != nil {
		return target{}, fmt.Errorf("restore into cluster %s: %w", opts.Redis.Addr, err)
	}
	t.routing = &load.Routing{Base: opts.Redis, Owner: own, Databases: t.info.ClusterDatabases}
	for _, n := range top.Masters() {
		t.routing.Nodes = append(t.routing.Nodes, cluster.NodeOptions(opts.Redis, n.Addr))
	}
	t.targets = t.routing.Nodes
	t.info.Databases = t.info.ClusterDatabases // 1, or Valkey 9's cluster-databases
	return t, nil
}

// selectKeys is the selection of the snapshot's keys, with the conversion of values for a
// target that does not read the snapshot's format; without AllowLossy it refuses, before
// anything is written, a snapshot with values the target cannot hold.
func selectKeys(ctx context.Context, opts Options, m repo.Manifest, info redisconn.ServerInfo) (load.Selection, error) {
	sel := load.Selection{Databases: opts.Databases, KeyPattern: opts.KeyPattern}
	target := info.RDB()
	target.WriterProduct, target.WriterVersion = m.Writer()
	if m.RDBVersion == 0 || target.Unchanged(m.RDBVersion) {
		return sel, nil
	}
	// The target refuses some of the snapshot's payloads as they are (their format, or module
	// values of a newer server): convert them, and find out before anything is written
	// whether every value can be restored.
	sel.Target, sel.DropLossy = &target, opts.AllowLossy
	if !opts.AllowLossy {
		if err := checkLossless(ctx, opts.Repository, m, sel, target); err != nil {
			return sel, err
		}
	}
	if !target.Reads(m.RDBVersion) {
		opts.Warn(fmt.Sprintf("snapshot %s is in RDB format %d, which %s does not read: its values are converted to format %d",
			m.ID, m.RDBVersion, target.Name, target.WriteVersion()))
	}
	return sel, nil
}

// prepareDatabases checks each database the restore writes (the cluster's only database, the
// target's number of databases) and empties it (Flush), allows it (Replace) or refuses it when
// it holds keys. It returns those databases and which were empty when the restore began.
func prepareDatabases(ctx context.Context, opts Options, m repo.Manifest, t target) ([]int, map[int]bool, error) {
	var dbs []int
	for _, db := range slices.Sorted(maps.Keys(m.Databases)) {
		if len(opts.Databases) == 0 || slices.Contains(opts.Databases, db) {
			dbs = append(dbs, db)
		}
	}
	// Every database is checked before any is flushed: a refused restore leaves the target as it was.
	for _, db := range dbs {
		if t.routing != nil {
			if err := v1alpha1.CheckClusterDatabase(db, t.info.Databases); err != nil {
				return nil, nil, fmt.Errorf("snapshot %s has keys in %w (cluster %s, %s)", m.ID, err, opts.Redis.Addr, t.info.Name())
			}
		}
		if db >= t.info.Databases {
			return nil, nil, &TooFewDatabasesError{Snapshot: m.ID, DB: db, TargetDatabases: t.info.Databases}
		}
	}
	var expected int64
	wasEmpty := map[int]bool{}
	for _, db := range dbs {
		expected += m.Databases[db]
		n, err := dbSize(ctx, t.targets, db)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case n == 0:
			wasEmpty[db] = true
		case opts.Flush:
			if err := flushDB(ctx, t.targets, db); err != nil {
				return nil, nil, err
			}
			wasEmpty[db] = true
		case !opts.Replace:
			return nil, nil, &TargetNotEmptyError{Addr: opts.Redis.Addr, DB: db, Keys: n}
		}
	}
	if opts.Flush && len(dbs) == 0 {
		// A snapshot without a database (of an empty server) restores as an empty target.
		flush := databasesToFlush(dbs, opts.Databases, t.info, len(m.Databases))
		if t.routing != nil {
			flush = []int{0}
		}
		for _, db := range flush {
			if err := flushDB(ctx, t.targets, db); err != nil {
				return nil, nil, err
			}
		}
	}
	if opts.Progress != nil {
		opts.Progress.Total.Store(expected)
	}
	return dbs, wasEmpty, nil
}

// chooseMethod is MethodReplication when it is asked for or allowed and the target can take
// it (replicationBlocker), else MethodRestore.
func chooseMethod(ctx context.Context, opts Options, m repo.Manifest, t target) (string, error) {
	// An empty snapshot has nothing to load: RESTORE then writes nothing and changes nothing.
	if opts.Method == MethodRestore || m.Keys == 0 || m.RDBVersion == 0 {
		return MethodRestore, nil
	}
	reason, err := replicationBlocker(ctx, t.client, opts, t.routing != nil)
	switch {
	case err != nil:
		return "", err
	case reason == "":
		return MethodReplication, nil
	case opts.Method == MethodReplication:
		return "", &ReplicationUnavailableError{Addr: opts.Redis.Addr, Reason: reason}
	}
	return MethodRestore, nil
}

// write loads the snapshot's keys into the target by method (falling back from replication
// to RESTORE commands when the target cannot reach the runner and auto chose replication),
// and says in its error how much the target holds after a failure.
func write(ctx context.Context, opts Options, m repo.Manifest, sr *repo.SnapshotReader, sel load.Selection, t target, dbs []int, method string) (load.Stats, string, error) {
	var st load.Stats
	var err error
	if method == MethodReplication {
		st, err = replication.Serve(ctx, sr, replication.ServeOptions{
			Redis: opts.Redis, Selection: sel, RDBVersion: m.RDBVersion, Progress: opts.Progress,
			KeysHint: m.Databases, ListenHost: opts.ListenHost, RefuseDuplicates: duplicateGuard(m),
		})
		if errors.Is(err, replication.ErrServeUnavailable) && opts.Method != MethodReplication {
			opts.Warn(fmt.Sprintf("%v; restoring with RESTORE commands instead", err))
			method = MethodRestore
		} else if err == nil {
			// The full resynchronization replaced the target's functions with none.
			err = loadFunctions(ctx, t.targets, m.Functions)
		}
	}
	if method == MethodRestore {
		if err = loadFunctions(ctx, t.targets, m.Functions); err != nil {
			return st, method, fmt.Errorf("restore snapshot %s into %s: %w", m.ID, opts.Redis.Addr, err)
		}
		putBack := sanitizePayloads(ctx, t.targets, opts.Warn)
		st, err = load.Run(ctx, sr, load.Options{
			Redis: opts.Redis, Workers: opts.Workers, Replace: opts.Replace || opts.Flush, Selection: sel,
			RDBVersion: m.RDBVersion, SourceVersion: m.RedisVersion, Progress: opts.Progress, Cluster: t.routing,
		})
		putBack()
	}
	if err != nil {
		switch {
		case st.Total > 0 && method == MethodReplication:
			// Counted on the target: it may have evicted, or discarded the load.
			if held := keysHeld(context.WithoutCancel(ctx), t.targets, dbs); held >= 0 {
				err = fmt.Errorf("%w (the target holds %d keys of the %d sent)", err, held, st.Total)
			}
		case st.Total > 0:
			err = fmt.Errorf("%w (the target was partially restored: %d keys written)", err, st.Total)
		}
		return st, method, fmt.Errorf("restore snapshot %s into %s: %w", m.ID, opts.Redis.Addr, err)
	}
	return st, method, nil
}

// verifyCounts checks that the data held the keys the manifest says, that the selection kept
// some, and that each database of the target holds what was loaded: exactly, when it was empty
// (keys can expire meanwhile); key by key, when it already had keys (checkPresent).
func verifyCounts(ctx context.Context, opts Options, m repo.Manifest, st load.Stats, sel load.Selection, t target, dbs []int, wasEmpty map[int]bool) error {
	if got := st.Total + st.Expired + st.Filtered + st.Dropped; got != m.Keys {
		return fmt.Errorf("restore snapshot %s: %w: the data holds %d keys, the manifest says %d", m.ID, ErrKeyCount, got, m.Keys)
	}
	if st.Total+st.Expired+st.Dropped == 0 && st.Filtered > 0 {
		flushed := ""
		if opts.Flush {
			flushed = " (the databases were flushed)"
		}
		return fmt.Errorf("restore snapshot %s: %w: %d keys were left out by the database and key pattern selection (%q), none restored%s",
			m.ID, ErrNothingMatched, st.Filtered, opts.KeyPattern, flushed)
	}
	// Keys can expire while the restore runs; allow for those that expire before the check.
	checkAt := time.Now().Add(time.Second)
	var notEmpty []int // databases that had keys: checked key by key (see verify.go)
	for _, db := range dbs {
		n, err := dbSize(ctx, t.targets, db)
		if err != nil {
			return err
		}
		want := st.Keys[db]
		low := want - st.ExpiringBefore(db, checkAt)
		if wasEmpty[db] {
			if n < low || n > want {
				return fmt.Errorf("restore snapshot %s: %w: database %d has %d keys, expected %d", m.ID, ErrKeyCount, db, n, want)
			}
		} else if n < low {
			return fmt.Errorf("restore snapshot %s: %w: database %d has %d keys, expected at least %d", m.ID, ErrKeyCount, db, n, low)
		} else {
			notEmpty = append(notEmpty, db)
		}
	}
	if len(notEmpty) > 0 {
		return checkPresent(ctx, opts, m, sel, t.routing, notEmpty)
	}
	return nil
}

// checkDatabases refuses a selection of databases that names a database the snapshot does not have:
// restoring nothing and calling it a success would hide a typo or a wrong snapshot.
func checkDatabases(m repo.Manifest, want []int) error {
	var missing []int
	for _, db := range want {
		if _, ok := m.Databases[db]; !ok {
			missing = append(missing, db)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	have := slices.Sorted(maps.Keys(m.Databases))
	return &MissingDatabasesError{Snapshot: m.ID, Missing: missing, Have: have}
}

func joinInts(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// replicationBlocker returns why MethodReplication cannot restore into the target, or "" if it
// can: a full resynchronization replaces every database and the functions of a standalone
// master, so the target must be an empty standalone master without functions, reached without
// TLS (the replication link would carry the data in the clear) and not watched by Sentinel,
// running a Redis at least as new as the snapshot's source. It is called after the optional
// flush, so --flush empties the restored databases first.
func replicationBlocker(ctx context.Context, c *redis.Client, opts Options, cluster bool) (string, error) {
	switch {
	case cluster:
		return "the target is a Redis Cluster", nil
	case opts.Sentinel != nil:
		return "the target is managed by Sentinel, which would see its master turn into a replica", nil
	case opts.Redis.TLS != nil:
		return "the connection uses TLS and the replication link would carry the data unencrypted", nil
	}
	txt, err := c.Info(ctx, "server", "replication", "keyspace").Result()
	if err != nil {
		return "", fmt.Errorf("read redis info: %w", err)
	}
	info := redisconn.ParseInfo(txt)
	if !strings.Contains(txt, "role:master") {
		return "the target is a replica", nil
	}
	for db, n := range info.Keys {
		if n > 0 {
			return fmt.Sprintf("database %d of the target has %d keys, and a full resynchronization replaces every database", db, n), nil
		}
	}
	fns, err := c.Do(ctx, "FUNCTION", "LIST").Slice()
	if err == nil && len(fns) > 0 {
		return "the target has functions, which a full resynchronization would remove", nil
	}
	return "", nil
}

// dbSize sums DBSIZE of db over the targets (the masters of a cluster).
func dbSize(ctx context.Context, targets []redisconn.Options, db int) (int64, error) {
	var total int64
	for _, o := range targets {
		c := o.Client(db)
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil {
			return 0, fmt.Errorf("dbsize of database %d on %s: %w", db, o.Addr, err)
		}
		total += n
	}
	return total, nil
}

func flushDB(ctx context.Context, targets []redisconn.Options, db int) error {
	for _, o := range targets {
		c := o.Client(db)
		err := c.FlushDB(ctx).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("flush database %d on %s: %w", db, o.Addr, err)
		}
	}
	return nil
}

// ErrLossy is returned when the target cannot hold some of the snapshot's values and
// Options.AllowLossy is not set. Nothing has been written to the target then.
var ErrLossy = errors.New("the target cannot hold every value of the snapshot")

// checkLossless reads the selected keys of the snapshot and converts each for the target,
// failing with ErrLossy, a count per reason and the first keys, if any cannot be converted.
// It costs one more read of the snapshot, and only restores into an older server pay it.
func checkLossless(ctx context.Context, r *repo.Repository, m repo.Manifest, sel load.Selection, target rdb.Target) error {
	sr, err := r.OpenSnapshot(ctx, m)
	if err != nil {
		return err
	}
	defer sr.Close()
	sel.DropLossy = true
	st := load.NewStats()
	keys := load.NewKeys(sr, sel, &st)
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if _, err := keys.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("read snapshot %s: %w", m.ID, err)
		}
		if !keys.Keep() {
			continue
		}
		if _, _, err := keys.Converted(); err != nil {
			return fmt.Errorf("read snapshot %s: %w", m.ID, err)
		}
	}
	if st.Dropped == 0 {
		return nil
	}
	var reasons, examples []string // the distinct reasons, and the first keys
	for _, d := range st.DroppedKeys {
		if r := strings.TrimPrefix(d.Reason, rdb.ErrLossy.Error()+": "); !slices.Contains(reasons, r) {
			reasons = append(reasons, r)
		}
		if len(examples) < 5 {
			examples = append(examples, fmt.Sprintf("db %d %q", d.DB, d.Key))
		}
	}
	return &LossyError{Snapshot: m.ID, Target: target.Name, Keys: st.Dropped, Reasons: reasons, Examples: examples}
}

// plural returns one when n is 1, else many formatted with n-1 (the highest database number).
func plural(n int, one, many string) string {
	if n <= 1 {
		return one
	}
	return fmt.Sprintf(many, n-1)
}
