package repo

import (
	"context"

	"stash.dev/redis/runner/store"
)

// CreateKeyForTest creates the first key as a run does that found the repository empty.
func CreateKeyForTest(ctx context.Context, b *store.Bucket, opts Options) error {
	_, err := createKey(ctx, b, opts)
	return err
}
