package store_test

import (
	"context"
	"strings"
	"testing"

	"stash.dev/redis/runner/store"
)

func TestOpenErrors(t *testing.T) {
	for url, want := range map[string]string{
		"/no/scheme":                      "no scheme",
		"ftp://x/y":                       "unsupported scheme",
		"gs:///prefix":                    "no bucket",
		"file://host/x":                   "file:///absolute/path",
		"gs://b/p?chunk_retry_deadline=x": "chunk_retry_deadline",
	} {
		_, err := store.Open(context.Background(), url, map[string]string{store.EnvStorageEmulatorHost: "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", url, err, want)
		}
	}
}

func TestOpenFile(t *testing.T) {
	ctx := context.Background()
	b, err := store.Open(ctx, "file://"+t.TempDir()+"/repo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "a/b", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadAll(ctx, "a/b"); err != nil || string(got) != "x" {
		t.Fatalf("read back %q, %v", got, err)
	}
}
