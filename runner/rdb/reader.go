package rdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// The reader is written for the runner rather than taken from a library: the Go RDB parsers
// (upstash/rdb, HDT3213/rdb, cupcake/rdb and their forks) decode values into Go objects, so
// RESTORE would need the value re-encoded, and none covers the list this one must (databases
// other than 0 in upstash/rdb, listpack sets, the hash field expiration types of 7.4+, streams
// of version 3, skipping module values structurally). redis/librdb, the reference, is C. Only
// the extent of each object is parsed here, never its content, so a key is copied byte for
// byte into a DUMP payload while its lengths are read.

// ErrFormat is wrapped by every error about the content of an RDB file.
var ErrFormat = errors.New("bad RDB file")

// ErrChecksum is wrapped by the error for a file whose CRC-64 does not match its content.
var ErrChecksum = errors.New("RDB checksum mismatch")

// maxVersion is the newest Redis RDB format version the reader knows (Redis 7.4 and 8.x), and
// maxValkeyVersion the newest of Valkey's own (Valkey 9).
const (
	maxVersion       = 12
	maxValkeyVersion = 80
)

// parseMagic returns the format version of an RDB file from its first 9 bytes: "REDIS" and four
// digits (versions 1–79), or "VALKEY" and three (Valkey's own, 80 and later).
func parseMagic(magic []byte) (int, error) {
	var digits []byte
	switch {
	case string(magic[:5]) == "REDIS":
		digits = magic[5:]
	case string(magic[:6]) == "VALKEY":
		digits = magic[6:]
	default:
		return 0, fmt.Errorf("%w: no REDIS or VALKEY magic at the start (%q)", ErrFormat, magic)
	}
	v, err := strconv.Atoi(string(digits))
	if err != nil || v < 1 || IsValkeyFormat(v) != (magic[0] == 'V') {
		return 0, fmt.Errorf("%w: bad version %q", ErrFormat, magic)
	}
	newest := maxVersion
	if IsValkeyFormat(v) {
		newest = maxValkeyVersion
	}
	if v > newest {
		return 0, fmt.Errorf("%w: RDB version %d is newer than this reader knows (%d)", ErrFormat, v, newest)
	}
	return v, nil
}

// chunk is how much a buffer grows at a time while a string of a claimed length is read, so a
// hostile length costs at most what the input really holds.
const chunk = 1 << 20

// Header is what an RDB file says before its first key.
type Header struct {
	// Version is the RDB format version of the file ("REDIS0011" → 11).
	Version int
	// Aux holds the AUX fields in file order: redis-ver, redis-bits, ctime, used-mem, repl-id,
	// repl-offset, aof-base, valkey-ver (Valkey 8+), lua (scripts, Redis 5–6), ...
	Aux []Aux
	// Functions holds the code of each function library (FUNCTION2 opcode, Redis 7.0+), as
	// FUNCTION LOAD accepts it.
	Functions [][]byte
}

// Aux is one AUX field of an RDB file.
type Aux struct {
	Name, Value string
}

// AuxValue returns the value of the last AUX field called name.
func (h *Header) AuxValue(name string) (string, bool) {
	for i := len(h.Aux) - 1; i >= 0; i-- {
		if h.Aux[i].Name == name {
			return h.Aux[i].Value, true
		}
	}
	return "", false
}

// Entry is one key of an RDB file.
type Entry struct {
	// DB is the database number (SELECTDB).
	DB int
	// Key is the key's name.
	Key []byte
	// ExpireAtMs is the absolute expiry in unix milliseconds, or 0 for none.
	ExpireAtMs int64
	// Type is the object's type byte (Type* constants).
	Type byte
	// Payload is the key's value as DUMP returns it: the type byte, the object's bytes copied
	// from the file, the file's RDB version (2 bytes, little endian) and a CRC-64 of all of it.
	// RESTORE accepts it on a server whose RDB version is at least the file's.
	Payload []byte
	// Idle is the LRU idle time in seconds (RESTORE IDLETIME), or -1 when the file has none.
	Idle int64
	// Freq is the LFU frequency (RESTORE FREQ), or -1 when the file has none.
	Freq int
}

