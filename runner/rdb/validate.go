package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrCorrupt is wrapped by Validate's errors: a value that Redis, loading it with
// sanitize-dump-payload yes (deep sanitization), would refuse as corrupt, and that a server
// without it may crash on, during a restore or later.
var ErrCorrupt = errors.New("corrupt value")

// Validate checks the object of a DUMP payload as deeply as Redis does when it loads one with
// deep sanitization (rdbLoadObject with deep_integrity_validation): the object must fill the
// payload exactly; every ziplist, listpack, intset and zipmap inside it must have a consistent
// header (byte count, tail offset, element count), entries that stay within it with valid
// encodings and back-lengths, and the end mark where it belongs; collections must not be empty
// and must not hold a member or field twice; intsets must be sorted; zset scores must not be
// NaN; a stream's listpacks must hold well-formed entries whose counts agree, and its consumer
// groups' pending entries must be consistent (every consumer's entry in its group's list, once,
// and every entry of the group owned by a consumer). Module values are checked for structure
// only (their content is the module's). The payload's footer (version, checksum) is not.
//
// The checks follow Redis's ziplistValidateIntegrity, lpValidateIntegrity and
// lpValidateIntegrityAndDups, intsetValidateIntegrity, zipmapValidateIntegrity,
// streamValidateListpackIntegrity and the stream and collection checks of rdbLoadObject; the
// code is the runner's own.
func Validate(payload []byte) error {
	if len(payload) < payloadFooter+1 {
		return fmt.Errorf("%w: %d bytes", ErrPayload, len(payload))
	}
	typ := payload[0]
	if version, _ := FormatVersion(payload); IsValkeyFormat(version) && typ > TypeStreamListpacks3 {
		// Valkey's own formats number their types from 22 on differently from Redis (its hash
		// with field TTLs is 22): not checked here, the target's loader is the judge.
		return nil
	}
	v := &validator{b: payload[1 : len(payload)-payloadFooter]}
	err := v.object(typ)
	if err == nil && v.p != len(v.b) {
		err = fmt.Errorf("%d bytes after the value", len(v.b)-v.p)
	}
	if err != nil {
		return fmt.Errorf("%w (%s): %w", ErrCorrupt, TypeName(typ), err)
	}
	return nil
}

// validator walks the object bytes b; p is the position.
type validator struct {
	b []byte
	p int
}

var errShort = errors.New("ends early")

func (v *validator) take(n uint64) ([]byte, error) {
	if n > uint64(len(v.b)-v.p) {
		return nil, errShort
	}
	s := v.b[v.p : v.p+int(n)]
	v.p += int(n)
	return s, nil
}

func (v *validator) length() (uint64, error) {
	n, rest, err := cutLength(v.b[v.p:])
	if err != nil {
		return 0, err
	}
	v.p = len(v.b) - len(rest)
	return n, nil
}

// str returns a string's bytes, decompressed and integers as decimal text.
func (v *validator) str() ([]byte, error) {
	s, rest, err := cutString(v.b[v.p:])
	if err != nil {
		return nil, err
	}
	v.p = len(v.b) - len(rest)
	return s, nil
}

// count reads a collection's element count, which must not be zero (Redis refuses empty keys
// in a payload) nor more than the remaining bytes could hold.
func (v *validator) count(per uint64) (uint64, error) {
	n, err := v.length()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("empty collection")
	}
	if n > uint64(len(v.b)-v.p)/per {
		return 0, fmt.Errorf("%d elements in %d bytes", n, len(v.b)-v.p)
	}
	return n, nil
}

// strings reads n strings; with stride > 0 the first of every stride strings (a member, a
// field) must not repeat.
func (v *validator) strings(n uint64, stride int, what string) error {
	seen := make(map[string]struct{}, min(n, 1<<16))
	for i := range n {
		s, err := v.str()
		if err != nil {
			return err
		}
		if stride > 0 && i%uint64(stride) == 0 {
			if _, dup := seen[string(s)]; dup {
				return fmt.Errorf("duplicate %s %q", what, s)
			}
			seen[string(s)] = struct{}{}
		}
	}
	return nil
}

