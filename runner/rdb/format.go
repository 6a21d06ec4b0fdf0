package rdb

import "fmt"

// Object types: the type byte that starts a key in an RDB file and a DUMP payload. The numbers
// are those of Redis's rdb.h, which Valkey shares up to 21 (TypeStreamListpacks3). From 22 on the
// two diverge: Valkey 9 stores its hash with field TTLs as 22 (TypeValkeyHash2), the number of
// Redis's pre-release field-TTL hash, in a layout of its own. A type byte therefore means
// something only together with the RDB format version it was written in (see IsValkeyFormat):
// the reader and the converter dispatch by both, never by the number alone.
const (
	TypeString              byte = 0
	TypeList                byte = 1 // linked list of strings (RDB < 7 writers)
	TypeSet                 byte = 2
	TypeZset                byte = 3 // scores as decimal strings
	TypeHash                byte = 4
	TypeZset2               byte = 5 // scores as binary doubles
	TypeModulePreGA         byte = 6 // Redis 4.0 release candidates; cannot be skipped without the module
	TypeModule2             byte = 7
	TypeHashZipmap          byte = 9
	TypeListZiplist         byte = 10
	TypeSetIntset           byte = 11
	TypeZsetZiplist         byte = 12
	TypeHashZiplist         byte = 13
	TypeListQuicklist       byte = 14
	TypeStreamListpacks     byte = 15
	TypeHashListpack        byte = 16
	TypeZsetListpack        byte = 17
	TypeListQuicklist2      byte = 18
	TypeStreamListpacks2    byte = 19
	TypeSetListpack         byte = 20
	TypeStreamListpacks3    byte = 21
	TypeHashMetadataPreGA   byte = 22 // hash with field TTLs, Redis 7.4 release candidates
	TypeHashListpackExPreGA byte = 23
	TypeHashMetadata        byte = 24 // hash with field TTLs (HEXPIRE), Redis 7.4+
	TypeHashListpackEx      byte = 25

	// TypeValkeyHash2 is Valkey 9's hash with field TTLs (RDB_TYPE_HASH_2), in formats 80 and
	// later only: a count, then per field its name, its value and its absolute expiry in unix
	// milliseconds (8 bytes, little endian; -1 for a field without one).
	TypeValkeyHash2 byte = 22
)

// ValkeyFormat is the first RDB format version of Valkey's own numbering (Valkey 9). Valkey
// writes those files under the magic "VALKEY" (VALKEY080) and refuses Redis's versions 12–79;
// Redis knows none of them.
const ValkeyFormat = 80

// IsValkeyFormat reports whether RDB format version v is one of Valkey's own (80 and later),
// whose type numbers from 22 on are not Redis's.
func IsValkeyFormat(v int) bool { return v >= ValkeyFormat }

// Magic returns the 9 bytes an RDB file of format version v starts with: "REDIS" and four
// digits, or "VALKEY" and three for Valkey's own formats.
func Magic(v int) string {
	if IsValkeyFormat(v) {
		return fmt.Sprintf("VALKEY%03d", v)
	}
	return fmt.Sprintf("REDIS%04d", v)
}

// Opcodes of the RDB file format: bytes in the place of a type byte that are not a key.
const (
	opSlotImport    = 0xF3 // a slot import in progress (Valkey 9, formats 80+): job name, slot ranges
	opSlotInfo      = 0xF4 // cluster slot sizes (Redis 7.4+): slot, size, expires size
	opFunction2     = 0xF5 // a function library (Redis 7.0+): its code
	opFunctionPreGA = 0xF6 // a function, Redis 7.0 release candidates
	opModuleAux     = 0xF7 // module data outside keys
	opIdle          = 0xF8 // LRU idle time of the next key
	opFreq          = 0xF9 // LFU frequency of the next key
	opAux           = 0xFA // a name/value field (redis-ver, repl-id, ...)
	opResizeDB      = 0xFB
	opExpireTimeMs  = 0xFC
	opExpireTime    = 0xFD
	opSelectDB      = 0xFE
	opEOF           = 0xFF
)

