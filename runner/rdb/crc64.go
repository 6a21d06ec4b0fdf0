package rdb

import (
	"encoding/binary"
	"hash/crc64"
	"math/bits"
)

// jones is the CRC-64/Jones table Redis uses for RDB files and DUMP payloads (reflected
// polynomial 0xad93d23594c935a9, initial value 0, no final xor).
var jones = crc64.MakeTable(bits.Reverse64(0xad93d23594c935a9))

// jones8 extends jones for slicing-by-8: jones8[k][b] is the CRC of byte b followed by k zero
// bytes. hash/crc64 builds such tables once only for its own two polynomials; for any other it
// rebuilds them on every call of 2 KiB or more and, below that, runs a byte at a time after
// comparing 2 KiB tables. Every byte of an RDB transfer is checksummed (the file's CRC, and
// again each key's DUMP payload CRC), so that cost was a fifth of a backup's CPU time.
var jones8 = func() *[8]crc64.Table {
	var t [8]crc64.Table
	t[0] = *jones
	for i := range 256 {
		crc := t[0][i]
		for k := 1; k < 8; k++ {
			crc = t[0][crc&0xff] ^ crc>>8
			t[k][i] = crc
		}
	}
	return &t
}()

// Checksum continues the Redis CRC64 crc over p.
func Checksum(crc uint64, p []byte) uint64 {
	t := jones8
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}
