// Package stream is the one owner of the snapshot stream's format: what a backup writes into a
// repository's data object and what a restore reads out of it (after decryption and
// decompression). Every writer and reader of the stream goes through this package.
//
// # Format
//
// The stream is a sequence of Redis commands in RESP2 (arrays of bulk strings), so that it can be
// replayed as it is with `redis-cli --pipe` (see `stash-runner cat`). Two commands occur:
//
//	SELECT db
//	RESTORE key expire-at payload REPLACE ABSTTL
//
// SELECT names the database of the RESTORE records that follow it; before the first SELECT the
// database is 0. A stream of a Redis Cluster holds database 0 only. db is a decimal integer.
//
// RESTORE holds one key: key is the key's name (binary), expire-at is the key's absolute expiry
// in Unix milliseconds as a decimal integer, 0 meaning no expiry (see ExpireAt for how it is
// computed from PEXPIRETIME or PTTL), and payload is the key's DUMP serialization, whose footer
// names its RDB version (runner/rdb reads it). REPLACE and ABSTTL make the command, replayed as it
// is, overwrite an existing key and read expire-at as absolute. Writers always write exactly these
// six arguments; the Decoder accepts RESTORE with four or more and ignores what follows the
// payload, so the loaders decide the modifiers (REPLACE only when asked) themselves.
//
// Keys are not sorted and a database may be selected more than once (a cluster backup
// interleaves the keys of several nodes, and appends the keys of migrating slots at the end). A
// key appears at most once. Anything else in the stream is an error for the Decoder.
//
// The repository's manifest (runner/repo) counts the keys and names the RDB version; the stream
// itself has no header or trailer, and its integrity is checked by the repository layer.
//
// # Writers and readers
//
// The hot writer (runner/dump) appends records into reused batch buffers with AppendRestoreStart
// and AppendRestoreEnd, reading each payload from the server straight into its place in the
// buffer. Cold writers (the keys of migrating cluster slots, tests) use the Encoder. Readers use
// the Decoder, which reads a payload into a buffer of the caller's (ReadPayload: the RESTORE
// loader reads it straight into the command it sends on) or skips it.
package stream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"stash.dev/redis/runner/resp"
)

var (
	selectHead  = []byte("*2\r\n$6\r\nSELECT\r\n")
	restoreHead = []byte("*6\r\n$7\r\nRESTORE\r\n")
	restoreTail = []byte("\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n")
)

// AppendSelect appends a SELECT record.
func AppendSelect(b []byte, db int) []byte {
	b = append(b, selectHead...)
	return resp.AppendBulkInt(b, int64(db))
}

// AppendRestoreStart appends a RESTORE record up to its payload of payloadLen bytes. The caller
// appends exactly payloadLen bytes of payload (RestoreEndLen more bytes of capacity make
// AppendRestoreEnd allocation-free) and then calls AppendRestoreEnd.
func AppendRestoreStart(b []byte, key []byte, expireAtMs int64, payloadLen int) []byte {
	b = append(b, restoreHead...)
	b = resp.AppendBulk(b, key)
	b = resp.AppendBulkInt(b, expireAtMs)
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(payloadLen), 10)
	return append(b, '\r', '\n')
}

// RestoreEndLen is the number of bytes AppendRestoreEnd appends.
var RestoreEndLen = len(restoreTail)

// AppendRestoreEnd appends the end of a RESTORE record after its payload.
func AppendRestoreEnd(b []byte) []byte { return append(b, restoreTail...) }

// AppendRestore appends a whole RESTORE record.
func AppendRestore(b []byte, key []byte, expireAtMs int64, payload []byte) []byte {
	b = AppendRestoreStart(b, key, expireAtMs, len(payload))
	b = append(b, payload...)
	return AppendRestoreEnd(b)
}

// ExpireAt maps the reply of PEXPIRETIME (or of PTTL, when relative is true: servers before
// Redis 7 have no PEXPIRETIME) to the expire-at field of a RESTORE record. exists is false for
// -2, a key that does not exist; -1, a key without expiry, maps to 0.
func ExpireAt(reply int64, relative bool) (expireAtMs int64, exists bool) {
	switch {
	case reply == -2:
		return 0, false
	case reply < 0:
		return 0, true
	case relative:
		return reply + time.Now().UnixMilli(), true
	}
	return reply, true
}

// Encoder writes records to an io.Writer, one Write per record. For cold paths: a hot writer
// appends many records into one buffer with the Append functions.
type Encoder struct {
	w   io.Writer
	buf []byte
	n   int64
}

// NewEncoder returns an Encoder that writes to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Select writes a SELECT record.
func (e *Encoder) Select(db int) error {
	return e.write(AppendSelect(e.buf[:0], db))
}

// Restore writes a RESTORE record.
func (e *Encoder) Restore(key []byte, expireAtMs int64, payload []byte) error {
	return e.write(AppendRestore(e.buf[:0], key, expireAtMs, payload))
}

// Bytes returns the number of bytes written so far.
func (e *Encoder) Bytes() int64 { return e.n }

