package repo

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"

	"stash.dev/redis/runner/crypt"
)

// A snapshot's data object proves which snapshot it belongs to before a single key is read from
// it. Its plaintext (inside the age encryption, before the zstd stream) starts with a binding:
//
//	stash.dev/redis snapshot data\n<snapshot id>\n<hex HMAC of the id under the repository key>\n
//
// The size and sha256 in the manifest are only checked at the end of the stream, so without a
// binding, another snapshot's data object of the same size copied over this one would be
// restored, key by key, until the hash at the end said otherwise. age authenticates the first
// chunk before it returns a byte of it, and the HMAC can only be made with the password, so a
// binding can be neither forged nor moved to another snapshot.
//
// Snapshots of format version 1 have no binding (their plaintext starts with the zstd magic
// number); they are read as before, checked by size before and by hash after the stream. A
// data object that has a binding is checked whatever its manifest's version.
const bindingMagic = "stash.dev/redis snapshot data\n"

// bindingFormatVersion is the first snapshot format whose data objects all have a binding.
const bindingFormatVersion = 2

// maxBinding bounds what readBinding reads before giving up: the magic, an id, a MAC.
const maxBinding = len(bindingMagic) + 64 + 1 + 64 + 1

func bindingMAC(k *crypt.Key, id string) []byte {
	return k.MAC([]byte("stash.dev/redis snapshot data\x00" + id))
}

// binding returns the binding of snapshot id under k.
func binding(k *crypt.Key, id string) []byte {
	return []byte(bindingMagic + id + "\n" + hex.EncodeToString(bindingMAC(k, id)) + "\n")
}

// checkBinding reads the binding at the start of plain, the decrypted data object of snapshot
// m, and returns the reader of the rest (the zstd stream). An object without a binding is
// accepted only for a manifest older than bindingFormatVersion.
func checkBinding(plain io.Reader, m Manifest, keys []*crypt.Key) (io.Reader, error) {
	head := make([]byte, len(bindingMagic))
	n, err := io.ReadFull(plain, head)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	if !bytes.Equal(head[:n], []byte(bindingMagic)) {
		if m.FormatVersion >= bindingFormatVersion {
			return nil, fmt.Errorf("%w: data object does not say which snapshot it belongs to (format version %d needs it): it was replaced",
				crypt.ErrIntegrity, m.FormatVersion)
		}
		return io.MultiReader(bytes.NewReader(head[:n]), plain), nil
	}
	// The id and the MAC, a line each, read a byte at a time so that nothing of the zstd stream
	// after them is consumed.
	var lines [2][]byte
	b := make([]byte, 1)
	for i, read := 0, len(bindingMagic); i < 2; {
		if read++; read > maxBinding {
			return nil, fmt.Errorf("%w: data object's binding is too long", crypt.ErrIntegrity)
		}
		if _, err := io.ReadFull(plain, b); err != nil {
			return nil, fmt.Errorf("%w: data object's binding is cut short: %w", crypt.ErrIntegrity, err)
		}
		if b[0] == '\n' {
			i++
			continue
		}
		lines[i] = append(lines[i], b[0])
	}
	id := string(lines[0])
	mac, err := hex.DecodeString(string(lines[1]))
	if err != nil || !crypt.VerifyMAC([]byte("stash.dev/redis snapshot data\x00"+id), mac, keys...) {
		return nil, fmt.Errorf("%w: data object's binding does not verify under the repository key", crypt.ErrIntegrity)
	}
	if id != m.ID {
		return nil, fmt.Errorf("%w: data object belongs to snapshot %s, not to %s: it was copied over this one "+
			"(restore another snapshot, and check the data of every snapshot)", crypt.ErrIntegrity, id, m.ID)
	}
	return plain, nil
}