func (v *validator) object(typ byte) error {
	switch typ {
	case TypeString:
		_, err := v.str()
		return err
	case TypeList:
		n, err := v.count(1)
		if err != nil {
			return err
		}
		return v.strings(n, 0, "")
	case TypeSet:
		n, err := v.count(1)
		if err != nil {
			return err
		}
		return v.strings(n, 1, "member")
	case TypeHash:
		n, err := v.count(2)
		if err != nil {
			return err
		}
		return v.strings(n*2, 2, "field")
	case TypeZset, TypeZset2:
		n, err := v.count(2)
		if err != nil {
			return err
		}
		seen := make(map[string]struct{}, min(n, 1<<16))
		for range n {
			m, err := v.str()
			if err != nil {
				return err
			}
			if _, dup := seen[string(m)]; dup {
				return fmt.Errorf("duplicate member %q", m)
			}
			seen[string(m)] = struct{}{}
			if err := v.score(typ); err != nil {
				return err
			}
		}
		return nil
	case TypeHashZipmap:
		return v.blob(zipmapValid)
	case TypeListZiplist:
		return v.blob(func(b []byte) error { _, err := ziplistEntries(b, 1, false); return err })
	case TypeSetIntset:
		return v.blob(intsetValid)
	case TypeZsetZiplist, TypeHashZiplist:
		return v.blob(func(b []byte) error { _, err := ziplistEntries(b, 2, true); return err })
	case TypeHashListpack, TypeZsetListpack:
		return v.blob(func(b []byte) error { return listpackValid(b, 2, true) })
	case TypeSetListpack:
		return v.blob(func(b []byte) error { return listpackValid(b, 1, true) })
	case TypeHashListpackEx, TypeHashListpackExPreGA:
		if typ == TypeHashListpackEx {
			if _, err := v.take(8); err != nil { // the smallest field expiry
				return err
			}
		}
		return v.blob(func(b []byte) error { return listpackValid(b, 3, true) })
	case TypeListQuicklist:
		n, err := v.count(1)
		if err != nil {
			return err
		}
		for range n {
			if err := v.blob(func(b []byte) error { _, err := ziplistEntries(b, 1, false); return err }); err != nil {
				return err
			}
		}
		return nil
	case TypeListQuicklist2:
		n, err := v.count(2)
		if err != nil {
			return err
		}
		for range n {
			container, err := v.length()
			if err != nil {
				return err
			}
			switch container {
			case 1: // plain: one big element
				_, err = v.str()
			case 2: // packed: a listpack
				err = v.blob(func(b []byte) error { return listpackValid(b, 1, false) })
			default:
				err = fmt.Errorf("quicklist node container %d", container)
			}
			if err != nil {
				return err
			}
		}
		return nil
	case TypeHashMetadata, TypeHashMetadataPreGA:
		if typ == TypeHashMetadata {
			if _, err := v.take(8); err != nil {
				return err
			}
		}
		n, err := v.count(3)
		if err != nil {
			return err
		}
		seen := make(map[string]struct{}, min(n, 1<<16))
		for range n {
			if _, err := v.length(); err != nil { // the field's TTL
				return err
			}
			f, err := v.str()
			if err != nil {
				return err
			}
			if _, dup := seen[string(f)]; dup {
				return fmt.Errorf("duplicate field %q", f)
			}
			seen[string(f)] = struct{}{}
			if _, err := v.str(); err != nil {
				return err
			}
		}
		return nil
	case TypeStreamListpacks, TypeStreamListpacks2, TypeStreamListpacks3:
		return v.stream(typ)
	case TypeModule2:
		if _, err := v.length(); err != nil {
			return err
		}
		return v.moduleValue()
	}
	return fmt.Errorf("object type %d cannot be validated", typ)
}

// score reads a zset score: a binary double (zset-2) or a length-prefixed decimal (zset).
func (v *validator) score(typ byte) error {
	if typ == TypeZset2 {
		b, err := v.take(8)
		if err != nil {
			return err
		}
		if math.IsNaN(math.Float64frombits(binary.LittleEndian.Uint64(b))) {
			return errors.New("NaN score")
		}
		return nil
	}
	n, err := v.take(1)
	if err != nil {
		return err
	}
	if n[0] >= 253 { // NaN, +inf, -inf
		if n[0] == 253 {
			return errors.New("NaN score")
		}
		return nil
	}
	s, err := v.take(uint64(n[0]))
	if err != nil {
		return err
	}
	if f, err := strconv.ParseFloat(string(s), 64); err != nil || math.IsNaN(f) {
		return fmt.Errorf("bad score %q", s)
	}
	return nil
}

