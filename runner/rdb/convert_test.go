package rdb_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/test/redistest"
)

// TestConvert: values Redis 8.0 dumps in encodings Redis 7.0 does not know (listpack sets with
// every integer and string width, streams of format 3 with groups, consumers and pending
// entries) are converted and restored by Redis 7.0 with the same DEBUG DIGEST-VALUE; values
// 7.0 cannot hold at all (hash field TTLs, vector sets) are refused as lossy.
func TestConvert(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.Redis80)
	dst := redistest.Start(t, redistest.Redis70)
	c := src.Client
	ints := []any{0, 1, 127, 128, -1, -4096, 4095, 4096, -32768, 32767, 8388607, -8388608, 1 << 31, -1 << 40, int64(1) << 62}
	strs := []any{"a", strings.Repeat("s", 63), strings.Repeat("m", 64), strings.Repeat("l", 4095), strings.Repeat("x", 4096)}
	// Long members stay in a listpack (the default limit is 64 bytes), to cover every width.
	if err := c.ConfigSet(ctx, "set-max-listpack-value", "10000").Err(); err != nil {
		t.Fatal(err)
	}
	c.SAdd(ctx, "set:ints", append(ints, "z")...)
	c.SAdd(ctx, "set:mixed", append(ints, strs...)...)
	c.SAdd(ctx, "set:strs", strs...)
	for i := range 50 {
		c.XAdd(ctx, &redis.XAddArgs{Stream: "stream", Values: []any{"n", i}})
	}
	c.XGroupCreate(ctx, "stream", "g1", "0")
	c.XGroupCreate(ctx, "stream", "g2", "0")
	c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "alice", Streams: []string{"stream", ">"}, Count: 7})
	c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g1", Consumer: "bob", Streams: []string{"stream", ">"}, Count: 3})
	c.XGroupCreateConsumer(ctx, "stream", "g2", "idle")
	c.HSet(ctx, "hfe", "a", 1, "b", 2)
	c.Do(ctx, "HPEXPIRE", "hfe", 3600000, "FIELDS", 1, "a")
	c.Do(ctx, "VADD", "vset", "VALUES", 2, 0.5, 0.25, "el")

	target := rdb.TargetOf("7.0.15", "")
	for _, k := range []string{"set:ints", "set:mixed", "set:strs", "stream"} {
		payload, err := c.Dump(ctx, k).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := rdb.FormatVersion(payload); target.Reads(v) {
			t.Fatalf("%s: Redis 7.0 reads format %d: nothing to convert", k, v)
		}
		if typ := payload[0]; typ != rdb.TypeSetListpack && typ != rdb.TypeStreamListpacks3 {
			t.Fatalf("%s dumped as %s: not the encoding under test", k, rdb.TypeName(typ))
		}
		out, err := target.Convert(nil, payload)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if err := dst.Client.RestoreReplace(ctx, k, 0, string(out)).Err(); err != nil {
			t.Fatalf("RESTORE %s into Redis 7.0: %v", k, err)
		}
		a := c.Do(ctx, "DEBUG", "DIGEST-VALUE", k).String()
		b := dst.Client.Do(ctx, "DEBUG", "DIGEST-VALUE", k).String()
		if a != b {
			t.Errorf("%s: digest %s in Redis 8.0, %s after conversion", k, a, b)
		}
	}
	a := c.Do(ctx, "XINFO", "STREAM", "stream", "FULL").String()
	b := dst.Client.Do(ctx, "XINFO", "STREAM", "stream", "FULL").String()
	for _, want := range []string{"alice", "bob", "idle", "g1", "g2"} {
		if !strings.Contains(a, want) || !strings.Contains(b, want) {
			t.Errorf("stream groups and consumers: %q in neither %.300s nor %.300s", want, a, b)
		}
	}
	for _, k := range []string{"hfe", "vset"} {
		payload, err := c.Dump(ctx, k).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := target.Convert(nil, payload); !errors.Is(err, rdb.ErrLossy) {
			t.Fatalf("%s into Redis 7.0: %v, want ErrLossy", k, err)
		} else {
			t.Logf("%s: %v", k, err)
		}
	}
}

