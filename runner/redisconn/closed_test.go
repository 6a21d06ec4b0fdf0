package redisconn_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/redistest"
)

// TestServerClosedConnection: a raw connection the server closes (the server killed, the client
// killed, the link cut) or resets fails with an error that names the server and says what
// happened (ErrClosedByServer); before, the message was a bare "EOF", or "unexpected EOF" from
// the RESP reader, or a socket error without the server's name (the chaos suite's cut, reset and
// SIGKILL scenarios, test/chaos).
func TestServerClosedConnection(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	o, _, _ := redisconn.ParseURL(srv.URL())
	conn, err := o.Dial(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := srv.Client.Do(ctx, "CLIENT", "KILL", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	err = conn.Simple("PING")
	if !errors.Is(err, redisconn.ErrClosedByServer) || !strings.Contains(err.Error(), "redis "+srv.Addr+" closed the connection") {
		t.Fatalf("ping on a connection the server closed: %v", err)
	}

	p, err := faultproxy.Start(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	o, _, _ = redisconn.ParseURL("redis://" + p.Addr())
	conn, err = o.Dial(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p.Set(faultproxy.Fault{Kind: faultproxy.Reset})
	err = conn.Simple("PING")
	// The first write after the RST fails with ECONNRESET on Linux (EPIPE would mean closed).
	if !errors.Is(err, redisconn.ErrClosedByServer) || !strings.Contains(err.Error(), "redis "+p.Addr()+" ") ||
		errors.Is(err, syscall.ECONNRESET) != strings.Contains(err.Error(), "reset the connection") {
		t.Fatalf("ping on a connection that was reset: %v", err)
	}
	t.Logf("%v", err)
}
