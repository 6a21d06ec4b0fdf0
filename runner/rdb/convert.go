package rdb

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrLossy is returned by Target.Convert for a value the target server cannot hold: a type it
// does not know and that has no equivalent it does (hash field TTLs on a server without them, a
// module value such as a vector set on a server without the module).
var ErrLossy = errors.New("the target cannot hold this value")

// Target is what a server reads: the RDB format versions its RESTORE and its replication
// loader accept. A DUMP payload of a newer version is refused outright by Redis and Valkey, even
// when the value's encoding is one the server knows; Convert rewrites such payloads.
type Target struct {
	// Version is the newest RDB format version the server writes and reads; 0 for a Redis newer
	// than this table knows, which reads every Redis format.
	Version int
	// Valkey says the server is Valkey. From Valkey 9 on (Version 80 and later) it reads its own
	// formats and Redis's up to 11, never Redis's 12–79, whose type numbers differ from its own.
	Valkey bool
	// Name describes the server in errors, e.g. "valkey 8.1.1".
	Name string
	// product and version are the server's own ("redis", "8.0.2"), set by TargetOf.
	product, version string
	// WriterProduct and WriterVersion name the server that wrote the payloads ("redis",
	// "8.0.6"), as a snapshot's manifest records it; empty when unknown (older snapshots).
	// A module value is restored only into a server of the same product and the same or a
	// newer version: the module's encoding version does not follow every change of its layout
	// (Redis 8.0.6 writes vector sets that 8.0.2 fails to load under the same one).
	WriterProduct, WriterVersion string
}

// Unchanged reports whether Convert returns every payload of RDB format v as it is: the server
// reads the format and any module value of the payloads' writer.
func (t Target) Unchanged(v int) bool { return t.Reads(v) && t.readsModulesOfWriter() }

// readsModulesOfWriter reports whether the server reads the module values its writer wrote:
// true when either is unknown (the server judges, as it always did), else only for the same
// product at the same or a newer version.
func (t Target) readsModulesOfWriter() bool {
	if t.WriterProduct == "" || t.WriterVersion == "" || t.product == "" {
		return true
	}
	if t.WriterProduct != t.product {
		return false
	}
	c, ok := compareVersions(t.version, t.WriterVersion)
	return !ok || c >= 0
}

// compareVersions compares dotted versions number by number ("8.0.6" > "8.0.2", "8.1" >
// "8.0.9"; a missing number is 0); ok is false when either is not made of numbers.
func compareVersions(a, b string) (c int, ok bool) {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		var err error
		if i < len(as) {
			if x, err = strconv.Atoi(as[i]); err != nil {
				return 0, false
			}
		}
		if i < len(bs) {
			if y, err = strconv.Atoi(bs[i]); err != nil {
				return 0, false
			}
		}
		if x != y {
			return cmp.Compare(x, y), true
		}
	}
	return 0, true
}

// Reads reports whether the server loads a payload of RDB format version v as it is.
func (t Target) Reads(v int) bool {
	switch {
	case t.Name == "" && t.Version == 0:
		return true // unknown: leave payloads alone and let the server judge
	case t.Valkey && IsValkeyFormat(t.Version):
		return v <= 11 || IsValkeyFormat(v) && v <= t.Version
	case IsValkeyFormat(v):
		return false // Redis and Valkey before 9 know none of Valkey's own formats
	}
	return t.Version == 0 || v <= t.Version
}

// WriteVersion is the version Convert gives payloads the server cannot read as they are, and
// the version of an RDB file written for them: the server's own newest format.
func (t Target) WriteVersion() int {
	if t.Version == 0 {
		return maxVersion // a Redis newer than this table reads the newest format the runner knows
	}
	return t.Version
}

// TargetOf returns the Target of a server from its INFO server fields: redis_version, and
// valkey_version for Valkey (which also reports a redis_version of 7.2.4 for clients). A Redis
// newer than this table reads every Redis format: its payloads are passed as they are.
func TargetOf(redisVersion, valkeyVersion string) Target {
	if valkeyVersion != "" {
		t := Target{Version: 11, Valkey: true, Name: "valkey " + valkeyVersion, product: "valkey", version: valkeyVersion}
		if versionAtLeast(valkeyVersion, 9, 0) {
			t.Version = ValkeyFormat
		}
		return t
	}
	t := redisTarget(redisVersion)
	if t.Name != "" {
		t.product, t.version = "redis", redisVersion
	}
	return t
}

