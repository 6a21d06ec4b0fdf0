package resp_test

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"stash.dev/redis/runner/resp"
)

func TestEncode(t *testing.T) {
	b := resp.AppendCommand(nil, "SET", "k", "")
	b = resp.AppendBulkInt(b, -12)
	b = resp.AppendBulk(b, []byte{0, '\r', '\n'})
	want := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$3\r\n-12\r\n$3\r\n\x00\r\n\r\n"
	if string(b) != want {
		t.Fatalf("got %q", b)
	}
}

func TestReader(t *testing.T) {
	r := resp.NewReader(bufio.NewReader(strings.NewReader("+OK\r\n-ERR bad\r\n:42\r\n$3\r\na\r\n\r\n$-1\r\n*2\r\n$1\r\nx\r\n:1\r\n+OK\r\n")))
	if err := r.ReadOK(); err != nil {
		t.Fatal(err)
	}
	var re resp.Error
	if err := r.ReadOK(); !errors.As(err, &re) || string(re) != "ERR bad" {
		t.Fatalf("error reply: %v", err)
	}
	if n, err := r.ReadInt(); n != 42 || err != nil {
		t.Fatalf("int: %d %v", n, err)
	}
	b, isNil, err := r.AppendBulkReply([]byte("p:"))
	if string(b) != "p:a\r\n" || isNil || err != nil {
		t.Fatalf("bulk: %q %v %v", b, isNil, err)
	}
	if _, isNil, err := r.AppendBulkReply(nil); !isNil || err != nil {
		t.Fatalf("nil bulk: %v %v", isNil, err)
	}
	if err := r.Discard(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadOK(); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadOK(); err == nil {
		t.Fatal("read past end")
	}
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "-1": -1, "1234567890123": 1234567890123} {
		if got, err := resp.ParseInt([]byte(s)); got != want || err != nil {
			t.Errorf("ParseInt(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "-", "1x", "+1"} {
		if _, err := resp.ParseInt([]byte(s)); err == nil {
			t.Errorf("ParseInt(%q) accepted", s)
		}
	}
}

// TestReadBulkNoAllocations: reading a bulk string into the caller's buffer allocates nothing,
// which the dump and load hot paths rely on.
func TestReadBulkNoAllocations(t *testing.T) {
	r := resp.NewReader(bufio.NewReader(strings.NewReader(strings.Repeat("$3\r\nabc\r\n", 2000))))
	dst := make([]byte, 3)
	n := testing.AllocsPerRun(1000, func() {
		if _, err := r.ReadBulkLen(); err != nil {
			t.Fatal(err)
		}
		if err := r.ReadBulkData(dst); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per bulk string", n)
	}
}
