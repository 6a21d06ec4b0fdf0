package redisconn_test

import (
	"testing"

	"stash.dev/redis/runner/redisconn"
)

// TestParseInfoProducts: INFO server of each product, as the servers print it. Valkey says its
// mode in server_mode and has no redis_mode: a cluster read from redis_mode alone looked like a
// standalone server, and its redis_version (7.2.4) like Redis 7.2.
func TestParseInfoProducts(t *testing.T) {
	for _, tc := range []struct {
		name, info                       string
		product, version, mode, manifest string
		rdbWrite                         int
		replicaVersion                   string
	}{
		{"redis 7.0", "redis_version:7.0.15\r\nredis_mode:standalone\r\n", "redis", "7.0.15", "standalone", "7.0.15", 10, ""},
		{"redis 8.0 cluster", "redis_version:8.0.6\r\nredis_mode:cluster\r\n", "redis", "8.0.6", "cluster", "8.0.6", 12, ""},
		{"valkey 8.1 cluster", "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.1.1\r\nserver_mode:cluster\r\n", "valkey", "8.1.1", "cluster", "valkey 8.1.1", 11, "8.1.1"},
		{"valkey 9.1", "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\nserver_mode:standalone\r\n", "valkey", "9.1.2", "standalone", "valkey 9.1.2", 80, "9.1.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			si := redisconn.ParseInfo("# Server\r\n" + tc.info)
			if si.Product() != tc.product || si.ProductVersion() != tc.version || si.Mode != tc.mode ||
				si.ManifestVersion() != tc.manifest || si.RDB().WriteVersion() != tc.rdbWrite || si.ReplicaVersion() != tc.replicaVersion {
				t.Errorf("product %q version %q mode %q manifest %q rdb %d replica %q", si.Product(), si.ProductVersion(), si.Mode,
					si.ManifestVersion(), si.RDB().WriteVersion(), si.ReplicaVersion())
			}
			if got := si.IsCluster(); got != (tc.mode == "cluster") {
				t.Errorf("IsCluster = %v", got)
			}
		})
	}
}