func redisTarget(redisVersion string) Target {
	name := "redis " + redisVersion
	switch {
	case versionAtLeast(redisVersion, 8, 1):
		return Target{Name: name}
	case versionAtLeast(redisVersion, 7, 4):
		return Target{Version: 12, Name: name}
	case versionAtLeast(redisVersion, 7, 2):
		return Target{Version: 11, Name: name}
	case versionAtLeast(redisVersion, 7, 0):
		return Target{Version: 10, Name: name}
	case versionAtLeast(redisVersion, 5, 0):
		return Target{Version: 9, Name: name}
	case versionAtLeast(redisVersion, 4, 0):
		return Target{Version: 8, Name: name}
	case versionAtLeast(redisVersion, 3, 2):
		return Target{Version: 7, Name: name}
	case redisVersion == "":
		return Target{}
	}
	return Target{Version: 6, Name: name}
}

func versionAtLeast(v string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(v, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Convert returns payload in a form the target reads: the payload itself when the target reads
// its version; else the same value with the target's version and checksum, re-encoded where the
// target does not know the encoding (a listpack set becomes a plain set, a stream of format 3 one
// of format 2, a hash with field TTLs of Redis's layout Valkey's and the other way round). The
// result may share payload's memory (the footer is rewritten in place) or be written to dst. An
// error wrapping ErrLossy means the target cannot hold the value at all; ErrPayload means the
// payload is malformed.
//
// The type byte is read together with the payload's version: Valkey 9's type 22 is not Redis's.
func (t Target) Convert(dst, payload []byte) ([]byte, error) {
	v, err := FormatVersion(payload)
	if err != nil {
		return nil, err
	}
	if payload[0] == TypeModule2 && !t.readsModulesOfWriter() {
		return nil, fmt.Errorf("%w: %s written by %s %s, which %s may not read: module values restore only into the same or a newer server",
			ErrLossy, moduleValue(payload[1:]), t.WriterProduct, t.WriterVersion, t.Name)
	}
	if t.Reads(v) {
		return payload, nil
	}
	want := t.WriteVersion()
	typ := payload[0]
	body := payload[1 : len(payload)-payloadFooter]
	switch {
	case typeIn(typ, v).name == "":
		return nil, fmt.Errorf("%w: unknown object type %d in RDB format %d", ErrPayload, typ, v)
	case isFieldTTLHash(typ, v):
		return t.convertFieldTTLHash(dst, typ, v, body, want)
	case typ == TypeModule2:
		return nil, fmt.Errorf("%w: %s (RDB format %d), which %s cannot load", ErrLossy, moduleValue(body), v, t.Name)
	case MinVersion(typ) <= want || IsValkeyFormat(want):
		// Types up to 21 mean the same in both families, and Valkey 9 knows all of them.
		return footer(payload[:len(payload)-payloadFooter], want), nil
	case typ == TypeSetListpack:
		out, err := setFromListpack(append(dst[:0], TypeSet), body)
		if err != nil {
			return nil, err
		}
		return footer(out, want), nil
	case typ == TypeStreamListpacks3 && want >= MinVersion(TypeStreamListpacks2):
		out, err := streamWithoutActiveTime(append(dst[:0], TypeStreamListpacks2), body)
		if err != nil {
			return nil, err
		}
		return footer(out, want), nil
	}
	return nil, fmt.Errorf("%w: %s values (RDB format %d and later) cannot be converted for %s (RDB format %d)", ErrLossy, TypeName(typ), MinVersion(typ), t.Name, want)
}

// moduleValue describes the module value whose body (after the type byte) is body: "a vector
// set" or "a value of module \"NAME\"".
func moduleValue(body []byte) string {
	name := "unknown"
	if id, _, err := cutLength(body); err == nil {
		name = ModuleName(id)
	}
	if name == "vectorset" {
		return "a vector set"
	}
	return fmt.Sprintf("a value of module %q", name)
}

// footer appends (or rewrites, when b has room after it) the version and checksum of a payload
// whose type byte and value are b.
func footer(b []byte, version int) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(version))
	return binary.LittleEndian.AppendUint64(b, Checksum(0, b))
}

// ModuleName decodes the nine-character name of a module type from its 64-bit id (the upper 54
// bits, six per character; the lower 10 bits are the encoding version).
func ModuleName(id uint64) string {
	const charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	name := make([]byte, 9)
	for i := range name {
		name[i] = charset[(id>>(10+6*(8-i)))&63]
	}
	return string(name)
}