// Clone returns a copy of e that does not share the reader's buffers.
func (e *Entry) Clone() *Entry {
	c := *e
	c.Key = slices.Clone(e.Key)
	c.Payload = slices.Clone(e.Payload)
	return &c
}

// Reader reads the keys of an RDB file one at a time. Memory is bounded by the largest single
// key. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	off     int64  // bytes consumed so far
	crc     uint64 // of the bytes consumed so far
	obj     []byte // the object being copied, while capture is on
	capture bool   // obj collects what is consumed; the file's checksum is updated at its end
	keyBuf  []byte
	entry   Entry // what Next returns, reused
	scratch [8]byte

	header   Header
	started  bool // the magic has been read
	db       int
	done     bool
	err      error
	pending  *Entry // the first key, read while the header was
	expireAt int64
	idle     int64
	freq     int
}

// NewReader reads an RDB file from r. When r is a *bufio.Reader it is read directly and never
// past the file's checksum, so a caller can go on reading what follows (the replication stream
// after a full resync's RDB); otherwise it is buffered.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 256<<10)
	}
	return &Reader{br: br, idle: -1, freq: -1}
}

// Offset returns how many bytes of the file have been read.
func (r *Reader) Offset() int64 { return r.off }

// Header reads the file's magic and everything before its first key (AUX fields, functions,
// module data) and returns it. Next calls it when it has not been called.
func (r *Reader) Header() (*Header, error) {
	if r.started {
		return &r.header, r.err
	}
	r.started = true
	magic := make([]byte, 9)
	if err := r.read(magic); err != nil {
		return nil, r.fail(fmt.Errorf("%w: header: %w", ErrFormat, err))
	}
	v, err := parseMagic(magic)
	if err != nil {
		return nil, r.fail(err)
	}
	r.header.Version = v
	e, err := r.next()
	if err != nil && err != io.EOF {
		return nil, err
	}
	r.pending = e
	return &r.header, nil
}

// Functions returns the function libraries read so far: all of them once Next has returned
// io.EOF (Redis writes them before the first database).
func (r *Reader) Functions() [][]byte { return r.header.Functions }

// Next returns the next key, or io.EOF after the file's EOF opcode once its checksum has been
// verified. Every other error is final. The Entry and its slices are the reader's buffers, valid
// until the next call (Clone keeps one): a file of many small keys is read without an
// allocation per key.
func (r *Reader) Next() (*Entry, error) {
	if !r.started {
		if _, err := r.Header(); err != nil {
			return nil, err
		}
	}
	if e := r.pending; e != nil {
		r.pending = nil
		return e, nil
	}
	return r.next()
}

func (r *Reader) fail(err error) error {
	r.err = err
	return err
}

