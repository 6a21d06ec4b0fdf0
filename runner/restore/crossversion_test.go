package restore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// TestCrossVersionMatrix: a snapshot of each server (Redis 7.0, Redis 8.0, Valkey 8.1) restores
// into each of them, by replication and by RESTORE commands, with equal DEBUG DIGEST, expiries
// and key counts, for the data all three can hold. Redis 8.0 and Valkey 8.1 write RDB formats
// 12 and 11 that older servers refuse outright; the runner converts each value for the target.
func TestCrossVersionMatrix(t *testing.T) {
	ctx := context.Background()
	for _, from := range redistest.Flavors {
		t.Run("from-"+from.Name, func(t *testing.T) {
			src := redistest.Start(t, from)
			dataset.FillCommon(t, src)
			r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
			if _, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r}); err != nil {
				t.Fatal(err)
			}
			for _, to := range redistest.Flavors {
				for _, method := range []string{restore.MethodReplication, restore.MethodRestore} {
					t.Run(to.Name+"/"+method, func(t *testing.T) {
						dst := redistest.Start(t, to)
						var warnings []string
						res, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method,
							Warn: func(s string) { warnings = append(warnings, s) }})
						if err != nil {
							t.Fatal(err)
						}
						if res.Method != method || res.Dropped != 0 {
							t.Fatalf("restored by %s with %d keys left out", res.Method, res.Dropped)
						}
						dataset.Equal(t, src, dst)
						t.Logf("%d keys; warnings %q", res.Keys, warnings)
					})
				}
			}
		})
	}
}

// TestCrossVersionLossy: a Redis 8.0 snapshot with hash field TTLs and vector sets cannot be
// held by Valkey 8.1 or Redis 7.0. The restore is refused before anything is written, naming
// what and why; with AllowLossy the other keys are restored (equal digest to the source
// without those keys) and the left-out keys are listed.
func TestCrossVersionLossy(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.Redis80)
	dataset.FillKeys(t, src)
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	var lossy []string // db:key
	for _, db := range dataset.DBs {
		for _, k := range dataset.VersionKeys(src) {
			lossy = append(lossy, strconv.Itoa(db)+":db"+strconv.Itoa(db)+":"+k)
		}
	}
	slices.Sort(lossy)
	var done []*redistest.Server
	for _, to := range []redistest.Flavor{redistest.Valkey81, redistest.Redis70} {
		for _, method := range []string{restore.MethodReplication, restore.MethodRestore} {
			dst := redistest.Start(t, to) // compared after the subtests
			t.Run(to.Name+"/"+method, func(t *testing.T) {
				_, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method})
				if !errors.Is(err, restore.ErrLossy) {
					t.Fatalf("restore of hash field TTLs and vector sets into %s: %v", to.Name, err)
				}
				if n := dataset.Counts(t, dst); len(n) != 0 {
					t.Fatalf("a refused restore wrote keys: %v", n)
				}
				t.Logf("refused: %v", err)

				res, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method, AllowLossy: true})
				if err != nil {
					t.Fatal(err)
				}
				var dropped []string
				for _, d := range res.DroppedKeys {
					dropped = append(dropped, fmt.Sprintf("%d:%s", d.DB, d.Key))
				}
				slices.Sort(dropped)
				if res.Dropped != int64(len(lossy)) || !slices.Equal(dropped, lossy) {
					t.Fatalf("left out %d keys %q, want %q", res.Dropped, dropped, lossy)
				}
				done = append(done, dst)
			})
		}
	}
	// The source without the keys the targets cannot hold is what each of them now holds.
	for _, db := range dataset.DBs {
		c := dataset.Client(src, db)
		for _, k := range dataset.VersionKeys(src) {
			if err := c.Del(ctx, "db"+strconv.Itoa(db)+":"+k).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	for _, dst := range done {
		dataset.Equal(t, src, dst)
	}
}

// TestCrossVersionModulesForward: Redis 8.0.6 writes vector sets that Redis 8.0.2 fails to load
// (a replica exits while loading, RESTORE answers "Bad data format") under the same module
// encoding and RDB format 12. A restore of an 8.0.6 snapshot with vector sets into 8.0.2 is
// refused before anything is written, by either method, naming the keys and why; with
// AllowLossy the other keys are restored equal and the target stays up.
func TestCrossVersionModulesForward(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t, redistest.RedisSid)
	dataset.FillCommon(t, src)
	vsets := []string{"vset:a", "vset:b"}
	for i, k := range vsets {
		if err := src.Client.Do(ctx, "VADD", k, "VALUES", 2, 0.5, float64(i), "el").Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := runnertest.OpenRepo(t, "file://"+t.TempDir(), nil)
	if _, err := backup.Run(ctx, backup.Options{Redis: runnertest.Conn(t, src), Repository: r}); err != nil {
		t.Fatal(err)
	}
	var done []*redistest.Server
	for _, method := range []string{restore.MethodReplication, restore.MethodRestore} {
		dst := redistest.Start(t, redistest.Redis80) // compared after the subtests
		t.Run(method, func(t *testing.T) {
			_, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method})
			if !errors.Is(err, restore.ErrLossy) {
				t.Fatalf("restore of Redis 8.0.6's vector sets into Redis 8.0.2: %v, want ErrLossy", err)
			}
			for _, want := range []string{"a vector set written by redis 8.0.6, which redis 8.0.2 may not read", `"vset:a"`} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if n, err := dst.Client.DBSize(ctx).Result(); err != nil || n != 0 {
				t.Fatalf("a refused restore wrote %d keys (%v)", n, err)
			}
			res, err := restore.Run(ctx, restore.Options{Redis: runnertest.Conn(t, dst), Repository: r, Method: method, AllowLossy: true})
			if err != nil {
				t.Fatal(err)
			}
			var dropped []string
			for _, d := range res.DroppedKeys {
				dropped = append(dropped, d.Key)
			}
			slices.Sort(dropped)
			if !slices.Equal(dropped, vsets) {
				t.Fatalf("left out %q, want %q", dropped, vsets)
			}
			if err := dst.Client.Ping(ctx).Err(); err != nil {
				t.Fatalf("the target after the restore: %v", err)
			}
			done = append(done, dst)
		})
	}
	src.Client.Del(ctx, vsets...)
	for _, dst := range done {
		dataset.Equal(t, src, dst)
	}
}
