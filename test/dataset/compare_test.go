package dataset_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// copyOf starts a server of src's flavor that holds what src holds: a replica of it, detached
// once in sync (the server's own copy, no tool of ours in between).
func copyOf(t *testing.T, src *redistest.Server) *redistest.Server {
	t.Helper()
	ctx := context.Background()
	dst := redistest.Start(t, src.Flavor)
	if err := dst.Client.Do(ctx, "REPLICAOF", "127.0.0.1", src.Port).Err(); err != nil {
		t.Fatal(err)
	}
	testproc.Eventually(t, 30*time.Second, "replica in sync", func() error {
		if v := redistest.InfoField(t, dst.Client, "replication", "master_link_status"); v != "up" {
			return fmt.Errorf("master_link_status:%s", v)
		}
		if a, b := redistest.ReplOffset(t, src.Client), redistest.InfoField(t, dst.Client, "replication", "slave_repl_offset"); fmt.Sprint(a) != b {
			return fmt.Errorf("offsets %d, %s", a, b)
		}
		return nil
	})
	if err := dst.Client.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func compare(t *testing.T, a, b *redistest.Server) []dataset.Difference {
	t.Helper()
	d, err := dataset.Compare(context.Background(), dataset.Standalone(a), dataset.Standalone(b), dataset.Options{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// differs checks that the oracle reports exactly the keys want (db 0), each with a difference
// whose description contains the word given.
func differs(t *testing.T, diffs []dataset.Difference, want map[string]string) {
	t.Helper()
	got := map[string][]string{}
	for _, d := range diffs {
		if d.DB != 0 {
			t.Errorf("unexpected difference: %s", d)
		}
		got[d.Key] = append(got[d.Key], d.What)
	}
	for k, what := range want {
		if !slices.ContainsFunc(got[k], func(w string) bool { return strings.Contains(w, what) }) {
			t.Errorf("key %q: want a difference in %q, got %q (all: %v)", k, what, got[k], diffs)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("key %q: unexpected differences %q", k, got[k])
		}
	}
}

// TestCompareCatchesWhatDigestMisses: two Valkey 9 servers that hold the same data compare
// equal; after changing a hash field's TTL, destroying a consumer group and handing a pending
// entry to another consumer, their DEBUG DIGESTs are still equal (Valkey 9's digest leaves field
// TTLs and consumer groups out) but the oracle names each of the three keys and what differs;
// a changed key TTL and a deleted key are named too. Redis 8.0's digest is as blind (measured
// with sid's 8.0.6), and the oracle as sharp.
func TestCompareCatchesWhatDigestMisses(t *testing.T) {
	ctx := context.Background()
	for _, fl := range []redistest.Flavor{redistest.ValkeySid, redistest.RedisSid} {
		t.Run(fl.Name, func(t *testing.T) {
			src := redistest.Start(t, fl)
			dataset.FillKeys(t, src)
			if !dataset.HasFieldTTL(src) {
				t.Fatalf("%s has no hash field TTLs (COMMAND INFO HPEXPIRE)", fl.Name)
			}
			dst := copyOf(t, src)
			start := time.Now()
			if d := compare(t, src, dst); len(d) != 0 {
				t.Fatalf("a replica's copy differs: %v", d)
			}
			t.Logf("%d keys compared equal in %s", dbSize(t, src), time.Since(start).Round(time.Millisecond))

			c := dst.Client
			stream := "db0:stream"
			pel, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "g1", Start: "-", End: "+", Count: 1}).Result()
			if err != nil || len(pel) != 1 {
				t.Fatalf("XPENDING: %v %v", pel, err)
			}
			for _, cmd := range [][]any{
				{"HPEXPIRE", "db0:hfe", 7200000, "FIELDS", 1, "a"},
				{"XGROUP", "DESTROY", stream, "g2"},
				{"XCLAIM", stream, "g1", "carol", 0, pel[0].ID, "JUSTID"},
				{"XGROUP", "CREATE", "db0:stream-small", "late", "0"},
			} {
				if err := c.Do(ctx, cmd...).Err(); err != nil {
					t.Fatalf("%v: %v", cmd, err)
				}
			}
			if a, b := src.Digest(t), dst.Digest(t); a != b {
				t.Errorf("%s's DEBUG DIGEST sees field TTLs or consumer groups now (%s, %s): the test's premise changed", fl.Name, a, b)
			}
			differs(t, compare(t, src, dst), map[string]string{
				"db0:hfe":          "field TTLs",
				stream:             "group",
				"db0:stream-small": "groups",
			})

			if err := c.PExpire(ctx, "db0:ttl", 3*time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.Del(ctx, "db0:set").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.LSet(ctx, "db0:biglist", 1500, "changed").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.ZAdd(ctx, "db0:bigzset", redis.Z{Score: 1.0/7 + 1e-15, Member: "member1"}).Err(); err != nil {
				t.Fatal(err)
			}
			differs(t, compare(t, src, dst), map[string]string{
				"db0:hfe":          "field TTLs",
				stream:             "group",
				"db0:stream-small": "groups",
				"db0:ttl":          "expiry",
				"db0:set":          "missing",
				"db0:biglist":      "value",
				"db0:bigzset":      "value",
			})
		})
	}
}

// TestCompareClusterAndStandalone: the oracle reads a cluster's keys from the master that holds
// each (a cluster of three compares equal to a standalone server with the same keys), and its
// limit reports the first keys in order.
func TestCompareClusterAndStandalone(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t, 3, redistest.Valkey81)
	dataset.FillInstance(t, dataset.ClusterOf(cl))
	for _, m := range cl.Masters {
		if n, _ := m.Client.DBSize(ctx).Result(); n < 100 {
			t.Fatalf("master %s holds %d keys: the filler did not spread keys over the slots", m.Addr, n)
		}
	}
	one := redistest.Start(t, redistest.Valkey81)
	dataset.FillInstance(t, dataset.Standalone(one))
	// The standalone server has databases 1 and 7 too; the cluster only 0.
	d, err := dataset.Compare(ctx, dataset.ClusterOf(cl), dataset.Standalone(one), dataset.Options{Limit: 5, DBs: []int{0}, TTLTolerance: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The two were filled a moment apart: stream ids and the relative TTLs differ.
	for _, x := range d {
		if !strings.Contains(x.Key, "stream") && !strings.Contains(x.What, "expiry") {
			t.Errorf("unexpected difference: %s", x)
		}
	}
	d, err = dataset.Compare(ctx, dataset.ClusterOf(cl), dataset.Standalone(one), dataset.Options{Limit: 3, TTLTolerance: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, x := range d {
		keys[fmt.Sprint(x.DB, x.Key)] = true
	}
	if len(keys) != 3 {
		t.Errorf("limit 3: %d keys reported: %v", len(keys), d)
	}
}

// TestCompareTenThousandKeys: the oracle compares 10,000 keys of every type in well under a
// second (0.3 s on an idle machine; the bound leaves room for a busy one, and the race
// detector's build is not timed).
func TestCompareTenThousandKeys(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.Redis80)
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", 7100, "str", 20).Err(); err != nil {
		t.Fatal(err)
	}
	dataset.FillKeys(t, src) // about 3,000 more over three databases, big ones among them
	p := src.Client.Pipeline()
	for i := range 2000 {
		p.HSet(ctx, fmt.Sprint("h:", i), "a", i, "b", "x")
		p.PExpire(ctx, fmt.Sprint("h:", i), time.Hour)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	dst := copyOf(t, src)
	n := int64(0)
	for _, k := range dataset.Counts(t, src) {
		n += k
	}
	start := time.Now()
	if d := compare(t, src, dst); len(d) != 0 {
		t.Fatal(d)
	}
	took := time.Since(start)
	t.Logf("%d keys compared in %s", n, took.Round(time.Millisecond))
	if n < 10000 {
		t.Errorf("only %d keys", n)
	}
	if took > 3*time.Second && !raceEnabled {
		t.Errorf("comparing %d keys took %s", n, took)
	}
}

// TestFeaturesByProbe: the filler decides what a server can hold by asking it (COMMAND INFO),
// not by its name or version string: a server whose flavor is renamed gets the same data, and
// the sid servers, whatever version sid ships next, get hash field TTLs (and Redis vector sets)
// because they answer for HPEXPIRE (VADD).
func TestFeaturesByProbe(t *testing.T) {
	for _, c := range []struct {
		fl             redistest.Flavor
		fieldTTL, vset bool
	}{
		{redistest.Redis70, false, false},
		{redistest.Valkey81, false, false},
		{redistest.Redis80, true, true},
		{redistest.RedisSid, true, true},
		{redistest.ValkeySid, true, false},
	} {
		t.Run(c.fl.Name, func(t *testing.T) {
			renamed := c.fl
			renamed.Name = "renamed-" + c.fl.Name
			s := redistest.Start(t, renamed)
			t.Logf("%s: %s", c.fl.Name, redistest.InfoField(t, s.Client, "server", "redis_version"))
			if got := dataset.HasFieldTTL(s); got != c.fieldTTL {
				t.Errorf("HasFieldTTL = %v, want %v", got, c.fieldTTL)
			}
			if got := dataset.HasVectorSet(s); got != c.vset {
				t.Errorf("HasVectorSet = %v, want %v", got, c.vset)
			}
			dataset.FillKeys(t, s)
			typ, _ := s.Client.Type(context.Background(), "db0:vset").Result()
			if (typ == "vectorset") != c.vset {
				t.Errorf("db0:vset is %q", typ)
			}
			ttls, err := s.Client.Do(context.Background(), "HPEXPIRETIME", "db0:bighfe", "FIELDS", 1, "field3").Int64Slice()
			if c.fieldTTL && (err != nil || len(ttls) != 1 || ttls[0] <= 0) {
				t.Errorf("db0:bighfe field3 has no TTL: %v %v", ttls, err)
			}
		})
	}
}

func dbSize(t *testing.T, s *redistest.Server) int64 {
	var n int64
	for _, k := range dataset.Counts(t, s) {
		n += k
	}
	return n
}