func (r *Reader) next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.done {
		return nil, io.EOF
	}
	for {
		at := r.off
		op, err := r.byte()
		if err != nil {
			return nil, r.fail(r.errAt(at, "opcode", err))
		}
		switch op {
		case opEOF:
			return nil, r.finish()
		case opSelectDB:
			db, err := r.length()
			if err != nil || db > 1<<31 {
				return nil, r.fail(r.errAt(at, "SELECTDB", err))
			}
			r.db = int(db)
		case opResizeDB:
			if _, err := r.length(); err != nil {
				return nil, r.fail(r.errAt(at, "RESIZEDB", err))
			}
			if _, err := r.length(); err != nil {
				return nil, r.fail(r.errAt(at, "RESIZEDB", err))
			}
		case opSlotImport:
			if !IsValkeyFormat(r.header.Version) {
				return r.readEntry(at, op)
			}
			if _, err := r.decodedString(); err != nil { // the import job's name
				return nil, r.fail(r.errAt(at, "SLOT_IMPORT", err))
			}
			n, err := r.length()
			if err == nil && n > 1<<14 {
				err = fmt.Errorf("%d slot ranges", n)
			}
			if err == nil {
				err = r.skipLengths(int(2 * n)) // first and last slot of each range
			}
			if err != nil {
				return nil, r.fail(r.errAt(at, "SLOT_IMPORT", err))
			}
		case opSlotInfo:
			for range 3 { // slot, keys, expires
				if _, err := r.length(); err != nil {
					return nil, r.fail(r.errAt(at, "SLOT_INFO", err))
				}
			}
		case opAux:
			name, err := r.decodedString()
			if err != nil {
				return nil, r.fail(r.errAt(at, "AUX name", err))
			}
			value, err := r.decodedString()
			if err != nil {
				return nil, r.fail(r.errAt(at, "AUX "+string(name), err))
			}
			r.header.Aux = append(r.header.Aux, Aux{string(name), string(value)})
		case opFunction2:
			code, err := r.decodedString()
			if err != nil {
				return nil, r.fail(r.errAt(at, "FUNCTION2", err))
			}
			r.header.Functions = append(r.header.Functions, code)
		case opFunctionPreGA:
			return nil, r.fail(fmt.Errorf("%w: offset %d: a function in the format of Redis 7.0 release candidates, which no released server reads", ErrFormat, at))
		case opModuleAux:
			if _, err := r.length(); err != nil { // module id
				return nil, r.fail(r.errAt(at, "MODULE_AUX", err))
			}
			when, err := r.length() // the "when" opcode and value (RDB 9+ modules)
			if err == nil && when != moduleOpUInt {
				err = fmt.Errorf("when opcode %d, want %d", when, moduleOpUInt)
			}
			if err == nil {
				_, err = r.length()
			}
			if err == nil {
				err = r.skipModuleValue()
			}
			if err != nil {
				return nil, r.fail(r.errAt(at, "MODULE_AUX", err))
			}
		case opIdle:
			idle, err := r.length()
			if err != nil {
				return nil, r.fail(r.errAt(at, "IDLE", err))
			}
			r.idle = int64(min(idle, 1<<62))
		case opFreq:
			f, err := r.byte()
			if err != nil {
				return nil, r.fail(r.errAt(at, "FREQ", err))
			}
			r.freq = int(f)
		case opExpireTimeMs:
			if err := r.read(r.scratch[:8]); err != nil {
				return nil, r.fail(r.errAt(at, "EXPIRETIME_MS", err))
			}
			r.expireAt = int64(binary.LittleEndian.Uint64(r.scratch[:8]))
		case opExpireTime:
			if err := r.read(r.scratch[:4]); err != nil {
				return nil, r.fail(r.errAt(at, "EXPIRETIME", err))
			}
			r.expireAt = int64(binary.LittleEndian.Uint32(r.scratch[:4])) * 1000
		default:
			return r.readEntry(at, op)
		}
	}
}

// entry reads the key and object of type typ whose type byte was at offset at.
func (r *Reader) readEntry(at int64, typ byte) (*Entry, error) {
	if typeIn(typ, r.header.Version).name == "" {
		return nil, r.fail(fmt.Errorf("%w: offset %d: unknown object type %d (0x%02x) in RDB format %d", ErrFormat, at, typ, typ, r.header.Version))
	}
	key, err := r.key()
	if err != nil {
		return nil, r.fail(r.errAt(at, "key", err))
	}
	r.obj = append(r.obj[:0], typ)
	r.capture = true
	if IsValkeyFormat(r.header.Version) && typ == TypeValkeyHash2 {
		err = r.skipValkeyHash2()
	} else {
		err = r.skipObject(typ)
	}
	r.capture = false
	if err != nil {
		return nil, r.fail(fmt.Errorf("%w: key %q (%s) at offset %d: %w", ErrFormat, key, TypeNameIn(typ, r.header.Version), at, err))
	}
	// The object's bytes after the type byte (which byte() checksummed) join the file's checksum
	// in one call rather than one per element: the bulk of a file is objects.
	r.crc = Checksum(r.crc, r.obj[1:])
	payload := binary.LittleEndian.AppendUint16(r.obj, uint16(r.header.Version))
	payload = binary.LittleEndian.AppendUint64(payload, Checksum(0, payload))
	r.obj = payload[:0]
	if cap(r.obj) > maxKeptBuffer {
		r.obj = nil // do not keep a huge key's buffer for the rest of the file
	}
	r.entry = Entry{DB: r.db, Key: key, ExpireAtMs: r.expireAt, Type: typ, Payload: payload, Idle: r.idle, Freq: r.freq}
	r.expireAt, r.idle, r.freq = 0, -1, -1
	return &r.entry, nil
}

