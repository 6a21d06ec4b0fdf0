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
	// Functions holds the code of each server-side function library (FUNCTION LOAD) of the
	// source, as FUNCTION LOAD accepts it; a restore loads them and checks they are there.
	// Runners that did not back functions up leave it empty, as do sources without any.
	Functions []string `json:"functions,omitempty"`
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
	// Cut is set for a snapshot taken with a consistent cut: every shard at one instant.
	Cut *ClusterCut `json:"cut,omitempty"`
}

// ClusterCut records the pause of writes that made a cluster snapshot one instant: how long
// writes were paused on every master, and the bound the pause could not exceed.
type ClusterCut struct {
	PauseMicros int64 `json:"pauseMicros"`
	BoundMicros int64 `json:"boundMicros"`
}

// Shard is one master of a cluster snapshot.
type Shard struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// ReadFrom is the replica the keys were read from, if not the master.
	ReadFrom string      `json:"readFrom,omitempty"`
	Slots    []SlotRange `json:"slots"`
	Keys     int64       `json:"keys"`
	// ReplID and ReplOffset name the instant of a consistent cut in the shard's replication
	// history (set only with Cut).
	ReplID     string `json:"replID,omitempty"`
	ReplOffset int64  `json:"replOffset,omitempty"`
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
// A snapshot dated more than MaxClockSkew after its data object was stored (by the storage's
// clock) is refused: the runner's clock is wrong, and the snapshot would win latest and
// retention over every real backup.
func (r *Repository) WriteManifest(ctx context.Context, m Manifest) error {
	if attrs, err := r.bucket.Attributes(ctx, dataKey(m.ID)); err == nil && !attrs.ModTime.IsZero() && m.InFuture(attrs.ModTime) {
		return fmt.Errorf("snapshot %s is dated %s, %s after the storage stored its data: this machine's clock is wrong; "+
			"the snapshot is not committed, since it would become latest and retention would keep it over every real backup (fix the clock, e.g. with NTP)",
			m.ID, m.Time.UTC().Format(time.RFC3339), attrs.ModTime.Sub(m.Time).Abs().Round(time.Second))
	}
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
	m, err, _ := r.readManifest(ctx, id)
	return m, err
}