// TestTargetOf: the RDB formats each server reads, from what INFO says.
func TestTargetOf(t *testing.T) {
	for _, tc := range []struct {
		redis, valkey  string
		reads, refuses []int
		write          int
	}{
		{"7.0.15", "", []int{9, 10}, []int{11, 12}, 10},
		{"7.2.4", "", []int{11}, []int{12}, 11},
		{"8.0.2", "", []int{12}, []int{13}, 12},
		{"7.2.4", "8.1.1", []int{11}, []int{12}, 11},
		{"7.2.4", "9.0.0", []int{11, 80}, []int{12, 79, 81}, 80},
		{"8.0.6", "", []int{11, 12}, []int{13, 80}, 12},
		{"99.0.0", "", []int{12, 13, 20}, []int{80}, 12},
	} {
		tg := rdb.TargetOf(tc.redis, tc.valkey)
		for _, v := range tc.reads {
			if !tg.Reads(v) {
				t.Errorf("%s/%s does not read %d", tc.redis, tc.valkey, v)
			}
		}
		for _, v := range tc.refuses {
			if tg.Reads(v) {
				t.Errorf("%s/%s reads %d", tc.redis, tc.valkey, v)
			}
		}
		if tg.WriteVersion() != tc.write {
			t.Errorf("%s/%s writes %d, want %d", tc.redis, tc.valkey, tg.WriteVersion(), tc.write)
		}
	}
}

// FuzzConvert: no payload makes Convert panic; what it returns for an older target is either a
// converted payload of the target's version or ErrPayload / ErrLossy.
func FuzzConvert(f *testing.F) {
	payload := func(obj ...byte) []byte {
		p := binary.LittleEndian.AppendUint16(obj, 12)
		return binary.LittleEndian.AppendUint64(p, rdb.Checksum(0, p))
	}
	// A listpack set {"ab", 5} and a minimal stream of format 3 with one group and consumer.
	lp := []byte{0, 0, 0, 0, 2, 0, 0x82, 'a', 'b', 3, 5, 1, 0xFF}
	binary.LittleEndian.PutUint32(lp, uint32(len(lp)))
	f.Add(payload(append([]byte{rdb.TypeSetListpack, byte(len(lp))}, lp...)...))
	f.Add(payload(rdb.TypeStreamListpacks3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'g', 0, 0, 0, 0, 1, 1, 'c',
		1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0))
	f.Add(payload(rdb.TypeString, 1, 'x'))
	// Hashes with field TTLs: Redis's (format 12) and Valkey's (format 80).
	f.Add(payload(rdb.TypeHashMetadata, 1, 2, 3, 4, 5, 6, 0, 0, 2, 0, 1, 'a', 1, 'b', 9, 1, 'c', 1, 'd'))
	valkey := binary.LittleEndian.AppendUint16([]byte{rdb.TypeValkeyHash2, 1, 1, 'a', 1, 'b', 1, 2, 3, 4, 5, 6, 0, 0}, 80)
	f.Add(binary.LittleEndian.AppendUint64(valkey, rdb.Checksum(0, valkey)))
	targets := []rdb.Target{rdb.TargetOf("7.0.15", ""), rdb.TargetOf("8.0.6", ""), rdb.TargetOf("7.2.4", "9.1.2")}
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, target := range targets {
			out, err := target.Convert(nil, slices.Clone(p))
			switch {
			case err == nil:
				if v, err := rdb.FormatVersion(out); err != nil || !target.Reads(v) {
					t.Fatalf("%s: converted payload of version %d (%v)", target.Name, v, err)
				}
			case !errors.Is(err, rdb.ErrPayload) && !errors.Is(err, rdb.ErrLossy):
				t.Fatalf("%s: an error that is neither ErrPayload nor ErrLossy: %v", target.Name, err)
			}
		}
	})
}

