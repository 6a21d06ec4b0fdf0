package rdb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
)

// saveRDB has s write its dataset with SAVE and returns the file.
func saveRDB(t testing.TB, s *redistest.Server) string {
	t.Helper()
	if err := s.Client.Save(context.Background()).Err(); err != nil {
		t.Fatalf("SAVE on %s: %v", s.Flavor.Name, err)
	}
	return filepath.Join(s.Dir, "dump.rdb")
}

// syncRDB fetches the RDB of a full resync from s with the server's own client (redis-cli --rdb).
func syncRDB(t testing.TB, s *redistest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sync.rdb")
	out, err := exec.Command(s.CLI(t), "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "--rdb", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s --rdb: %v: %s", s.Flavor.CLI, err, out)
	}
	return path
}

// readAll reads every entry of the RDB file path.
func readAll(t testing.TB, path string) (*rdb.Header, []*rdb.Entry) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rdb.NewReader(f)
	h, err := r.Header()
	if err != nil {
		t.Fatalf("header of %s: %v", path, err)
	}
	var entries []*rdb.Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		entries = append(entries, e.Clone())
	}
	return h, entries
}

// restoreAll writes entries and functions into dst with RESTORE and FUNCTION LOAD.
func restoreAll(t testing.TB, dst *redistest.Server, h *rdb.Header, entries []*rdb.Entry) {
	t.Helper()
	ctx := context.Background()
	clients := map[int]*redis.Client{}
	for _, e := range entries {
		c := clients[e.DB]
		if c == nil {
			c = dataset.Client(dst, e.DB)
			defer c.Close()
			clients[e.DB] = c
		}
		args := []any{"RESTORE", e.Key, e.ExpireAtMs, e.Payload}
		if e.ExpireAtMs > 0 {
			args = append(args, "ABSTTL")
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("RESTORE db %d key %.40q (%s, %d bytes): %v", e.DB, e.Key, rdb.TypeName(e.Type), len(e.Payload), err)
		}
	}
	for _, code := range h.Functions {
		if err := dst.Client.FunctionLoad(ctx, string(code)).Err(); err != nil {
			t.Fatalf("FUNCTION LOAD: %v", err)
		}
	}
}

// TestReadServerRDB fills each server with every type and encoding it has, saves an RDB both
// ways (SAVE and a full resync through the server's own client), reads it, and RESTOREs every
// payload into an empty server of the same version: the two must be equal.
func TestReadServerRDB(t *testing.T) {
	for _, flavor := range redistest.Flavors {
		t.Run(flavor.Name, func(t *testing.T) {
			src := redistest.Start(t, flavor)
			dataset.Fill(t, src)
			counts := dataset.Counts(t, src)

			h, saved := readAll(t, saveRDB(t, src))
			hs, synced := readAll(t, syncRDB(t, src))
			if len(saved) != len(synced) || h.Version != hs.Version {
				t.Fatalf("SAVE: %d keys, version %d; resync: %d keys, version %d", len(saved), h.Version, len(synced), hs.Version)
			}
			if _, ok := hs.AuxValue("repl-id"); !ok {
				t.Errorf("no repl-id in the resync RDB's AUX fields: %v", hs.Aux)
			}
			_, redisVer := h.AuxValue("redis-ver")
			_, valkeyVer := h.AuxValue("valkey-ver")
			if !redisVer && !valkeyVer {
				t.Errorf("no redis-ver or valkey-ver in %v", h.Aux)
			}
			if len(h.Functions) != 1 || string(h.Functions[0]) != dataset.Library {
				t.Errorf("functions: %q", h.Functions)
			}
			perDB := map[int]int64{}
			types := map[string]bool{}
			for _, e := range synced {
				perDB[e.DB]++
				types[rdb.TypeNameIn(e.Type, hs.Version)] = true
				if v, err := rdb.FormatVersion(e.Payload); err != nil || v != hs.Version {
					t.Fatalf("payload version %d, %v; file %d", v, err, hs.Version)
				}
				if rdb.MinVersion(e.Type) == 0 || rdb.MinVersion(e.Type) > hs.Version {
					t.Errorf("MinVersion(%s) = %d in a file of version %d", rdb.TypeName(e.Type), rdb.MinVersion(e.Type), hs.Version)
				}
			}
			for db, n := range counts {
				if perDB[db] != n {
					t.Errorf("db %d: read %d keys, the server has %d", db, perDB[db], n)
				}
			}
			t.Logf("RDB version %d, %d keys, types %v", hs.Version, len(synced), types)

			// The payloads are DUMP's own: the source's DUMP of each key is byte for byte the same.
			c := dataset.Client(src, 0)
			defer c.Close()
			for _, e := range synced {
				if e.DB != 0 || e.Type != rdb.TypeString {
					continue
				}
				d, err := c.Dump(context.Background(), string(e.Key)).Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(d, e.Payload) {
					t.Errorf("key %.40q: payload %.80x, DUMP %.80x", e.Key, e.Payload, d)
				}
			}

			dst := redistest.Start(t, flavor)
			restoreAll(t, dst, hs, synced)
			dataset.Equal(t, src, dst)
		})
	}
}

