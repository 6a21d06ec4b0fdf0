// Package repo implements the snapshot repository: keys, snapshots, retention and checks.
//
// Layout (lock-free, every object is written once):
//
//	keys/repository.json                   repository key sealed with the password (age scrypt),
//	                                        created only if absent (older runners: keys/<key-id>.json)
//	snapshots/<snapshot-id>/data.resp.zst.age   RESP stream, zstd-compressed, age-encrypted
//	snapshots/<snapshot-id>/manifest.json   encrypted, HMAC-authenticated manifest, written last
//
// A snapshot exists only once its manifest exists, so a backup that fails at any point leaves at
// most an orphaned data object that no listing or restore ever sees, and two backups never write
// the same object, so no lock is needed and none can go stale.
package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/store"
)

const (
	keysPrefix      = "keys/"
	snapshotsPrefix = "snapshots/"
	dataName        = "data.resp.zst.age"
	manifestName    = "manifest.json"
)

// ErrNotInitialized is returned by Open when the repository has no key and Create is false.
var ErrNotInitialized = errors.New("repository is not initialized")

// ErrKeyMissing is returned by Open when the repository holds snapshot data but no key: its
// keys/ objects were deleted or not copied. A new key could never decrypt the existing
// snapshots, and backups encrypted with it would make every listing fail, so the repository is
// not re-keyed; the old key files must be put back.
var ErrKeyMissing = errors.New("repository has snapshots but no key")

// RedactedPassword is what kubectl stash prints in place of a secret value. A storage Secret made
// from that output would hold it as the password; it is refused rather than used to create (or
// fail to open) a repository.
const RedactedPassword = "<redacted>"

// ErrSnapshotNotFound is returned when a snapshot id does not resolve to a complete snapshot.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// Options configure Open.
type Options struct {
	// Password unlocks the repository key.
	Password string
	// Create initializes an empty repository with a new random key (the first backup does this).
	Create bool
	// WorkFactor is the scrypt work factor for a new key; 0 means crypt.DefaultWorkFactor.
	WorkFactor int
	// Hostname is recorded in a new key file.
	Hostname string
	// UnlockInBackground makes Open return before an existing key is unlocked: the key
	// derivation (scrypt, about 0.1 s by design) then overlaps with the start of a backup.
	// Everything that needs the key waits for it; a SnapshotWriter or an object writer
	// compresses meanwhile and holds up to maxPendingBytes of its output until the key can
	// encrypt it, so nothing leaves the process unencrypted. Ready and KeyErr report the outcome
	// (a wrong password) that Open would have returned. A repository without a key is created
	// before Open returns: no data may be written before its first key exists.
	UnlockInBackground bool
}

// Repository is an opened repository. Its keys are unlocked when Open returns, or, after
// OpenInBackground, by the time Ready returns nil.
type Repository struct {
	bucket *store.Bucket
	// unlocked is closed once keys or keyErr is set.
	unlocked chan struct{}
	// keys are all repository keys the password unlocks; keys[0] encrypts new data. More than
	// one exists only in a repository that two first backups of an older runner raced to
	// initialize (a repository is now created by one conditional write: createKey).
	keys   []*crypt.Key
	keyErr error
	// manifestReads counts the manifests read, for the tests that bound them.
	manifestReads atomic.Int64
}

// Open unlocks the repository in bucket with opts.Password (in the background if
// opts.UnlockInBackground says so).
func Open(ctx context.Context, bucket *store.Bucket, opts Options) (*Repository, error) {
	r := &Repository{bucket: bucket, unlocked: make(chan struct{})}
	if opts.UnlockInBackground && opts.Password != "" {
		names, err := keyNames(ctx, bucket)
		if err != nil {
			return nil, err
		}
		if len(names) > 0 {
			go func() {
				defer close(r.unlocked)
				r.keys, r.keyErr = openKeys(ctx, bucket, opts)
			}()
			return r, nil
		}
	}
	keys, err := openKeys(ctx, bucket, opts)
	if err != nil {
		return nil, err
	}
	r.keys = keys
	close(r.unlocked)
	return r, nil
}

