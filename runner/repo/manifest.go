package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"

	"stash.dev/redis/runner/crypt"
)

// FormatVersion identifies the snapshot format: the RESP SELECT/RESTORE ... REPLACE ABSTTL
// stream of runner/stream, zstd-compressed, age-encrypted. Version 2 adds the binding of the
// data object to its snapshot (binding.go); version 1 snapshots are read as before.
const FormatVersion = 2

// Manifest describes a complete snapshot.
type Manifest struct {
	FormatVersion int       `json:"formatVersion"`
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	// Duration of the backup.
	Duration time.Duration `json:"duration"`
	Hostname string        `json:"hostname,omitempty"`
	// Source is the Redis address the snapshot was taken from, without credentials.
	Source string `json:"source"`
	// Product is the source server: "redis" or "valkey" (empty in snapshots of older runners,
	// which were Redis or recorded "valkey X" in RedisVersion).
	Product string `json:"product,omitempty"`
	// RedisVersion is the source's own version: "8.0.6" for Redis, "valkey 9.1.2" for Valkey
	// (never the Redis version Valkey claims compatibility with).
	RedisVersion string `json:"redisVersion"`
	RedisMode    string `json:"redisMode,omitempty"`
	// RDBVersion is the serialization version of the DUMP payloads; a target must support it.
	RDBVersion int `json:"rdbVersion,omitempty"`
	// Databases maps each dumped database to its number of keys.
	Databases map[int]int64 `json:"databases"`
	Keys      int64         `json:"keys"`
	// Skipped counts keys that vanished or expired between SCAN and DUMP.
	Skipped int64 `json:"skipped"`
	// RawBytes is the size of the uncompressed RESP stream.
	RawBytes int64 `json:"rawBytes"`
	// StoredBytes and SHA256 describe the stored (compressed, encrypted) data object.
	StoredBytes   int64  `json:"storedBytes"`
	SHA256        string `json:"sha256"`
	Compression   string `json:"compression"`
	Encryption    string `json:"encryption"`
	RunnerVersion string `json:"runnerVersion"`
	// Cluster is set for a snapshot of a Redis Cluster (RedisMode "cluster"). Older runners
	// ignore it: the data is the same SELECT 0 + RESTORE stream as a standalone snapshot.
	Cluster *ClusterManifest `json:"cluster,omitempty"`
	// SentinelMaster is the Sentinel master set name when the source was found through Sentinel;
	// Source is then the node that was read (the master or a replica).
	SentinelMaster string `json:"sentinelMaster,omitempty"`
	// Method is how the keys were read: "replication" (one full resync: the dataset at the
	// instant ReplID/ReplOffset of the source's replication history) or "dump" (SCAN + DUMP);
	// empty in snapshots of runners before backup by replication.
	Method     string `json:"method,omitempty"`
	ReplID     string `json:"replID,omitempty"`
	ReplOffset int64  `json:"replOffset,omitempty"`
}

// ClusterManifest records the layout of the cluster a snapshot was taken from. A restore does not
// need it (keys are routed by their slot in the target), but it says what was backed up.
type ClusterManifest struct {
	// Shards are the masters, sorted by their first slot.
	Shards []Shard `json:"shards"`
	// MigratingSlots were being migrated when the backup started; their keys were read from
	// whichever node held them and are counted in MigratingKeys, not in a shard.
	MigratingSlots []int `json:"migratingSlots,omitempty"`
	MigratingKeys  int64 `json:"migratingKeys,omitempty"`
}

// Shard is one master of a cluster snapshot.
type Shard struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// ReadFrom is the replica the keys were read from, if not the master.
	ReadFrom string      `json:"readFrom,omitempty"`
	Slots    []SlotRange `json:"slots"`
	Keys     int64       `json:"keys"`
}

// SlotRange is an inclusive range of hash slots.
type SlotRange struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// envelope is what manifest.json holds: the encrypted manifest and an HMAC of its plaintext.
type envelope struct {
	Version int    `json:"version"`
	Data    []byte `json:"data"`
	HMAC    []byte `json:"hmac"`
}

// WriteManifest commits a snapshot. Call it only after the data object was written successfully.
func (r *Repository) WriteManifest(ctx context.Context, m Manifest) error {
	b, err := r.seal(ctx, m)
	if err != nil {
		return err
	}
	if err := r.bucket.WriteAll(ctx, manifestKey(m.ID), b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("write manifest of snapshot %s: %w", m.ID, err)
	}
	return nil
}

// seal encodes v as the JSON of an envelope: v's JSON encrypted to the repository key, with an
// HMAC of it that only a holder of the password can produce (encryption to a public key alone
// does not say who encrypted).
func (r *Repository) seal(ctx context.Context, v any) ([]byte, error) {
	keys, err := r.waitKeys(ctx)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var enc bytes.Buffer
	w, err := keys[0].Encrypt(&enc)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Version: 1, Data: enc.Bytes(), HMAC: keys[0].MAC(plain)})
}

