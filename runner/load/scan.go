package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"stash.dev/redis/runner/resp"
)

// scanner reads the RESTORE commands of a snapshot stream one key at a time, following SELECT,
// and keeps the statistics both loaders report. Usage per key: next, then keep to decide, then
// either skipPayload or payloadLen + readPayload, then endCommand.
type scanner struct {
	rd       *resp.Reader
	opts     Options
	st       *Stats
	pattern  []byte
	startSec int64
	nowMs    int64
	n        int
	argc     int

	// The current key.
	db       int
	dbWanted bool
	key      []byte
	ttl      int64 // absolute expiry in unix ms; 0 for none
	arg      []byte
}

func newScanner(r io.Reader, opts Options, st *Stats) *scanner {
	sc := &scanner{
		rd:       resp.NewReader(bufio.NewReaderSize(&countingReader{r: r, n: &st.Bytes}, 1<<20)),
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

// next reads up to the payload of the next RESTORE command and sets db, key and ttl. It returns
// io.EOF at the clean end of the stream.
func (sc *scanner) next() error {
	for {
		if sc.n%1024 == 0 {
			sc.nowMs = sc.opts.Now().UnixMilli()
		}
		sc.n++
		argc, err := sc.rd.ReadArrayLen()
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if argc < 1 {
			return fmt.Errorf("read snapshot: %w: empty command", resp.ErrProtocol)
		}
		sc.argc = argc
		if sc.arg, _, err = sc.rd.AppendBulkReply(sc.arg[:0]); err != nil {
			return fmt.Errorf("read snapshot: %w", noEOF(err))
		}
		switch {
		case bytes.EqualFold(sc.arg, []byte("SELECT")):
			if argc != 2 {
				return fmt.Errorf("read snapshot: %w: SELECT with %d arguments", resp.ErrProtocol, argc-1)
			}
			if sc.arg, _, err = sc.rd.AppendBulkReply(sc.arg[:0]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			d, err := strconv.Atoi(string(sc.arg))
			if err != nil {
				return fmt.Errorf("read snapshot: %w: bad database %q", resp.ErrProtocol, sc.arg)
			}
			sc.db, sc.dbWanted = d, sc.wants(d)
		case bytes.EqualFold(sc.arg, []byte("RESTORE")):
			if argc < 4 {
				return fmt.Errorf("read snapshot: %w: RESTORE with %d arguments", resp.ErrProtocol, argc-1)
			}
			var isNil bool
			if sc.key, isNil, err = sc.rd.AppendBulkReply(sc.key[:0]); err != nil || isNil {
				return fmt.Errorf("read snapshot: bad key: %w", noEOF(orProto(err)))
			}
			if sc.arg, _, err = sc.rd.AppendBulkReply(sc.arg[:0]); err != nil {
				return fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			if sc.ttl, err = resp.ParseInt(sc.arg); err != nil {
				return fmt.Errorf("read snapshot: bad ttl of key %q: %w", sc.key, err)
			}
			return nil
		default:
			return fmt.Errorf("read snapshot: unsupported command %q (not a stash snapshot?)", sc.arg)
		}
	}
}

// keep decides whether the current key is restored, counting it as filtered or expired if not.
func (sc *scanner) keep() bool {
	switch {
	case !sc.dbWanted || (sc.pattern != nil && !Match(sc.pattern, sc.key)):
		sc.st.Filtered++
		return false
	case sc.ttl > 0 && sc.ttl <= sc.nowMs:
		sc.st.Expired++
		return false
	}
	if sc.ttl > 0 && sc.ttl/1000 < sc.startSec+86400 {
		m := sc.st.ExpiringBy[sc.db]
		if m == nil {
			m = map[int64]int64{}
			sc.st.ExpiringBy[sc.db] = m
		}
		m[sc.ttl/1000]++
	}
	return true
}

// skipPayload discards the payload and the rest of the current command.
func (sc *scanner) skipPayload() error {
	if err := sc.rd.Discard(); err != nil {
		return fmt.Errorf("read snapshot: %w", noEOF(err))
	}
	return sc.endCommand()
}

// payloadLen reads the length of the current key's payload; readPayload reads it.
func (sc *scanner) payloadLen() (int, error) {
	n, err := sc.rd.ReadBulkLen()
	if err != nil || n < 0 {
		return 0, fmt.Errorf("read snapshot: bad payload of key %q: %w", sc.key, noEOF(orProto(err)))
	}
	return n, nil
}

// readPayload reads the payload announced by payloadLen into dst, which has exactly its length.
func (sc *scanner) readPayload(dst []byte) error {
	if err := sc.rd.ReadBulkData(dst); err != nil {
		return fmt.Errorf("read snapshot: %w", noEOF(err))
	}
	return nil
}

// endCommand discards the original modifiers after the payload (REPLACE, ABSTTL): the loaders
// decide their own.
func (sc *scanner) endCommand() error {
	for range sc.argc - 4 {
		if err := sc.rd.Discard(); err != nil {
			return fmt.Errorf("read snapshot: %w", noEOF(err))
		}
	}
	return nil
}
