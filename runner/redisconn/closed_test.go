package redisconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/test/redistest"
)

// TestServerClosedConnection: a raw connection the server closes (the server killed, the client
// killed, the link cut) fails with an error that names the server and says it closed the
// connection (ErrClosedByServer); before, the message was a bare "EOF", or "unexpected EOF"
// from the RESP reader (the chaos suite's cut and SIGKILL scenarios, test/chaos).
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
}
