package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/cluster"
	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/stream"
)

// clusterPlan is what a cluster backup reads from where.
type clusterPlan struct {
	top      cluster.Topology
	masters  []cluster.Node
	nodes    []redisconn.Options // one per master: the master or its replica
	unstable []bool              // per slot: migrating when the backup started
	dbs      []int               // the databases to read: 0, and others of a Valkey 9 cluster
	total    int64               // keys, for progress
}

func planCluster(ctx context.Context, opts Options, client *redis.Client, info redisconn.ServerInfo) (*clusterPlan, error) {
	for _, db := range opts.Databases {
		if err := v1alpha1.CheckClusterDatabase(db, info.ClusterDatabases); err != nil {
			return nil, fmt.Errorf("back up cluster %s (%s): %w", opts.Redis.Addr, info.Name(), err)
		}
	}
	top, err := cluster.DiscoverAll(ctx, opts.Redis, client)
	if err != nil {
		return nil, err
	}
	if _, err := top.Owners(); err != nil {
		return nil, fmt.Errorf("back up cluster %s: %w", opts.Redis.Addr, err)
	}
	p := &clusterPlan{top: top, masters: top.Masters(), unstable: make([]bool, cluster.Slots)}
	for _, s := range top.Migrations() {
		p.unstable[s] = true
	}
	withKeys := map[int]bool{}
	for _, m := range p.masters {
		if m.Failed {
			return nil, fmt.Errorf("cluster master %s (%s) is failing: wait for a failover before backing up", m.Addr, m.ID)
		}
		o := cluster.NodeOptions(opts.Redis, m.Addr)
		if opts.ReadFromReplica {
			r, ok := top.Replica(m.ID)
			if !ok {
				return nil, &NoHealthyReplicaError{Master: m.Addr}
			}
			o = cluster.NodeOptions(opts.Redis, r.Addr)
			o.ReadOnly = true
		}
		// Valkey 9 clusters have numbered databases (cluster-databases): each node's keyspace
		// says which hold keys.
		c := o.Client(0)
		ni, err := redisconn.Inspect(ctx, c)
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("keyspace of cluster node %s: %w", o.Addr, err)
		}
		for db, n := range ni.Keys {
			if n > 0 && (len(opts.Databases) == 0 || slices.Contains(opts.Databases, db)) {
				withKeys[db] = true
				p.total += n
			}
		}
		p.nodes = append(p.nodes, o)
	}
	if len(opts.Databases) > 0 {
		p.dbs = slices.Clone(opts.Databases)
	} else {
		for db := range withKeys {
			p.dbs = append(p.dbs, db)
		}
	}
	slices.Sort(p.dbs)
	if len(top.Migrations()) > 0 && slices.ContainsFunc(p.dbs, func(db int) bool { return db != 0 }) {
		return nil, fmt.Errorf("cluster %s has slots migrating and keys in databases other than 0 (%v): run the backup once the migration is done", opts.Redis.Addr, p.dbs)
	}
	return p, nil
}

// runCluster dumps every master (or a replica of each) in parallel into the snapshot writer w,
// then the keys of slots that were being migrated, read from whichever node holds each key.
func runCluster(ctx context.Context, opts Options, client *redis.Client, p *clusterPlan, usePTTL bool, w *repo.SnapshotWriter) (dump.Stats, *repo.ClusterManifest, error) {
	dopts := dump.Options{Databases: p.dbs, Workers: opts.Workers, ScanCount: opts.ScanCount, UsePTTL: usePTTL, Progress: opts.Progress}
	if len(p.top.Migrations()) > 0 {
		dopts.SkipKey = func(k []byte) bool { return p.unstable[cluster.Slot(k)] }
	}
	st, per, err := dump.WriteShards(ctx, dopts, p.nodes, w)
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, ": MOVED ") || strings.Contains(msg, ": ASK ") {
			err = fmt.Errorf("%w (the cluster was resharded while the backup ran: run the backup again)", err)
		}
		return st, nil, err
	}
	cm := &repo.ClusterManifest{MigratingSlots: p.top.Migrations()}
	for i, m := range p.masters {
		sh := repo.Shard{ID: m.ID, Addr: m.Addr, Keys: per[i].Total}
		if p.nodes[i].Addr != m.Addr {
			sh.ReadFrom = p.nodes[i].Addr
		}
		for _, r := range m.Slots {
			sh.Slots = append(sh.Slots, repo.SlotRange{Start: r.Start, End: r.End})
		}
		cm.Shards = append(cm.Shards, sh)
	}
	if len(cm.MigratingSlots) > 0 {
		n, b, err := dumpMigrating(ctx, opts, p, usePTTL, w)
		if err != nil {
			return st, nil, err
		}
		cm.MigratingKeys = n
		st.Keys[0] += n
		st.Total += n
		st.Bytes += b
		if opts.Progress != nil {
			opts.Progress.Keys.Add(n)
		}
	}
	if st.Keys[0] == 0 {
		delete(st.Keys, 0)
	}
	// A slot that was stable at the start must still be on the same master and not migrating:
	// otherwise some of its keys may have moved past both SCANs.
	after, err := cluster.DiscoverAll(ctx, opts.Redis, client)
	if err != nil {
		return st, nil, err
	}
	if slot, moved := resharded(p.top, after, p.unstable); moved {
		return st, nil, fmt.Errorf("cluster slot %d changed owner or started migrating while the backup ran (a resharding or failover), so keys may be missing: run the backup again", slot)
	}
	return st, cm, nil
}

