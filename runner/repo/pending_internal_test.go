package repo

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"stash.dev/redis/runner/crypt"
)

// TestPendingEncrypterHoldsUntilTheKey: what is written before the key is unlocked is held,
// not written out, up to maxPendingBytes; a write beyond that waits for the key; everything
// then decrypts in order.
func TestPendingEncrypterHoldsUntilTheKey(t *testing.T) {
	k, err := crypt.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	r := &Repository{unlocked: make(chan struct{})}
	var out bytes.Buffer
	w, err := r.encrypter(context.Background(), &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.Repeat([]byte{'a'}, maxPendingBytes)
	if _, err := w.Write(first); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("%d bytes written out before the key was unlocked", out.Len())
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte("b")) // beyond the bound: waits for the key
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a write beyond maxPendingBytes returned (%v) before the key was unlocked", err)
	case <-time.After(100 * time.Millisecond):
	}
	r.keys = []*crypt.Key{k}
	close(r.unlocked)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dec, err := crypt.Decrypt(&out, k)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(dec)
	if err != nil || len(plain) != maxPendingBytes+1 || plain[0] != 'a' || plain[len(plain)-1] != 'b' {
		t.Fatalf("decrypted %d bytes (%v), want %d in order", len(plain), err, maxPendingBytes+1)
	}
}
