package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/stream"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

// readResult reads a --result-file.
func readResult(t *testing.T, path string) (success bool, errMsg string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("result file: %v", err)
	}
	var rf struct {
		Success bool
		Error   string
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		t.Fatalf("result file %s: %v", b, err)
	}
	return rf.Success, rf.Error
}

// TestBadRedisURLKeepsSecretAndWritesResult: a --redis URL that does not parse fails without
// showing its password anywhere (error, stdout, stderr, result file), and the result file that
// the docs promise on failure is written.
func TestBadRedisURLKeepsSecretAndWritesResult(t *testing.T) {
	repoURL := "file://" + t.TempDir()
	for _, u := range []string{"redis://alice:SECRET@host/%zz", "redis://alice:SECRET@[::1"} {
		for _, cmd := range []string{"backup", "restore"} {
			rf := filepath.Join(t.TempDir(), "result.json")
			out, errOut, err := run(t, nil, cmd, "--redis", u, "--repository", repoURL, "--result-file", rf)
			if err == nil {
				t.Fatalf("%s --redis %s succeeded", cmd, u)
			}
			b, _ := os.ReadFile(rf)
			for what, s := range map[string]string{"error": err.Error(), "stdout": out, "stderr": errOut, "result file": string(b)} {
				if strings.Contains(s, "SECRET") {
					t.Errorf("%s --redis %s: the password is in the %s: %s", cmd, u, what, s)
				}
			}
			if ok, msg := readResult(t, rf); ok || !strings.Contains(msg, "parse redis url") {
				t.Errorf("%s: result file says success=%v error=%q", cmd, ok, msg)
			}
		}
	}
	// A flag refused before any I/O writes the result file too.
	rf := filepath.Join(t.TempDir(), "result.json")
	if _, _, err := run(t, nil, "backup", "--redis", "redis://127.0.0.1:1", "--repository", repoURL, "--workers", "0", "--result-file", rf); err == nil {
		t.Fatal("--workers 0 accepted")
	}
	if ok, msg := readResult(t, rf); ok || !strings.Contains(msg, "--workers") {
		t.Fatalf("result file: success=%v error=%q", ok, msg)
	}
}

// TestDatabaseInRedisURL: redis://host/N backs up (and restores) database N only, as
// --databases N does; a different --databases beside it is refused.
func TestDatabaseInRedisURL(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	for _, db := range []int{0, 3} {
		c := src.Client.Conn()
		c.Select(ctx, db)
		for i := range 10 + db {
			c.Set(ctx, "k"+strconv.Itoa(i), db, 0)
		}
		c.Close()
	}
	repoURL := "file://" + t.TempDir()
	rf := filepath.Join(t.TempDir(), "result.json")
	mustRun(t, nil, "backup", "--redis", src.URL()+"/3", "--repository", repoURL, "--result-file", rf)
	b, _ := os.ReadFile(rf)
	var res struct {
		Result struct{ Databases map[string]int64 }
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Result.Databases) != 1 || res.Result.Databases["3"] != 13 {
		t.Fatalf("backup of %s/3: %s", src.URL(), b)
	}
	if _, _, err := run(t, nil, "backup", "--redis", src.URL()+"/3", "--repository", repoURL, "--databases", "0"); err == nil ||
		!strings.Contains(err.Error(), "--redis names database 3 and --databases names 0") {
		t.Fatalf("backup with /3 and --databases 0: %v", err)
	}
	// restore of a database the snapshot does not have is refused, naming the ones it has.
	dst := redistest.Start(t)
	for _, args := range [][]string{{"--redis", dst.URL() + "/5"}, {"--redis", dst.URL(), "--databases", "5"}} {
		_, _, err := run(t, nil, append([]string{"restore", "--repository", repoURL}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "has no database 5: it has 3") {
			t.Fatalf("restore %v: %v", args, err)
		}
	}
	if n := dbsize(t, dst, 3); n != 0 {
		t.Fatalf("a refused restore wrote %d keys", n)
	}
	mustRun(t, nil, "restore", "--redis", dst.URL()+"/3", "--repository", repoURL)
	if n := dbsize(t, dst, 3); n != 13 {
		t.Fatalf("restore into %s/3: %d keys", dst.URL(), n)
	}
}

func dbsize(t *testing.T, s *redistest.Server, db int) int64 {
	t.Helper()
	c := s.Client.Conn()
	defer c.Close()
	if err := c.Select(context.Background(), db).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLostRepositoryKey: after keys/ is deleted from a repository with snapshots, the next
// backup fails (instead of creating a new key that every later listing and restore trips
// over), and once the key is put back everything works again.
func TestLostRepositoryKey(t *testing.T) {
	src := redistest.Start(t)
	src.Client.Set(context.Background(), "a", "b", 0)
	dir := t.TempDir()
	repoURL := "file://" + dir
	mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	keys := filepath.Join(dir, "keys")
	saved := filepath.Join(t.TempDir(), "keys")
	if err := os.Rename(keys, saved); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"backup", "--redis", src.URL(), "--repository", repoURL},
		{"snapshots", "--repository", repoURL},
	} {
		_, _, err := run(t, nil, args...)
		if !errors.Is(err, repo.ErrKeyMissing) || !strings.Contains(err.Error(), "put back the keys/ objects") {
			t.Fatalf("%s after the key was lost: %v", args[0], err)
		}
	}
	if _, err := os.Stat(keys); !os.IsNotExist(err) {
		t.Fatalf("keys/ was recreated: %v", err)
	}
	if err := os.Rename(saved, keys); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	if n := len(idRE.FindAllString(mustRun(t, nil, "snapshots", "--repository", repoURL), -1)); n != 2 {
		t.Fatalf("%d snapshots after the key was put back", n)
	}
}