func (e *Encoder) write(b []byte) error {
	e.buf = b
	n, err := e.w.Write(b)
	e.n += int64(n)
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Record is the head of a RESTORE record as the Decoder has read it: everything but the payload,
// which the caller reads with ReadPayload or Payload, or leaves for Next to skip.
type Record struct {
	// DB is the database the last SELECT named (0 before any).
	DB int
	// Key is valid until the next call to Next.
	Key []byte
	// ExpireAt is the absolute expiry in Unix milliseconds; 0 for none.
	ExpireAt int64
	// PayloadLen is the length of the payload.
	PayloadLen int
}

// Decoder reads the records of a stream. It buffers its input and allocates nothing per record
// once its buffers have grown to the largest key.
type Decoder struct {
	rd  *resp.Reader
	cr  countingReader
	arg []byte
	rec Record
	// argc is the number of arguments of the current RESTORE; pending is true while its payload
	// has not been read.
	argc    int
	pending bool
	payload []byte
}

// NewDecoder returns a Decoder that reads from r.
func NewDecoder(r io.Reader) *Decoder {
	d := &Decoder{cr: countingReader{r: r}}
	d.rd = resp.NewReader(bufio.NewReaderSize(&d.cr, 1<<20))
	return d
}

// Bytes returns the number of bytes read from the underlying reader so far (ahead of the records
// returned, by up to the buffer's size; all of the stream once Next returned io.EOF).
func (d *Decoder) Bytes() int64 { return d.cr.n }

// Next skips the rest of the current record, if any, follows SELECT records, and reads the next
// RESTORE record up to its payload. It returns io.EOF at the clean end of the stream; a stream
// that ends within a record is io.ErrUnexpectedEOF.
func (d *Decoder) Next() (Record, error) {
	if d.pending {
		if err := d.rd.DiscardBulkData(d.rec.PayloadLen); err != nil {
			return Record{}, fmt.Errorf("read snapshot: %w", noEOF(err))
		}
		if err := d.endRecord(); err != nil {
			return Record{}, err
		}
	}
	for {
		argc, err := d.rd.ReadArrayLen()
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		if err != nil {
			return Record{}, fmt.Errorf("read snapshot: %w", err)
		}
		if argc < 1 {
			return Record{}, fmt.Errorf("read snapshot: %w: empty command", resp.ErrProtocol)
		}
		if d.arg, _, err = d.rd.AppendBulkReply(d.arg[:0]); err != nil {
			return Record{}, fmt.Errorf("read snapshot: %w", noEOF(err))
		}
		switch {
		case bytes.EqualFold(d.arg, []byte("SELECT")):
			if argc != 2 {
				return Record{}, fmt.Errorf("read snapshot: %w: SELECT with %d arguments", resp.ErrProtocol, argc-1)
			}
			if d.arg, _, err = d.rd.AppendBulkReply(d.arg[:0]); err != nil {
				return Record{}, fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			db, err := strconv.Atoi(string(d.arg))
			if err != nil {
				return Record{}, fmt.Errorf("read snapshot: %w: bad database %q", resp.ErrProtocol, d.arg)
			}
			d.rec.DB = db
		case bytes.EqualFold(d.arg, []byte("RESTORE")):
			if argc < 4 {
				return Record{}, fmt.Errorf("read snapshot: %w: RESTORE with %d arguments", resp.ErrProtocol, argc-1)
			}
			d.argc = argc
			var isNil bool
			if d.rec.Key, isNil, err = d.rd.AppendBulkReply(d.rec.Key[:0]); err != nil || isNil {
				return Record{}, fmt.Errorf("read snapshot: bad key: %w", noEOF(orProto(err)))
			}
			if d.arg, _, err = d.rd.AppendBulkReply(d.arg[:0]); err != nil {
				return Record{}, fmt.Errorf("read snapshot: %w", noEOF(err))
			}
			if d.rec.ExpireAt, err = resp.ParseInt(d.arg); err != nil {
				return Record{}, fmt.Errorf("read snapshot: bad ttl of key %q: %w", d.rec.Key, err)
			}
			n, err := d.rd.ReadBulkLen()
			if err != nil || n < 0 {
				return Record{}, fmt.Errorf("read snapshot: bad payload of key %q: %w", d.rec.Key, noEOF(orProto(err)))
			}
			d.rec.PayloadLen, d.pending = n, true
			return d.rec, nil
		default:
			return Record{}, fmt.Errorf("read snapshot: unsupported command %q (not a stash snapshot?)", d.arg)
		}
	}
}

// ReadPayload reads the payload of the record Next returned into dst, which has exactly its
// PayloadLen, and the rest of the record.
func (d *Decoder) ReadPayload(dst []byte) error {
	if !d.pending || len(dst) != d.rec.PayloadLen {
		return fmt.Errorf("read snapshot: payload of %d bytes read into %d (no record pending: %v)", d.rec.PayloadLen, len(dst), !d.pending)
	}
	d.pending = false
	if err := d.rd.ReadBulkData(dst); err != nil {
		return fmt.Errorf("read snapshot: %w", noEOF(err))
	}
	return d.endRecord()
}

// Payload reads the payload of the record Next returned into a buffer of the Decoder's, valid
// until the next call to Payload.
func (d *Decoder) Payload() ([]byte, error) {
	if !d.pending {
		return nil, fmt.Errorf("read snapshot: no record pending")
	}
	d.pending = false
	var err error
	if d.payload, err = d.rd.AppendBulkData(d.payload[:0], d.rec.PayloadLen); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", noEOF(err))
	}
	return d.payload, d.endRecord()
}

// endRecord discards the arguments after the payload (REPLACE, ABSTTL).
func (d *Decoder) endRecord() error {
	d.pending = false
	for range d.argc - 4 {
		if err := d.rd.Discard(); err != nil {
			return fmt.Errorf("read snapshot: %w", noEOF(err))
		}
	}
	return nil
}

func orProto(err error) error {
	if err == nil {
		return fmt.Errorf("%w: nil bulk string", resp.ErrProtocol)
	}
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: snapshot stream ends in the middle of a command", io.ErrUnexpectedEOF)
	}
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