// resharded returns a slot that was stable in before and changed owner or started migrating.
func resharded(before, after cluster.Topology, unstable []bool) (int, bool) {
	ownerIDs := func(t cluster.Topology) []string {
		ids := make([]string, cluster.Slots)
		for _, m := range t.Masters() {
			for _, r := range m.Slots {
				for s := r.Start; s <= r.End; s++ {
					ids[s] = m.ID
				}
			}
		}
		return ids
	}
	b, a := ownerIDs(before), ownerIDs(after)
	migrating := map[int]bool{}
	for _, s := range after.Migrations() {
		migrating[s] = true
	}
	for s := range cluster.Slots {
		if !unstable[s] && (a[s] != b[s] || migrating[s]) {
			return s, true
		}
	}
	return 0, false
}

// dumpMigrating dumps the keys of the slots that were migrating when the backup started. Keys
// are listed on the source before the target: keys only move from source to target, so every key
// is listed at least once. A key that left the source after it was listed is followed with ASK.
func dumpMigrating(ctx context.Context, opts Options, p *clusterPlan, usePTTL bool, w *repo.SnapshotWriter) (keys, bytes int64, err error) {
	clients := map[string]*redis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	client := func(addr string) *redis.Client {
		c, ok := clients[addr]
		if !ok {
			c = cluster.NodeOptions(opts.Redis, addr).Client(0)
			clients[addr] = c
		}
		return c
	}
	enc := stream.NewEncoder(w)
	for _, slot := range p.top.Migrations() {
		var holders []string // source first
		for _, n := range p.top.Nodes {
			if _, ok := n.Migrating[slot]; ok {
				holders = append([]string{n.Addr}, holders...)
			} else if _, ok := n.Importing[slot]; ok {
				holders = append(holders, n.Addr)
			}
		}
		seen := map[string]bool{}
		var list []string
		for _, addr := range holders {
			c := client(addr)
			n, err := c.ClusterCountKeysInSlot(ctx, slot).Result()
			if err != nil {
				return 0, 0, fmt.Errorf("count keys in slot %d on %s: %w", slot, addr, err)
			}
			ks, err := c.ClusterGetKeysInSlot(ctx, slot, int(n)+1000).Result()
			if err != nil {
				return 0, 0, fmt.Errorf("list keys in slot %d on %s: %w", slot, addr, err)
			}
			for _, k := range ks {
				if !seen[k] {
					seen[k] = true
					list = append(list, k)
				}
			}
		}
		for _, k := range list {
			expireAt, payload, ok, err := dumpKeyFollowing(ctx, client, holders[0], k, usePTTL)
			if err != nil {
				return 0, 0, fmt.Errorf("dump key %q of migrating slot %d: %w", k, slot, err)
			}
			if !ok {
				continue
			}
			if err := enc.Restore([]byte(k), expireAt, []byte(payload)); err != nil {
				return 0, 0, err
			}
			keys++
		}
	}
	return keys, enc.Bytes(), nil
}

// dumpKeyFollowing reads key's absolute expiry (0 = none) and DUMP payload from addr, following
// ASK and MOVED redirections. ok is false when the key no longer exists.
func dumpKeyFollowing(ctx context.Context, client func(string) *redis.Client, addr, key string, usePTTL bool) (expireAt int64, payload string, ok bool, err error) {
	ttlCmd := "PEXPIRETIME"
	if usePTTL {
		ttlCmd = "PTTL"
	}
	asking := false
	for range 5 {
		pipe := client(addr).Pipeline()
		if asking {
			pipe.Do(ctx, "ASKING")
		}
		t := pipe.Do(ctx, ttlCmd, key)
		if asking {
			pipe.Do(ctx, "ASKING")
		}
		d := pipe.Do(ctx, "DUMP", key)
		_, _ = pipe.Exec(ctx)
		if to, ask, ok := redirection(t.Err(), d.Err()); ok {
			addr, asking = to, ask
			continue
		}
		for _, e := range []error{t.Err(), d.Err()} {
			if e != nil && !errors.Is(e, redis.Nil) {
				return 0, "", false, e
			}
		}
		if errors.Is(d.Err(), redis.Nil) {
			return 0, "", false, nil
		}
		reply, _ := t.Int64()
		expireAt, exists := stream.ExpireAt(reply, usePTTL)
		if !exists {
			return 0, "", false, nil // created between the calls: its expiry is unknown
		}
		payload, _ = d.Text()
		return expireAt, payload, true, nil
	}
	return 0, "", false, errors.New("too many redirections")
}

// redirection finds an "ASK slot addr" or "MOVED slot addr" reply among errs.
func redirection(errs ...error) (addr string, ask, ok bool) {
	for _, e := range errs {
		if e == nil {
			continue
		}
		if addr, ask, ok := cluster.ParseRedirect(e.Error()); ok {
			return addr, ask, true
		}
	}
	return "", false, false
}
