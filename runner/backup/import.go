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
// from the server that wrote the file. A file that ends early or fails its checksum leaves no
// snapshot.
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
	st, err := writeRDB(ctx, rd, opts.Databases, sw, opts.Progress)
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