// blob reads a string holding an encoded collection and checks it with check.
func (v *validator) blob(check func([]byte) error) error {
	b, err := v.str()
	if err != nil {
		return err
	}
	return check(b)
}

func (v *validator) moduleValue() error {
	for {
		op, err := v.length()
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case moduleOpSInt, moduleOpUInt:
			_, err = v.length()
		case moduleOpFloat:
			_, err = v.take(4)
		case moduleOpDouble:
			_, err = v.take(8)
		case moduleOpString:
			_, err = v.str()
		default:
			err = fmt.Errorf("unknown module opcode %d", op)
		}
		if err != nil {
			return err
		}
	}
}

// streamID is a stream entry ID as the 16 big-endian bytes of its rax key.
type streamID [16]byte

func (v *validator) id() (streamID, error) {
	var id streamID
	b, err := v.take(16)
	copy(id[:], b)
	return id, err
}

func (v *validator) stream(typ byte) error {
	n, err := v.length()
	if err != nil {
		return err
	}
	if n > uint64(len(v.b)-v.p)/2 {
		return fmt.Errorf("%d listpacks in %d bytes", n, len(v.b)-v.p)
	}
	nodes := make(map[string]struct{}, min(n, 1<<16))
	for range n {
		key, err := v.str()
		if err != nil {
			return err
		}
		if len(key) != 16 {
			return fmt.Errorf("stream node key of %d bytes, not a stream ID", len(key))
		}
		if _, dup := nodes[string(key)]; dup {
			return errors.New("stream node key repeated")
		}
		nodes[string(key)] = struct{}{}
		lp, err := v.str()
		if err != nil {
			return err
		}
		if err := streamListpackValid(lp); err != nil {
			return err
		}
	}
	length, err := v.length()
	if err != nil {
		return err
	}
	if length > 0 && n == 0 {
		return fmt.Errorf("stream of %d entries without listpacks", length)
	}
	meta := 2 // last ID
	if typ >= TypeStreamListpacks2 {
		meta += 5 // first ID, max deleted ID, entries added
	}
	for range meta {
		if _, err := v.length(); err != nil {
			return err
		}
	}
	groups, err := v.length()
	if err != nil {
		return err
	}
	names := map[string]struct{}{}
	for range groups {
		name, err := v.str()
		if err != nil {
			return err
		}
		if _, dup := names[string(name)]; dup {
			return fmt.Errorf("consumer group %q repeated", name)
		}
		names[string(name)] = struct{}{}
		fields := 2 // last delivered ID
		if typ >= TypeStreamListpacks2 {
			fields++ // entries read
		}
		for range fields {
			if _, err := v.length(); err != nil {
				return err
			}
		}
		if err := v.groupPEL(string(name), typ); err != nil {
			return err
		}
	}
	return nil
}

// groupPEL reads a consumer group's pending entries and consumers: a consumer's entry must be
// in the group's list and belong to no other consumer, and every entry of the group must have
// a consumer, as Redis's loader requires with deep sanitization.
func (v *validator) groupPEL(group string, typ byte) error {
	n, err := v.length()
	if err != nil {
		return err
	}
	if n > uint64(len(v.b)-v.p)/25 {
		return fmt.Errorf("group %q: %d pending entries in %d bytes", group, n, len(v.b)-v.p)
	}
	owner := make(map[streamID]bool, min(n, 1<<16)) // pending entry → has a consumer
	for range n {
		id, err := v.id()
		if err != nil {
			return err
		}
		if _, dup := owner[id]; dup {
			return fmt.Errorf("group %q: pending entry repeated", group)
		}
		owner[id] = false
		if _, err := v.take(8); err != nil { // delivery time
			return err
		}
		if _, err := v.length(); err != nil { // delivery count
			return err
		}
	}
	consumers, err := v.length()
	if err != nil {
		return err
	}
	seen := map[string]struct{}{}
	for range consumers {
		name, err := v.str()
		if err != nil {
			return err
		}
		if _, dup := seen[string(name)]; dup {
			return fmt.Errorf("group %q: consumer %q repeated", group, name)
		}
		seen[string(name)] = struct{}{}
		times := uint64(8) // seen time
		if typ >= TypeStreamListpacks3 {
			times += 8 // active time
		}
		if _, err := v.take(times); err != nil {
			return err
		}
		m, err := v.length()
		if err != nil {
			return err
		}
		if m > uint64(len(v.b)-v.p)/16 {
			return fmt.Errorf("group %q: consumer %q has %d pending entries in %d bytes", group, name, m, len(v.b)-v.p)
		}
		for range m {
			id, err := v.id()
			if err != nil {
				return err
			}
			owned, ok := owner[id]
			switch {
			case !ok:
				return fmt.Errorf("group %q: consumer %q has a pending entry the group does not", group, name)
			case owned:
				return fmt.Errorf("group %q: a pending entry belongs to two consumers", group)
			}
			owner[id] = true
		}
	}
	for _, owned := range owner {
		if !owned {
			return fmt.Errorf("group %q: a pending entry has no consumer", group)
		}
	}
	return nil
}

