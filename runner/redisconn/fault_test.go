package redisconn_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/test/redistest"
)

// TestParseURLNeverShowsCredentials: a URL that does not parse is named in the error with its
// user information redacted, also when the bad part is inside the password.
func TestParseURLNeverShowsCredentials(t *testing.T) {
	for _, raw := range []string{
		"redis://alice:SECRET@host/%zz",
		"redis://alice:SECRET@[::1",
		"redis://alice:SE%zzCRET@host:6379",
		"redis://alice:SECRET/x@host:6379",
		"redis://alice:SECRET@host:6379/notadb",
		"redis://alice:SECRET@host:6379/1/2",
		"http://alice:SECRET@host",
		"alice:SECRET@host:6379",
		"rediss://alice:SECRET@host:port",
	} {
		_, _, err := redisconn.ParseURL(raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "SECRET") || strings.Contains(msg, "SE") && strings.Contains(msg, "CRET") || strings.Contains(msg, "alice") {
			t.Errorf("%s: error shows the credentials: %s", raw, msg)
		} else if !strings.Contains(msg, "parse redis url") {
			t.Errorf("%s: unclear error: %s", raw, msg)
		}
	}
	if got := redisconn.RedactURL("redis://u:p@w@h:1/0"); got != "redis://redacted@h:1/0" {
		t.Errorf("RedactURL: %s", got)
	}
}

func TestDBInURL(t *testing.T) {
	for raw, want := range map[string]bool{
		"redis://h:1": false, "redis://h:1/": false, "redis://h:1/0": true, "redis://h:1/3": true,
		"unix:///run/r.sock": false, "unix:///run/r.sock?db=2": true,
	} {
		o, _, err := redisconn.ParseURL(raw)
		if err != nil || o.DBInURL != want {
			t.Errorf("%s: DBInURL %v (%v), want %v", raw, o.DBInURL, err, want)
		}
	}
}

// TestTLSToPlainTextFailsFast: rediss:// to a server that speaks plain RESP fails within a
// second with an error that says so, on raw connections and on the control client alike.
func TestTLSToPlainTextFailsFast(t *testing.T) {
	srv := redistest.Start(t)
	o, _, err := redisconn.ParseURL("rediss://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	_, err = o.Dial(ctx, 0)
	if !errors.Is(err, redisconn.ErrPlainText) || !strings.Contains(err.Error(), "use redis:// instead of rediss://") {
		t.Fatalf("dial: %v", err)
	}
	c := o.Client(0)
	defer c.Close()
	err = c.Ping(ctx).Err()
	if !errors.Is(err, redisconn.ErrPlainText) {
		t.Fatalf("client: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s to notice a plain-text server", d)
	}
	// A real TLS server still handshakes.
	certs := redistest.NewCerts(t)
	tsrv := redistest.Start(t, redistest.WithTLS(certs))
	o, _, _ = redisconn.ParseURL("rediss://" + tsrv.TLSAddr)
	if err := o.ConfigureTLS(redisconn.TLSOptions{CAFile: certs.CAFile}); err != nil {
		t.Fatal(err)
	}
	conn, err := o.Dial(ctx, 0)
	if err != nil {
		t.Fatalf("dial over tls: %v", err)
	}
	conn.Close()
}

// TestStalledServer: a server that stops answering (SIGSTOP) fails a read after ReadTimeout
// instead of hanging, on raw connections and on the control client; after SIGCONT it serves.
func TestStalledServer(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	o, _, _ := redisconn.ParseURL(srv.URL())
	o.ReadTimeout = 500 * time.Millisecond
	conn, err := o.Dial(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := o.Client(0)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	proc := Stop(t, srv)
	start := time.Now()
	err = conn.Simple("PING")
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("ping of a stopped server: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("control client: ping of a stopped server succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to notice a stopped server", d)
	}
	proc.Signal(syscall.SIGCONT)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("after SIGCONT: %v", err)
	}
}

// Stop sends SIGSTOP to srv's process (found by INFO's process_id) and SIGCONT at cleanup.
func Stop(t *testing.T, srv *redistest.Server) *os.Process {
	t.Helper()
	txt, err := srv.Client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for line := range strings.Lines(txt) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	proc, err := os.FindProcess(pid)
	if err != nil || pid == 0 {
		t.Fatalf("redis process %d: %v", pid, err)
	}
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Signal(syscall.SIGCONT) })
	return proc
}
