package redisconn_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"stash.dev/redis/runner/redisconn"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url      string
		network  string
		addr     string
		user, pw string
		db       int
		tls      bool
		pwInURL  bool
	}{
		{"redis://127.0.0.1:6379", "tcp", "127.0.0.1:6379", "", "", 0, false, false},
		{"redis://u:p@h:1/3", "tcp", "h:1", "u", "p", 3, false, true},
		{"rediss://h:6380", "tcp", "h:6380", "", "", 0, true, false},
		{"unix:///run/redis.sock", "unix", "/run/redis.sock", "", "", 0, false, false},
	}
	for _, tt := range tests {
		o, pwInURL, err := redisconn.ParseURL(tt.url)
		if err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if o.Network != tt.network || o.Addr != tt.addr || o.Username != tt.user || o.Password != tt.pw || o.DB != tt.db || (o.TLS != nil) != tt.tls || pwInURL != tt.pwInURL {
			t.Errorf("%s: %+v pwInURL=%v", tt.url, o, pwInURL)
		}
	}
	if _, _, err := redisconn.ParseURL("http://x"); err == nil {
		t.Error("http url accepted")
	}
}

func TestParseInfo(t *testing.T) {
	got := redisconn.ParseInfo("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=0\r\ndb12:keys=1,expires=0,avg_ttl=0\r\n")
	want := redisconn.ServerInfo{Version: "7.0.15", Mode: "standalone", Keys: map[int]int64{0: 10, 12: 1}, Expires: map[int]int64{0: 2, 12: 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
	if !redisconn.VersionAtLeast("7.0.15", 7, 0) || redisconn.VersionAtLeast("6.2.1", 7, 0) || !redisconn.VersionAtLeast("10.0", 7, 2) {
		t.Fatal("VersionAtLeast")
	}
}
