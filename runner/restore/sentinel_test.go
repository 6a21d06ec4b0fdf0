package restore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// TestSentinel backs up through Sentinel, from the master and from the replica, fails over, and
// checks that the next backup and a restore find the new master.
func TestSentinel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const pw, sentinelPW = "data-pw", "sentinel-pw"
	master := redistest.Start(t, redistest.WithPassword(pw))
	replica := redistest.StartReplica(t, master)
	sen := redistest.StartSentinel(t, master, "mymaster", 1, redistest.WithPassword(sentinelPW))
	fill(t, master, 0)
	if err := master.Client.Do(ctx, "WAIT", 1, 10000).Err(); err != nil {
		t.Fatal(err)
	}
	want := master.Digest(t)

	data := redisconn.Options{Password: pw}
	s := &redisconn.Sentinel{Addrs: []string{"127.0.0.1:1", sen.Addr}, MasterName: "mymaster", Password: sentinelPW}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	backupVia := func(fromReplica bool) string {
		t.Helper()
		res, err := backup.Run(ctx, backup.Options{Redis: data, Sentinel: s, ReadFromReplica: fromReplica, Repository: r})
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Resolve(ctx, res.SnapshotID)
		if err != nil {
			t.Fatal(err)
		}
		if m.SentinelMaster != "mymaster" {
			t.Errorf("manifest sentinel master = %q", m.SentinelMaster)
		}
		return m.Source
	}
	if got := backupVia(false); got != master.Addr {
		t.Errorf("backup read %s, want the master %s", got, master.Addr)
	}
	if got := backupVia(true); got != replica.Addr {
		t.Errorf("backup with --read-from-replica read %s, want the replica %s", got, replica.Addr)
	}

	if err := sen.Sentinel.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	testproc.Eventually(t, 30*time.Second, "failover to "+replica.Addr, func() error {
		hp, err := sen.Sentinel.GetMasterAddrByName(ctx, "mymaster").Result()
		if err != nil || len(hp) != 2 || !strings.HasSuffix(replica.Addr, ":"+hp[1]) {
			return fmt.Errorf("the sentinel names %v (%v)", hp, err)
		}
		if role, err := replica.Client.Do(ctx, "ROLE").Slice(); err != nil || len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("%s has role %v (%v)", replica.Addr, role, err)
		}
		return nil
	})
	if got := backupVia(false); got != replica.Addr {
		t.Errorf("after the failover the backup read %s, want the new master %s", got, replica.Addr)
	}
	// Restore through the Sentinel writes into the new master.
	if _, err := restore.Run(ctx, restore.Options{Redis: data, Sentinel: s, Repository: r, Flush: true}); err != nil {
		t.Fatal(err)
	}
	if got := replica.Digest(t); got != want {
		t.Errorf("new master digest %s, want %s", got, want)
	}

	// The Sentinel's own address without the master set name is refused with the fix.
	_, err := backup.Run(ctx, backup.Options{Redis: redisconn.Options{Network: "tcp", Addr: sen.Addr, Password: sentinelPW}, Repository: r})
	if err == nil || !strings.Contains(err.Error(), "is a Sentinel") {
		t.Errorf("backup of a Sentinel: %v", err)
	}

	bad := *s
	bad.Password = "wrong"
	bad.Addrs = []string{sen.Addr}
	_, err = backup.Run(ctx, backup.Options{Redis: data, Sentinel: &bad, Repository: r})
	if err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Errorf("wrong sentinel password: %v", err)
	}
}
