package replication_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/test/redistest"
)

// readTransfer reads every key of fs's RDB and returns the file's version and the keys' types.
func readTransfer(fs *replication.FullSync) (int, map[string]byte, error) {
	rd := fs.RDBReader()
	h, err := rd.Header()
	if err != nil {
		return 0, nil, err
	}
	types := map[string]byte{}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return h.Version, types, fs.EndRDB()
		}
		if err != nil {
			return h.Version, types, err
		}
		types[string(e.Key)] = e.Type
	}
}

// TestFullSyncAnnouncesVersion: the runner announces itself to Valkey 9 as a replica of its own
// version, so that Valkey sends RDB 80, in which a hash with field TTLs is stored. Announced as
// an older replica (as the runner was, without REPLCONF version), the source is sent RDB 11,
// cannot store that hash and aborts the transfer: that is reported as an abort by the source,
// not as a bad file.
func TestFullSyncAnnouncesVersion(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.ValkeySid)
	src.Client.Set(ctx, "plain", "v", 0)
	src.Client.HSet(ctx, "hfe", "a", "1", "b", "2")
	if err := src.Client.Do(ctx, "HPEXPIRE", "hfe", 3_600_000, "FIELDS", 1, "a").Err(); err != nil {
		t.Fatal(err)
	}
	o := redisconn.Options{Network: "tcp", Addr: src.Addr}

	fs, err := replication.StartFullSync(ctx, replication.SyncOptions{Redis: o})
	if err != nil {
		t.Fatal(err)
	}
	version, types, err := readTransfer(fs)
	fs.Close()
	if err != nil {
		t.Fatal(err)
	}
	if version != rdb.ValkeyFormat || types["hfe"] != rdb.TypeValkeyHash2 || len(types) != 2 {
		t.Fatalf("RDB version %d, types %v", version, types)
	}

	old := redisconn.ServerInfo{ServerName: "valkey", ValkeyVersion: "8.1.1", Version: "7.2.4"}
	fs, err = replication.StartFullSync(ctx, replication.SyncOptions{Redis: o, Server: &old})
	if err == nil {
		_, _, err = readTransfer(fs)
		err = fs.Explain(ctx, err)
		fs.Close()
	}
	if !errors.Is(err, replication.ErrTransferAborted) {
		t.Fatalf("announced as Valkey 8.1: %v, want ErrTransferAborted\n%s", err, src.Log())
	}
	t.Logf("announced as Valkey 8.1: %v", err)
}
