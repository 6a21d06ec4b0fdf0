package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrExists is returned by Create when the key already holds an object.
var ErrExists = errors.New("object already exists")

// Create writes data under key only if nothing is stored there yet, atomically: of two writers
// racing for one key, exactly one succeeds and the other gets ErrExists. It is what makes a
// repository's creation and a follower's lease safe without a lock service: the file store
// links a complete temporary file to the key (link(2) fails if the key exists), GCS writes with
// ifGenerationMatch=0, S3 with If-None-Match: *, Azure with If-None-Match: *.
//
// fileblob's own IfNotExist checks and renames under a mutex of one process, which another
// process on the same volume does not see, so the file store does not use it.
func (b *Bucket) Create(ctx context.Context, key string, data []byte, contentType string) error {
	if b.dir != "" {
		return createFile(filepath.Join(b.dir, filepath.FromSlash(key)), data)
	}
	err := b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: contentType, IfNotExist: true})
	switch gcerrors.Code(err) {
	case gcerrors.OK:
		return nil
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return fmt.Errorf("create %s: %w", key, ErrExists)
	}
	return fmt.Errorf("create %s: %w", key, err)
}

func createFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".create-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: %w", path, ErrExists)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}