// TestReadBigKeys reads keys of a million elements each from a server's resync RDB and
// restores them.
func TestReadBigKeys(t *testing.T) {
	src := redistest.Start(t)
	dataset.FillBig(t, src, 1_000_000)
	start := time.Now()
	h, entries := readAll(t, syncRDB(t, src))
	t.Logf("read %d keys in %v", len(entries), time.Since(start))
	dst := redistest.Start(t)
	restoreAll(t, dst, h, entries)
	dataset.Equal(t, src, dst)
}

// TestReaderErrors: what is not an RDB file, or is cut short, or is corrupted, gets an error
// that says so; nothing panics.
func TestReaderErrors(t *testing.T) {
	src := redistest.Start(t)
	if err := src.Client.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(saveRDB(t, src))
	if err != nil {
		t.Fatal(err)
	}
	read := func(b []byte) error {
		r := rdb.NewReader(bytes.NewReader(b))
		for {
			_, err := r.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	if err := read(good); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for i := range len(good) - 1 {
		if err := read(good[:i]); !errors.Is(err, rdb.ErrFormat) {
			t.Fatalf("file cut at %d of %d: %v", i, len(good), err)
		}
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 1 // in the value "v"
	if err := read(flipped); !errors.Is(err, rdb.ErrChecksum) {
		t.Fatalf("flipped bit: %v", err)
	}
	if err := read([]byte("GARBAGE00")); !errors.Is(err, rdb.ErrFormat) {
		t.Fatalf("garbage: %v", err)
	}
	unknown := append([]byte("REDIS0011"), 0xFE, 0, 0x7A, 1, 'k')
	if err := read(unknown); err == nil || !bytes.Contains([]byte(err.Error()), []byte("unknown object type 122 (0x7a)")) || !bytes.Contains([]byte(err.Error()), []byte("offset 11")) {
		t.Fatalf("unknown type: %v", err)
	}
}

// FuzzReader: no input makes the reader panic, or allocate more than the input could fill
// (bufio's buffer aside). Seeds: small RDB files of each server here (testdata/fuzz), and files
// the writer makes.
func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	w, err := rdb.NewWriter(&b, 11)
	if err != nil {
		f.Fatal(err)
	}
	payload := func(obj ...byte) []byte {
		p := binary.LittleEndian.AppendUint16(obj, 11)
		return binary.LittleEndian.AppendUint64(p, rdb.Checksum(0, p))
	}
	_ = w.SelectDB(3, 2, 1)
	_ = w.Add([]byte("k"), 1700000000000, payload(rdb.TypeString, 3, 'a', 'b', 'c'))
	_ = w.Add([]byte("n"), 0, payload(rdb.TypeString, 0xC0, 7))
	_ = w.Add([]byte("set"), 0, payload(rdb.TypeSet, 2, 1, 'x', 1, 'y'))
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := rdb.NewReader(bytes.NewReader(data))
		for range len(data) + 1 { // every key costs at least a byte
			e, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, rdb.ErrFormat) && !errors.Is(err, rdb.ErrChecksum) {
					t.Fatalf("an error that is neither ErrFormat nor ErrChecksum: %v", err)
				}
				break
			}
			if len(e.Payload) > len(data)+11 {
				t.Fatalf("payload of %d bytes from %d bytes of input", len(e.Payload), len(data))
			}
		}
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 64*uint64(len(data))+4<<20 {
			t.Fatalf("%d bytes allocated for %d bytes of input", grown, len(data))
		}
	})
}
