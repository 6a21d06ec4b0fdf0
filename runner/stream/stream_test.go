package stream_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/resp"
	"stash.dev/redis/runner/stream"
)

// TestRoundTrip: what the Encoder and the Append functions write, the Decoder reads back, with
// the database of the last SELECT, payloads read or skipped, and the exact bytes of the format.
func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	enc := stream.NewEncoder(&buf)
	if err := enc.Select(3); err != nil {
		t.Fatal(err)
	}
	if err := enc.Restore([]byte("k\r\n1"), 1700000000123, []byte("payload\x00")); err != nil {
		t.Fatal(err)
	}
	b := stream.AppendSelect(nil, 0)
	b = stream.AppendRestoreStart(b, []byte("k2"), 0, 3)
	b = append(b, "xyz"...)
	b = stream.AppendRestoreEnd(b)
	b = stream.AppendRestore(b, []byte("k3"), 5, []byte("abc"))
	buf.Write(b)
	want := "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n" +
		"*6\r\n$7\r\nRESTORE\r\n$4\r\nk\r\n1\r\n$13\r\n1700000000123\r\n$8\r\npayload\x00\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
	if got := buf.String(); !strings.HasPrefix(got, want) {
		t.Fatalf("encoded %q, want it to start with %q", got, want)
	}
	if enc.Bytes() != int64(len(want)) {
		t.Errorf("Encoder.Bytes() = %d, want %d", enc.Bytes(), len(want))
	}
	total := int64(buf.Len())

	dec := stream.NewDecoder(&buf)
	rec, err := dec.Next()
	if err != nil || rec.DB != 3 || string(rec.Key) != "k\r\n1" || rec.ExpireAt != 1700000000123 || rec.PayloadLen != 8 {
		t.Fatalf("first record %+v, %v", rec, err)
	}
	if p, err := dec.Payload(); err != nil || string(p) != "payload\x00" {
		t.Fatalf("payload %q, %v", p, err)
	}
	rec, err = dec.Next() // k2: left unread, skipped by Next
	if err != nil || rec.DB != 0 || string(rec.Key) != "k2" || rec.ExpireAt != 0 || rec.PayloadLen != 3 {
		t.Fatalf("second record %+v, %v", rec, err)
	}
	rec, err = dec.Next()
	if err != nil || string(rec.Key) != "k3" || rec.ExpireAt != 5 {
		t.Fatalf("third record %+v, %v", rec, err)
	}
	dst := make([]byte, rec.PayloadLen)
	if err := dec.ReadPayload(dst); err != nil || string(dst) != "abc" {
		t.Fatalf("payload %q, %v", dst, err)
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	if dec.Bytes() != total {
		t.Errorf("Decoder.Bytes() = %d, want %d", dec.Bytes(), total)
	}
}

