package replication

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"stash.dev/redis/runner/resp"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (runner, replica net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	replica, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	runner, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { runner.Close(); replica.Close() })
	return runner, replica
}

// TestWaitLoadedProgressCheck: the wait for the target's load has no overall deadline (a
// replica that keeps sending its newlines may load for longer than the timeout) but fails once
// the replica sends nothing for the timeout: before, a stopped target hung the restore forever.
func TestWaitLoadedProgressCheck(t *testing.T) {
	const timeout = 300 * time.Millisecond
	wait := func(t *testing.T, replica func(net.Conn)) (error, time.Duration) {
		runner, rc := tcpPair(t)
		go replica(rc)
		lc := &linkConn{Conn: runner, timeout: timeout, target: "target:6379", ctx: context.Background()}
		br := bufio.NewReader(lc)
		start := time.Now()
		err := waitLoaded(br, resp.NewReader(br))
		return err, time.Since(start)
	}
	t.Run("loading longer than the timeout", func(t *testing.T) {
		err, took := wait(t, func(c net.Conn) {
			for range 8 {
				time.Sleep(timeout / 3)
				c.Write([]byte("\n"))
			}
			c.Write(resp.AppendCommand(nil, "REPLCONF", "ACK", "0"))
		})
		if err != nil || took < 2*timeout {
			t.Fatalf("waitLoaded: %v after %s", err, took)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		err, took := wait(t, func(c net.Conn) { c.Write([]byte("\n\n")) })
		if !errors.Is(err, ErrLinkStalled) {
			t.Fatalf("waitLoaded on a silent replica: %v", err)
		}
		if took < timeout || took > 10*timeout {
			t.Fatalf("failed after %s with a timeout of %s", took, timeout)
		}
		t.Logf("%v", err)
	})
}

// TestLinkWriteDeadline: a write to a replica that stops reading (its socket buffers full) fails
// after the timeout instead of blocking.
func TestLinkWriteDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	runner, _ := tcpPair(t)
	lc := &linkConn{Conn: runner, timeout: timeout, target: "target:6379", ctx: context.Background()}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := lc.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLinkStalled) {
			t.Fatalf("write to a replica that reads nothing: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the write still blocks after 20 s")
	}
}

// TestMarker: the marker round-trips and nothing else parses as one.
func TestMarker(t *testing.T) {
	for _, m := range []Marker{{}, {SetMasterauth: true}, {SetDisklessLoad: true}, {true, true}} {
		if got, ok := ParseMarker(m.String()); !ok || got != m {
			t.Errorf("ParseMarker(%q) = %+v, %v", m.String(), got, ok)
		}
	}
	for _, s := range []string{"", "default", "replication-user", "stash-runner-restore+other"} {
		if _, ok := ParseMarker(s); ok {
			t.Errorf("ParseMarker(%q) took it for a marker", s)
		}
	}
}
