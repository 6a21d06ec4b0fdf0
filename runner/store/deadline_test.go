package store_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/azuritetest"
)

// closedPort returns a loopback address where nothing listens: every connection is refused,
// as with a storage endpoint that is down.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnreachableEndpointFailsInBoundedTime: every backend gives up on an endpoint that
// refuses connections after a bounded number of tries, with an error that names the endpoint.
// Before, the GCS client retried until its context ended, so `snapshots` never returned.
func TestUnreachableEndpointFailsInBoundedTime(t *testing.T) {
	const bound = 30 * time.Second
	addr := closedPort(t)
	_, port, _ := net.SplitHostPort(addr)
	for _, tt := range []struct {
		name, url string
		env       map[string]string
	}{
		{"gs", "gs://bucket/prefix", map[string]string{store.EnvStorageEmulatorHost: addr}},
		{"gs one attempt", "gs://bucket/prefix?max_attempts=1", map[string]string{store.EnvStorageEmulatorHost: addr}},
		{"s3", "s3://bucket/prefix?endpoint=http://" + addr, map[string]string{store.EnvAWSAccessKeyID: "id", store.EnvAWSSecretAccessKey: "secret"}},
		{"azblob", "azblob://container/prefix?protocol=http&localemu=true&domain=" + addr,
			map[string]string{store.EnvAzureAccountName: azuritetest.Account, store.EnvAzureAccountKey: azuritetest.Key}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Twice the bound, so that an unbounded retry fails here rather than hanging the test.
			ctx, cancel := context.WithTimeout(context.Background(), 2*bound)
			defer cancel()
			start := time.Now()
			b, err := store.Open(ctx, tt.url, tt.env)
			if err == nil {
				// Opening a GCS bucket makes no request; listing does, as `snapshots` would.
				defer b.Close()
				_, err = b.List(nil).Next(ctx)
			}
			took := time.Since(start)
			t.Logf("%s: failed after %s: %v", tt.name, took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), port) {
				t.Errorf("got %v, want an error naming the endpoint's port %s", err, port)
			}
			if took > bound {
				t.Errorf("took %s, want under %s", took, bound)
			}
		})
	}
}

func TestMaxAttemptsOption(t *testing.T) {
	for _, v := range []string{"0", "21", "x", "-1"} {
		_, err := store.Open(context.Background(), "gs://b/p?max_attempts="+v, map[string]string{store.EnvStorageEmulatorHost: "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), "max_attempts must be a number from 1 to 20, got "+strconv.Quote(v)) {
			t.Errorf("max_attempts=%s: %v", v, err)
		}
	}
}