// lpEntry is one listpack entry: its string, or its integer when isInt.
type lpEntry struct {
	s     []byte
	n     int64
	isInt bool
}

func (e lpEntry) text() []byte {
	if e.isInt {
		return strconv.AppendInt(nil, e.n, 10)
	}
	return e.s
}

// integer returns the entry as an integer, as lpGetIntegerIfValid does (a string that is a
// decimal integer counts).
func (e lpEntry) integer() (int64, bool) {
	if e.isInt {
		return e.n, true
	}
	n, err := strconv.ParseInt(string(e.s), 10, 64)
	return n, err == nil && strconv.FormatInt(n, 10) == string(e.s)
}

// listpackWalk calls each for every entry of the listpack lp after checking, as
// lpValidateIntegrity does with deep set, its header (total bytes, the end mark), every entry's
// encoding, extent and back-length, and the element count.
func listpackWalk(lp []byte, each func(lpEntry) error) error {
	if len(lp) < 7 {
		return errors.New("listpack shorter than its header")
	}
	if int(binary.LittleEndian.Uint32(lp)) != len(lp) {
		return fmt.Errorf("listpack says %d bytes, has %d", binary.LittleEndian.Uint32(lp), len(lp))
	}
	if lp[len(lp)-1] != 0xFF {
		return errors.New("listpack without its end mark")
	}
	declared := int(binary.LittleEndian.Uint16(lp[4:]))
	count := 0
	p := 6
	for {
		if p >= len(lp) {
			return errors.New("listpack entry past its end")
		}
		b := lp[p]
		if b == 0xFF {
			if p != len(lp)-1 {
				return errors.New("listpack end mark before its end")
			}
			break
		}
		var head, size uint64
		e := lpEntry{isInt: true}
		need := func(n uint64) bool { return uint64(p)+n <= uint64(len(lp)) }
		switch {
		case b&0x80 == 0:
			head, e.n = 1, int64(b&0x7F)
		case b&0xC0 == 0x80:
			head, size, e.isInt = 1, uint64(b&0x3F), false
		case b&0xE0 == 0xC0:
			if !need(2) {
				return errShort
			}
			head, e.n = 2, int64(uint16(b&0x1F)<<8|uint16(lp[p+1]))
			if e.n >= 1<<12 {
				e.n -= 1 << 13
			}
		case b&0xF0 == 0xE0:
			if !need(2) {
				return errShort
			}
			head, size, e.isInt = 2, uint64(b&0x0F)<<8|uint64(lp[p+1]), false
		case b == 0xF0:
			if !need(5) {
				return errShort
			}
			head, size, e.isInt = 5, uint64(binary.LittleEndian.Uint32(lp[p+1:])), false
		case b >= 0xF1 && b <= 0xF4:
			w := [...]int{2, 3, 4, 8}[b-0xF1]
			if !need(uint64(1 + w)) {
				return errShort
			}
			var u uint64
			for i := w - 1; i >= 0; i-- {
				u = u<<8 | uint64(lp[p+1+i])
			}
			e.n = int64(u<<(64-8*w)) >> (64 - 8*w)
			head = uint64(1 + w)
		default:
			return fmt.Errorf("listpack entry with unknown encoding 0x%02x", b)
		}
		entry := head + size
		back := uint64(backlenSize(int(min(entry, 1<<40))))
		if !need(entry + back) {
			return errors.New("listpack entry past its end")
		}
		if !e.isInt {
			e.s = lp[p+int(head) : p+int(entry)]
		}
		if got := decodeBacklen(lp[p+int(entry) : p+int(entry+back)]); got != entry {
			return fmt.Errorf("listpack entry of %d bytes has a back-length of %d", entry, got)
		}
		if each != nil {
			if err := each(e); err != nil {
				return err
			}
		}
		p += int(entry + back)
		count++
	}
	if declared != 0xFFFF && declared != count {
		return fmt.Errorf("listpack says %d elements, has %d", declared, count)
	}
	return nil
}