// TestReplacedDataObjectWritesNothing: a snapshot whose data object was replaced by another
// snapshot's is refused before the first key is written, by both restore methods.
func TestReplacedDataObjectWritesNothing(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 20000, "k", 50)
	dir := t.TempDir()
	repoURL := "file://" + dir
	first := idRE.FindString(mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL))
	src.Client.Do(ctx, "DEBUG", "POPULATE", 30000, "other", 50)
	second := idRE.FindString(mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL))
	data := func(id string) string { return filepath.Join(dir, "snapshots", id, "data.resp.zst.age") }
	b, err := os.ReadFile(data(second))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data(first), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"restore", "replication"} {
		dst := redistest.Start(t)
		_, _, err := run(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--snapshot", first, "--method", method, "--flush")
		if err == nil || !strings.Contains(err.Error(), "manifest says") {
			t.Fatalf("--method %s: restore of a replaced data object: %v", method, err)
		}
		if n := dbsize(t, dst, 0); n != 0 {
			t.Fatalf("--method %s: %d keys written before the mismatch was found", method, n)
		}
	}
}

// TestStalledRedisDuringBackup: a source that stops answering mid-backup (SIGSTOP) fails the
// backup within the read timeout with an error that says so, and leaves no snapshot; after
// SIGCONT the next backup succeeds.
func TestStalledRedisDuringBackup(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 400000, "k", 100)
	dir := t.TempDir()
	repoURL := "file://" + dir
	for _, method := range []string{backup.MethodDump, backup.MethodReplication} {
		t.Run(method, func(t *testing.T) {
			r := runnertest.OpenRepo(t, repoURL, nil)
			o := runnertest.Conn(t, src)
			o.ReadTimeout = time.Second
			p := &progress.Counter{}
			after, err := freezeMidway(t, src, "the backup", func() bool { return p.Keys.Load() > 0 || p.Bytes.Load() > 0 }, func() error {
				_, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r, Method: method, Workers: 1, Progress: p})
				return err
			})
			if err == nil {
				t.Fatal("backup of a stopped server succeeded (it finished before SIGSTOP: the dataset is too small)")
			}
			if !strings.Contains(err.Error(), "stalled") {
				t.Fatalf("error does not say the server stalled: %v", err)
			}
			t.Logf("failed %s after SIGSTOP: %v", after.Round(time.Millisecond), err)
			if all, err := r.List(ctx); err != nil || len(all) != 0 {
				t.Fatalf("snapshots after the failed backup: %v, %v", all, err)
			}
			if _, err := backup.Run(ctx, backup.Options{Redis: o, Repository: r, Method: method}); err != nil {
				t.Fatalf("backup after SIGCONT: %v", err)
			}
			all, err := r.List(ctx)
			if err != nil || len(all) != 1 {
				t.Fatalf("snapshots after the next backup: %d, %v", len(all), err)
			}
			if err := r.Delete(ctx, all[0].ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// freezeMidway runs op in the background and freezes s (SIGSTOP) as soon as underway says that
// op is under way; it returns op's error and how long after the freeze op returned, and thaws s.
func freezeMidway(t *testing.T, s *redistest.Server, what string, underway func() bool, op func() error) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	type freeze struct {
		at   time.Time
		thaw func()
	}
	frozen := make(chan freeze, 1)
	testproc.When(t, 30*time.Second, what+" is under way", underway, func() error {
		thaw := s.Freeze(t)
		frozen <- freeze{time.Now(), thaw}
		return nil
	})
	var f freeze
	select {
	case f = <-frozen:
	case err := <-done:
		return 0, err // it ended before the freeze (When fails the test)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s made no progress in 30 s", what)
	}
	defer f.thaw()
	select {
	case err := <-done:
		return time.Since(f.at), err
	case <-time.After(45 * time.Second):
		t.Fatalf("%s, with %s stopped, still runs after 45 s", what, s.Addr)
		return 0, nil
	}
}

// TestDuplicateKeyHint: a restore by RESTORE that meets a key it already wrote (a snapshot that
// holds the key twice) says so, instead of suggesting --flush, which cannot help.
func TestDuplicateKeyHint(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Set(ctx, "twice", "v", 0)
	payload, err := src.Client.Dump(ctx, "twice").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	var data bytes.Buffer
	enc := stream.NewEncoder(&data)
	if err := errors.Join(enc.Select(0), enc.Restore([]byte("twice"), 0, payload), enc.Restore([]byte("twice"), 0, payload)); err != nil {
		t.Fatal(err)
	}
	info, _ := src.Client.Info(ctx, "server").Result()
	version := redisconn.ParseInfo(info).Version
	runnertest.WriteSnapshot(t, r, repo.Manifest{
		FormatVersion: repo.FormatVersion, ID: repo.NewID(time.Now()), Time: time.Now().UTC(), RedisVersion: version,
		RDBVersion: rdbVersion(payload), Databases: map[int]int64{0: 2}, Keys: 2,
	}, data.Bytes())
	dst := redistest.Start(t)
	_, err = restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: restore.MethodRestore, Workers: 1})
	if err == nil || strings.Contains(err.Error(), "--flush") || !strings.Contains(err.Error(), "the snapshot holds it twice") {
		t.Fatalf("restore of a snapshot with a duplicated key: %v", err)
	}
}

