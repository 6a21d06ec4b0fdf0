package restore_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// FuzzImportRestore gives whole RDB files to import and restores what it accepts into real
// servers, by replication into one and by RESTORE commands into another. The input is a file
// without its last 8 bytes: the fuzz function appends the right checksum, so that mutations
// reach the values instead of failing the checksum. What must hold: import refuses the file,
// or both restores either refuse it or succeed with equal contents (DEBUG DIGEST); both servers
// stay up whatever the file holds.
//
// The seeds are an RDB file of a server holding every common type in small encodings
// (listpacks, intsets, quicklists, a stream with a consumer group and pending entries) and the
// RDB files of Redis's own test suite.
func FuzzImportRestore(f *testing.F) {
	ctx := context.Background()
	seedSrc := redistest.Start(f)
	fillSmall(f, seedSrc)
	testproc.Eventually(f, 30*time.Second, "SAVE", func() error { return seedSrc.Client.Save(ctx).Err() })
	addSeed(f, filepath.Join(seedSrc.Dir, "dump.rdb"))
	seedSrc.Stop()
	files, _ := filepath.Glob(filepath.Join(redistest.TestAssets(f), "*.rdb"))
	for _, p := range files {
		addSeed(f, p)
	}

	byReplication, byRestore := redistest.Start(f), redistest.Start(f)
	servers := []*redistest.Server{byReplication, byRestore}
	stopWithParent(servers)
	r := openRepo(f, "file://"+f.TempDir(), nil)

	f.Fuzz(func(t *testing.T, body []byte) {
		file := binary.LittleEndian.AppendUint64(bytes.Clone(body), rdb.Checksum(0, body))
		res, err := backup.Import(ctx, backup.ImportOptions{RDB: bytes.NewReader(file), Source: "fuzz.rdb", Repository: r})
		if err != nil {
			return // refused: nothing reached a server
		}
		var errs [2]error
		for i, s := range servers {
			if err := s.Client.FlushAll(ctx).Err(); err != nil {
				t.Fatalf("FLUSHALL on %s: %v", s.Addr, err)
			}
			if err := s.Client.FunctionFlush(ctx).Err(); err != nil {
				t.Fatalf("FUNCTION FLUSH on %s: %v", s.Addr, err)
			}
			method := restore.MethodReplication
			if s == byRestore {
				method = restore.MethodRestore
			}
			_, errs[i] = restore.Run(ctx, restore.Options{Redis: conn(t, s), Repository: r, Snapshot: res.SnapshotID, Method: method})
		}
		for _, s := range servers {
			if !s.Alive() {
				t.Fatalf("%s died restoring an imported file (%d keys): %v; its log:\n%s", s.Addr, res.Keys, errs, s.Log())
			}
		}
		if errs[0] != nil || errs[1] != nil {
			if errors.Is(errs[0], restore.ErrKeyCount) || errors.Is(errs[1], restore.ErrKeyCount) {
				t.Fatalf("a restore of an imported file found other keys than it wrote: %v", errs)
			}
			return // refused by a restore: the server said no, and stayed up
		}
		if a, b := byReplication.Digest(t), byRestore.Digest(t); a != b {
			t.Fatalf("the two restores of one imported file differ: digest %s by replication, %s by RESTORE", a, b)
		}
	})
}

// addSeed adds the RDB file at path, without its checksum, to the corpus.
func addSeed(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	if len(b) > 8 {
		f.Add(b[:len(b)-8])
	}
}

// fillSmall writes a few keys of every common type in their small encodings.
func fillSmall(t testing.TB, s *redistest.Server) {
	ctx := context.Background()
	c := s.Client.Conn() // one connection: SELECT holds for what follows
	defer c.Close()
	cmds := [][]any{
		{"SET", "s", "v"}, {"SET", "n", "12345"},
		{"RPUSH", "l", "a", "b", "1", "2"},
		{"SADD", "si", "1", "2", "3"}, {"SADD", "sl", "a", "b"},
		{"ZADD", "z", "1", "a", "2.5", "b"},
		{"HSET", "h", "f", "v", "g", "1"},
		{"XADD", "x", "1-1", "f", "v"}, {"XADD", "x", "2-1", "f", "w", "g", "z"},
		{"XGROUP", "CREATE", "x", "grp", "0"}, {"XREADGROUP", "GROUP", "grp", "c1", "COUNT", "1", "STREAMS", "x", ">"},
		{"SELECT", "1"}, {"SET", "other", "db"}, {"SELECT", "0"},
	}
	for _, cmd := range cmds {
		if err := c.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
}

// stopWithParent kills the servers when the process that started this one exits (a fuzz
// worker whose coordinator ended), so that no server outlives a fuzz run.
func stopWithParent(servers []*redistest.Server) {
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != parent {
				for _, s := range servers {
					s.Kill()
				}
				return
			}
		}
	}()
}