// decodeBacklen reads a listpack back-length from its last byte backwards, as lpDecodeBacklen.
func decodeBacklen(b []byte) uint64 {
	var v uint64
	var shift uint
	for i := len(b) - 1; i >= 0; i-- {
		v |= uint64(b[i]&127) << shift
		if b[i]&128 == 0 {
			if i != 0 {
				return math.MaxUint64 // the field is longer than its value needs
			}
			return v
		}
		shift += 7
	}
	return math.MaxUint64
}

// listpackValid checks a listpack of tuples of the given size (1: members or list elements,
// 2: field-value or member-score pairs, 3: field-value-TTL), refusing a repeated first element
// of a tuple when unique; a collection listpack must not be empty unless it is a list node.
func listpackValid(lp []byte, tuple int, unique bool) error {
	var seen map[string]struct{}
	if unique {
		seen = map[string]struct{}{}
	}
	i := 0
	err := listpackWalk(lp, func(e lpEntry) error {
		if unique && i%tuple == 0 {
			t := e.text()
			if _, dup := seen[string(t)]; dup {
				return fmt.Errorf("listpack element %q repeated", t)
			}
			seen[string(t)] = struct{}{}
		}
		if tuple == 3 && i%3 == 2 {
			if _, ok := e.integer(); !ok {
				return errors.New("listpack field TTL is not an integer")
			}
		}
		i++
		return nil
	})
	switch {
	case err != nil:
		return err
	case i%tuple != 0:
		return fmt.Errorf("listpack of %d elements, not a multiple of %d", i, tuple)
	case i == 0 && unique:
		return errors.New("empty listpack")
	}
	return nil
}

// streamListpackValid checks a stream node's listpack as streamValidateListpackIntegrity does
// with deep set: the master entry (count, deleted, field names, 0), then per entry its flags,
// ID, fields and values and a back count that matches them.
func streamListpackValid(lp []byte) error {
	var es []lpEntry
	if err := listpackWalk(lp, func(e lpEntry) error { es = append(es, e); return nil }); err != nil {
		return err
	}
	if len(es) == 0 {
		return errors.New("empty listpack in a stream")
	}
	i := 0
	next := func() (lpEntry, error) {
		if i >= len(es) {
			return lpEntry{}, errors.New("stream listpack ends within an entry")
		}
		i++
		return es[i-1], nil
	}
	integer := func() (int64, error) {
		e, err := next()
		if err != nil {
			return 0, err
		}
		n, ok := e.integer()
		if !ok {
			return 0, errors.New("stream listpack: an integer expected")
		}
		return n, nil
	}
	count, err := integer()
	if err != nil {
		return err
	}
	deleted, err := integer()
	if err != nil {
		return err
	}
	masterFields, err := integer()
	if err != nil {
		return err
	}
	if masterFields < 0 || masterFields > int64(len(es)) || count < 0 || deleted < 0 || count+deleted > int64(len(es)) {
		return errors.New("stream listpack: counts out of range")
	}
	for range masterFields {
		if _, err := next(); err != nil {
			return err
		}
	}
	if zero, err := integer(); err != nil || zero != 0 {
		return errors.New("stream listpack: no master entry terminator")
	}
	for range count + deleted {
		flags, err := integer()
		if err != nil {
			return err
		}
		if _, err := integer(); err != nil { // ID ms
			return err
		}
		if _, err := integer(); err != nil { // ID seq
			return err
		}
		fields, extra := masterFields, int64(3)
		if flags&2 == 0 { // not STREAM_ITEM_FLAG_SAMEFIELDS
			if fields, err = integer(); err != nil {
				return err
			}
			if fields < 0 || fields > int64(len(es)) {
				return errors.New("stream listpack: field count out of range")
			}
			for range fields * 2 {
				if _, err := next(); err != nil {
					return err
				}
			}
			extra += fields + 1
		} else {
			for range fields {
				if _, err := next(); err != nil {
					return err
				}
			}
		}
		back, err := integer()
		if err != nil {
			return err
		}
		if back != fields+extra {
			return fmt.Errorf("stream listpack: entry back count %d, want %d", back, fields+extra)
		}
	}
	if i != len(es) {
		return errors.New("stream listpack: entries after the last")
	}
	return nil
}