// maxKeptBuffer bounds the key and object buffers the reader reuses from one key to the next.
const maxKeptBuffer = 4 << 20

// key reads a key into the reader's key buffer (the common case: a plain string that fits).
func (r *Reader) key() ([]byte, error) {
	n, special, err := r.lengthOrEncoding()
	if err != nil {
		return nil, err
	}
	if special || n > maxKeptBuffer {
		return r.decodedStringAfter(n, special)
	}
	r.keyBuf = slices.Grow(r.keyBuf[:0], int(n))[:n]
	if err := r.read(r.keyBuf); err != nil {
		return nil, err
	}
	return r.keyBuf, nil
}

func (r *Reader) errAt(at int64, what string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = errors.New("out of range")
	}
	return fmt.Errorf("%w: %s at offset %d: %w", ErrFormat, what, at, err)
}

// finish checks the CRC-64 after the EOF opcode (RDB 5+; 0 means the writer computed none).
func (r *Reader) finish() error {
	r.done = true
	if r.header.Version < 5 {
		return io.EOF
	}
	want := r.crc
	if _, err := io.ReadFull(r.br, r.scratch[:8]); err != nil {
		return r.fail(r.errAt(r.off, "checksum", err))
	}
	r.off += 8
	got := binary.LittleEndian.Uint64(r.scratch[:8])
	if got != 0 && got != want {
		return r.fail(fmt.Errorf("%w: the file says %016x, its content has %016x", ErrChecksum, got, want))
	}
	return io.EOF
}

// skipObject reads an object of type typ (after its key), which capture copies.
func (r *Reader) skipObject(typ byte) error {
	switch typ {
	case TypeString, TypeHashZipmap, TypeListZiplist, TypeSetIntset, TypeZsetZiplist, TypeHashZiplist,
		TypeHashListpack, TypeZsetListpack, TypeSetListpack, TypeHashListpackExPreGA:
		return r.skipString()
	case TypeHashListpackEx:
		if err := r.skip(8); err != nil { // the smallest field expiry
			return err
		}
		return r.skipString()
	case TypeList, TypeSet, TypeListQuicklist:
		return r.skipStrings(1)
	case TypeHash:
		return r.skipStrings(2)
	case TypeZset:
		n, err := r.length()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := r.skipString(); err != nil {
				return err
			}
			if err := r.skipDecimalDouble(); err != nil {
				return err
			}
		}
		return nil
	case TypeZset2:
		n, err := r.length()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := r.skipString(); err != nil {
				return err
			}
			if err := r.skip(8); err != nil {
				return err
			}
		}
		return nil
	case TypeListQuicklist2:
		n, err := r.length()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := r.length(); err != nil { // container: plain or packed
				return err
			}
			if err := r.skipString(); err != nil {
				return err
			}
		}
		return nil
	case TypeHashMetadata, TypeHashMetadataPreGA:
		if typ == TypeHashMetadata {
			if err := r.skip(8); err != nil { // the smallest field expiry, which the TTLs are relative to
				return err
			}
		}
		n, err := r.length()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := r.length(); err != nil { // the field's TTL
				return err
			}
			if err := r.skipString(); err != nil { // field
				return err
			}
			if err := r.skipString(); err != nil { // value
				return err
			}
		}
		return nil
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return r.skipStream(typ)
	case TypeModule2:
		if _, err := r.length(); err != nil { // module id: name and encoding version
			return err
		}
		return r.skipModuleValue()
	case TypeModulePreGA:
		return errors.New("a module value in the format of Redis 4.0 release candidates cannot be read without its module")
	}
	return fmt.Errorf("unknown object type %d", typ)
}

// skipValkeyHash2 reads Valkey 9's hash with field TTLs: a count, then per field its name, its
// value and its absolute expiry (8 bytes).
func (r *Reader) skipValkeyHash2() error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := r.skipString(); err != nil { // field
			return err
		}
		if err := r.skipString(); err != nil { // value
			return err
		}
		if err := r.skip(8); err != nil { // expiry
			return err
		}
	}
	return nil
}

