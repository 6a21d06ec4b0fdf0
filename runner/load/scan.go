package load

import (
	"io"
	"slices"
	"time"

	"stash.dev/redis/runner/stream"
)

// Selection says which keys of a snapshot a loader writes.
type Selection struct {
	// Databases restricts the load to these databases; empty means all.
	Databases []int
	// KeyPattern restricts the load to keys matching this Redis glob pattern; empty means all.
	KeyPattern string
	// Now returns the current time; nil means time.Now. Keys whose absolute expiry is not after
	// Now are skipped, as Redis would not create them.
	Now func() time.Time
}

// NewKeys returns a Keys that reads r and counts into st (whose maps must be set, as by
// NewStats).
func NewKeys(r io.Reader, sel Selection, st *Stats) *Keys {
	if sel.Now == nil {
		sel.Now = time.Now
	}
	return newScanner(r, Options{Selection: sel}, st)
}

// NewStats returns empty Stats.
func NewStats() Stats {
	return Stats{Keys: map[int]int64{}, ExpiringBy: map[int]map[int64]int64{}}
}

// Next reads the next record up to its payload; io.EOF is the clean end of the stream.
func (sc *Keys) Next() (stream.Record, error) { err := sc.next(); return sc.rec, err }

// Keep reports whether the record Next returned is loaded, counting it as filtered or expired
// if not.
func (sc *Keys) Keep() bool { return sc.keep() }

// Payload reads the current record's payload into a buffer of the decoder's (see
// stream.Decoder.Payload).
func (sc *Keys) Payload() ([]byte, error) { return sc.dec.Payload() }

// Keys reads the RESTORE records of a snapshot stream (see runner/stream) and decides which of
// them are loaded, keeping the statistics both loaders (Run here and runner/replication) report.
// Usage per key: Next, then Keep to decide; a kept key's payload is read with Payload (or
// dec.ReadPayload), a dropped one is skipped by the next call to Next.
type Keys struct {
	dec      *stream.Decoder
	opts     Options
	st       *Stats
	pattern  []byte
	startSec int64
	nowMs    int64
	n        int

	// rec is the current key; dbWanted says whether its database is restored.
	rec      stream.Record
	wantedDB int
	dbWanted bool
}

func newScanner(r io.Reader, opts Options, st *Stats) *Keys {
	sc := &Keys{
		dec:      stream.NewDecoder(r),
		opts:     opts,
		st:       st,
		startSec: opts.Now().Unix(),
		nowMs:    opts.Now().UnixMilli(),
	}
	if opts.KeyPattern != "" {
		sc.pattern = []byte(opts.KeyPattern)
	}
	sc.dbWanted = sc.wants(0)
	return sc
}

func (sc *Keys) wants(db int) bool {
	return len(sc.opts.Databases) == 0 || slices.Contains(sc.opts.Databases, db)
}

// next reads up to the payload of the next RESTORE record and sets rec and dbWanted. It returns
// io.EOF at the clean end of the stream.
func (sc *Keys) next() error {
	if sc.n%1024 == 0 {
		sc.nowMs = sc.opts.Now().UnixMilli()
	}
	sc.n++
	var err error
	sc.rec, err = sc.dec.Next()
	sc.st.Bytes = sc.dec.Bytes()
	if err != nil {
		return err
	}
	if sc.rec.DB != sc.wantedDB {
		sc.wantedDB, sc.dbWanted = sc.rec.DB, sc.wants(sc.rec.DB)
	}
	return nil
}

// keep decides whether the current key is restored, counting it as filtered or expired if not.
func (sc *Keys) keep() bool {
	ttl := sc.rec.ExpireAt
	switch {
	case !sc.dbWanted || (sc.pattern != nil && !Match(sc.pattern, sc.rec.Key)):
		sc.st.Filtered++
		return false
	case ttl > 0 && ttl <= sc.nowMs:
		sc.st.Expired++
		return false
	}
	if ttl > 0 && ttl/1000 < sc.startSec+86400 {
		m := sc.st.ExpiringBy[sc.rec.DB]
		if m == nil {
			m = map[int64]int64{}
			sc.st.ExpiringBy[sc.rec.DB] = m
		}
		m[ttl/1000]++
	}
	return true
}