// setFromListpack appends a plain set (a count and each member as a string) made of the
// members of the listpack in body, the string a listpack set is stored as.
func setFromListpack(out, body []byte) ([]byte, error) {
	lp, rest, err := cutString(body)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after a listpack set", ErrPayload, len(rest))
	}
	members, err := listpackEntries(lp)
	if err != nil {
		return nil, err
	}
	out = appendLength(out, uint64(len(members)))
	for _, m := range members {
		out = appendLength(out, uint64(len(m)))
		out = append(out, m...)
	}
	return out, nil
}

// listpackEntries returns the entries of a listpack, integers as their decimal text.
func listpackEntries(lp []byte) ([][]byte, error) {
	bad := func(what string) error { return fmt.Errorf("%w: listpack: %s", ErrPayload, what) }
	if len(lp) < 7 || int(binary.LittleEndian.Uint32(lp)) != len(lp) || lp[len(lp)-1] != 0xFF {
		return nil, bad("bad header or end")
	}
	var out [][]byte
	for p := 6; ; {
		if p >= len(lp) {
			return nil, bad("no end marker")
		}
		b := lp[p]
		if b == 0xFF {
			if p != len(lp)-1 {
				return nil, bad("data after the end marker")
			}
			return out, nil
		}
		var head, size int // the encoding's bytes and the data's
		var num int64
		isInt := true
		need := func(n int) bool { return p+n <= len(lp) }
		switch {
		case b&0x80 == 0:
			head, num = 1, int64(b&0x7F)
		case b&0xC0 == 0x80:
			head, size, isInt = 1, int(b&0x3F), false
		case b&0xE0 == 0xC0:
			if !need(2) {
				return nil, bad("truncated entry")
			}
			head, num = 2, int64(uint16(b&0x1F)<<8|uint16(lp[p+1]))
			if num >= 1<<12 {
				num -= 1 << 13
			}
		case b&0xF0 == 0xE0:
			if !need(2) {
				return nil, bad("truncated entry")
			}
			head, size, isInt = 2, int(b&0x0F)<<8|int(lp[p+1]), false
		case b == 0xF0:
			if !need(5) {
				return nil, bad("truncated entry")
			}
			n := binary.LittleEndian.Uint32(lp[p+1:])
			if uint64(n) > uint64(len(lp)) {
				return nil, bad("entry longer than the listpack")
			}
			head, size, isInt = 5, int(n), false
		case b >= 0xF1 && b <= 0xF4:
			w := [...]int{2, 3, 4, 8}[b-0xF1]
			if !need(1 + w) {
				return nil, bad("truncated entry")
			}
			var u uint64
			for i := w - 1; i >= 0; i-- {
				u = u<<8 | uint64(lp[p+1+i])
			}
			num = int64(u<<(64-8*w)) >> (64 - 8*w) // sign-extend
			head = 1 + w
		default:
			return nil, bad(fmt.Sprintf("unknown encoding 0x%02x", b))
		}
		entry := head + size
		if !need(entry) {
			return nil, bad("truncated entry")
		}
		if isInt {
			out = append(out, strconv.AppendInt(nil, num, 10))
		} else {
			out = append(out, lp[p+head:p+entry])
		}
		p += entry + backlenSize(entry)
	}
}

// backlenSize is the size of the reverse-length field after a listpack entry of n bytes.
func backlenSize(n int) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	case n < 1<<28:
		return 4
	}
	return 5
}

// streamWithoutActiveTime appends a stream of format 3 (body) in format 2: the same bytes
// without each consumer's active time, which format 2 does not have (Redis 7.2 added it; 7.0
// derives it from the seen time on load, as it does for any consumer).
func streamWithoutActiveTime(out, body []byte) ([]byte, error) {
	c := cursor{b: body}
	n := c.length()
	for i := uint64(0); i < 2*n && c.err == nil; i++ {
		c.skipString() // master ID and listpack
	}
	c.lengths(3 + 5) // length, last ID, first ID, max deleted ID, entries added
	groups := c.length()
	for ; groups > 0 && c.err == nil; groups-- {
		c.skipString()
		c.lengths(3) // last delivered ID, entries read
		pel := c.length()
		for ; pel > 0 && c.err == nil; pel-- {
			c.skip(16 + 8)
			c.length()
		}
		consumers := c.length()
		for ; consumers > 0 && c.err == nil; consumers-- {
			c.skipString()
			c.skip(8) // seen time
			out = append(out, c.copied()...)
			c.skip(8) // active time
			c.mark = c.p
			pel := c.length()
			if pel > uint64(len(body)) {
				c.err = errors.New("consumer PEL longer than the value")
			}
			c.skip(int(16 * min(pel, uint64(len(body)))))
		}
	}
	if c.err == nil && c.p != len(body) {
		c.err = fmt.Errorf("%d bytes after the stream", len(body)-c.p)
	}
	if c.err != nil {
		return nil, fmt.Errorf("%w: stream: %v", ErrPayload, c.err)
	}
	return append(out, c.copied()...), nil
}