// skipStream reads a stream of format 1 (Redis 5–6.2), 2 (7.0) or 3 (7.2+).
func (r *Reader) skipStream(typ byte) error {
	n, err := r.length() // listpacks: master ID and listpack each
	if err != nil {
		return err
	}
	if err := r.skipStringsN(n * 2); err != nil {
		return err
	}
	fields := 3 // length, last ID ms, last ID seq
	if typ >= TypeStreamListpacks2 {
		fields += 5 // first ID, max deleted entry ID, entries added
	}
	if err := r.skipLengths(fields); err != nil {
		return err
	}
	groups, err := r.length()
	if err != nil {
		return err
	}
	for ; groups > 0; groups-- {
		if err := r.skipString(); err != nil { // name
			return err
		}
		fields := 2 // last delivered ID
		if typ >= TypeStreamListpacks2 {
			fields++ // entries read
		}
		if err := r.skipLengths(fields); err != nil {
			return err
		}
		pel, err := r.length()
		if err != nil {
			return err
		}
		for ; pel > 0; pel-- {
			if err := r.skip(16 + 8); err != nil { // ID, delivery time
				return err
			}
			if _, err := r.length(); err != nil { // delivery count
				return err
			}
		}
		consumers, err := r.length()
		if err != nil {
			return err
		}
		for ; consumers > 0; consumers-- {
			if err := r.skipString(); err != nil { // name
				return err
			}
			times := 8 // seen time
			if typ >= TypeStreamListpacks3 {
				times += 8 // active time
			}
			if err := r.skip(times); err != nil {
				return err
			}
			pel, err := r.length()
			if err != nil {
				return err
			}
			for ; pel > 0; pel-- {
				if err := r.skip(16); err != nil { // an ID of the group's PEL
					return err
				}
			}
		}
	}
	return nil
}

