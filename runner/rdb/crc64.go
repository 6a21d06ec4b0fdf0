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
	for canFold && len(p) >= foldMin {
		// Fold whole 16-byte blocks with carry-less multiplication into 16 bytes that leave
		// the same remainder, then finish those and the tail with the tables.
		n := min(len(p), foldChunk) &^ 15
		lo, hi := fold16(crc, p[:n], &foldKeys)
		var rest [16]byte
		binary.LittleEndian.PutUint64(rest[:], lo)
		binary.LittleEndian.PutUint64(rest[8:], hi)
		crc, p = checksumTables(0, rest[:]), p[n:]
	}
	return checksumTables(crc, p)
}

// foldMin is the length from which folding pays for its set-up and the 16 table steps after it.
const foldMin = 32

// foldChunk bounds what one call of the assembly folds (about 0.15 ms): it cannot be preempted,
// and the garbage collector, which stops every goroutine to scan its stack, would wait for it
// through a whole multi-megabyte value.
const foldChunk = 1 << 20

// foldKeys are the two multipliers that fold a 16-byte block into the next one: a block whose
// first 8 bytes are H and last 8 are L, followed by 16 more bytes, leaves the same CRC remainder
// as the 16-byte block H*x^192 + L*x^128 (mod P) would at its place. Both are stored reflected
// as the CRC is, and one power lower, because the carry-less product of two reflected 64-bit
// values comes out shifted by one bit.
var foldKeys = [2]uint64{xPowModP(192 - 1), xPowModP(128 - 1)}

// xPowModP returns x^n mod P, reflected (bit i holds the coefficient of x^(63-i)).
func xPowModP(n int) uint64 {
	const poly = 0xad93d23594c935a9 // P without its x^64 term, not reflected
	r := uint64(1)
	for range n {
		carry := r >> 63
		r <<= 1
		if carry == 1 {
			r ^= poly
		}
	}
	return bits.Reverse64(r)
}

// checksumTables continues crc over p with the slicing-by-8 tables.
func checksumTables(crc uint64, p []byte) uint64 {
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
