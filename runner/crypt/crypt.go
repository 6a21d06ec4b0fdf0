// Package crypt holds the repository's cryptography: the repository key sealed by the password,
// stream encryption of snapshot data to the repository key, and manifest authentication.
//
// Data is encrypted with age (X25519 recipient, ChaCha20-Poly1305 in 64 KiB chunks), so tampering
// and truncation are detected chunk by chunk while streaming. age to a public recipient does not
// authenticate the sender, so manifests additionally carry an HMAC keyed from the secret identity:
// only a holder of the repository password can produce a manifest that verifies, and the manifest
// pins the sha256 of the data object.
package crypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// ErrWrongPassword is returned when no repository key can be unlocked with the password.
var ErrWrongPassword = errors.New("wrong repository password")

// ErrIntegrity is returned when stored data or metadata fails verification.
var ErrIntegrity = errors.New("integrity check failed")

// ErrRead is wrapped by the error of a decryption whose ciphertext could not be read (the
// storage connection failed): the data may be fine, the transfer was not.
var ErrRead = errors.New("reading the encrypted data failed")

// DefaultWorkFactor is the scrypt work factor (log2 N) for new keys: 2^15 costs 32 MiB and about
// 0.1 s per attempt, as in restic. age's own default (18) needs 256 MiB, more than a runner Pod's
// memory budget.
const DefaultWorkFactor = 15

// MaxWorkFactor is the largest work factor Unseal accepts. A key file says its own work factor,
// and age accepts up to 22 (4 GiB of scrypt memory): a tampered or hostile key file could make
// the runner take that much before the password is even checked. 2^16 costs 64 MiB; keys this
// runner makes use 2^15.
const MaxWorkFactor = 16

// Key is an unlocked repository key.
type Key struct {
	identity *age.X25519Identity
	mac      []byte
}

// NewKey generates a random repository key.
func NewKey() (*Key, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate repository key: %w", err)
	}
	return keyFor(id)
}

func keyFor(id *age.X25519Identity) (*Key, error) {
	mac, err := hkdf.Key(sha256.New, []byte(id.String()), nil, "stash.dev/redis manifest hmac v1", 32)
	if err != nil {
		return nil, err
	}
	return &Key{identity: id, mac: mac}, nil
}

// Recipient returns the public part, used to encrypt snapshot data.
func (k *Key) Recipient() string { return k.identity.Recipient().String() }

// Seal encrypts the key with the password (age scrypt, armored) for storage in keys/.
func (k *Key) Seal(password string, workFactor int) ([]byte, error) {
	r, err := age.NewScryptRecipient(password)
	if err != nil {
		return nil, fmt.Errorf("seal repository key: %w", err)
	}
	if workFactor > MaxWorkFactor {
		return nil, fmt.Errorf("seal repository key: work factor %d is above %d, which Unseal refuses", workFactor, MaxWorkFactor)
	}
	if workFactor > 0 {
		r.SetWorkFactor(workFactor)
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("seal repository key: %w", err)
	}
	if _, err := io.WriteString(w, k.identity.String()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Unseal decrypts a sealed key with the password. It returns ErrWrongPassword when the password
// does not match.
func Unseal(sealed []byte, password string) (*Key, error) {
	id, err := age.NewScryptIdentity(password)
	if err != nil {
		return nil, err
	}
	id.SetMaxWorkFactor(MaxWorkFactor)
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(sealed)), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, ErrWrongPassword
		}
		return nil, fmt.Errorf("unseal repository key: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return nil, fmt.Errorf("unseal repository key: %w", err)
	}
	x, err := age.ParseX25519Identity(string(bytes.TrimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("unseal repository key: %w", err)
	}
	return keyFor(x)
}

// Encrypt returns a writer that encrypts to the key; Close must be called to write the last chunk.
func (k *Key) Encrypt(dst io.Writer) (io.WriteCloser, error) {
	w, err := age.Encrypt(dst, k.identity.Recipient())
	if err != nil {
		return nil, fmt.Errorf("start encryption: %w", err)
	}
	return w, nil
}

// Decrypt returns a reader of the plaintext of src, which was encrypted to one of keys. Reads fail
// with an error wrapping ErrIntegrity when a chunk was altered or the stream was truncated.
func Decrypt(src io.Reader, keys ...*Key) (io.Reader, error) {
	ids := make([]age.Identity, len(keys))
	for i, k := range keys {
		ids[i] = k.identity
	}
	sr := &sourceReader{r: src}
	r, err := age.Decrypt(sr, ids...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w: data is not encrypted to this repository's key", ErrIntegrity)
		}
		if sr.err != nil {
			return nil, fmt.Errorf("%w: header: %w", ErrRead, sr.err)
		}
		return nil, fmt.Errorf("%w: read encryption header: %w", ErrIntegrity, err)
	}
	return &integrityReader{r: r, src: sr}, nil
}

// sourceReader remembers the error of the reader under the decryption: when reading the
// ciphertext failed (a connection cut mid-download), the decryption's complaint about a short
// chunk is not about the data's integrity, and the error says what really happened.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

type integrityReader struct {
	r   io.Reader
	src *sourceReader
}

func (ir *integrityReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	switch {
	case err == nil || err == io.EOF:
	case ir.src.err != nil:
		err = fmt.Errorf("%w: %w", ErrRead, ir.src.err)
	default:
		err = fmt.Errorf("%w: decrypt: %w", ErrIntegrity, err)
	}
	return n, err
}

// MAC returns the HMAC-SHA256 of b under the key's manifest key.
func (k *Key) MAC(b []byte) []byte {
	h := hmac.New(sha256.New, k.mac)
	h.Write(b)
	return h.Sum(nil)
}

// VerifyMAC reports whether mac is b's MAC under any of keys.
func VerifyMAC(b, mac []byte, keys ...*Key) bool {
	for _, k := range keys {
		if hmac.Equal(k.MAC(b), mac) {
			return true
		}
	}
	return false
}