// skipModuleValue reads module opcodes and their values up to the EOF opcode.
func (r *Reader) skipModuleValue() error {
	for {
		op, err := r.length()
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case moduleOpSInt, moduleOpUInt:
			_, err = r.length()
		case moduleOpFloat:
			err = r.skip(4)
		case moduleOpDouble:
			err = r.skip(8)
		case moduleOpString:
			err = r.skipString()
		default:
			err = fmt.Errorf("unknown module opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

func (r *Reader) skipLengths(n int) error {
	for range n {
		if _, err := r.length(); err != nil {
			return err
		}
	}
	return nil
}

// skipStrings reads a length and that many groups of per strings.
func (r *Reader) skipStrings(per uint64) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	if n > (1<<64-1)/per {
		return fmt.Errorf("length %d out of range", n)
	}
	return r.skipStringsN(n * per)
}

func (r *Reader) skipStringsN(n uint64) error {
	for ; n > 0; n-- {
		if err := r.skipString(); err != nil {
			return err
		}
	}
	return nil
}

// skipDecimalDouble reads a score of the old zset format: a length byte and the decimal text, or
// 253/254/255 for NaN, +inf and -inf.
func (r *Reader) skipDecimalDouble() error {
	n, err := r.byte()
	if err != nil || n >= 253 {
		return err
	}
	return r.skip(int(n))
}

// Length encodings (the two high bits of the first byte).
const (
	len6     = 0
	len14    = 1
	len32    = 0x80
	len64    = 0x81
	encoded  = 3
	encInt8  = 0
	encInt16 = 1
	encInt32 = 2
	encLZF   = 3
)

// lengthOrEncoding reads an RDB length; special is true when it is a string encoding (the low
// bits in n).
func (r *Reader) lengthOrEncoding() (n uint64, special bool, err error) {
	b, err := r.byte()
	if err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case len6:
		return uint64(b & 0x3F), false, nil
	case len14:
		b2, err := r.byte()
		return uint64(b&0x3F)<<8 | uint64(b2), false, err
	case encoded:
		return uint64(b & 0x3F), true, nil
	}
	switch b {
	case len32:
		err = r.read(r.scratch[:4])
		return uint64(binary.BigEndian.Uint32(r.scratch[:4])), false, err
	case len64:
		err = r.read(r.scratch[:8])
		return binary.BigEndian.Uint64(r.scratch[:8]), false, err
	}
	return 0, false, fmt.Errorf("bad length byte 0x%02x", b)
}

func (r *Reader) length() (uint64, error) {
	n, special, err := r.lengthOrEncoding()
	if err == nil && special {
		err = fmt.Errorf("a string encoding where a length belongs")
	}
	return n, err
}

// skipString reads a string in any encoding without decoding it.
func (r *Reader) skipString() error {
	n, special, err := r.lengthOrEncoding()
	if err != nil {
		return err
	}
	if !special {
		return r.skipN(n)
	}
	switch n {
	case encInt8:
		return r.skip(1)
	case encInt16:
		return r.skip(2)
	case encInt32:
		return r.skip(4)
	case encLZF:
		clen, err := r.length()
		if err != nil {
			return err
		}
		if _, err := r.length(); err != nil {
			return err
		}
		return r.skipN(clen)
	}
	return fmt.Errorf("unknown string encoding %d", n)
}

// decodedString reads a string (a key, an AUX field, a function) and returns its bytes.
func (r *Reader) decodedString() ([]byte, error) {
	n, special, err := r.lengthOrEncoding()
	if err != nil {
		return nil, err
	}
	return r.decodedStringAfter(n, special)
}

// decodedStringAfter reads the rest of a string whose length or encoding has been read.
func (r *Reader) decodedStringAfter(n uint64, special bool) ([]byte, error) {
	if !special {
		return r.readN(n)
	}
	switch n {
	case encInt8:
		b, err := r.byte()
		return strconv.AppendInt(nil, int64(int8(b)), 10), err
	case encInt16:
		err := r.read(r.scratch[:2])
		return strconv.AppendInt(nil, int64(int16(binary.LittleEndian.Uint16(r.scratch[:2]))), 10), err
	case encInt32:
		err := r.read(r.scratch[:4])
		return strconv.AppendInt(nil, int64(int32(binary.LittleEndian.Uint32(r.scratch[:4]))), 10), err
	case encLZF:
		clen, err := r.length()
		if err != nil {
			return nil, err
		}
		ulen, err := r.length()
		if err != nil {
			return nil, err
		}
		in, err := r.readN(clen)
		if err != nil {
			return nil, err
		}
		return lzfDecompress(in, ulen)
	}
	return nil, fmt.Errorf("unknown string encoding %d", n)
}

// The primitives below are the only ones that consume input: each adds what it read to the
// checksum and, while an object is being copied, to the copy.

func (r *Reader) consumed(b []byte) {
	r.off += int64(len(b))
	if r.capture {
		r.obj = append(r.obj, b...)
	} else {
		r.crc = Checksum(r.crc, b)
	}
}

func (r *Reader) byte() (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	r.scratch[0] = b
	r.consumed(r.scratch[:1])
	return b, nil
}

// read fills p.
func (r *Reader) read(p []byte) error {
	n, err := io.ReadFull(r.br, p)
	r.consumed(p[:n])
	if err == io.EOF && len(p) > 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readN reads n bytes into a new slice that grows as the input delivers them.
func (r *Reader) readN(n uint64) ([]byte, error) {
	buf := make([]byte, 0, min(n, chunk))
	for n > 0 {
		step := min(n, chunk)
		l := len(buf)
		buf = append(buf, make([]byte, step)...)
		if err := r.read(buf[l:]); err != nil {
			return nil, err
		}
		n -= step
	}
	return buf, nil
}

func (r *Reader) skip(n int) error { return r.skipN(uint64(n)) }

// skipN consumes n bytes (copied when capture is on).
func (r *Reader) skipN(n uint64) error {
	for n > 0 {
		step := int(min(n, chunk))
		if r.capture {
			l := len(r.obj)
			r.obj = slices.Grow(r.obj, step) // no zeroing of what the read overwrites
			got, err := io.ReadFull(r.br, r.obj[l:l+step])
			r.off += int64(got)
			r.obj = r.obj[:l+got]
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return io.ErrUnexpectedEOF
			} else if err != nil {
				return err // a failed read (a stalled source) is not a short file
			}
		} else {
			b, err := r.br.Peek(min(step, r.br.Size()))
			if len(b) == 0 {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			r.consumed(b)
			_, _ = r.br.Discard(len(b))
			step = len(b)
		}
		n -= uint64(step)
	}
	return nil
}
