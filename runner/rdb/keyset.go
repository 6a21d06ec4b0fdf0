package rdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
)

// ErrDuplicateKey is returned for a key that an RDB file (or a snapshot) holds twice in one
// database: Redis refuses to load such a file, and a replica that receives one stops
// ("Duplicated key found in RDB file"), so it must be refused before a target sees it.
var ErrDuplicateKey = errors.New("key appears twice")

// KeySet remembers the keys seen per database to find one that appears twice, in bounded
// memory per key whatever the key's size: each key is kept as a 128-bit hash (two independent
// 64-bit seeded hashes of the database and the key), about 20 to 40 bytes a key in the map
// (1 million keys: 20–40 MB). Two different keys share a 128-bit hash with a probability below
// n²/2^129 (10^-20 for 10^9 keys), so a match is taken as the same key without keeping the
// key itself. The zero KeySet is not usable; use NewKeySet.
type KeySet struct {
	seeds [2]maphash.Seed
	seen  map[[2]uint64]struct{}
	buf   []byte
}

// NewKeySet returns an empty KeySet.
func NewKeySet() *KeySet {
	return &KeySet{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, seen: map[[2]uint64]struct{}{}}
}

// Add records key of database db, failing with ErrDuplicateKey, naming it, if it was added
// before.
func (s *KeySet) Add(db int, key []byte) error {
	s.buf = binary.LittleEndian.AppendUint32(s.buf[:0], uint32(db))
	s.buf = append(s.buf, key...)
	h := [2]uint64{maphash.Bytes(s.seeds[0], s.buf), maphash.Bytes(s.seeds[1], s.buf)}
	if len(s.buf) > maxKeptBuffer {
		s.buf = nil
	}
	if _, dup := s.seen[h]; dup {
		return fmt.Errorf("%w: database %d holds key %q twice", ErrDuplicateKey, db, key)
	}
	s.seen[h] = struct{}{}
	return nil
}

// Len returns the number of keys added.
func (s *KeySet) Len() int { return len(s.seen) }
