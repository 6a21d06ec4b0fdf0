package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// DefaultIOTimeout is how long a GCS, S3 or Azure connection may go without a byte moving in
// the direction the runner waits for before the request fails (and is retried, up to
// max_attempts): a stalled link would otherwise hang a backup or a restore for as long as the
// OS keeps the TCP connection. The repository URL's io_timeout changes it.
const DefaultIOTimeout = 60 * time.Second

// idleTransport is a clone of http.DefaultTransport whose connections have the idle deadline
// ioTimeout (idleConn): the one transport every storage backend's client is built on.
func idleTransport(ioTimeout time.Duration) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dial := (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: c, idle: ioTimeout, addr: addr}, nil
	}
	return tr
}

// idleConn fails a read or a write that moves no byte for idle, naming the stall. The HTTP
// transport reads a response while it writes the request body, so the stall is often found by
// the read and the write then fails on the closed connection: every later error of a connection
// that stalled says so too.
type idleConn struct {
	net.Conn
	idle    time.Duration
	addr    string
	stalled atomic.Bool
}

func (c *idleConn) Read(p []byte) (int, error) {
	_ = c.SetReadDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Read(p)
	return n, c.explain(err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(c.idle))
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

func (c *idleConn) explain(err error) error {
	if err == nil {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.stalled.Store(true)
	}
	if c.stalled.Load() {
		return fmt.Errorf("storage endpoint %s sent or took nothing for %s (the link stalled; io_timeout in the repository URL): %w", c.addr, c.idle, err)
	}
	return err
}
