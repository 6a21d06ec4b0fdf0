package repo

import (
	"context"
	"encoding/json"

	"stash.dev/redis/runner/store"
)

// CreateKeyForTest creates the first key as a run does that found the repository empty.
func CreateKeyForTest(ctx context.Context, b *store.Bucket, opts Options) error {
	_, err := createKey(ctx, b, opts)
	return err
}

// WriteLeaseHolderForTest writes the holder of epoch of lease name as another process would.
func WriteLeaseHolderForTest(ctx context.Context, r *Repository, name string, epoch int64, h LeaseHolder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return r.bucket.Create(ctx, leaseKey(name, epoch), b, "application/json")
}

// PIDNamespaceForTest is this process's pid namespace as a lease records it.
func PIDNamespaceForTest() string { return pidNamespace() }
