package rdb

import "golang.org/x/sys/cpu"

// canFold: the CPU multiplies without carries (PCLMULQDQ) and extracts a quadword (SSE4.1).
// Folding checksums about four times as fast as the tables (4 KiB); an RDB transfer checksums every
// byte, and a backup's payloads again.
var canFold = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41

// fold16 folds p (a multiple of 16 bytes, at least 32) with the initial CRC crc into 16 bytes
// with the same CRC remainder, returned as two little-endian quadwords.
//
//go:noescape
func fold16(crc uint64, p []byte, keys *[2]uint64) (lo, hi uint64)