// ziplistEntries checks a ziplist as ziplistValidateIntegrity does with deep set (total bytes,
// tail offset, each entry's previous-length and encoding within bounds, the count) and
// returns its entry count; with pairs 2 it must hold pairs, and with unique the first of each
// pair must not repeat. An empty ziplist is refused.
func ziplistEntries(zl []byte, pairs int, unique bool) (int, error) {
	if len(zl) < 11 {
		return 0, errors.New("ziplist shorter than its header")
	}
	if int(binary.LittleEndian.Uint32(zl)) != len(zl) {
		return 0, fmt.Errorf("ziplist says %d bytes, has %d", binary.LittleEndian.Uint32(zl), len(zl))
	}
	if zl[len(zl)-1] != 0xFF {
		return 0, errors.New("ziplist without its end mark")
	}
	tail := int(binary.LittleEndian.Uint32(zl[4:]))
	if tail > len(zl)-1 {
		return 0, errors.New("ziplist tail offset past its end")
	}
	declared := int(binary.LittleEndian.Uint16(zl[8:]))
	var seen map[string]struct{}
	if unique {
		seen = map[string]struct{}{}
	}
	count, prevSize, prev := 0, 0, -1
	p := 10
	for {
		if p >= len(zl) {
			return 0, errors.New("ziplist entry past its end")
		}
		if zl[p] == 0xFF {
			break
		}
		start := p
		var prevLen int
		if zl[p] < 254 {
			prevLen = int(zl[p])
			p++
		} else {
			if p+5 > len(zl) {
				return 0, errShort
			}
			prevLen = int(binary.LittleEndian.Uint32(zl[p+1:]))
			p += 5
		}
		if prevLen != prevSize {
			return 0, fmt.Errorf("ziplist entry says the previous one has %d bytes, it has %d", prevLen, prevSize)
		}
		if p >= len(zl) {
			return 0, errShort
		}
		enc := zl[p]
		var head, size int
		var text []byte
		switch {
		case enc < 0xC0:
			switch enc >> 6 {
			case 0:
				head, size = 1, int(enc&0x3F)
			case 1:
				if p+2 > len(zl) {
					return 0, errShort
				}
				head, size = 2, int(enc&0x3F)<<8|int(zl[p+1])
			default:
				if p+5 > len(zl) {
					return 0, errShort
				}
				head, size = 5, int(binary.BigEndian.Uint32(zl[p+1:]))
			}
			if size < 0 || size > len(zl) {
				return 0, errors.New("ziplist string past its end")
			}
		case enc == 0xC0:
			head, size = 1, 2
		case enc == 0xD0:
			head, size = 1, 4
		case enc == 0xE0:
			head, size = 1, 8
		case enc == 0xF0:
			head, size = 1, 3
		case enc == 0xFE:
			head, size = 1, 1
		case enc >= 0xF1 && enc <= 0xFD:
			head, size = 1, 0
		default:
			return 0, fmt.Errorf("ziplist entry with unknown encoding 0x%02x", enc)
		}
		if p+head+size > len(zl)-1 {
			return 0, errors.New("ziplist entry past its end")
		}
		if unique && count%pairs == 0 {
			if enc < 0xC0 {
				text = zl[p+head : p+head+size]
			} else {
				text = ziplistInt(enc, zl[p+head:p+head+size])
			}
			if _, dup := seen[string(text)]; dup {
				return 0, fmt.Errorf("ziplist element %q repeated", text)
			}
			seen[string(text)] = struct{}{}
		}
		p += head + size
		prevSize, prev = p-start, start
		count++
	}
	switch {
	case p != len(zl)-1:
		return 0, errors.New("ziplist end mark before its end")
	case prev >= 0 && prev != tail:
		return 0, errors.New("ziplist tail offset is not its last entry")
	case declared != 0xFFFF && declared != count:
		return 0, fmt.Errorf("ziplist says %d elements, has %d", declared, count)
	case count == 0:
		return 0, errors.New("empty ziplist")
	case count%pairs != 0:
		return 0, fmt.Errorf("ziplist of %d elements, not pairs", count)
	}
	return count, nil
}

