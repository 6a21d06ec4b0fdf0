package load_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/stream"
	"stash.dev/redis/test/redistest"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"user:*", "user:1", true},
		{"user:*", "users:1", false},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"h[ae]llo", "hello", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[a-b]llo", "hcllo", false},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"*:x:*", "a/b:x:c", true},
		{"**a", "bba", true},
		{"", "", true},
		{"", "a", false},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxc", false},
		{"*a*a*b", "aab", true},
		{"a*", "a", true},
		{"*a*", "b", false},
	}
	for _, tt := range tests {
		if got := load.Match([]byte(tt.pattern), []byte(tt.key)); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

// TestMatchBacktrackingIsBounded: the pattern of CVE-2022-36021, which takes exponential time in
// a matcher without Redis's fix, ends at once: eight "*a" and a "b" against 60 bytes of "a".
func TestMatchBacktrackingIsBounded(t *testing.T) {
	key := bytes.Repeat([]byte("a"), 60)
	for _, pattern := range []string{"*a*a*a*a*a*a*b", "*a*a*a*a*a*a*a*a*b", strings.Repeat("*a", 500) + "*b"} {
		done := make(chan bool, 1)
		start := time.Now()
		go func() { done <- load.Match([]byte(pattern), key) }()
		select {
		case got := <-done:
			if got {
				t.Errorf("Match(%.20q..., 60 a) = true, want false", pattern)
			}
			t.Logf("%d stars: %s", strings.Count(pattern, "*"), time.Since(start))
		case <-time.After(250 * time.Millisecond):
			t.Fatalf("Match(%.20q..., 60 a) still running after 250ms: the backtracking is not bounded", pattern)
		}
	}
}

func restoreCmd(key string, expireAt int64, payload []byte) []byte {
	return stream.AppendRestore(nil, []byte(key), expireAt, payload)
}

func options(t *testing.T, s *redistest.Server) load.Options {
	o, _, err := redisconn.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	return load.Options{Redis: o}
}

// TestNewerRDBVersion: a payload from a newer Redis fails with an explanation, not just the
// server's "payload version or checksum are wrong".
func TestNewerRDBVersion(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	s.Client.Set(ctx, "k", "v", 0)
	payload, err := s.Client.Dump(ctx, "k").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	payload[len(payload)-10] = 99 // RDB version 99 in the footer
	snap := append(stream.AppendSelect(nil, 1), restoreCmd("k", 0, payload)...)
	o := options(t, s)
	o.RDBVersion, o.SourceVersion = 99, "99.0.0"
	_, err = load.Run(ctx, bytes.NewReader(snap), o)
	if err == nil || !strings.Contains(err.Error(), "payload version or checksum are wrong") || !strings.Contains(err.Error(), "restore into Redis 99.0.0 or newer") {
		t.Fatalf("load of a newer payload: %v", err)
	}
}

func TestBusyKeyAndExpired(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	s.Client.Set(ctx, "k", "v", 0)
	payload, _ := s.Client.Dump(ctx, "k").Bytes()
	past := time.Now().Add(-time.Minute).UnixMilli()
	future := time.Now().Add(time.Hour).UnixMilli()
	snap := append(restoreCmd("old", past, payload), restoreCmd("new", future, payload)...)
	st, err := load.Run(ctx, bytes.NewReader(snap), options(t, s))
	if err != nil || st.Total != 1 || st.Expired != 1 {
		t.Fatalf("load: %+v, %v", st, err)
	}
	if ms := s.Client.PExpireTime(ctx, "new").Val(); ms.Milliseconds() != future {
		t.Fatalf("expiry of new: %v, want %d", ms, future)
	}
	_, err = load.Run(ctx, bytes.NewReader(restoreCmd("k", 0, payload)), options(t, s))
	if err == nil || !strings.Contains(err.Error(), `restore key "k" in database 0: BUSYKEY`) || !errors.Is(err, load.ErrKeyAppeared) {
		t.Fatalf("load over an existing key: %v", err)
	}
	o := options(t, s)
	o.Replace = true
	if _, err := load.Run(ctx, bytes.NewReader(restoreCmd("k", 0, payload)), o); err != nil {
		t.Fatalf("load with Replace: %v", err)
	}
}

func TestMalformedStream(t *testing.T) {
	s := redistest.Start(t)
	for name, snap := range map[string]string{
		"other command": "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"truncated":     "*6\r\n$7\r\nRESTORE\r\n$1\r\nk\r\n$1\r\n0\r\n$100\r\nabc",
		"not resp":      "hello world\r\n",
	} {
		if _, err := load.Run(context.Background(), strings.NewReader(snap), options(t, s)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestFilterManyDatabases: batches emptied by filters are reused; a loader that dropped them
// would run out of batches and hang.
func TestFilterManyDatabases(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t, redistest.WithConfig("databases", "64"))
	s.Client.Set(ctx, "k", "v", 0)
	payload, _ := s.Client.Dump(ctx, "k").Bytes()
	s.Client.Del(ctx, "k")
	var snap []byte
	for db := range 64 {
		snap = stream.AppendSelect(snap, db)
		snap = append(snap, restoreCmd("a", 0, payload)...)
		snap = append(snap, restoreCmd("b", 0, payload)...)
	}
	o := options(t, s)
	o.Databases = []int{63}
	o.KeyPattern = "a"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := load.Run(ctx, bytes.NewReader(snap), o)
	if err != nil || st.Total != 1 || st.Filtered != 127 {
		t.Fatalf("load: %+v, %v", st, err)
	}
}
