package rdb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

func TestChecksum(t *testing.T) {
	// The check value of CRC-64/Jones as in Redis' crc64.c self test.
	if got := rdb.Checksum(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("Checksum(123456789) = %x", got)
	}
	// Continuing a checksum equals computing it in one go.
	if a, b := rdb.Checksum(rdb.Checksum(0, []byte("1234")), []byte("56789")), rdb.Checksum(0, []byte("123456789")); a != b {
		t.Fatalf("split %x, whole %x", a, b)
	}
	// Slicing by 8 equals the byte-at-a-time definition for every length, alignment and split.
	jones := crc64.MakeTable(bits.Reverse64(0xad93d23594c935a9))
	reference := func(crc uint64, p []byte) uint64 { return ^crc64.Update(^crc, jones, p) }
	data := make([]byte, 5000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for n := 0; n <= len(data); n += 1 + n/7 {
		for _, off := range []int{0, 1, 3, 7} {
			p := data[min(off, n):n]
			cut := len(p) / 3
			want := reference(reference(0x1234, p[:cut]), p[cut:])
			if got := rdb.Checksum(rdb.Checksum(0x1234, p[:cut]), p[cut:]); got != want {
				t.Fatalf("len %d offset %d: %x, want %x", len(p), off, got, want)
			}
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{16, 40, 64, 100, 4096} {
		p := bytes.Repeat([]byte{0xa5}, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				rdb.Checksum(0, p)
			}
		})
	}
}

// TestFileLoadsInRedis writes an RDB file from the DUMP payloads of a real server and starts a
// second server on it: both must hold the same data (DEBUG DIGEST) and expiries.
func TestFileLoadsInRedis(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	type entry struct {
		db      int
		key     string
		expire  int64
		payload []byte
	}
	var entries []entry
	expireAt := time.Now().Add(time.Hour).UnixMilli()
	for _, db := range []int{0, 2} {
		c := redis.NewClient(&redis.Options{Addr: src.Addr, DB: db, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		p := c.Pipeline()
		p.Set(ctx, "string", "value", 0)
		p.Set(ctx, "\x00bin\r\n", string([]byte{0, 0xff, '\r', '\n'}), 0)
		p.HSet(ctx, "hash", "a", 1, "b", "two")
		p.RPush(ctx, "list", "x", "y", 3)
		p.SAdd(ctx, "set", "m", "n", 7)
		p.SAdd(ctx, "intset", 1, 2, 3)
		p.ZAdd(ctx, "zset", redis.Z{Score: 1.5, Member: "a"}, redis.Z{Score: -2, Member: "b"})
		p.XAdd(ctx, &redis.XAddArgs{Stream: "stream", Values: []any{"f", "v"}})
		p.Set(ctx, "expiring", "soon", 0)
		p.PExpireAt(ctx, "expiring", time.UnixMilli(expireAt))
		long := bytes.Repeat([]byte("k"), 20000) // a key with a 4-byte length
		p.Set(ctx, string(long), "long key", 0)
		for i := range 200 { // a hashtable-encoded hash
			p.HSet(ctx, "bighash", i, bytes.Repeat([]byte("v"), 100))
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			payload, err := c.Dump(ctx, k).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyPayload(payload); err != nil {
				t.Fatalf("payload of %q: %v", k, err)
			}
			var exp int64
			if k == "expiring" {
				exp = expireAt
			}
			entries = append(entries, entry{db, k, exp, payload})
		}
	}
	version, err := rdb.FormatVersion(entries[0].payload)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := rdb.NewWriter(&buf, version)
	if err != nil {
		t.Fatal(err)
	}
	db := -1
	for _, e := range entries {
		if e.db != db {
			db = e.db
			if err := w.SelectDB(db, 20, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Add([]byte(e.key), e.expire, e.payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "restored.rdb"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t, redistest.WithConfig("dir", dir), redistest.WithConfig("dbfilename", "restored.rdb"))
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, loaded %s\n%s", s, d, dst.Log())
	}
	dataset.Same(t, src, dst)
	for _, db := range []int{0, 2} {
		c := redis.NewClient(&redis.Options{Addr: dst.Addr, DB: db, Protocol: 2, DisableIdentity: true})
		defer c.Close()
		if got := c.PExpireTime(ctx, "expiring").Val(); got != time.Duration(expireAt)*time.Millisecond {
			t.Errorf("db %d: expiry %v, want %d ms", db, got, expireAt)
		}
	}

	// A flipped byte makes Redis refuse the file.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 0x40
	if err := os.WriteFile(filepath.Join(dir, "restored.rdb"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	dst.Stop()
	if _, err := startOn(t, dir); err == nil {
		t.Fatal("redis-server loaded an RDB file with a flipped byte")
	}
}

func TestAddRejectsBadPayloads(t *testing.T) {
	w, err := rdb.NewWriter(&bytes.Buffer{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add([]byte("k"), 0, []byte{0, 1, 2}); !errors.Is(err, rdb.ErrPayload) {
		t.Errorf("short payload: %v", err)
	}
	newer := []byte{0, 1, 'a', 11, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := w.Add([]byte("k"), 0, newer); !errors.Is(err, rdb.ErrPayload) {
		t.Errorf("payload of a newer version: %v", err)
	}
	if _, err := rdb.NewWriter(&bytes.Buffer{}, 0); err == nil {
		t.Error("version 0 accepted")
	}
}

// startOn runs redis-server (no TCP port) on dir/restored.rdb and returns its log and an error
// if it refuses the file: Redis exits at startup when its RDB file does not load.
func startOn(t *testing.T, dir string) (string, error) {
	t.Helper()
	log := filepath.Join(dir, "startup.log")
	cmd := exec.Command(redistest.Binary(t, "redis-server"), "--port", "0", "--dir", dir, "--dbfilename", "restored.rdb",
		"--save", "", "--logfile", log)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		b, _ := os.ReadFile(log)
		if err == nil {
			err = errors.New("redis-server exited")
		}
		return string(b), err
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		b, _ := os.ReadFile(log)
		return string(b), nil
	}
}

// verifyPayload checks the CRC64 at the end of a DUMP payload as RESTORE does, which proves
// that Checksum computes Redis' CRC.
func verifyPayload(payload []byte) error {
	if len(payload) < 11 {
		return fmt.Errorf("payload of %d bytes", len(payload))
	}
	body := payload[:len(payload)-8]
	if got, want := rdb.Checksum(0, body), binary.LittleEndian.Uint64(payload[len(payload)-8:]); got != want {
		return fmt.Errorf("checksum %x, payload says %x", got, want)
	}
	return nil
}
