package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/resp"
)

// Methods of reading the keys from the source.
const (
	// MethodAuto uses MethodReplication on a standalone server that serves a replica and
	// MethodDump otherwise (cluster mode, PSYNC refused), saying why in one line.
	MethodAuto = "auto"
	// MethodReplication connects as a replica and turns the RDB of a full resynchronization
	// into the snapshot as it streams: one fork of the server, so the snapshot is the dataset
	// at one instant (the replication ID and offset in the manifest), serialized by the server.
	// The fork costs the server copy-on-write memory for the pages written while it runs.
	MethodReplication = "replication"
	// MethodDump reads the keys with SCAN and pipelined DUMP: no fork, but keys written while
	// the SCAN runs may or may not be in the snapshot.
	MethodDump = "dump"
)

// CheckMethod fails unless m names a backup method (empty means MethodAuto).
func CheckMethod(m string) error {
	switch m {
	case "", MethodAuto, MethodReplication, MethodDump:
		return nil
	}
	return fmt.Errorf("unknown backup method %q (use %s, %s or %s)", m, MethodAuto, MethodReplication, MethodDump)
}

// replicationPoint is the instant of the source's replication history a snapshot represents.
type replicationPoint struct {
	ReplID string
	Offset int64
}

// dumpByReplication writes the databases dbs (all when empty) of the RDB of a full
// resynchronization to w as the snapshot stream (SELECT, RESTORE ... REPLACE ABSTTL). Errors
// that wrap replication.ErrSyncRefused come before anything was written.
func dumpByReplication(ctx context.Context, opts Options, dbs []int, w io.Writer) (dump.Stats, replicationPoint, error) {
	st := dump.Stats{Keys: map[int]int64{}}
	fs, err := replication.StartFullSync(ctx, replication.SyncOptions{Redis: opts.Redis, Logf: opts.Logf})
	if err != nil {
		return st, replicationPoint{}, err
	}
	defer fs.Close()
	stop := context.AfterFunc(ctx, func() { fs.Close() })
	defer stop()
	point := replicationPoint{ReplID: fs.ReplID, Offset: fs.Offset}

	rd := rdb.NewReader(fs.RDB)
	hdr, err := rd.Header()
	if err != nil {
		return st, point, readErr(ctx, err)
	}
	st.RDBVersion = hdr.Version
	var buf []byte
	db := -1
	for n := 0; ; n++ {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, point, readErr(ctx, err)
		}
		if len(dbs) > 0 && !slices.Contains(dbs, e.DB) {
			continue
		}
		if e.ExpireAtMs > 0 && e.ExpireAtMs <= time.Now().UnixMilli() {
			st.Skipped++ // expired, not yet evicted: DUMP would not have found it either
			continue
		}
		buf = buf[:0]
		if e.DB != db {
			db = e.DB
			buf = resp.AppendCommand(buf, "SELECT", fmt.Sprint(db))
		}
		buf = resp.AppendArray(buf, 6)
		buf = resp.AppendBulkString(buf, "RESTORE")
		buf = resp.AppendBulk(buf, e.Key)
		buf = resp.AppendBulkInt(buf, e.ExpireAtMs)
		buf = resp.AppendBulk(buf, e.Payload)
		buf = resp.AppendBulkString(buf, "REPLACE")
		buf = resp.AppendBulkString(buf, "ABSTTL")
		if _, err := w.Write(buf); err != nil {
			return st, point, fmt.Errorf("write snapshot: %w", err)
		}
		st.Keys[db]++
		st.Total++
		st.Bytes += int64(len(buf))
		if opts.Progress != nil {
			opts.Progress.Keys.Add(1)
			opts.Progress.Bytes.Add(int64(len(buf)))
		}
		if cap(buf) > 16<<20 {
			buf = nil // do not keep a huge key's buffer for the rest of the backup
		}
	}
	return st, point, nil
}

// readErr says where a failed transfer came from; a cancelled backup reports the cancellation.
func readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("read the source's RDB transfer: %w", err)
}
