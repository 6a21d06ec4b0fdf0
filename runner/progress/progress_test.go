package progress_test

import (
	"testing"
	"time"

	"stash.dev/redis/runner/progress"
)

func TestLine(t *testing.T) {
	tests := []struct {
		keys, bytes, total int64
		elapsed            time.Duration
		want               string
	}{
		{500, 2e6, 1000, 10 * time.Second, "backup: 500 keys, 1.9 MiB, 50 keys/s, 50.0% of 1000, ETA 10s"},
		{500, 2e6, 0, 10 * time.Second, "backup: 500 keys, 1.9 MiB, 50 keys/s"},
		{1200, 0, 1000, time.Second, "backup: 1200 keys, 0 B, 1200 keys/s, 100.0% of 1000"},
	}
	for _, tt := range tests {
		if got := progress.Line("backup", tt.keys, tt.bytes, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