// rdbVersion reads the RDB version from the two bytes before a DUMP payload's checksum.
func rdbVersion(payload []byte) int {
	n := len(payload)
	return int(payload[n-10]) | int(payload[n-9])<<8
}

// TestStalledTargetDuringRestore: a target that stops answering mid-restore (SIGSTOP) fails a
// restore by RESTORE commands within the read timeout, with an error that says it stalled and
// how many keys were written; after SIGCONT a restore with --flush succeeds.
func TestStalledTargetDuringRestore(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 400000, "k", 100)
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	o := runnertest.Conn(t, dst)
	o.ReadTimeout = time.Second
	p := &progress.Counter{}
	after, err := freezeMidway(t, dst, "the restore", func() bool { return p.Keys.Load() > 0 }, func() error {
		_, err := restore.Run(ctx, restore.Options{Redis: o, Repository: r, Method: restore.MethodRestore, Workers: 1, Progress: p})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("restore into a stopped server: %v", err)
	}
	t.Logf("failed %s after SIGSTOP: %v", after.Round(time.Millisecond), err)
	if _, err := restore.Run(ctx, restore.Options{Redis: o, Repository: r, Method: restore.MethodRestore, Flush: true}); err != nil {
		t.Fatalf("restore after SIGCONT: %v", err)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
}