// readManifest is Manifest; damaged says that the error is about the manifest itself (it does
// not decrypt or verify, or is of a newer format), not about reaching the storage.
func (r *Repository) readManifest(ctx context.Context, id string) (m Manifest, err error, damaged bool) {
	if err := checkID(id); err != nil {
		return Manifest{}, err, false
	}
	r.manifestReads.Add(1)
	b, err := r.bucket.ReadAll(ctx, manifestKey(id))
	if isNotFound(err) {
		return Manifest{}, fmt.Errorf("snapshot %s: %w", id, ErrSnapshotNotFound), false
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read manifest of snapshot %s: %w", id, err), false
	}
	if err := r.unseal(ctx, b, &m); err != nil {
		return Manifest{}, fmt.Errorf("snapshot %s manifest: %w", id, err), true
	}
	if m.ID != id {
		return Manifest{}, fmt.Errorf("snapshot %s: %w: manifest belongs to snapshot %s", id, crypt.ErrIntegrity, m.ID), true
	}
	if m.FormatVersion > FormatVersion {
		return Manifest{}, fmt.Errorf("snapshot %s has format version %d; this runner reads up to %d (upgrade stash-runner)", id, m.FormatVersion, FormatVersion), true
	}
	return m, nil, false
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

// Damaged is a snapshot whose manifest exists but cannot be used: it does not decrypt or
// verify (damaged or tampered with), or it is of a newer format.
type Damaged struct {
	ID  string
	Err error
}

// RemoveHint says how a damaged snapshot is looked at and removed.
func (d Damaged) RemoveHint() string {
	return "checking the repository shows it; forgetting snapshot " + d.ID + " by its id removes it"
}

// Listing is every snapshot of a repository: the complete ones, oldest first, and the damaged.
type Listing struct {
	Manifests []Manifest
	Damaged   []Damaged
}

// ListAll returns every complete snapshot and every damaged one. Snapshots without a manifest
// are invisible. A damaged manifest does not hide the others (one bad object must not block
// every listing, restore and retention for good), nor is it hidden itself: callers name it.
func (r *Repository) ListAll(ctx context.Context) (Listing, error) {
	ids, err := r.snapshotDirs(ctx)
	if err != nil {
		return Listing{}, err
	}
	var l Listing
	for _, id := range ids {
		m, err, damaged := r.readManifest(ctx, id)
		switch {
		case errors.Is(err, ErrSnapshotNotFound):
			continue
		case damaged:
			l.Damaged = append(l.Damaged, Damaged{ID: id, Err: err})
			continue
		case err != nil:
			return Listing{}, err
		}
		l.Manifests = append(l.Manifests, m)
	}
	slices.SortFunc(l.Manifests, compareManifests)
	return l, nil
}

// List returns all complete snapshots, oldest first. Damaged ones are left out; ListAll names
// them.
func (r *Repository) List(ctx context.Context) ([]Manifest, error) {
	l, err := r.ListAll(ctx)
	return l.Manifests, err
}

// compareManifests orders by time, then id: ids have one-second resolution.
func compareManifests(a, b Manifest) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// MaxClockSkew is how far a snapshot's time may be ahead of the clock that judges it: the
// storage's when the manifest is written, the reader's when latest and retention are chosen.
// A snapshot dated further ahead was taken by a runner with a wrong clock; it would become
// latest, and retention would keep it over every real backup.
const MaxClockSkew = 5 * time.Minute

// InFuture reports whether m is dated more than MaxClockSkew after now.
// Writer is the product and the version of the server the snapshot was taken from ("redis",
// "8.0.6"; "valkey", "9.1.2"), both empty for a snapshot of an older runner, which did not
// record the product.
func (m Manifest) Writer() (product, version string) {
	if m.Product == "" {
		return "", ""
	}
	return m.Product, strings.TrimPrefix(m.RedisVersion, m.Product+" ")
}

func (m Manifest) InFuture(now time.Time) bool { return m.Time.After(now.Add(MaxClockSkew)) }

// Resolve returns the manifest for an id, "latest", or a unique id prefix. Ids sort by time,
// so it reads manifests from the newest id down and stops at the first complete one, and for
// a prefix it reads only the snapshots whose ids have it: with thousands of snapshots it
// reads one or a few manifests, not all. A damaged manifest older than the answer does not
// matter; a damaged one newer than latest is an error, since it may be the real latest. A
// snapshot dated in the future is not latest.
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
	ids, err := r.snapshotDirs(ctx)
	if err != nil {
		return Manifest{}, err
	}
	if ref == "latest" {
		var newer []Damaged
		now := time.Now()
		for i := len(ids) - 1; i >= 0; i-- {
			m, err, damaged := r.readManifest(ctx, ids[i])
			switch {
			case errors.Is(err, ErrSnapshotNotFound):
				continue
			case damaged:
				newer = append(newer, Damaged{ID: ids[i], Err: err})
				continue
			case err != nil:
				return Manifest{}, err
			case m.InFuture(now):
				continue
			}
			if len(newer) > 0 {
				return Manifest{}, fmt.Errorf("latest snapshot of %s is uncertain: the newer snapshot %s is damaged (%w); "+
					"restore %s by its id if that is the one you want (%s)", r.bucket.URL, newer[0].ID, newer[0].Err, m.ID, newer[0].RemoveHint())
			}
			return m, nil
		}
		if len(newer) > 0 {
			return Manifest{}, fmt.Errorf("repository %s has no usable snapshot: %s is damaged (%w; %s)", r.bucket.URL, newer[0].ID, newer[0].Err, newer[0].RemoveHint())
		}
		return Manifest{}, fmt.Errorf("repository %s has no snapshots: %w", r.bucket.URL, ErrSnapshotNotFound)
	}
	var match []Manifest
	var damaged []Damaged
	for _, id := range ids {
		if !strings.HasPrefix(id, ref) {
			continue
		}
		m, err, bad := r.readManifest(ctx, id)
		switch {
		case errors.Is(err, ErrSnapshotNotFound):
		case bad:
			damaged = append(damaged, Damaged{ID: id, Err: err})
		case err != nil:
			return Manifest{}, err
		default:
			match = append(match, m)
		}
	}
	switch {
	case len(match)+len(damaged) == 0:
		return Manifest{}, fmt.Errorf("snapshot %q in %s: %w (see: stash-runner snapshots)", ref, r.bucket.URL, ErrSnapshotNotFound)
	case len(damaged) > 0:
		return Manifest{}, fmt.Errorf("snapshot prefix %q matches the damaged snapshot %s: %w (%s)", ref, damaged[0].ID, damaged[0].Err, damaged[0].RemoveHint())
	case len(match) == 1:
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
