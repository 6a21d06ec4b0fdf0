package backup

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/stream"
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
	// MethodImport is recorded for a snapshot made from an RDB file by Import.
	MethodImport = "import"
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
func dumpByReplication(ctx context.Context, opts Options, info redisconn.ServerInfo, dbs []int, w io.Writer) (dump.Stats, replicationPoint, error) {
	st := dump.Stats{Keys: map[int]int64{}}
	fs, err := replication.StartFullSync(ctx, replication.SyncOptions{Redis: opts.Redis, Logf: opts.Logf, Server: &info})
	if err != nil {
		return st, replicationPoint{}, err
	}
	defer fs.Close()
	stop := context.AfterFunc(ctx, func() { fs.Close() })
	defer stop()
	point := replicationPoint{ReplID: fs.ReplID, Offset: fs.Offset}

	st, err = writeRDB(ctx, fs.RDBReader(), dbs, w, opts.Progress, nil)
	if err == nil {
		err = fs.EndRDB()
	}
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		err = fmt.Errorf("read the source's RDB transfer: %w", fs.Explain(ctx, err))
	}
	return st, point, err
}

// writeRDB writes the keys of the databases dbs (all when empty) of an RDB file to w as the
// snapshot stream: SELECT when the database changes, then RESTORE key abs-expiry payload
// REPLACE ABSTTL per key, the payload copied from the file. Keys already expired are skipped.
// Records are gathered into writes of about batchBytes; a payload larger than that is written
// from the reader's buffer, not copied again.
//
// check, if set, is given every key before it is written (Import sets it: a file is not a
// server, and what it holds must be proven loadable first).
func writeRDB(ctx context.Context, rd *rdb.Reader, dbs []int, w io.Writer, pr *progress.Counter, check func(*rdb.Entry) error) (st dump.Stats, err error) {
	st = dump.Stats{Keys: map[int]int64{}}
	db := -1
	// Keys of the current database are counted here and added to st.Keys when it changes: a
	// map update per key costs more than the rest of the bookkeeping.
	var inDB int64
	defer func() {
		if db >= 0 {
			st.Keys[db] += inDB
		}
	}()
	hdr, err := rd.Header()
	if err != nil {
		return st, err
	}
	st.RDBVersion = hdr.Version
	buf := make([]byte, 0, batchBytes+64<<10)
	var keys int64 // since the last flush
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
		st.Bytes += int64(len(buf))
		if pr != nil {
			pr.Keys.Add(keys)
			pr.Bytes.Add(int64(len(buf)))
		}
		buf, keys = buf[:0], 0
		return nil
	}
	now := time.Now().UnixMilli()
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			now = time.Now().UnixMilli()
		}
		e, err := rd.Next()
		if err == io.EOF { // exactly: the reader wraps io.EOF in the error for a file that ends early
			for _, code := range rd.Functions() {
				st.Functions = append(st.Functions, string(code))
			}
			return st, flush()
		}
		if err != nil {
			return st, err
		}
		if len(dbs) > 0 && !slices.Contains(dbs, e.DB) {
			continue
		}
		if e.ExpireAtMs > 0 && e.ExpireAtMs <= now {
			st.Skipped++ // expired, not yet evicted: DUMP would not have found it either
			continue
		}
		if check != nil {
			if err := check(e); err != nil {
				return st, err
			}
		}
		if e.DB != db {
			if db >= 0 {
				st.Keys[db] += inDB
			}
			db, inDB = e.DB, 0
			buf = stream.AppendSelect(buf, db)
		}
		if len(e.Payload) < batchBytes {
			buf = stream.AppendRestore(buf, e.Key, e.ExpireAtMs, e.Payload)
		} else {
			buf = stream.AppendRestoreStart(buf, e.Key, e.ExpireAtMs, len(e.Payload))
			if err := flush(); err != nil {
				return st, err
			}
			if _, err := w.Write(e.Payload); err != nil {
				return st, fmt.Errorf("write snapshot: %w", err)
			}
			st.Bytes += int64(len(e.Payload))
			if pr != nil {
				pr.Bytes.Add(int64(len(e.Payload)))
			}
			buf = stream.AppendRestoreEnd(buf)
		}
		keys++
		inDB++
		st.Total++
		if len(buf) >= batchBytes {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
}

// batchBytes is the size of the writes writeRDB gathers records into: one compressor call per
// batch rather than per key.
const batchBytes = 64 << 10
