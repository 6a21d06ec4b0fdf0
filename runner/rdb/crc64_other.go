//go:build !amd64

package rdb

// canFold is false where there is no carry-less multiplication in assembly: the tables do it all.
var canFold = false

func fold16(uint64, []byte, *[2]uint64) (lo, hi uint64) { panic("rdb: fold16 without assembly") }
