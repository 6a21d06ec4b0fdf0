package backup_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// TestReplicaNotInSyncIsRefused backs up a replica while its initial sync runs (the master's
// save is slowed down to 10 ms a key) and while its master is gone: both are refused, naming why and
// the master, and leave no snapshot. Before, the backup saved the replica's stale keys.
func TestReplicaNotInSyncIsRefused(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, redistest.WithConfig("repl-diskless-sync", "no"), redistest.WithConfig("rdb-key-save-delay", "10000"))
	if err := master.Client.Do(ctx, "DEBUG", "POPULATE", 2000, "key").Err(); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := redistest.Start(t)
	if err := replica.Client.Set(ctx, "stale", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Client.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	testproc.Eventually(t, 15*time.Second, "the replica's initial sync in progress", func() error {
		if v := redistest.InfoField(t, replica.Client, "replication", "master_sync_in_progress"); v != "1" {
			return errors.New("master_sync_in_progress:" + v)
		}
		return nil
	})
	r := openRepo(t, "file://"+t.TempDir(), nil)
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, replica), Repository: r})
	if !errors.Is(err, backup.ErrReplicaNotInSync) || !strings.Contains(err.Error(), "master_sync_in_progress:1") || !strings.Contains(err.Error(), master.Addr) {
		t.Fatalf("backup of a syncing replica: %v, want ErrReplicaNotInSync naming the sync and the master", err)
	}
	assertNoSnapshot(t, r)

	// Now a master that is gone: nothing listens on the port the replica follows.
	gone, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Client.Do(ctx, "REPLICAOF", "127.0.0.1", gone).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = backup.Run(ctx, backup.Options{Redis: conn(t, replica), Repository: r, Method: backup.MethodDump})
	if !errors.Is(err, backup.ErrReplicaNotInSync) || !strings.Contains(err.Error(), "master_link_status:down") {
		t.Fatalf("backup of a replica whose master is gone: %v, want ErrReplicaNotInSync naming the link", err)
	}
	assertNoSnapshot(t, r)
}

// TestBackupOfMissingDatabaseIsRefused asks for database 99 of a 16-database server: refused,
// naming the databases the server has. Before, the backup saved 0 keys and succeeded.
func TestBackupOfMissingDatabaseIsRefused(t *testing.T) {
	src := redistest.Start(t)
	fill(t, src, 0)
	r := openRepo(t, "file://"+t.TempDir(), nil)
	_, err := backup.Run(context.Background(), backup.Options{Redis: conn(t, src), Repository: r, Databases: []int{99}})
	if !errors.Is(err, backup.ErrNoSuchDatabase) || !strings.Contains(err.Error(), "databases 0 to 15") {
		t.Fatalf("backup of database 99: %v, want ErrNoSuchDatabase naming 0 to 15", err)
	}
	assertNoSnapshot(t, r)
}
