package rdb

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Redis (7.4 and later) and Valkey (9 and later) both keep a TTL per hash field, and both write
// such a hash as an RDB type of its own, in layouts that differ:
//
//   - Redis TypeHashMetadata (24): the smallest field expiry (8 bytes), a count, then per field
//     its TTL as a length (0: none, else expiry - smallest + 1), its name and its value.
//     TypeHashListpackEx (25): the smallest expiry (8 bytes) and a listpack of
//     field, value, expiry triples (expiry 0: none). Their release-candidate forms 22 and 23
//     lack the smallest expiry, and 22 has absolute expiries.
//   - Valkey TypeValkeyHash2 (22 in formats 80+): a count, then per field its name, its value
//     and its absolute expiry (8 bytes, -1: none).
//
// A restore into the other server converts one into the other: the same fields, values and
// expiries, never dropped.

// isFieldTTLHash reports whether type typ of RDB format version v is a hash with field TTLs.
func isFieldTTLHash(typ byte, v int) bool {
	if IsValkeyFormat(v) {
		return typ == TypeValkeyHash2
	}
	return typ >= TypeHashMetadataPreGA && typ <= TypeHashListpackEx
}

// hashField is one field of a hash with field TTLs; ExpireAt is in unix milliseconds, 0 for none.
type hashField struct {
	Field, Value []byte
	ExpireAt     int64
}

// convertFieldTTLHash rewrites a hash with field TTLs of type typ in format v for a server of
// format want: Valkey's layout for Valkey 9, Redis's for Redis 7.4 and later.
func (t Target) convertFieldTTLHash(dst []byte, typ byte, v int, body []byte, want int) ([]byte, error) {
	// Field TTLs came with Redis 7.4 (format 12) and Valkey 9 (80): an older server has none.
	if !IsValkeyFormat(want) && want < 12 || IsValkeyFormat(want) == IsValkeyFormat(v) {
		return nil, fmt.Errorf("%w: a hash with field TTLs (RDB format %d), which %s cannot hold", ErrLossy, v, t.Name)
	}
	fields, err := decodeFieldTTLHash(typ, v, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPayload, TypeNameIn(typ, v), err)
	}
	var out []byte
	if IsValkeyFormat(want) {
		out = appendValkeyHash2(dst[:0], fields)
	} else {
		out = appendRedisFieldTTLHash(dst[:0], fields)
	}
	return footer(out, want), nil
}

// decodeFieldTTLHash reads the fields of a hash with field TTLs in any of the layouts above.
func decodeFieldTTLHash(typ byte, v int, body []byte) ([]hashField, error) {
	c := cursor{b: body}
	var fields []hashField
	str := func() []byte {
		if c.err != nil {
			return nil
		}
		s, rest, err := cutString(c.b[c.p:])
		if err != nil {
			c.err = err
			return nil
		}
		c.p = len(c.b) - len(rest)
		return s
	}
	u64 := func() uint64 {
		if c.err == nil && len(c.b)-c.p < 8 {
			c.err = fmt.Errorf("truncated")
		}
		if c.err != nil {
			return 0
		}
		c.p += 8
		return binary.LittleEndian.Uint64(c.b[c.p-8:])
	}
	count := func() uint64 {
		n := c.length()
		if n > uint64(len(body)) { // every field takes at least a byte
			c.err = fmt.Errorf("%d fields in %d bytes", n, len(body))
			return 0
		}
		return n
	}
	switch {
	case IsValkeyFormat(v): // TypeValkeyHash2
		for n := count(); n > 0 && c.err == nil; n-- {
			f := hashField{Field: str(), Value: str()}
			if at := int64(u64()); at > 0 {
				f.ExpireAt = at
			}
			fields = append(fields, f)
		}
	case typ == TypeHashMetadata || typ == TypeHashMetadataPreGA:
		var minExpire uint64
		if typ == TypeHashMetadata {
			minExpire = u64()
		}
		for n := count(); n > 0 && c.err == nil; n-- {
			ttl := c.length()
			f := hashField{Field: str(), Value: str()}
			switch {
			case ttl == 0:
			case typ == TypeHashMetadata:
				f.ExpireAt = int64(ttl + minExpire - 1)
			default:
				f.ExpireAt = int64(ttl)
			}
			fields = append(fields, f)
		}
	default: // TypeHashListpackEx, TypeHashListpackExPreGA
		if typ == TypeHashListpackEx {
			u64() // the smallest expiry, which the triples repeat
		}
		lp := str()
		if c.err != nil {
			break
		}
		entries, err := listpackEntries(lp)
		if err != nil {
			return nil, err
		}
		if len(entries)%3 != 0 {
			return nil, fmt.Errorf("%d listpack entries, not field, value, expiry triples", len(entries))
		}
		for i := 0; i < len(entries); i += 3 {
			at, err := strconv.ParseInt(string(entries[i+2]), 10, 64)
			if err != nil || at < 0 {
				return nil, fmt.Errorf("field expiry %q", entries[i+2])
			}
			fields = append(fields, hashField{Field: entries[i], Value: entries[i+1], ExpireAt: at})
		}
	}
	if c.err == nil && c.p != len(body) {
		c.err = fmt.Errorf("%d bytes after the hash", len(body)-c.p)
	}
	if c.err != nil {
		return nil, c.err
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("no fields")
	}
	return fields, nil
}

// appendValkeyHash2 appends Valkey's hash with field TTLs, type byte first.
func appendValkeyHash2(out []byte, fields []hashField) []byte {
	out = appendLength(append(out, TypeValkeyHash2), uint64(len(fields)))
	for _, f := range fields {
		out = appendRawString(out, f.Field)
		out = appendRawString(out, f.Value)
		at := int64(-1)
		if f.ExpireAt > 0 {
			at = f.ExpireAt
		}
		out = binary.LittleEndian.AppendUint64(out, uint64(at))
	}
	return out
}

// appendRedisFieldTTLHash appends Redis's TypeHashMetadata, type byte first, or a plain hash
// when no field has a TTL (Redis writes none for it).
func appendRedisFieldTTLHash(out []byte, fields []hashField) []byte {
	var minExpire int64
	for _, f := range fields {
		if f.ExpireAt > 0 && (minExpire == 0 || f.ExpireAt < minExpire) {
			minExpire = f.ExpireAt
		}
	}
	if minExpire == 0 {
		out = appendLength(append(out, TypeHash), uint64(len(fields)))
		for _, f := range fields {
			out = appendRawString(appendRawString(out, f.Field), f.Value)
		}
		return out
	}
	out = binary.LittleEndian.AppendUint64(append(out, TypeHashMetadata), uint64(minExpire))
	out = appendLength(out, uint64(len(fields)))
	for _, f := range fields {
		var ttl uint64
		if f.ExpireAt > 0 {
			ttl = uint64(f.ExpireAt-minExpire) + 1
		}
		out = appendLength(out, ttl)
		out = appendRawString(appendRawString(out, f.Field), f.Value)
	}
	return out
}

// appendRawString appends s as an RDB string of its length and bytes.
func appendRawString(out, s []byte) []byte {
	return append(appendLength(out, uint64(len(s))), s...)
}
