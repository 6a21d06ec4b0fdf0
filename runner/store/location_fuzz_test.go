package store

import (
	"testing"
	"time"
)

// FuzzParseLocation: any string as a repository URL gives a location or an error, never a
// panic, and a location it accepts has a known scheme and options within their bounds.
func FuzzParseLocation(f *testing.F) {
	for _, seed := range []string{
		"file:///var/backups/redis",
		"gs://bucket/prefix?chunk_retry_deadline=30s&max_attempts=3",
		"s3://bucket/prefix?endpoint=https://minio:9000&region=eu-west-1&insecure_tls=true&io_timeout=10s",
		"azblob://container/prefix?domain=127.0.0.1:10000&protocol=http&localemu=true",
		"s3://b?max_attempts=99", "gs://b?chunk_retry_deadline=-1s", "://x", "%zz", "redis://h:1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := parseLocation(raw)
		if err != nil {
			return
		}
		switch loc.u.Scheme {
		case "file", "gs", "s3", "azblob":
		default:
			t.Fatalf("%q accepted with scheme %q", raw, loc.u.Scheme)
		}
		if loc.attempts < 1 || loc.attempts > 20 || loc.ioTimeout < time.Second || loc.ioTimeout > time.Hour || loc.chunkRetryDeadline < 0 {
			t.Fatalf("%q accepted with options out of bounds: %+v", raw, loc)
		}
	})
}