// TestModuleValuesOnlyForward: a module value restores only into a server of the product that
// wrote it, at the same or a newer version (patch included: Redis 8.0.6's vector sets fail to
// load in 8.0.2 although the format and the module's encoding version are the same); other
// values and snapshots that do not name their writer are left to the server as before.
func TestModuleValuesOnlyForward(t *testing.T) {
	payload := func(version int, obj ...byte) []byte {
		p := binary.LittleEndian.AppendUint16(obj, uint16(version))
		return binary.LittleEndian.AppendUint64(p, rdb.Checksum(0, p))
	}
	var id uint64
	for _, c := range []byte("vectorset") {
		id = id<<6 | uint64(strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c))
	}
	id = id<<10 | 0 // encoding version 0, as both Redis 8.0.2 and 8.0.6 write it
	module := []byte{rdb.TypeModule2, 0x81}
	module = binary.BigEndian.AppendUint64(module, id)
	module = append(module, 2, 0, 0) // the value itself is not read
	str := []byte{rdb.TypeString, 1, 'x'}
	for _, tc := range []struct {
		redis, valkey, writer, writerVersion string
		format                               int
		obj                                  []byte
		lossy                                string // "" when the payload passes as it is
	}{
		{"8.0.2", "", "redis", "8.0.6", 12, module, "a vector set written by redis 8.0.6, which redis 8.0.2 may not read: module values restore only into the same or a newer server"},
		{"8.0.2", "", "redis", "8.1.0", 12, module, "written by redis 8.1.0"},
		{"8.0.9", "", "redis", "8.0.10", 12, module, "written by redis 8.0.10"},
		{"8.0.2", "", "redis", "8.0.6", 12, str, ""},
		{"8.0.2", "", "redis", "8.0.2", 12, module, ""},
		{"8.0.6", "", "redis", "8.0.2", 12, module, ""},
		{"8.1.0", "", "redis", "8.0.6", 12, module, ""},
		{"8.0.2", "", "", "", 12, module, ""}, // an older snapshot: the server judges
		{"7.2.4", "9.0.0", "valkey", "9.1.0", rdb.ValkeyFormat, module, "written by valkey 9.1.0, which valkey 9.0.0 may not read"},
		{"7.2.4", "9.1.0", "valkey", "9.0.0", rdb.ValkeyFormat, module, ""},
		{"7.2.4", "9.1.0", "redis", "7.2.4", 11, module, "written by redis 7.2.4, which valkey 9.1.0 may not read"},
	} {
		name := fmt.Sprintf("%s %s/%s from %s %s", tc.redis, tc.valkey, rdb.TypeName(tc.obj[0]), tc.writer, tc.writerVersion)
		target := rdb.TargetOf(tc.redis, tc.valkey)
		target.WriterProduct, target.WriterVersion = tc.writer, tc.writerVersion
		p := payload(tc.format, tc.obj...)
		out, err := target.Convert(nil, p)
		switch {
		case tc.lossy == "" && err != nil:
			t.Errorf("%s: %v, want the payload as it is", name, err)
		case tc.lossy == "" && !slices.Equal(out, p):
			t.Errorf("%s: payload changed", name)
		case tc.lossy != "" && !errors.Is(err, rdb.ErrLossy):
			t.Errorf("%s: %v, want ErrLossy", name, err)
		case tc.lossy != "" && !strings.Contains(err.Error(), tc.lossy):
			t.Errorf("%s: %v, want it to say %q", name, err, tc.lossy)
		}
		// A restore converts (and checks) only when some payload may not pass as it is.
		if want := tc.lossy == "" || tc.obj[0] != rdb.TypeModule2; tc.obj[0] == rdb.TypeModule2 && target.Unchanged(tc.format) != want {
			t.Errorf("%s: Unchanged(%d) = %v, want %v", name, tc.format, !want, want)
		}
	}
}
