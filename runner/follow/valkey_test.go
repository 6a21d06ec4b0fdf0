package follow_test

import (
	"context"
	"testing"
	"time"

	"stash.dev/redis/runner/follow"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// TestFollowValkey9FieldTTLs: a follower of Valkey 9 whose data has hashes with field TTLs takes
// its base (the source sends RDB 80 to the runner, which announces its version; before, it sent
// RDB 11, aborted the transfer, and the follower failed or reconnected for ever) and records the
// field-TTL commands that follow; base plus journal restore equal, field TTLs included.
func TestFollowValkey9FieldTTLs(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.ValkeySid)
	write(t, src, 0, 100)
	src.Client.HSet(ctx, "hfe", "a", "1", "b", "2", "c", "3")
	if err := src.Client.Do(ctx, "HPEXPIRE", "hfe", 3_600_000, "FIELDS", 1, "a").Err(); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t)
	f := startFollower(t, follow.Options{Redis: conn(src), Repository: r, SegmentInterval: 200 * time.Millisecond})
	base := f.base(t)
	if err := src.Client.Do(ctx, "HSETEX", "hfe2", "PX", 5_000_000, "FIELDS", 1, "x", "y").Err(); err != nil {
		t.Fatal(err)
	}
	if err := src.Client.Do(ctx, "HPEXPIRE", "hfe", 7_200_000, "FIELDS", 1, "b").Err(); err != nil {
		t.Fatal(err)
	}
	waitRecorded(t, src, f)
	f.stop(t)

	m, err := r.Manifest(ctx, base.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	if m.RDBVersion != 80 || m.RedisVersion == "" || m.Product != "valkey" {
		t.Fatalf("base manifest: RDB version %d, product %q, version %q", m.RDBVersion, m.Product, m.RedisVersion)
	}
	segs, err := journal.List(ctx, r, base.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t, redistest.ValkeySid)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(dst), Repository: r, Snapshot: base.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Replay(ctx, r, m.ReplOffset, segs, conn(dst)); err != nil {
		t.Fatal(err)
	}
	if a, b := src.Digest(t), dst.Digest(t); a != b {
		t.Errorf("digest: source %s, restored %s", a, b)
	}
	dataset.Same(t, src, dst)
	for _, k := range []string{"hfe", "hfe2"} {
		fields := src.Client.HKeys(ctx, k).Val()
		args := []any{"HPEXPIRETIME", k, "FIELDS", len(fields)}
		for _, f := range fields {
			args = append(args, f)
		}
		if a, b := src.Client.Do(ctx, args...).String(), dst.Client.Do(ctx, args...).String(); a != b {
			t.Errorf("%s field TTLs: source %s, restored %s", k, a, b)
		}
	}
}