// unseal decodes what seal encoded into v; anything that does not decrypt or whose HMAC does
// not match is crypt.ErrIntegrity.
func (r *Repository) unseal(ctx context.Context, b []byte, v any) error {
	keys, err := r.waitKeys(ctx)
	if err != nil {
		return err
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%w: not valid json: %w", crypt.ErrIntegrity, err)
	}
	pr, err := crypt.Decrypt(bytes.NewReader(env.Data), keys...)
	if err != nil {
		return err
	}
	plain, err := io.ReadAll(pr)
	if err != nil {
		return err
	}
	if !crypt.VerifyMAC(plain, env.HMAC, keys...) {
		return fmt.Errorf("%w: hmac does not match", crypt.ErrIntegrity)
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %w", crypt.ErrIntegrity, err)
	}
	return nil
}

// Manifest reads and verifies the manifest of snapshot id.
func (r *Repository) Manifest(ctx context.Context, id string) (Manifest, error) {
	if err := checkID(id); err != nil {
		return Manifest{}, err
	}
	b, err := r.bucket.ReadAll(ctx, manifestKey(id))
	if isNotFound(err) {
		return Manifest{}, fmt.Errorf("snapshot %s: %w", id, ErrSnapshotNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest of snapshot %s: %w", id, err)
	}
	var m Manifest
	if err := r.unseal(ctx, b, &m); err != nil {
		return Manifest{}, fmt.Errorf("snapshot %s manifest: %w", id, err)
	}
	if m.ID != id {
		return Manifest{}, fmt.Errorf("snapshot %s: %w: manifest belongs to snapshot %s", id, crypt.ErrIntegrity, m.ID)
	}
	if m.FormatVersion > FormatVersion {
		return Manifest{}, fmt.Errorf("snapshot %s has format version %d; this runner reads up to %d (upgrade stash-runner)", id, m.FormatVersion, FormatVersion)
	}
	return m, nil
}

// snapshotDirs lists the ids of all snapshot directories, complete or not, in id (time) order.
func (r *Repository) snapshotDirs(ctx context.Context) ([]string, error) {
	objs, err := listAll(ctx, r.bucket, &blob.ListOptions{Prefix: snapshotsPrefix, Delimiter: "/"})
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", r.bucket.URL, err)
	}
	var ids []string
	for _, obj := range objs {
		if obj.IsDir {
			ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(obj.Key, snapshotsPrefix), "/"))
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// List returns all complete snapshots, oldest first. Snapshots without a manifest are invisible;
// a manifest that fails verification is an error, because silently hiding it would hide tampering.
func (r *Repository) List(ctx context.Context) ([]Manifest, error) {
	ids, err := r.snapshotDirs(ctx)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, id := range ids {
		m, err := r.Manifest(ctx, id)
		if errors.Is(err, ErrSnapshotNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	slices.SortFunc(out, compareManifests)
	return out, nil
}

// compareManifests orders by time, then id: ids have one-second resolution.
func compareManifests(a, b Manifest) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Resolve returns the manifest for an id, "latest", or a unique id prefix.
func (r *Repository) Resolve(ctx context.Context, ref string) (Manifest, error) {
	if ref == "" {
		ref = "latest"
	}
	if ref != "latest" && !idPrefix.MatchString(ref) {
		return Manifest{}, fmt.Errorf("%w: %w: %q (an id, the start of one, or latest)", ErrSnapshotNotFound, ErrInvalidID, ref)
	}
	if ref != "latest" && IDPattern.MatchString(ref) {
		m, err := r.Manifest(ctx, ref)
		if !errors.Is(err, ErrSnapshotNotFound) {
			return m, err
		}
	}
	all, err := r.List(ctx)
	if err != nil {
		return Manifest{}, err
	}
	if ref == "latest" {
		if len(all) == 0 {
			return Manifest{}, fmt.Errorf("repository %s has no snapshots: %w", r.bucket.URL, ErrSnapshotNotFound)
		}
		return all[len(all)-1], nil
	}
	var match []Manifest
	for _, m := range all {
		if strings.HasPrefix(m.ID, ref) {
			match = append(match, m)
		}
	}
	switch len(match) {
	case 0:
		return Manifest{}, fmt.Errorf("snapshot %q in %s: %w (see: stash-runner snapshots)", ref, r.bucket.URL, ErrSnapshotNotFound)
	case 1:
		return match[0], nil
	}
	return Manifest{}, fmt.Errorf("snapshot prefix %q is ambiguous: %d snapshots match", ref, len(match))
}

// Delete removes a snapshot: the manifest first, so that the snapshot disappears atomically,
// then the data.
func (r *Repository) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := r.bucket.Delete(ctx, manifestKey(id)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete manifest of snapshot %s: %w", id, err)
	}
	if err := r.bucket.Delete(ctx, dataKey(id)); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete data of snapshot %s: %w", id, err)
	}
	return nil
}