// TestDecoderAcceptsOtherModifiers: a RESTORE with fewer or other modifiers (a stream written
// by hand for `redis-cli --pipe`) is read; its modifiers are dropped.
func TestDecoderAcceptsOtherModifiers(t *testing.T) {
	s := resp.AppendCommand(nil, "restore", "a", "0", "p1")
	s = resp.AppendCommand(s, "RESTORE", "b", "7", "p2", "ABSTTL", "IDLETIME", "5")
	dec := stream.NewDecoder(bytes.NewReader(s))
	for _, want := range []string{"a", "b"} {
		rec, err := dec.Next()
		if err != nil || string(rec.Key) != want {
			t.Fatalf("record %+v, %v; want key %q", rec, err, want)
		}
		if _, err := dec.Payload(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dec.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestDecoderErrors(t *testing.T) {
	for name, tt := range map[string]struct{ stream, want string }{
		"other command":   {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", `unsupported command "SET"`},
		"truncated":       {"*6\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$100\r\nabc", "unexpected EOF"},
		"cut after head":  {"*6\r\n$7\r\nRESTORE\r\n", "ends in the middle of a command"},
		"not resp":        {"hello world\r\n", "protocol error"},
		"bad database":    {"*2\r\n$6\r\nSELECT\r\n$1\r\nx\r\n", "bad database"},
		"bad expiry":      {"*4\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\nx\r\n$1\r\np\r\n", `bad ttl of key "k"`},
		"short restore":   {"*3\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n", "RESTORE with 2 arguments"},
		"nil payload":     {"*4\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$-1\r\n", `bad payload of key "k"`},
		"payload no crlf": {"*4\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$1\r\npxx", "not terminated by CRLF"},
	} {
		t.Run(name, func(t *testing.T) {
			dec := stream.NewDecoder(strings.NewReader(tt.stream))
			var err error
			for err == nil {
				_, err = dec.Next()
			}
			if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestExpireAt(t *testing.T) {
	for _, tt := range []struct {
		reply    int64
		relative bool
		want     int64
		exists   bool
	}{
		{-2, false, 0, false}, {-2, true, 0, false},
		{-1, false, 0, true}, {-1, true, 0, true},
		{1700000000123, false, 1700000000123, true},
	} {
		if got, exists := stream.ExpireAt(tt.reply, tt.relative); got != tt.want || exists != tt.exists {
			t.Errorf("ExpireAt(%d, %v) = %d, %v; want %d, %v", tt.reply, tt.relative, got, exists, tt.want, tt.exists)
		}
	}
	before := time.Now().UnixMilli()
	got, _ := stream.ExpireAt(60000, true)
	if after := time.Now().UnixMilli(); got < before+60000 || got > after+60000 {
		t.Errorf("ExpireAt(PTTL 60000) = %d, want now+60000 (%d..%d)", got, before+60000, after+60000)
	}
}

// TestNoAllocations: the hot paths, appending records into a buffer with room and decoding
// into the caller's buffer, allocate nothing per record.
func TestNoAllocations(t *testing.T) {
	key, payload := []byte("user:1234567"), bytes.Repeat([]byte("p"), 100)
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = appendRecord(buf[:0], key, payload) }); n != 0 {
		t.Errorf("append: %v allocations per record", n)
	}
	one := appendRecord(nil, key, payload)
	r := &repeatReader{record: one}
	dec := stream.NewDecoder(r)
	dst := make([]byte, len(payload))
	if _, err := dec.Next(); err != nil { // warm up the decoder's buffers
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(1000, func() {
		rec, err := dec.Next()
		if err != nil || rec.PayloadLen != len(dst) {
			t.Fatalf("%+v %v", rec, err)
		}
		if err := dec.ReadPayload(dst); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("decode: %v allocations per record", n)
	}
}

func appendRecord(b, key, payload []byte) []byte {
	b = stream.AppendRestoreStart(b, key, 1700000000123, len(payload))
	b = append(b, payload...)
	return stream.AppendRestoreEnd(b)
}

// repeatReader returns the same record forever.
type repeatReader struct {
	record []byte
	off    int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.record[r.off:])
		n += c
		r.off = (r.off + c) % len(r.record)
	}
	return n, nil
}

func BenchmarkAppendRestore(b *testing.B) {
	key, payload := []byte("user:1234567"), bytes.Repeat([]byte("p"), 100)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecord(buf[:0], key, payload)
	}
}

func BenchmarkDecode(b *testing.B) {
	key, payload := []byte("user:1234567"), bytes.Repeat([]byte("p"), 100)
	dec := stream.NewDecoder(&repeatReader{record: appendRecord(nil, key, payload)})
	dst := make([]byte, len(payload))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Next(); err != nil {
			b.Fatal(err)
		}
		if err := dec.ReadPayload(dst); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecoder reads arbitrary bytes as a snapshot stream: records or an error, never a panic,
// and no allocation sized by a length the input claims but does not hold.
func FuzzDecoder(f *testing.F) {
	var seed []byte
	seed = stream.AppendSelect(seed, 3)
	seed = stream.AppendRestore(seed, []byte("k"), 1700000000000, []byte("\x00\x01v\x0b\x00\x01\x02\x03\x04\x05\x06\x07\x08"))
	f.Add(seed)
	f.Add([]byte("*5\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$99999999999\r\n"))
	f.Add([]byte("*2\r\n$6\r\nSELECT\r\n$-1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := stream.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			rec, err := d.Next()
			if err != nil {
				return
			}
			if i%2 == 0 {
				p, err := d.Payload()
				if err != nil {
					return
				}
				if len(p) != rec.PayloadLen {
					t.Fatalf("payload of %d bytes, record says %d", len(p), rec.PayloadLen)
				}
			}
		}
	})
}
