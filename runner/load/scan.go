package load

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"stash.dev/redis/runner/rdb"
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
	// Target, if set, is what the target server reads: each payload is converted for it
	// (rdb.Target.Convert), so that a snapshot of a newer server restores into an older one or
	// into Valkey. A value the target cannot hold fails the load, unless DropLossy.
	Target *rdb.Target
	// DropLossy skips the values the target cannot hold, counting and listing them in
	// Stats.Dropped, instead of failing.
	DropLossy bool
}

// MaxDroppedListed bounds the keys Stats.DroppedKeys lists; Stats.Dropped counts them all.
const MaxDroppedListed = 100

// DroppedKey is a key a load skipped because the target cannot hold its value.
type DroppedKey struct {
	DB     int    `json:"db"`
	Key    string `json:"key"`
	Reason string `json:"reason"`
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
	return Stats{Keys: map[int]int64{}, ExpiringBy: map[int][]int64{}}
}

// Next reads the next record up to its payload; io.EOF is the clean end of the stream.
func (sc *Keys) Next() (stream.Record, error) { err := sc.next(); return sc.rec, err }

// Keep reports whether the record Next returned is loaded, counting it as filtered or expired
// if not.
func (sc *Keys) Keep() bool { return sc.keep() }

// Converted reads the current record's payload and converts it for the target (see
// Selection.Target). keep is false for a value the target cannot hold that DropLossy skips;
// it is then counted in Stats.Dropped. The payload is in a buffer of the decoder's or of Keys',
// valid until the next call.
func (sc *Keys) Converted() (payload []byte, keep bool, err error) {
	p, err := sc.dec.Payload()
	if err != nil || sc.opts.Target == nil {
		return p, err == nil, err
	}
	out, err := sc.opts.Target.Convert(sc.converted[:0], p)
	switch {
	case err == nil:
		if &out[0] != &p[0] { // re-encoded into (a grown copy of) Keys' own buffer
			sc.converted = out
		}
		return out, true, nil
	case errors.Is(err, rdb.ErrLossy) && sc.opts.DropLossy:
		sc.st.Dropped++
		if len(sc.st.DroppedKeys) < MaxDroppedListed {
			sc.st.DroppedKeys = append(sc.st.DroppedKeys, DroppedKey{DB: sc.rec.DB, Key: string(sc.rec.Key), Reason: err.Error()})
		}
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("db %d key %q: %w", sc.rec.DB, sc.rec.Key, err)
}

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

	// expiring is st.ExpiringBy[expiringDB], kept at hand for the next key of that database.
	expiring   []int64
	expiringDB int

	// converted holds the last payload re-encoded for the target.
	converted []byte

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
	st.ExpiringFrom = sc.startSec
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

// expiringSeconds is how far ahead Stats.ExpiringBy counts expiries: a day.
const expiringSeconds = 86400

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
	if sec := ttl/1000 - sc.startSec; ttl > 0 && sec >= 0 && sec < expiringSeconds {
		if sc.expiringDB != sc.rec.DB || sc.expiring == nil {
			sc.expiringDB, sc.expiring = sc.rec.DB, sc.st.ExpiringBy[sc.rec.DB]
			if sc.expiring == nil {
				sc.expiring = make([]int64, expiringSeconds)
				sc.st.ExpiringBy[sc.rec.DB] = sc.expiring
			}
		}
		sc.expiring[sec]++
	}
	return true
}
