// Package journal stores the replication stream of a Redis source as segments in a repository,
// the journal of continuous backup (`stash-runner follow`).
//
// A chain is the journal that follows one base snapshot: its id is the base snapshot's id, and
// its segments cover the source's replication stream from the base's offset on, with no gap and
// no overlap. A segment holds the raw bytes of the stream between two offsets, exactly as the
// source sent them (PING, SELECT and REPLCONF included), so its length is the difference of its
// offsets and a reader can check that nothing was lost. Layout under the repository:
//
//	journal/<chain>/<start offset, 20 digits>.data   raw stream bytes, zstd-compressed, age-encrypted
//	journal/<chain>/<start offset, 20 digits>.json   encrypted, HMAC-authenticated Manifest, written last
//
// As with snapshots, a segment exists only once its manifest exists: a follower that dies while
// writing one leaves at most an orphaned data object that no listing or replay ever sees.
package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/repo"
)

// FormatVersion identifies the segment format: raw replication stream bytes (RESP arrays of
// bulk strings), zstd-compressed, age-encrypted.
const FormatVersion = 1

const (
	prefix       = repo.JournalPrefix
	dataSuffix   = ".data"
	manifestName = ".json"
)

// Manifest describes a complete segment. Offsets are the source's replication offsets: the
// segment holds the stream bytes after StartOffset up to and including EndOffset, so a segment
// that follows another starts at its EndOffset, and the first segment of a chain starts at the
// base snapshot's ReplOffset.
type Manifest struct {
	FormatVersion int `json:"formatVersion"`
	// Chain is the id of the chain, which is the id of its base snapshot.
	Chain string `json:"chain"`
	// ReplID is the replication id the source streamed the segment under.
	ReplID      string `json:"replID"`
	StartOffset int64  `json:"startOffset"`
	EndOffset   int64  `json:"endOffset"`
	// FirstTime and LastTime are when the runner received the first and the last command.
	FirstTime time.Time `json:"firstTime"`
	LastTime  time.Time `json:"lastTime"`
	// DB is the database selected before the first command: a replay selects it first. EndDB
	// is the database selected after the last one, where the next segment starts.
	DB       int   `json:"db"`
	EndDB    int   `json:"endDB"`
	Commands int64 `json:"commands"`
	// Marks map receive times to offsets inside the segment, one per MarkResolution at most:
	// where a replay to a point in time can stop.
	Marks []Mark `json:"marks,omitempty"`
	// MarkResolution is the span of time a mark stands for (the commands after a mark up to the
	// next were received in the mark's span); zero in older segments means a second.
	MarkResolution time.Duration `json:"markResolution,omitempty"`
	// SourceTime says that the follower had the source mark its own stream with its clock
	// (see SourceMark): a restore to a time goes by SourceMarks, not by receive times.
	// TailWrites counts the commands after the last source mark (all of them without one)
	// that are not housekeeping (marks, PING, REPLCONF).
	SourceTime  bool         `json:"sourceTime,omitempty"`
	SourceMarks []SourceMark `json:"sourceMarks,omitempty"`
	TailWrites  int64        `json:"tailWrites,omitempty"`
	// RawBytes is EndOffset-StartOffset; StoredBytes and SHA256 describe the data object.
	RawBytes    int64  `json:"rawBytes"`
	StoredBytes int64  `json:"storedBytes"`
	SHA256      string `json:"sha256"`
	Compression string `json:"compression"`
	Encryption  string `json:"encryption"`
}

// Mark says that the command starting after Offset was received at Time.
type Mark struct {
	Offset int64     `json:"offset"`
	Time   time.Time `json:"time"`
}

// SourceMark is a time mark the source ran and streamed: the commands before Offset in the
// stream ran at or before Time on the source's clock, those after it at or after. Writes counts
// the commands between the mark before it (in the segment, or the segment's start) and it that
// are not housekeeping.
type SourceMark struct {
	Offset int64     `json:"offset"`
	Time   time.Time `json:"time"`
	Writes int64     `json:"writes"`
}

// MarkChannel is the Pub/Sub channel of source marks: the follower has the source PUBLISH its
// clock (TIME, in microseconds) there, and a master propagates every PUBLISH to its replicas
// in stream order. A replay skips these.
const MarkChannel = "__stash:mark"

// MarkTime returns the time a source mark carries, and false for any other command.
func MarkTime(c Command) (time.Time, bool) {
	if !c.Is("PUBLISH") || len(c.Args) < 3 || string(c.Args[1]) != MarkChannel {
		return time.Time{}, false
	}
	us, err := strconv.ParseInt(string(c.Args[2]), 10, 64)
	if err != nil || us <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(us), true
}

