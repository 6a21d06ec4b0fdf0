package testproc

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestSilent: the server accepts, reads nothing back, and keeps the connection open.
func TestSilent(t *testing.T) {
	c, err := net.Dial("tcp", Silent(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v: want the deadline, with the connection open and silent", n, err)
	}
}