// cursor walks an object's bytes in memory; the first error stops it. copied returns the bytes
// walked since the last mark and moves the mark.
type cursor struct {
	b       []byte
	p, mark int
	err     error
}

func (c *cursor) copied() []byte {
	b := c.b[c.mark:c.p]
	c.mark = c.p
	return b
}

func (c *cursor) skip(n int) {
	if c.err == nil && (n < 0 || n > len(c.b)-c.p) {
		c.err = errors.New("truncated")
	}
	if c.err == nil {
		c.p += n
	}
}

func (c *cursor) length() uint64 {
	if c.err != nil {
		return 0
	}
	n, rest, err := cutLength(c.b[c.p:])
	if err != nil {
		c.err = err
		return 0
	}
	c.p = len(c.b) - len(rest)
	return n
}

func (c *cursor) lengths(n int) {
	for range n {
		c.length()
	}
}

func (c *cursor) skipString() {
	if c.err != nil {
		return
	}
	_, rest, err := cutString(c.b[c.p:])
	if err != nil {
		c.err = err
		return
	}
	c.p = len(c.b) - len(rest)
}

// cutLength reads an RDB length (not a special encoding) from the front of b.
func cutLength(b []byte) (uint64, []byte, error) {
	n, special, rest, err := cutLengthOrEncoding(b)
	if err == nil && special {
		err = fmt.Errorf("%w: an encoded string where a length belongs", ErrPayload)
	}
	return n, rest, err
}

func cutLengthOrEncoding(b []byte) (n uint64, special bool, rest []byte, err error) {
	if len(b) == 0 {
		return 0, false, nil, fmt.Errorf("%w: truncated length", ErrPayload)
	}
	switch b[0] >> 6 {
	case len6:
		return uint64(b[0] & 0x3F), false, b[1:], nil
	case len14:
		if len(b) >= 2 {
			return uint64(b[0]&0x3F)<<8 | uint64(b[1]), false, b[2:], nil
		}
	case encoded:
		return uint64(b[0] & 0x3F), true, b[1:], nil
	default:
		switch {
		case b[0] == len32 && len(b) >= 5:
			return uint64(binary.BigEndian.Uint32(b[1:])), false, b[5:], nil
		case b[0] == len64 && len(b) >= 9:
			return binary.BigEndian.Uint64(b[1:]), false, b[9:], nil
		case b[0] != len32 && b[0] != len64:
			return 0, false, nil, fmt.Errorf("%w: unknown length encoding 0x%02x", ErrPayload, b[0])
		}
	}
	return 0, false, nil, fmt.Errorf("%w: truncated length", ErrPayload)
}

// cutString reads a string in any encoding from the front of b and returns its decoded bytes.
func cutString(b []byte) ([]byte, []byte, error) {
	n, special, rest, err := cutLengthOrEncoding(b)
	if err != nil {
		return nil, nil, err
	}
	short := fmt.Errorf("%w: truncated string", ErrPayload)
	if !special {
		if n > uint64(len(rest)) {
			return nil, nil, short
		}
		return rest[:n], rest[n:], nil
	}
	switch n {
	case encInt8, encInt16, encInt32:
		w := 1 << n
		if len(rest) < w {
			return nil, nil, short
		}
		var v int64
		switch n {
		case encInt8:
			v = int64(int8(rest[0]))
		case encInt16:
			v = int64(int16(binary.LittleEndian.Uint16(rest)))
		default:
			v = int64(int32(binary.LittleEndian.Uint32(rest)))
		}
		return strconv.AppendInt(nil, v, 10), rest[w:], nil
	case encLZF:
		clen, rest, err := cutLength(rest)
		if err != nil {
			return nil, nil, err
		}
		ulen, rest, err := cutLength(rest)
		if err != nil {
			return nil, nil, err
		}
		if clen > uint64(len(rest)) || ulen > math.MaxInt32 {
			return nil, nil, short
		}
		s, err := lzfDecompress(rest[:clen], ulen)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrPayload, err)
		}
		return s, rest[clen:], nil
	}
	return nil, nil, fmt.Errorf("%w: unknown string encoding %d", ErrPayload, n)
}