// housekeeping reports whether c changes nothing a restore holds: PING, REPLCONF, a source mark.
func housekeeping(c Command) bool {
	_, mark := MarkTime(c)
	return mark || c.Is("PING") || c.Is("REPLCONF")
}

// Name is how errors and listings name a segment: chain/start offset.
func (m Manifest) Name() string { return m.Chain + "/" + strconv.FormatInt(m.StartOffset, 10) }

func chainPrefix(chain string) string { return prefix + chain + "/" }

func segmentKey(chain string, start int64, suffix string) string {
	return fmt.Sprintf("%s%020d%s", chainPrefix(chain), start, suffix)
}

// Start says where a new segment begins.
type Start struct {
	Chain  string
	ReplID string
	// Offset is the replication offset before the segment's first byte.
	Offset int64
	// DB is the database the stream has selected at Offset.
	DB int
	// SourceTime says the source marks the stream (Manifest.SourceTime).
	SourceTime bool
}

// Writer writes one segment. Its Write takes raw stream bytes; BeginCommand, called before the
// bytes of each command, records the command's receive time. Memory is the compressor's window
// and the upload buffer, whatever the segment's size.
type Writer struct {
	r        *repo.Repository
	m        Manifest
	ow       *repo.SnapshotWriter
	lastMark int64 // span (of MarkResolution) of the last mark
}

// markResolution is how finely a segment's marks place a receive time: a restore to a point in
// time is exact to this span.
const markResolution = 100 * time.Millisecond

// Resolution is the span of time one of the segment's marks stands for.
func (m Manifest) Resolution() time.Duration {
	if m.MarkResolution > 0 {
		return m.MarkResolution
	}
	return time.Second
}

// NewWriter starts a segment. The caller must call Commit or Abort.
func NewWriter(ctx context.Context, r *repo.Repository, s Start) (*Writer, error) {
	if s.Chain == "" || strings.Contains(s.Chain, "/") || s.Offset < 0 {
		return nil, fmt.Errorf("journal: invalid segment start %+v", s)
	}
	ow, err := r.NewObjectWriter(ctx, segmentKey(s.Chain, s.Offset, dataSuffix))
	if err != nil {
		return nil, err
	}
	return &Writer{r: r, ow: ow, lastMark: -1, m: Manifest{
		FormatVersion: FormatVersion, Chain: s.Chain, ReplID: s.ReplID,
		StartOffset: s.Offset, EndOffset: s.Offset, DB: s.DB, EndDB: s.DB, MarkResolution: markResolution,
		SourceTime: s.SourceTime,
	}}, nil
}

// BeginCommand records that a command received at at starts at the current end of the segment.
func (w *Writer) BeginCommand(at time.Time) {
	if w.m.Commands == 0 {
		w.m.FirstTime = at
	}
	w.m.LastTime = at
	w.m.Commands++
	if s := at.UnixNano() / int64(markResolution); s != w.lastMark {
		w.lastMark = s
		w.m.Marks = append(w.m.Marks, Mark{Offset: w.m.EndOffset, Time: at})
	}
}

// Note records what the command about to be written at the current end says about time: a
// source mark, or a write between two marks. Call it before writing the command.
func (w *Writer) Note(c Command) {
	if t, ok := MarkTime(c); ok {
		w.m.SourceMarks = append(w.m.SourceMarks, SourceMark{Offset: w.m.EndOffset, Time: t, Writes: w.m.TailWrites})
		w.m.TailWrites = 0
		return
	}
	if !housekeeping(c) {
		w.m.TailWrites++
	}
}

// Write appends raw stream bytes.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.ow.Write(p)
	w.m.EndOffset += int64(n)
	if err != nil {
		return n, fmt.Errorf("journal segment %s: %w", w.m.Name(), err)
	}
	return n, nil
}

// SetEndDB records the database the stream has selected after the bytes written so far.
func (w *Writer) SetEndDB(db int) { w.m.EndDB = db }

// Size is the number of raw bytes written.
func (w *Writer) Size() int64 { return w.m.EndOffset - w.m.StartOffset }

// Manifest returns the manifest as it stands (complete after Commit).
func (w *Writer) Manifest() Manifest { return w.m }

