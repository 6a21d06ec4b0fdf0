package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// RDB is the RDB file (a BGSAVE, a managed service's export); Source names it in the manifest.
	RDB        io.Reader
	Source     string
	Repository *repo.Repository
	// Databases to import; empty means every database of the file.
	Databases []int
	// Hostname and RunnerVersion are recorded in the manifest.
	Hostname, RunnerVersion string
	// Progress, if set, is updated while the file is read.
	Progress *progress.Counter
}

// Import turns an RDB file into a snapshot of the repository: each key's value is copied from
// the file into a RESTORE record, never re-encoded, so the snapshot restores like one taken
// from the server that wrote the file. A file that ends early or fails its checksum, holds a
// value that Redis's deep sanitization would refuse (rdb.Validate), or holds a key twice in a
// database leaves no snapshot: such a file crashes or stops a server that loads it.
func Import(ctx context.Context, opts ImportOptions) (Result, error) {
	start := time.Now()
	if opts.Repository == nil || opts.RDB == nil {
		return Result{}, errors.New("import: no repository or no file")
	}
	rd := rdb.NewReader(opts.RDB)
	hdr, err := rd.Header()
	if err != nil {
		return Result{}, fmt.Errorf("import %s: %w", opts.Source, err)
	}
	product := redisconn.ProductRedis
	version, ok := hdr.AuxValue("redis-ver")
	if v, isValkey := hdr.AuxValue("valkey-ver"); isValkey {
		product, version, ok = redisconn.ProductValkey, "valkey "+v, true
	}
	if !ok {
		version = fmt.Sprintf("unknown (RDB version %d)", hdr.Version)
	}
	id := repo.NewID(start)
	sw, err := opts.Repository.NewSnapshotWriter(ctx, id)
	if err != nil {
		return Result{}, err
	}
	st, err := writeRDB(ctx, rd, opts.Databases, sw, opts.Progress, importCheck())
	if err != nil {
		sw.Abort()
		return Result{}, fmt.Errorf("import %s: %w", opts.Source, err)
	}
	m := repo.Manifest{
		ID: id, Time: start.UTC(), Hostname: opts.Hostname, Source: opts.Source,
		Product: product, RedisVersion: version, RedisMode: "standalone", RunnerVersion: opts.RunnerVersion, Method: MethodImport,
	}
	res, err := commit(ctx, opts.Repository, sw, m, st)
	if err != nil {
		return Result{}, fmt.Errorf("import %s: %w", opts.Source, err)
	}
	return res, nil
}

// importCheck returns the check Import gives every key: its value must pass rdb.Validate and
// the key must not have been seen before in its database (rdb.KeySet: memory grows by 20 to 40
// bytes a key, whatever the keys' sizes).
func importCheck() func(*rdb.Entry) error {
	seen := rdb.NewKeySet()
	return func(e *rdb.Entry) error {
		if err := seen.Add(e.DB, e.Key); err != nil {
			return err
		}
		if err := rdb.Validate(e.Payload); err != nil {
			return fmt.Errorf("key %q of database %d: %w", e.Key, e.DB, err)
		}
		return nil
	}
}