// Module value opcodes (RDB_MODULE_OPCODE_*): a module type 2 value or MODULE_AUX payload is a
// sequence of these, each followed by its value, ending with moduleOpEOF.
const (
	moduleOpEOF    = 0
	moduleOpSInt   = 1
	moduleOpUInt   = 2
	moduleOpFloat  = 3
	moduleOpDouble = 4
	moduleOpString = 5
)

// typeInfo is what the reader knows about one type byte.
type typeInfo struct {
	name       string
	minVersion int // the first RDB format version whose loader knows the type
}

// types is indexed by the type byte; the zero typeInfo (no name) marks a byte no format uses.
var types = [256]typeInfo{
	TypeString:              {"string", 1},
	TypeList:                {"list", 1},
	TypeSet:                 {"set", 1},
	TypeZset:                {"zset", 1},
	TypeHash:                {"hash", 1},
	TypeZset2:               {"zset-2", 8},
	TypeModulePreGA:         {"module-pre-ga", 8},
	TypeModule2:             {"module-2", 8},
	TypeHashZipmap:          {"hash-zipmap", 2},
	TypeListZiplist:         {"list-ziplist", 2},
	TypeSetIntset:           {"set-intset", 2},
	TypeZsetZiplist:         {"zset-ziplist", 2},
	TypeHashZiplist:         {"hash-ziplist", 6},
	TypeListQuicklist:       {"list-quicklist", 7},
	TypeStreamListpacks:     {"stream-listpacks", 9},
	TypeHashListpack:        {"hash-listpack", 10},
	TypeZsetListpack:        {"zset-listpack", 10},
	TypeListQuicklist2:      {"list-quicklist-2", 10},
	TypeStreamListpacks2:    {"stream-listpacks-2", 10},
	TypeSetListpack:         {"set-listpack", 11},
	TypeStreamListpacks3:    {"stream-listpacks-3", 11},
	TypeHashMetadataPreGA:   {"hash-metadata-pre-ga", 12},
	TypeHashListpackExPreGA: {"hash-listpack-ex-pre-ga", 12},
	TypeHashMetadata:        {"hash-metadata", 12},
	TypeHashListpackEx:      {"hash-listpack-ex", 12},
}

// valkeyHash2 is what the reader knows of TypeValkeyHash2 in Valkey's formats.
var valkeyHash2 = typeInfo{"valkey-hash-2", ValkeyFormat}

// typeIn returns what the reader knows of type byte typ in an object of RDB format version v:
// Valkey's formats share Redis's types up to TypeStreamListpacks3 and have their own from there.
func typeIn(typ byte, v int) typeInfo {
	switch {
	case !IsValkeyFormat(v) || typ <= TypeStreamListpacks3:
		return types[typ]
	case typ == TypeValkeyHash2:
		return valkeyHash2
	}
	return typeInfo{}
}

// TypeNameIn is TypeName for an object of RDB format version v (Valkey's type 22 is not Redis's).
func TypeNameIn(typ byte, v int) string {
	if t := typeIn(typ, v); t.name != "" {
		return t.name
	}
	return fmt.Sprintf("unknown-%d", typ)
}

// MinVersion returns the first Redis RDB format version that knows the object type typ, or 0 for a
// type the reader does not know. A DUMP payload of that type can be given any version from
// MinVersion up (the object's bytes are the same); a server refuses payloads newer than its own
// RDB version, so this is the oldest target a payload can be rewritten for without decoding it.
// (Redis 7.0 writes RDB 10, 7.2 and Valkey 7.2–8.x write 11, 7.4 and 8.x write 12.)
func MinVersion(typ byte) int { return types[typ].minVersion }

// TypeName returns the name of an object type as in Redis's rdb.h, without the RDB_TYPE_ prefix,
// or "unknown-N".
func TypeName(typ byte) string {
	if t := types[typ]; t.name != "" {
		return t.name
	}
	return fmt.Sprintf("unknown-%d", typ)
}
