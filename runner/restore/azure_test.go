package restore_test

import (
	"context"
	"strings"
	"testing"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/azuritetest"
	"stash.dev/redis/test/redistest"
)

func TestRoundTripAzure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	az := azuritetest.Start(t, "stash-test")
	src := redistest.Start(t)
	fill(t, src, 50_000)
	r := openRepo(t, az.URL("redis/prod"), az.Env())
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	r2 := openRepo(t, az.URL("redis/prod"), az.Env())
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r2, Snapshot: res.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	other := openRepo(t, az.URL("redis/other"), az.Env())
	if all, err := other.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("other prefix lists %v, %v", all, err)
	}

	wrongKey := az.Env()
	wrongKey["AZURE_ACCOUNT_KEY"] = "d3Jvbmc=" // valid base64, wrong key
	tests := []struct {
		name, url string
		env       map[string]string
		want      string
	}{
		{"wrong key", az.URL("x"), wrongKey, "denied access"},
		{"missing container", strings.Replace(az.URL("x"), "stash-test", "no-such-container", 1), az.Env(), `"no-such-container" does not exist`},
		{"no credentials", az.URL("x"), nil, "needs AZURE_ACCOUNT_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Open(ctx, tt.url, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