// ziplistInt returns the decimal text of a ziplist integer entry.
func ziplistInt(enc byte, b []byte) []byte {
	var n int64
	switch enc {
	case 0xC0:
		n = int64(int16(binary.LittleEndian.Uint16(b)))
	case 0xD0:
		n = int64(int32(binary.LittleEndian.Uint32(b)))
	case 0xE0:
		n = int64(binary.LittleEndian.Uint64(b))
	case 0xF0:
		n = int64(int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24) >> 8)
	case 0xFE:
		n = int64(int8(b[0]))
	default:
		n = int64(enc&0x0F) - 1
	}
	return strconv.AppendInt(nil, n, 10)
}

// intsetValid checks an intset as intsetValidateIntegrity does with deep set: encoding 2, 4 or
// 8, a size that matches the count, not empty, strictly ascending.
func intsetValid(b []byte) error {
	if len(b) < 8 {
		return errors.New("intset shorter than its header")
	}
	enc := binary.LittleEndian.Uint32(b)
	n := uint64(binary.LittleEndian.Uint32(b[4:]))
	if enc != 2 && enc != 4 && enc != 8 {
		return fmt.Errorf("intset encoding %d", enc)
	}
	if 8+n*uint64(enc) != uint64(len(b)) {
		return fmt.Errorf("intset of %d elements of %d bytes in %d bytes", n, enc, len(b))
	}
	if n == 0 {
		return errors.New("empty intset")
	}
	get := func(i uint64) int64 {
		at := 8 + i*uint64(enc)
		switch enc {
		case 2:
			return int64(int16(binary.LittleEndian.Uint16(b[at:])))
		case 4:
			return int64(int32(binary.LittleEndian.Uint32(b[at:])))
		}
		return int64(binary.LittleEndian.Uint64(b[at:]))
	}
	prev := get(0)
	for i := uint64(1); i < n; i++ {
		cur := get(i)
		if cur <= prev {
			return errors.New("intset not in ascending order")
		}
		prev = cur
	}
	return nil
}

// zipmapValid checks a zipmap as zipmapValidateIntegrity does with deep set, and refuses a
// repeated field, as the loader does when it converts one.
func zipmapValid(zm []byte) error {
	if len(zm) < 2 || zm[len(zm)-1] != 0xFF {
		return errors.New("zipmap without its end mark")
	}
	seen := map[string]struct{}{}
	out := func(p int) bool { return p < 2 || p > len(zm)-1 }
	length := func(p int) (int, int, bool) { // value, size of the length
		if zm[p] < 254 {
			return int(zm[p]), 1, !out(p + 1)
		}
		if out(p + 5) {
			return 0, 5, false
		}
		return int(binary.LittleEndian.Uint32(zm[p+1:])), 5, true
	}
	count := 0
	p := 1
	for zm[p] != 0xFF {
		l, s, ok := length(p)
		if !ok || l > len(zm) {
			return errors.New("zipmap field past its end")
		}
		p += s
		field := zm[p:min(p+l, len(zm))]
		p += l
		if out(p) {
			return errors.New("zipmap field past its end")
		}
		if _, dup := seen[string(field)]; dup {
			return fmt.Errorf("zipmap field %q repeated", field)
		}
		seen[string(field)] = struct{}{}
		l, s, ok = length(p)
		if !ok || l > len(zm) {
			return errors.New("zipmap value past its end")
		}
		p += s
		free := int(zm[p])
		p += 1 + l + free
		count++
		if out(p) {
			return errors.New("zipmap value past its end")
		}
	}
	if count == 0 {
		return errors.New("empty zipmap")
	}
	if zm[0] != 254 && int(zm[0]) != count {
		return fmt.Errorf("zipmap says %d elements, has %d", zm[0], count)
	}
	return nil
}
