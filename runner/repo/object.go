package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"gocloud.dev/blob"

	"stash.dev/redis/runner/store"
)

// Objects beside snapshots (the journal of continuous backup, runner/journal) are stored the way
// snapshots are: their data zstd-compressed and age-encrypted to the repository key, their
// metadata as an encrypted, HMAC-authenticated JSON envelope. These functions give another
// package that machinery for keys it names itself, so that one implementation encrypts and
// verifies everything in a repository.

// ErrObjectNotFound is returned by ReadSealed for a key that holds nothing.
var ErrObjectNotFound = errors.New("object not found")

// NewObjectWriter starts writing the data object key (relative to the repository), compressed
// and encrypted as snapshot data is. The caller must call Commit or Abort; errors name the key.
func (r *Repository) NewObjectWriter(ctx context.Context, key string) (*SnapshotWriter, error) {
	// One compression goroutine: a journal segment is small and the follower runs beside Redis.
	w, err := r.newDataWriter(ctx, key, key, 1, false)
	if err != nil {
		return nil, fmt.Errorf("create data object %s: %w", key, err)
	}
	return w, nil
}

// OpenObject opens a data object written by NewObjectWriter for reading. The reader returns
// io.EOF only after the whole object was read and its size and sha256 are storedBytes and
// sha256Hex, which the caller read from an authenticated manifest. Close must be called.
func (r *Repository) OpenObject(ctx context.Context, key string, storedBytes int64, sha256Hex string) (*SnapshotReader, error) {
	return r.openData(ctx, key, key, Manifest{ID: key, StoredBytes: storedBytes, SHA256: sha256Hex}, "", false)
}

// WriteSealed stores v as JSON under key, encrypted and authenticated like a snapshot manifest.
func (r *Repository) WriteSealed(ctx context.Context, key string, v any) error {
	b, err := r.seal(ctx, v)
	if err != nil {
		return err
	}
	if err := r.bucket.WriteAll(ctx, key, b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// ReadSealed reads what WriteSealed stored under key into v. A key that holds nothing is
// ErrObjectNotFound; an envelope that does not decrypt or whose HMAC does not match is
// crypt.ErrIntegrity.
func (r *Repository) ReadSealed(ctx context.Context, key string, v any) error {
	b, err := r.bucket.ReadAll(ctx, key)
	if isNotFound(err) {
		return fmt.Errorf("%s: %w", key, ErrObjectNotFound)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if err := r.unseal(ctx, b, v); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// ListObjects returns the keys under prefix (relative to the repository), sorted. With
// dirs, it returns the "directories" one level below prefix instead (keys ending in "/").
func (r *Repository) ListObjects(ctx context.Context, prefix string, dirs bool) ([]string, error) {
	opts := &blob.ListOptions{Prefix: prefix}
	if dirs {
		opts.Delimiter = "/"
	}
	objs, err := listAll(ctx, r.bucket, opts)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", prefix, r.bucket.URL, err)
	}
	var keys []string
	for _, obj := range objs {
		if obj.IsDir == dirs {
			keys = append(keys, obj.Key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// listAttempts bounds how often listAll reads a listing that met a vanishing entry.
const listAttempts = 10

// listAll returns everything bucket lists with opts. A listing of a file:// repository can meet
// a file that a concurrent writer (a follower, another backup) renames away between reading a
// directory and looking at the entry, which the store reports as NotFound; a listing has no
// other reason to find nothing where it just saw something, so it is read again, up to
// listAttempts times, 10 ms apart.
func listAll(ctx context.Context, bucket *store.Bucket, opts *blob.ListOptions) ([]*blob.ListObject, error) {
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		var objs []*blob.ListObject
		it := bucket.List(opts)
		var err error
		for {
			var obj *blob.ListObject
			if obj, err = it.Next(ctx); err != nil {
				break
			}
			objs = append(objs, obj)
		}
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if !isNotFound(err) || attempt == listAttempts {
			return nil, err
		}
	}
}

// DeleteObject removes key; a key that holds nothing is not an error.
func (r *Repository) DeleteObject(ctx context.Context, key string) error {
	if err := r.bucket.Delete(ctx, key); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
