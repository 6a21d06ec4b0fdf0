package dump_test

// The dump's behaviour is seen through a backup (which gives it a repository to write to) and
// a restore (which shows what the snapshot holds).

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// TestKeysExpiringDuringDump: keys that expire between SCAN and DUMP are skipped and counted, keys
// that expire before the restore are not restored, and the result is still verified.
func TestKeysExpiringDuringDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	p := src.Client.Pipeline()
	for i := range 20000 {
		p.Set(ctx, "short:"+strconv.Itoa(i), "x", time.Duration(1+i%300)*time.Millisecond)
	}
	for i := range 2000 {
		p.Set(ctx, "long:"+strconv.Itoa(i), "y", time.Hour)
		p.Set(ctx, "forever:"+strconv.Itoa(i), "z", 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	res, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %d keys, %d skipped", res.Keys, res.Skipped)
	if res.Skipped == 0 {
		t.Fatal("no key vanished between SCAN and DUMP: the skip path was not exercised")
	}
	if res.Keys < 4000 || res.Keys+res.Skipped > 24000 {
		t.Fatalf("backup: %d keys, %d skipped", res.Keys, res.Skipped)
	}
	time.Sleep(400 * time.Millisecond)
	dst := redistest.Start(t)
	rres, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if rres.Keys != 4000 || rres.Expired != res.Keys-4000 {
		t.Fatalf("restore: %d keys, %d expired; backup had %d", rres.Keys, rres.Expired, res.Keys)
	}
	// Evict the logically expired keys on the source (SCAN expires what it visits) before comparing.
	if err := src.Client.Scan(ctx, 0, "*", 100000).Err(); err != nil {
		t.Fatal(err)
	}
	for it := src.Client.Scan(ctx, 0, "*", 1000).Iterator(); it.Next(ctx); {
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
}

// TestRedisKilledMidDump: a server that dies while its keys are dumped fails the backup, which
// leaves no snapshot and no file behind.
func TestRedisKilledMidDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 300000, "key", 200).Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := runnertest.OpenRepo(t, "file://"+dir, nil)
	pc := &progress.Counter{}
	testproc.When(t, time.Minute, "the backup dumps its first key", func() bool { return pc.Keys.Load() > 0 },
		func() error { src.Kill(); return nil })
	_, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r, Progress: pc})
	if err == nil {
		t.Fatal("backup succeeded although redis was killed")
	}
	t.Logf("backup error: %v", err)
	runnertest.AssertNoSnapshot(t, r)
	// The aborted upload left no file behind either (fileblob removes its temp file).
	files := 0
	_ = filepath.WalkDir(filepath.Join(dir, "snapshots"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
			t.Logf("left behind: %s", p)
		}
		return nil
	})
	if files != 0 {
		t.Fatalf("%d files left in snapshots/", files)
	}
}
