package rdb

import (
	"math/rand/v2"
	"testing"
)

// TestFoldingEqualsTables: the folded checksum (where the CPU has it) and the tables alone agree
// for every length around the folding thresholds, every alignment and every initial value.
func TestFoldingEqualsTables(t *testing.T) {
	if !canFold {
		t.Logf("this CPU has no carry-less multiplication: Checksum uses the tables only")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 4200)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for n := 0; n <= 300; n++ {
		for _, off := range []int{0, 1, 5, 8, 15} {
			p := data[off : off+n]
			crc := rng.Uint64()
			if got, want := Checksum(crc, p), checksumTables(crc, p); got != want {
				t.Fatalf("len %d offset %d crc %x: %x, tables %x", n, off, crc, got, want)
			}
		}
	}
	if got, want := Checksum(0, data), checksumTables(0, data); got != want {
		t.Fatalf("4200 bytes: %x, tables %x", got, want)
	}
	// Longer than a fold chunk, and not a multiple of it nor of 16.
	big := make([]byte, 3*foldChunk+1000+7)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if got, want := Checksum(42, big), checksumTables(42, big); got != want {
		t.Fatalf("%d bytes: %x, tables %x", len(big), got, want)
	}
}
