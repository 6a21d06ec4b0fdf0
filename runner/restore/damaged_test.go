package restore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/stream"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// payload returns a DUMP payload of format 11 of the object typ+obj, with its checksum.
func payload(typ byte, obj ...byte) []byte {
	p := append([]byte{typ}, obj...)
	p = binary.LittleEndian.AppendUint16(p, 11)
	return binary.LittleEndian.AppendUint64(p, rdb.Checksum(0, p))
}

// importedSnapshot writes a snapshot, as an import of an unchecked RDB file would have, holding
// the given key/payload pairs in database 0.
func importedSnapshot(t *testing.T, kv ...[]byte) (*repo.Repository, string) {
	t.Helper()
	var data bytes.Buffer
	enc := stream.NewEncoder(&data)
	if err := enc.Select(0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(kv); i += 2 {
		if err := enc.Restore(kv[i], 0, kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	now := time.Now()
	m := repo.Manifest{ID: repo.NewID(now), Time: now.UTC(), FormatVersion: repo.FormatVersion, RDBVersion: 11, RedisVersion: "8.0.2",
		RedisMode: "standalone", Method: "import", Keys: int64(len(kv) / 2), Databases: map[int]int64{0: int64(len(kv) / 2)}}
	runnertest.WriteSnapshot(t, r, m, data.Bytes())
	return r, m.ID
}

// TestDamagedValueCannotTakeTheTargetDown restores a snapshot holding a value whose checksum is
// right but whose listpack (a hash of one field) is corrupt (as imports of damaged RDB files made them): by
// replication it is refused before the target loads anything; by RESTORE the target's own deep
// check is on for the restore, so the target refuses the value instead of storing it, and the
// setting is put back. Either way the target stays up. Before, the restore was "verified" and
// the target crashed at the first read of the value.
func TestDamagedValueCannotTakeTheTargetDown(t *testing.T) {
	ctx := context.Background()
	bad := payload(rdb.TypeHashListpack, 13, 13, 0, 0, 0, 2, 0, 0x81, 'a', 2, 0x85, 'b', 2, 0xFF)
	r, id := importedSnapshot(t, []byte("good"), payload(rdb.TypeString, 1, 'x'), []byte("bad"), bad)
	dst := redistest.Start(t)

	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Method: restore.MethodReplication})
	if !errors.Is(err, rdb.ErrCorrupt) {
		t.Fatalf("restore by replication: %v, want rdb.ErrCorrupt", err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("the target holds %d keys after a refused load", n)
	}

	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Method: restore.MethodRestore})
	t.Logf("restore by RESTORE: %v", err)
	if err == nil {
		t.Fatal("restore by RESTORE of a corrupt value succeeded")
	}
	if got := dst.Client.ConfigGet(ctx, "sanitize-dump-payload").Val()["sanitize-dump-payload"]; got != "no" {
		t.Errorf("sanitize-dump-payload after the restore: %q, want it put back to no", got)
	}
	if err := dst.Client.Do(ctx, "DEBUG", "DIGEST").Err(); err != nil || !dst.Alive() {
		t.Fatalf("the target after the restore: %v (alive: %v)", err, dst.Alive())
	}
}

// TestKeyTwiceIsRefusedByReplication restores by replication an imported snapshot holding a key
// twice: refused by name before the target gets the second one (a target that loads it stops
// with "Duplicated key found in RDB file"), the target up and empty.
func TestKeyTwiceIsRefusedByReplication(t *testing.T) {
	ctx := context.Background()
	r, id := importedSnapshot(t, []byte("twice"), payload(rdb.TypeString, 1, 'x'), []byte("twice"), payload(rdb.TypeString, 1, 'y'))
	dst := redistest.Start(t)
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Snapshot: id, Method: restore.MethodReplication})
	if !errors.Is(err, rdb.ErrDuplicateKey) {
		t.Fatalf("restore by replication: %v, want rdb.ErrDuplicateKey", err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != 0 || !dst.Alive() {
		t.Fatalf("the target holds %d keys (alive: %v)", n, dst.Alive())
	}
}