// Ready waits until the repository's keys are unlocked and returns why they are not.
func (r *Repository) Ready(ctx context.Context) error {
	_, err := r.waitKeys(ctx)
	return err
}

// KeyErr returns, without waiting, why the repository's keys could not be unlocked: nil
// while they are still being unlocked, and when they were.
func (r *Repository) KeyErr() error {
	select {
	case <-r.unlocked:
		return r.keyErr
	default:
		return nil
	}
}

// waitKeys returns the repository's keys once they are unlocked.
func (r *Repository) waitKeys(ctx context.Context) ([]*crypt.Key, error) {
	select {
	case <-r.unlocked:
		return r.keys, r.keyErr
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type keyFile struct {
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	Hostname string    `json:"hostname,omitempty"`
	KDF      string    `json:"kdf"`
	Key      string    `json:"key"`
}

// ErrNoPassword is a repository opened without its password; where the password comes from
// (an environment variable, a file, the storage Secret) is the caller's to say.
var ErrNoPassword = errors.New("repository password is empty")

// openKeys unlocks the keys of the repository in bucket with opts.Password, creating the first
// key if opts.Create says so.
func openKeys(ctx context.Context, bucket *store.Bucket, opts Options) ([]*crypt.Key, error) {
	if opts.Password == "" {
		return nil, ErrNoPassword
	}
	if strings.TrimSpace(opts.Password) == RedactedPassword {
		return nil, fmt.Errorf("repository password is the placeholder %s that kubectl stash prints instead of a secret value: "+
			"the storage Secret was made from printed output; put the real password in it", RedactedPassword)
	}
	keys, n, err := unlock(ctx, bucket, opts.Password, nil)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		return keys, nil
	}
	if n > 0 {
		return nil, fmt.Errorf("open repository %s: %w", bucket.URL, crypt.ErrWrongPassword)
	}
	if has, err := hasSnapshotData(ctx, bucket); err != nil {
		return nil, err
	} else if has {
		return nil, fmt.Errorf("open repository %s: %w: %s is empty or missing, so the snapshots cannot be decrypted "+
			"and a new key is not created (put back the %s objects from a copy of the repository, or back up into a new, empty repository)",
			bucket.URL, ErrKeyMissing, keysPrefix, keysPrefix)
	}
	if !opts.Create {
		return nil, fmt.Errorf("open repository %s: %w (run a backup first)", bucket.URL, ErrNotInitialized)
	}
	return createKey(ctx, bucket, opts)
}

// firstKeyName is the key file that creates a repository. It is written with a conditional
// create, so of two first backups racing into an empty repository exactly one makes the key;
// the other unlocks it if its password is the same and fails otherwise, instead of writing
// snapshots under a second key that the first password cannot open (and that makes every
// listing fail for both).
const firstKeyName = keysPrefix + "repository.json"

// ErrCreateRace is wrapped by the error of a run that lost the race to create a repository to
// another run with a different password.
var ErrCreateRace = errors.New("another run created the repository at the same time with a different password")

// createKey creates the repository's first key, sealed with opts.Password.
func createKey(ctx context.Context, bucket *store.Bucket, opts Options) ([]*crypt.Key, error) {
	k, err := crypt.NewKey()
	if err != nil {
		return nil, err
	}
	wf := opts.WorkFactor
	if wf == 0 {
		wf = crypt.DefaultWorkFactor
	}
	sealed, err := k.Seal(opts.Password, wf)
	if err != nil {
		return nil, err
	}
	kf, err := json.MarshalIndent(keyFile{Version: 1, Created: time.Now().UTC(), Hostname: opts.Hostname, KDF: "age-scrypt", Key: string(sealed)}, "", "  ")
	if err != nil {
		return nil, err
	}
	err = bucket.Create(ctx, firstKeyName, kf, "application/json")
	if err == nil {
		return []*crypt.Key{k}, nil
	}
	if !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("initialize repository %s: write key: %w", bucket.URL, err)
	}
	// Another run created the repository between our listing and our write: its key is the
	// repository's, and our password must open it.
	keys, _, err := unlock(ctx, bucket, opts.Password, nil)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("initialize repository %s: %w: %s was written by the other run first, and this run's password does not open it "+
			"(give every run the same password; nothing was written by this one)", bucket.URL, ErrCreateRace, firstKeyName)
	}
	return keys, nil
}

