package crypt_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"stash.dev/redis/runner/crypt"
)

func TestSealUnseal(t *testing.T) {
	k, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal("pw", 10)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("AGE-SECRET-KEY")) {
		t.Fatal("sealed key contains the plaintext identity")
	}
	k2, err := crypt.Unseal(sealed, "pw")
	if err != nil || k2.Recipient() != k.Recipient() {
		t.Fatalf("unseal: %v", err)
	}
	if _, err := crypt.Unseal(sealed, "wrong"); !errors.Is(err, crypt.ErrWrongPassword) {
		t.Fatalf("unseal with a wrong password: %v", err)
	}
}

func TestEncryptDecryptAndMAC(t *testing.T) {
	k, _ := crypt.NewKey()
	other, _ := crypt.NewKey()
	plain := bytes.Repeat([]byte("redis "), 50000) // several 64 KiB chunks
	var buf bytes.Buffer
	w, err := k.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	w.Close()
	enc := buf.Bytes()

	r, err := crypt.Decrypt(bytes.NewReader(enc), other, k)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := crypt.Decrypt(bytes.NewReader(enc), other); !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("decrypt with a foreign key: %v", err)
	}
	bad := bytes.Clone(enc)
	bad[len(bad)/2] ^= 1
	r, err = crypt.Decrypt(bytes.NewReader(bad), k)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, crypt.ErrIntegrity) {
		t.Fatalf("decrypt of a flipped byte: %v", err)
	}

	mac := k.MAC([]byte("manifest"))
	if !crypt.VerifyMAC([]byte("manifest"), mac, other, k) || crypt.VerifyMAC([]byte("manifest!"), mac, k) || crypt.VerifyMAC([]byte("manifest"), mac, other) {
		t.Fatal("mac verification")
	}
}
