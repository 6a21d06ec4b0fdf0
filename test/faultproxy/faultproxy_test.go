package faultproxy_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/test/faultproxy"
)

// upstream starts a server that sends data to each client and then echoes what it reads.
// Its connections' read errors go to errs.
func upstream(t *testing.T, data []byte) (addr string, errs chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	errs = make(chan error, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := c.Write(data); err != nil {
					errs <- err
					return
				}
				_, err := io.Copy(c, c)
				if err == nil {
					err = io.EOF
				}
				errs <- err
			}()
		}
	}()
	return l.Addr().String(), errs
}

func start(t *testing.T, up string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *faultproxy.Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// readFor reads from c until it has read n bytes, or it fails, or d passed.
func readFor(c net.Conn, n int, d time.Duration) ([]byte, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	b := make([]byte, n)
	got, err := io.ReadFull(c, b)
	return b[:got], err
}

func TestForwardsBothWays(t *testing.T) {
	data := random(1 << 20)
	up, _ := upstream(t, data)
	p := start(t, up)
	c := dial(t, p)
	got, err := readFor(c, len(data), 10*time.Second)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(data), err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got, err := readFor(c, 4, 5*time.Second); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if n := p.Bytes(faultproxy.ToClient); n != int64(len(data))+4 {
		t.Fatalf("Bytes(ToClient) = %d", n)
	}
	if n := p.Bytes(faultproxy.ToServer); n != 4 {
		t.Fatalf("Bytes(ToServer) = %d", n)
	}
}

// TestLatency: every round trip takes at least twice the latency set on both directions, and a
// bulk transfer is not slowed down by more than the latency (chunks stay pipelined).
func TestLatency(t *testing.T) {
	data := random(4 << 20)
	up, _ := upstream(t, data)
	p := start(t, up)
	const lat = 50 * time.Millisecond
	p.Set(faultproxy.Fault{Kind: faultproxy.Latency, Dir: faultproxy.Both, Latency: lat})
	c := dial(t, p)
	begin := time.Now()
	if got, err := readFor(c, len(data), 10*time.Second); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	if d := time.Since(begin); d < lat || d > 2*time.Second {
		t.Fatalf("4 MB with %s latency took %s", lat, d)
	}
	begin = time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := readFor(c, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 2*lat {
		t.Fatalf("round trip took %s with %s each way", d, lat)
	}
}

// TestStallAfterBytes: exactly the bytes before the threshold pass, then nothing while the
// connection stays open; Clear lets the rest through.
func TestStallAfterBytes(t *testing.T) {
	data := random(1 << 20)
	up, _ := upstream(t, data)
	p := start(t, up)
	const after = 100_000
	p.Set(faultproxy.Fault{Kind: faultproxy.Stall, Dir: faultproxy.ToClient, After: after})
	c := dial(t, p)
	got, err := readFor(c, len(data), 300*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) || len(got) != after || !bytes.Equal(got, data[:after]) {
		t.Fatalf("read %d bytes (%v), want exactly %d then a stall", len(got), err, after)
	}
	if !p.Active() || p.Conns() != 1 {
		t.Fatalf("active %v, %d connections", p.Active(), p.Conns())
	}
	// The other direction still flows: the echo is queued behind the stalled data, but the
	// server receives it.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	p.Clear()
	rest, err := readFor(c, len(data)-after+1, 10*time.Second)
	if err != nil || !bytes.Equal(append(got, rest...), append(data, 'x')) {
		t.Fatalf("after Clear: %d bytes, %v", len(rest), err)
	}
}

// TestCutAfterBytes: the client gets exactly the bytes before the threshold and then EOF; the
// server's side is closed too.
func TestCutAfterBytes(t *testing.T) {
	data := random(1 << 20)
	up, errs := upstream(t, data)
	p := start(t, up)
	const after = 70_000
	p.Set(faultproxy.Fault{Kind: faultproxy.Cut, Dir: faultproxy.ToClient, After: after})
	c := dial(t, p)
	got, err := readFor(c, len(data), 5*time.Second)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != after {
		t.Fatalf("read %d bytes (%v), want %d then EOF", len(got), err, after)
	}
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("upstream did not see the cut")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream still connected 5 s after the cut")
	}
	// New connections work again after a one-shot cut.
	p.Clear()
	c2 := dial(t, p)
	if got, err := readFor(c2, len(data), 5*time.Second); err != nil || len(got) != len(data) {
		t.Fatalf("after the cut: %d bytes, %v", len(got), err)
	}
}

// TestResetNow: a reset ends an idle connection with ECONNRESET, which the client sees on its
// next read.
func TestResetNow(t *testing.T) {
	up, _ := upstream(t, []byte("hello"))
	p := start(t, up)
	c := dial(t, p)
	if got, err := readFor(c, 5, 5*time.Second); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
	p.Set(faultproxy.Fault{Kind: faultproxy.Reset})
	_, err := readFor(c, 1, 5*time.Second)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET", err)
	}
}

// TestStallNowBothWays: a stall set on an open connection stops both directions; Close ends it.
func TestStallNowBothWays(t *testing.T) {
	up, _ := upstream(t, nil)
	p := start(t, up)
	c := dial(t, p)
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := readFor(c, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(faultproxy.Fault{Kind: faultproxy.Stall})
	if _, err := c.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := readFor(c, 1, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during a stall: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a stalled connection")
	}
	if _, err := readFor(c, 1, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Close: %v, want EOF or reset", err)
	}
}