// encryptedPrefixes hold objects encrypted to the repository key: snapshots and the journal of
// continuous backup (runner/journal).
var encryptedPrefixes = []string{snapshotsPrefix, JournalPrefix}

// hasSnapshotData reports whether anything encrypted to a repository key, complete or orphaned,
// is stored. Every backup writes its key before its data, so such objects in a repository
// without a key mean the key was lost.
func hasSnapshotData(ctx context.Context, bucket *store.Bucket) (bool, error) {
	for _, prefix := range encryptedPrefixes {
		it := bucket.List(&blob.ListOptions{Prefix: prefix})
		_, err := it.Next(ctx)
		switch {
		case errors.Is(err, io.EOF):
			continue
		case err != nil:
			return false, fmt.Errorf("list %s in %s: %w", prefix, bucket.URL, err)
		}
		return true, nil
	}
	return false, nil
}

// unlock returns the keys that the password opens, in key name order, and the number of key
// files; known keys are taken as they are instead of being unsealed.
func unlock(ctx context.Context, bucket *store.Bucket, password string, known map[string]*crypt.Key) ([]*crypt.Key, int, error) {
	names, err := keyNames(ctx, bucket)
	if err != nil {
		return nil, 0, err
	}
	var keys []*crypt.Key
	for _, name := range names {
		if k, ok := known[name]; ok {
			keys = append(keys, k)
			continue
		}
		b, err := bucket.ReadAll(ctx, name)
		if err != nil {
			return nil, 0, fmt.Errorf("read key %s: %w", name, err)
		}
		var kf keyFile
		if err := json.Unmarshal(b, &kf); err != nil {
			return nil, 0, fmt.Errorf("parse key %s: %w", name, err)
		}
		k, err := crypt.Unseal([]byte(kf.Key), password)
		if errors.Is(err, crypt.ErrWrongPassword) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("key %s: %w", name, err)
		}
		keys = append(keys, k)
	}
	return keys, len(names), nil
}

// keyNames lists the key files of the repository, in name order.
func keyNames(ctx context.Context, bucket *store.Bucket) ([]string, error) {
	objs, err := listAll(ctx, bucket, &blob.ListOptions{Prefix: keysPrefix})
	if err != nil {
		return nil, fmt.Errorf("list keys in %s: %w", bucket.URL, err)
	}
	var names []string
	for _, obj := range objs {
		if strings.HasSuffix(obj.Key, ".json") {
			names = append(names, obj.Key)
		}
	}
	slices.Sort(names)
	return names, nil
}

// URL returns the repository URL.
func (r *Repository) URL() string { return r.bucket.URL }

// Close closes the underlying bucket.
func (r *Repository) Close() error { return r.bucket.Close() }

// IDPattern matches the ids NewID makes: the API's SnapshotIDPattern, which admission checks
// a RestoreSession's snapshot against. An id is part of object keys, so nothing else is
// accepted where a whole id is expected: "../keys" must not name an object outside snapshots/.
var IDPattern = v1alpha1.SnapshotIDPattern

// ErrInvalidID is wrapped by the error for a string that is not a snapshot id (nor, where a
// prefix is allowed, the start of one), together with ErrSnapshotNotFound.
var ErrInvalidID = errors.New("not a snapshot id")

// idPrefix is what the start of an id may hold.
var idPrefix = regexp.MustCompile(`^[0-9TZa-f-]+$`)

func checkID(id string) error {
	if !IDPattern.MatchString(id) {
		return fmt.Errorf("%w: %w: %q (ids look like 20261125T233500Z-a1b2c3)", ErrSnapshotNotFound, ErrInvalidID, id)
	}
	return nil
}

// NewID returns a snapshot id that sorts by time and is unique: 20261125T233500Z-a1b2c3.
func NewID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + randomHex(3)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func dataKey(id string) string     { return snapshotsPrefix + id + "/" + dataName }
func manifestKey(id string) string { return snapshotsPrefix + id + "/" + manifestName }

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }
