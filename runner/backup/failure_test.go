package backup_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

func TestBackupCancelled(t *testing.T) {
	src := redistest.Start(t)
	if err := src.Client.Do(context.Background(), "DEBUG", "POPULATE", 300000, "key", 200).Err(); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, "file://"+t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	pc := &progress.Counter{}
	testproc.When(t, time.Minute, "the backup dumps its first key", func() bool { return pc.Keys.Load() > 0 },
		func() error { cancel(); return nil }) // SIGTERM
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("backup: %v, want context.Canceled", err)
	}
	assertNoSnapshot(t, r)
}

// outage is a storage emulator that a test can kill and start again on the same data.
type outage interface {
	runnertest.Bucket
	Kill()
	Restart(t testing.TB)
}

// killedMidUpload kills the storage once the backup has written more than one upload chunk
// (16 MiB): the backup fails, and after the storage is back it holds no snapshot.
func killedMidUpload(t *testing.T, s outage, url string) {
	t.Helper()
	src := redistest.Start(t)
	// Incompressible values, so that the stored object is larger than one upload chunk.
	runnertest.FillRandom(t, src, 2000, 20000)
	r := openRepo(t, url, s.Env())
	pc := &progress.Counter{}
	testproc.When(t, time.Minute, "the backup writes 20 MiB", func() bool { return pc.Bytes.Load() >= 20<<20 },
		func() error { s.Kill(); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if err == nil {
		t.Fatal("backup succeeded although storage was killed")
	}
	t.Logf("backup error: %v", err)
	s.Restart(t)
	assertNoSnapshot(t, openRepo(t, s.URL("fail"), s.Env()))
}

func TestGCSKilledMidUpload(t *testing.T) {
	gcs := gcstest.StartPersistent(t, "stash-fail")
	killedMidUpload(t, gcs, gcs.URL("fail")+"?chunk_retry_deadline=1s")
}

func TestS3KilledMidUpload(t *testing.T) {
	t.Parallel()
	s3 := miniotest.Start(t, "stash-fail")
	killedMidUpload(t, s3, s3.URL("fail"))
}

func TestACLUserWithoutDump(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.WithACLUser("nodump on >secret ~* &* +@all -dump"))
	src.Client.Set(ctx, "k", "v", 0)
	o := conn(t, src)
	o.Username, o.Password = "nodump", "secret"
	r := openRepo(t, "file://"+t.TempDir(), nil)
	_, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r, Method: backup.MethodDump})
	if err == nil || !strings.Contains(err.Error(), "lacks a permission") || !strings.Contains(err.Error(), "dump") {
		t.Fatalf("backup as a user without DUMP: %v", err)
	}
	t.Logf("error: %v", err)
	assertNoSnapshot(t, r)

	o.Password = "wrong"
	if _, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r}); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Fatalf("backup with a wrong redis password: %v", err)
	}
}
