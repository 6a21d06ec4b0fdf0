// Package rdb reads and writes Redis RDB files, key by key, as DUMP payloads.
//
// A DUMP payload is an RDB object (type byte and value) followed by the RDB version and a CRC64
// of the payload. An RDB file is a header, then per database a SELECTDB and RESIZEDB opcode and
// the keys, each an optional expiry, the type byte, the key and the value, and an EOF opcode with
// a CRC64 of the whole file. Converting one into the other is a copy, which lets the runner hand a
// snapshot to Redis as a replication stream: Redis then loads it as it loads its own RDB files,
// with pre-sized tables and without a command per key. The Reader does the opposite: it turns an
// RDB file (a BGSAVE, the RDB of a full resync) into DUMP payloads that RESTORE accepts.
package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// payloadFooter is the RDB version (2 bytes) and CRC64 (8 bytes) at the end of a DUMP payload.
const payloadFooter = 10

// ErrPayload is returned for a DUMP payload that is too short or newer than the file's version.
var ErrPayload = errors.New("bad dump payload")

// Writer writes one RDB file. It is not safe for concurrent use.
type Writer struct {
	w       *bufio.Writer
	crc     uint64
	version int
	scratch []byte
	err     error
}

// NewWriter writes the header of an RDB file of the given format version (the version in the
// DUMP payloads that will be added) to w: "REDIS00NN", or "VALKEY0NN" for Valkey's own formats
// (80 and later), the only magic under which Valkey 9 loads them. Call Close to finish the file.
func NewWriter(w io.Writer, version int) (*Writer, error) {
	if version < 1 || version > 999 {
		return nil, fmt.Errorf("rdb: bad format version %d", version)
	}
	rw := &Writer{w: bufio.NewWriterSize(w, 256<<10), version: version}
	rw.write([]byte(Magic(version)))
	return rw, rw.err
}

// write appends b to the file and the checksum.
func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc = Checksum(w.crc, b)
	_, w.err = w.w.Write(b)
}

// SelectDB starts database db. keys and expires size the server's tables before the keys
// arrive; they are hints and need not be exact.
func (w *Writer) SelectDB(db int, keys, expires int64) error {
	b := append(w.scratch[:0], opSelectDB)
	b = appendLength(b, uint64(db))
	b = append(b, opResizeDB)
	b = appendLength(b, uint64(max(keys, 0)))
	b = appendLength(b, uint64(max(expires, 0)))
	w.scratch = b
	w.write(b)
	return w.err
}

// Add writes one key. expireAtMs is the absolute expiry in unix milliseconds, or 0 for none;
// payload is the key's DUMP payload.
func (w *Writer) Add(key []byte, expireAtMs int64, payload []byte) error {
	if w.err != nil {
		return w.err
	}
	v, err := FormatVersion(payload)
	if err != nil {
		return fmt.Errorf("key %q: %w", key, err)
	}
	if v > w.version {
		return fmt.Errorf("%w of key %q: RDB version %d is newer than the file's %d", ErrPayload, key, v, w.version)
	}
	// Both families share the types of formats 1–11; above those a type number means something
	// else in the other family, so such a payload must be converted (Target.Convert) first.
	if v > 11 && IsValkeyFormat(v) != IsValkeyFormat(w.version) {
		return fmt.Errorf("%w of key %q: RDB version %d cannot go into a file of version %d (convert it first)", ErrPayload, key, v, w.version)
	}
	b := w.scratch[:0]
	if expireAtMs > 0 {
		b = append(b, opExpireTimeMs)
		b = binary.LittleEndian.AppendUint64(b, uint64(expireAtMs))
	}
	b = append(b, payload[0]) // the value's type
	b = appendLength(b, uint64(len(key)))
	b = append(b, key...)
	w.scratch = b
	w.write(b)
	w.write(payload[1 : len(payload)-payloadFooter])
	return w.err
}

// Close writes the EOF opcode and the file's checksum and flushes. It does not close the
// underlying writer. Files of format 4 and older end at the EOF opcode: the checksum came with
// format 5, and a loader of an older file reads no further (a replica then finds the bytes
// where it expects the end mark of a diskless transfer).
func (w *Writer) Close() error {
	w.write([]byte{opEOF})
	if w.err != nil {
		return w.err
	}
	if w.version >= 5 {
		if _, err := w.w.Write(binary.LittleEndian.AppendUint64(nil, w.crc)); err != nil {
			return err
		}
	}
	return w.w.Flush()
}

// appendLength appends n in RDB length encoding.
func appendLength(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= 0xFFFFFFFF:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 0x81), n)
	}
}

// FormatVersion returns the RDB format version stored in a DUMP payload.
func FormatVersion(payload []byte) (int, error) {
	if len(payload) < payloadFooter+1 {
		return 0, fmt.Errorf("%w: %d bytes", ErrPayload, len(payload))
	}
	return int(binary.LittleEndian.Uint16(payload[len(payload)-payloadFooter:])), nil
}
