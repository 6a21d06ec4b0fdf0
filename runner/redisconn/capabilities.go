package redisconn

import "stash.dev/redis/runner/rdb"

// Products a server can be.
const (
	ProductRedis  = "redis"
	ProductValkey = "valkey"
)

// Product is "valkey" for Valkey (server_name or valkey_version in INFO) and "redis" otherwise.
// Valkey reports a redis_version of 7.2.4 for clients; what it reads, writes and how it names
// its mode follow from its own version, never from that.
func (si ServerInfo) Product() string {
	if si.ServerName == ProductValkey || si.ValkeyVersion != "" {
		return ProductValkey
	}
	return ProductRedis
}

// ProductVersion is the server's own version: valkey_version for Valkey, redis_version for Redis.
func (si ServerInfo) ProductVersion() string {
	if si.Product() == ProductValkey && si.ValkeyVersion != "" {
		return si.ValkeyVersion
	}
	return si.Version
}

// Name is the product and its version, as errors and listings show a server: "valkey 9.1.2".
func (si ServerInfo) Name() string { return si.Product() + " " + si.ProductVersion() }

// ManifestVersion is what a snapshot's manifest records as the source's version: Redis's
// version as it always has been, and "valkey X.Y.Z" for Valkey (as `import` records it), so
// that a listing shows what the source really was.
func (si ServerInfo) ManifestVersion() string {
	if si.Product() == ProductValkey {
		return si.Name()
	}
	return si.Version
}

// RDB is what the server reads and writes: the RDB format versions of its RESTORE, its
// replication and its files (Redis 9–12, Valkey 11 and its own 80+).
func (si ServerInfo) RDB() rdb.Target {
	valkey := si.ValkeyVersion
	if valkey == "" && si.Product() == ProductValkey {
		valkey = si.Version
	}
	return rdb.TargetOf(si.Version, valkey)
}

// ReplicaVersion is what a replica of this server announces with REPLCONF version before
// PSYNC, "" when the server takes no such announcement (Redis). Valkey sends a replica the
// newest RDB format the announced version reads, and otherwise RDB 11, in which Valkey 9
// cannot store a hash with field TTLs (it then aborts the transfer).
func (si ServerInfo) ReplicaVersion() string {
	if si.Product() != ProductValkey {
		return ""
	}
	return si.ProductVersion()
}

// IsCluster reports whether the server is a node of a cluster.
func (si ServerInfo) IsCluster() bool { return si.Mode == ModeCluster }

// HasPExpireTime reports whether the server has PEXPIRETIME (Redis 7.0+, every Valkey), which
// reads a key's absolute expiry in one step; older servers are asked PTTL.
func (si ServerInfo) HasPExpireTime() bool {
	return si.Product() == ProductValkey || VersionAtLeast(si.Version, 7, 0)
}
