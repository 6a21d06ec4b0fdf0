package load

import (
	"io"
	"slices"

	"stash.dev/redis/runner/stream"
)

// scanner reads the RESTORE records of a snapshot stream (see runner/stream) and decides which
// of them are restored, keeping the statistics both loaders report. Usage per key: next, then
// keep to decide; a kept key's payload is read with dec.ReadPayload or dec.Payload, a dropped
// one is skipped by the next call to next.
type scanner struct {
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

func newScanner(r io.Reader, opts Options, st *Stats) *scanner {
	sc := &scanner{
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

func (sc *scanner) wants(db int) bool {
	return len(sc.opts.Databases) == 0 || slices.Contains(sc.opts.Databases, db)
}

// next reads up to the payload of the next RESTORE record and sets rec and dbWanted. It returns
// io.EOF at the clean end of the stream.
func (sc *scanner) next() error {
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
func (sc *scanner) keep() bool {
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
