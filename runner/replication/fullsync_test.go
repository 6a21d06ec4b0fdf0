package replication_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/resp"
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

// fakeSource is a master that answers every command with +OK and PSYNC with a full resync of
// an empty RDB file, followed by after and then one PING of the replication stream.
func fakeSource(t *testing.T, after string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		rd := resp.NewReader(bufio.NewReader(conn))
		for {
			n, err := rd.ReadArrayLen()
			if err != nil {
				return
			}
			var args []string
			for range n {
				l, err := rd.ReadBulkLen()
				if err != nil {
					return
				}
				b := make([]byte, l)
				if err := rd.ReadBulkData(b); err != nil {
					return
				}
				args = append(args, string(b))
			}
			if !strings.EqualFold(args[0], "PSYNC") {
				_, _ = io.WriteString(conn, "+OK\r\n")
				continue
			}
			var file bytes.Buffer
			w, err := rdb.NewWriter(&file, 10)
			if err == nil {
				err = w.Close()
			}
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.WriteString(conn, "+FULLRESYNC "+strings.Repeat("a", 40)+" 100\r\n$EOF:"+strings.Repeat("m", 40)+"\r\n"+
				file.String()+after+"*1\r\n$4\r\nPING\r\n")
			time.Sleep(time.Second) // the test reads what it needs and closes
			return
		}
	}()
	return l.Addr().String()
}

// TestDirectRDBReaderChecksTheMark: the RDB reader of a diskless transfer reads straight from
// the link and does not search for the closing mark; EndRDB checks that exactly the mark
// follows the file, and the replication stream starts right after it.
func TestDirectRDBReaderChecksTheMark(t *testing.T) {
	for _, tc := range []struct {
		name, after, wantErr string
	}{
		{"the mark", strings.Repeat("m", 40), ""},
		{"another mark", strings.Repeat("x", 40), "not followed by the transfer's EOF mark"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			addr := fakeSource(t, tc.after)
			fs, err := replication.StartFullSync(ctx, replication.SyncOptions{
				Redis: redisconn.Options{Network: "tcp", Addr: addr}, KeepSyncDelay: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			if !fs.Diskless {
				t.Fatal("the transfer is not seen as diskless")
			}
			rd := fs.RDBReader()
			if _, err := rd.Next(); err != io.EOF {
				t.Fatalf("an empty RDB: Next = %v, want io.EOF", err)
			}
			br, err := fs.Stream()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Stream = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			line, err := br.ReadString('\n')
			if err != nil || line != "*1\r\n" {
				t.Fatalf("the stream starts with %q (%v), want the PING command", line, err)
			}
		})
	}
}
