package runnertest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
)

// FillCluster writes n keys of every type through the cluster client, a third with expiry, and
// some sharing hash tags.
func FillCluster(t testing.TB, c *redistest.Cluster, n int) {
	t.Helper()
	ctx := context.Background()
	p := c.Client.Pipeline()
	for i := range n {
		k := fmt.Sprintf("k:%d", i)
		if i%5 == 0 {
			k = fmt.Sprintf("{user%d}:k:%d", i%17, i)
		}
		switch i % 5 {
		case 0:
			p.Set(ctx, k, strings.Repeat("v", i%300), 0)
		case 1:
			p.RPush(ctx, k, "a", i, "c")
		case 2:
			p.HSet(ctx, k, "f", i, "g", "h")
		case 3:
			p.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: "m"})
		case 4:
			p.SAdd(ctx, k, i, "x")
		}
		if i%3 == 0 {
			p.PExpireAt(ctx, k, time.Now().Add(time.Hour+time.Duration(i)*time.Millisecond))
		}
		if p.Len() >= 2000 {
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

// FillSlot writes n keys with hash tag tag and returns their slot, the master that owns it and
// the next master, where a test may move it.
func FillSlot(t testing.TB, c *redistest.Cluster, tag string, n int) (slot int, owner, next *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	p := c.Client.Pipeline()
	for i := range n {
		p.Set(ctx, tag+strconv.Itoa(i), i, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	slot = cluster.Slot([]byte(tag))
	for i, m := range c.Masters {
		if k, _ := m.Client.ClusterCountKeysInSlot(ctx, slot).Result(); k > 0 {
			owner, next = m, c.Masters[(i+1)%len(c.Masters)]
		}
	}
	if owner == nil {
		t.Fatalf("no master owns the keys of %s", tag)
	}
	return slot, owner, next
}

// NodeID is the cluster node ID of s.
func NodeID(t testing.TB, s *redistest.Server) string {
	t.Helper()
	id, err := s.Client.Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// RestoreCluster restores the latest snapshot of r through o into the cluster dst and fails
// unless dst then holds want (Cluster.Contents) with keys on every master.
func RestoreCluster(t testing.TB, r *repo.Repository, o redisconn.Options, dst *redistest.Cluster, want map[string]string) {
	t.Helper()
	res, err := restore.Run(context.Background(), restore.Options{Redis: o, Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != int64(len(want)) {
		t.Errorf("restored %d keys, want %d", res.Keys, len(want))
	}
	if n := dst.DBSize(t); n != int64(len(want)) {
		t.Errorf("DBSIZE over the masters = %d, want %d", n, len(want))
	}
	if diff := cmp.Diff(want, dst.Contents(t)); diff != "" {
		t.Errorf("restored cluster differs (-want +got):\n%.2000s", diff)
	}
	for _, m := range dst.Masters {
		if n, _ := m.Client.DBSize(context.Background()).Result(); n == 0 {
			t.Errorf("master %s got no keys", m.Addr)
		}
	}
}
