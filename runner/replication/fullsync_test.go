package replication_test

import (
	"context"
	"io"
	"testing"
	"time"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/test/redistest"
)

// TestFullSyncWhileTheSourceSaves: a PSYNC that arrives while the source saves to disk (a
// BGSAVE of its own; in a cluster of many, the fork of another replica's sync) waits for that
// save to end, and the source sends a newline every second meanwhile as a keep-alive, before
// its +FULLRESYNC. Those newlines are skipped, as a replica skips them; the transfer then reads
// whole. (Found by 100 backups by replication of one server at once: two failed with "bad line".)
func TestFullSyncWhileTheSourceSaves(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	for _, cmd := range [][]any{
		{"DEBUG", "POPULATE", "15000", "key", "16"},
		{"CONFIG", "SET", "repl-diskless-sync", "no"},
		{"CONFIG", "SET", "rdb-key-save-delay", "100"}, // 15,000 keys × 100 µs: a 1.5 s save
		{"BGSAVE"},
	} {
		if err := src.Client.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	start := time.Now()
	fs, err := replication.StartFullSync(ctx, replication.SyncOptions{Redis: redisconn.Options{Network: "tcp", Addr: src.Addr}})
	if err != nil {
		t.Fatalf("full sync while the source saves: %v", err)
	}
	defer fs.Close()
	if waited := time.Since(start); waited < time.Second {
		t.Logf("the source answered after %s: the keep-alive path may not have been taken", waited)
	}
	rd := rdb.NewReader(fs.RDB)
	n := 0
	for {
		_, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 15000 {
		t.Fatalf("%d keys in the transfer, want 15000", n)
	}
}