// Commit stores the data and then the manifest: only then does the segment exist.
func (w *Writer) Commit(ctx context.Context) (Manifest, error) {
	if err := w.ow.Commit(); err != nil {
		return Manifest{}, fmt.Errorf("journal segment %s: %w", w.m.Name(), err)
	}
	w.m.RawBytes = w.Size()
	w.m.StoredBytes, w.m.SHA256 = w.ow.StoredBytes(), w.ow.SHA256()
	w.m.Compression, w.m.Encryption = "zstd", "age-x25519"
	if err := w.r.WriteSealed(ctx, segmentKey(w.m.Chain, w.m.StartOffset, manifestName), w.m); err != nil {
		// Without its manifest the data object is an invisible orphan; remove it if we can.
		_ = w.r.DeleteObject(context.WithoutCancel(ctx), segmentKey(w.m.Chain, w.m.StartOffset, dataSuffix))
		return Manifest{}, fmt.Errorf("journal segment %s: %w", w.m.Name(), err)
	}
	return w.m, nil
}

// Abort abandons the segment: nothing of it becomes visible.
func (w *Writer) Abort() { w.ow.Abort() }

// Chains returns the ids of the chains that have at least one object, oldest first (chain ids
// are snapshot ids, which sort by time).
func Chains(ctx context.Context, r *repo.Repository) ([]string, error) {
	dirs, err := r.ListObjects(ctx, prefix, true)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(d, prefix), "/"))
	}
	return out, nil
}

// List returns the complete segments of chain in offset order. Segments without a manifest are
// invisible; a manifest that fails verification is an error, because hiding it would hide
// tampering.
func List(ctx context.Context, r *repo.Repository, chain string) ([]Manifest, error) {
	keys, err := r.ListObjects(ctx, chainPrefix(chain), false)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, k := range keys {
		if !strings.HasSuffix(k, manifestName) {
			continue
		}
		start, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(k, chainPrefix(chain)), manifestName), 10, 64)
		if err != nil {
			continue // not a segment manifest
		}
		var m Manifest
		if err := r.ReadSealed(ctx, k, &m); err != nil {
			return nil, fmt.Errorf("journal segment %s/%d: %w", chain, start, err)
		}
		if m.Chain != chain || m.StartOffset != start {
			return nil, fmt.Errorf("journal segment %s/%d: %w: its manifest belongs to segment %s", chain, start, crypt.ErrIntegrity, m.Name())
		}
		if m.FormatVersion > FormatVersion {
			return nil, fmt.Errorf("journal segment %s has format version %d; this runner reads up to %d (upgrade stash-runner)", m.Name(), m.FormatVersion, FormatVersion)
		}
		out = append(out, m)
	}
	return out, nil
}

// ErrGap is returned when the segments of a chain do not follow each other without a gap or an
// overlap.
var ErrGap = errors.New("the journal has a gap")

// CheckContiguous fails with ErrGap unless every segment starts where the previous one ended
// and the first starts at from.
func CheckContiguous(from int64, segs []Manifest) error {
	at := from
	for _, m := range segs {
		if m.StartOffset != at {
			return fmt.Errorf("%w: segment %s starts at offset %d, the journal before it ends at %d", ErrGap, m.Name(), m.StartOffset, at)
		}
		at = m.EndOffset
	}
	return nil
}

// Reader reads the raw stream bytes of one segment. It returns io.EOF only after the whole data
// object was read and its size, sha256 and length match the manifest; altered data fails with
// an error that wraps crypt.ErrIntegrity and names the segment.
type Reader struct {
	m   Manifest
	sr  *repo.SnapshotReader
	n   int64
	err error
}

// Open opens the data of a segment whose manifest came from List. Close must be called.
func Open(ctx context.Context, r *repo.Repository, m Manifest) (*Reader, error) {
	sr, err := r.OpenObject(ctx, segmentKey(m.Chain, m.StartOffset, dataSuffix), m.StoredBytes, m.SHA256)
	if err != nil {
		return nil, fmt.Errorf("journal segment %s: %w", m.Name(), err)
	}
	return &Reader{m: m, sr: sr}, nil
}

// Read returns raw stream bytes.
func (jr *Reader) Read(p []byte) (int, error) {
	if jr.err != nil {
		return 0, jr.err
	}
	n, err := jr.sr.Read(p)
	jr.n += int64(n)
	switch {
	case err == io.EOF && jr.n != jr.m.EndOffset-jr.m.StartOffset:
		err = fmt.Errorf("journal segment %s: %w: %d bytes of stream, its offsets span %d", jr.m.Name(), crypt.ErrIntegrity, jr.n, jr.m.EndOffset-jr.m.StartOffset)
	case err != nil && err != io.EOF:
		err = fmt.Errorf("journal segment %s: %w", jr.m.Name(), err)
	}
	jr.err = err
	return n, err
}

// Close releases the reader.
func (jr *Reader) Close() error { return jr.sr.Close() }
