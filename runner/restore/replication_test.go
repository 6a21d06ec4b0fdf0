package restore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/replication"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/testproc"
)

// TestReplicationFallsBack: a target that refuses REPLICAOF is restored with RESTORE commands
// under the default method, with a warning, and an explicit --method replication fails without
// leaving anything changed.
func TestReplicationFallsBack(t *testing.T) {
	ctx := context.Background()
	r, m, _, _ := backupFile(t)
	dst := redistest.Start(t, redistest.WithConfig("rename-command", "REPLICAOF", ""))

	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication})
	if !errors.Is(err, replication.ErrServeUnavailable) || !strings.Contains(err.Error(), "replicaof") {
		t.Fatalf("restore through replication into a server without REPLICAOF: %v", err)
	}
	t.Logf("error: %v", err)
	if n := dst.Client.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("failed restore left %d keys", n)
	}
	assertPromoted(t, dst, "", "disabled")

	var warnings []string
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Warn: func(s string) { warnings = append(warnings, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != restore.MethodRestore || res.Keys != m.Keys {
		t.Fatalf("fallback restore: %+v", res)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "instead") {
		t.Fatalf("warnings: %q", warnings)
	}
}

// TestReplicationChoice: the default method uses replication only on an empty standalone master
// without functions, and says why not when asked for it explicitly.
func TestReplicationChoice(t *testing.T) {
	ctx := context.Background()
	r, m, _, _ := backupFile(t)

	dst := redistest.Start(t)
	dst.Client.Set(ctx, "other-db-key", "x", 0)
	dst.Client.Do(ctx, "MOVE", "other-db-key", "5")
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication, Flush: true})
	if err == nil || !strings.Contains(err.Error(), "database 5 of the target has 1 keys") {
		t.Fatalf("replication into a server with keys in another database: %v", err)
	}
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Flush: true})
	if err != nil || res.Method != restore.MethodRestore {
		t.Fatalf("default method with keys in another database: %+v, %v", res, err)
	}

	// --flush empties the restored database first, after which replication can load it.
	dst = redistest.Start(t)
	dst.Client.Set(ctx, "key:1", "old", 0)
	res, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Flush: true})
	if err != nil || res.Method != restore.MethodReplication || dst.Client.DBSize(ctx).Val() != m.Keys {
		t.Fatalf("restore --flush: %+v, %v", res, err)
	}

	dst = redistest.Start(t)
	if err := dst.Client.Do(ctx, "FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function() return 1 end)").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication})
	if err == nil || !strings.Contains(err.Error(), "functions") {
		t.Fatalf("replication into a server with functions: %v", err)
	}
	res, err = restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r})
	if err != nil || res.Method != restore.MethodRestore {
		t.Fatalf("default method with functions: %+v, %v", res, err)
	}
	if n := len(dst.Client.Do(ctx, "FUNCTION", "LIST").Val().([]any)); n != 1 {
		t.Fatalf("the target's functions after the restore: %d libraries", n)
	}

	replica := redistest.StartReplica(t, redistest.Start(t))
	_, err = restore.Run(ctx, restore.Options{Redis: conn(t, replica), Repository: r, Method: restore.MethodReplication})
	if err == nil || !strings.Contains(err.Error(), "is a replica") {
		t.Fatalf("replication into a replica: %v", err)
	}
}

// TestReplicationWithPasswords: a target with requirepass and its own masterauth keeps both; the
// replica authenticates with the masterauth it has.
func TestReplicationWithPasswords(t *testing.T) {
	ctx := context.Background()
	r, m, _, _ := backupFile(t)
	dst := redistest.Start(t, redistest.WithPassword("s3cret"), redistest.WithConfig("masterauth", "other-secret"),
		redistest.WithConfig("repl-diskless-load", "swapdb"))
	res, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication})
	if err != nil || res.Keys != m.Keys {
		t.Fatalf("restore: %+v, %v", res, err)
	}
	if n := dst.Client.DBSize(ctx).Val(); n != m.Keys {
		t.Fatalf("restored %d keys, want %d", n, m.Keys)
	}
	assertPromoted(t, dst, "other-secret", "swapdb")
}

// TestReplicationCancelled: a restore cancelled while the target loads leaves it an empty master.
func TestReplicationCancelled(t *testing.T) {
	// The cancellation must find the runner still sending: a file sent whole before it is
	// loaded whole. So the snapshot (random values, 40 MB: DEBUG POPULATE's compress to
	// nothing) is more than the socket buffers between runner and target hold, and the target
	// loads slowly (key-load-delay, in microseconds per key: 1 s for the 2000 keys), which
	// holds the runner back while the test reacts.
	src := redistest.Start(t)
	rng := rand.New(rand.NewPCG(5, 6))
	value := make([]byte, 20000)
	pipe := src.Client.Pipeline()
	for i := range 2000 {
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		pipe.Set(context.Background(), fmt.Sprint("key:", i), string(value), 0)
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _, _, _ := backupOf(t, src)
	dst := redistest.Start(t, redistest.WithConfig("key-load-delay", "500"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pc := &progress.Counter{}
	testproc.When(t, time.Minute, "the target has loaded 100 keys", func() bool { return pc.Keys.Load() >= 100 },
		func() error { cancel(); return nil })
	_, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r, Method: restore.MethodReplication, Progress: pc})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled restore: %v", err)
	}
	// The target may need a moment to drop what it received.
	testproc.Eventually(t, 10*time.Second, "the cancelled restore leaves no keys", func() error {
		if n, err := dst.Client.DBSize(context.Background()).Result(); err != nil || n != 0 {
			return fmt.Errorf("%d keys (%v)", n, err)
		}
		return nil
	})
	assertPromoted(t, dst, "", "disabled")
}
