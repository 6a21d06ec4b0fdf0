package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
	"gocloud.dev/blob"

	"stash.dev/redis/runner/crypt"
)

// SnapshotWriter streams the plaintext RESP of a snapshot through zstd and age into the data
// object. Nothing is staged: memory is the compressor's window plus the upload buffer.
type SnapshotWriter struct {
	id     string
	cancel context.CancelFunc
	bw     *blob.Writer
	hash   hash.Hash
	stored countWriter
	raw    int64
	enc    io.WriteCloser
	zw     *zstd.Encoder
	done   bool
}

// CompressionConcurrency is the number of goroutines zstd uses. One means the compressor runs
// synchronously in the writer's goroutine: with two or more, klauspost/compress starts two
// goroutines for every block and hands each block over twice, which on the small machines a
// backup Job gets costs more than the overlap gains (a backup by replication of 1M keys: 0.2 s
// less CPU, the same output, the wall time no longer).
const CompressionConcurrency = 1

// NewSnapshotWriter starts writing the data object of snapshot id. The caller must call either
// Commit or Abort.
func (r *Repository) NewSnapshotWriter(ctx context.Context, id string) (*SnapshotWriter, error) {
	w, err := r.newDataWriter(ctx, id, dataKey(id), CompressionConcurrency, true)
	if err != nil {
		return nil, fmt.Errorf("create data object of snapshot %s: %w", id, err)
	}
	return w, nil
}

// newDataWriter starts the data object key of id: zstd with the given number of goroutines, age
// to the repository key, sha256 of what is stored; with bind, the plaintext starts with the
// binding of snapshot id (binding.go). The writer gets its own context: cancelling it before
// Close is how an upload is abandoned without committing a partial object.
func (r *Repository) newDataWriter(ctx context.Context, id, key string, concurrency int, bind bool) (*SnapshotWriter, error) {
	wctx, cancel := context.WithCancel(ctx)
	bw, err := r.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream", BeforeWrite: r.bucket.BeforeWrite})
	if err != nil {
		cancel()
		return nil, err
	}
	w := &SnapshotWriter{id: id, cancel: cancel, bw: bw, hash: sha256.New()}
	w.stored.w = io.MultiWriter(bw, w.hash)
	var head func(*crypt.Key) []byte
	if bind {
		head = func(k *crypt.Key) []byte { return binding(k, id) }
	}
	w.enc, err = r.encrypter(wctx, &w.stored, head)
	if err != nil {
		w.Abort()
		return nil, err
	}
	w.zw, err = zstd.NewWriter(w.enc, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(concurrency), zstd.WithEncoderCRC(true))
	if err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// encrypter returns the writer that encrypts to the repository key into dst, starting with
// head(key) when head is not nil: at once when the key is unlocked, else one that holds what it
// is given (compressed data) until it is.
func (r *Repository) encrypter(ctx context.Context, dst io.Writer, head func(*crypt.Key) []byte) (io.WriteCloser, error) {
	select {
	case <-r.unlocked:
		if r.keyErr != nil {
			return nil, r.keyErr
		}
		return startEncryption(r.keys[0], dst, head)
	default:
		return &pendingEncrypter{r: r, ctx: ctx, dst: dst, head: head}, nil
	}
}

// startEncryption starts encrypting to k into dst and writes head(k) first.
func startEncryption(k *crypt.Key, dst io.Writer, head func(*crypt.Key) []byte) (io.WriteCloser, error) {
	enc, err := k.Encrypt(dst)
	if err != nil || head == nil {
		return enc, err
	}
	if _, err := enc.Write(head(k)); err != nil {
		return nil, err
	}
	return enc, nil
}

// maxPendingBytes bounds what a writer holds while the repository key is being unlocked
// (Options.UnlockInBackground): compressed data, at most a few MB in the 0.1 s the key derivation
// takes; beyond it, writes wait for the key.
const maxPendingBytes = 16 << 20

// pendingEncrypter holds its input until the repository key is unlocked, then encrypts it and
// everything after it to dst. If the key cannot be unlocked, every call returns that error.
type pendingEncrypter struct {
	r       *Repository
	ctx     context.Context
	dst     io.Writer
	head    func(*crypt.Key) []byte
	pending []byte
	enc     io.WriteCloser
}

func (p *pendingEncrypter) Write(b []byte) (int, error) {
	if p.enc == nil {
		select {
		case <-p.r.unlocked:
		default:
			if len(p.pending)+len(b) <= maxPendingBytes {
				p.pending = append(p.pending, b...)
				return len(b), nil
			}
		}
		if err := p.start(); err != nil {
			return 0, err
		}
	}
	return p.enc.Write(b)
}

// start waits for the key and encrypts what was held.
func (p *pendingEncrypter) start() error {
	keys, err := p.r.waitKeys(p.ctx)
	if err != nil {
		return err
	}
	if p.enc, err = startEncryption(keys[0], p.dst, p.head); err != nil {
		return err
	}
	_, err = p.enc.Write(p.pending)
	p.pending = nil
	return err
}

func (p *pendingEncrypter) Close() error {
	if p.enc == nil {
		if err := p.start(); err != nil {
			return err
		}
	}
	return p.enc.Close()
}

// Write compresses and encrypts p.
func (w *SnapshotWriter) Write(p []byte) (int, error) {
	n, err := w.zw.Write(p)
	w.raw += int64(n)
	if err != nil {
		return n, fmt.Errorf("write snapshot data: %w", err)
	}
	return n, nil
}

// Commit flushes everything and completes the upload. On error nothing is committed.
func (w *SnapshotWriter) Commit() error {
	if w.done {
		return errors.New("snapshot writer already closed")
	}
	if err := w.zw.Close(); err != nil {
		w.Abort()
		return fmt.Errorf("compress snapshot data: %w", err)
	}
	if err := w.enc.Close(); err != nil {
		w.Abort()
		return fmt.Errorf("encrypt snapshot data: %w", err)
	}
	w.done = true
	err := w.bw.Close()
	w.cancel()
	if err != nil {
		return fmt.Errorf("upload data of snapshot %s: %w", w.id, err)
	}
	return nil
}

// Abort abandons the upload: the writer's context is cancelled before Close, so the storage
// backend discards what it received instead of committing a partial object.
func (w *SnapshotWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.cancel()
	if w.zw != nil {
		w.zw.Reset(io.Discard) // stop its goroutines
	}
	_ = w.bw.Close()
}

// RawBytes is the number of plaintext bytes written.
func (w *SnapshotWriter) RawBytes() int64 { return w.raw }

// StoredBytes is the size of the data object so far.
func (w *SnapshotWriter) StoredBytes() int64 { return w.stored.n }

// SHA256 returns the hex sha256 of the stored object; valid after Commit.
func (w *SnapshotWriter) SHA256() string { return hex.EncodeToString(w.hash.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// SnapshotReader streams the plaintext RESP of a snapshot. It returns io.EOF only after the
// whole object was read and its size and sha256 match the manifest; age authenticates every
// 64 KiB chunk before it is returned, so altered data fails early with crypt.ErrIntegrity.
type SnapshotReader struct {
	m      Manifest
	br     *blob.Reader
	hash   hash.Hash
	stored countReader
	dec    io.Reader
	zr     *zstd.Decoder
	err    error
}

// OpenSnapshot opens the data of a snapshot for reading. Close must be called.
func (r *Repository) OpenSnapshot(ctx context.Context, m Manifest) (*SnapshotReader, error) {
	return r.openData(ctx, dataKey(m.ID), "snapshot "+m.ID, m,
		" (the object was truncated or replaced; restore another snapshot, and check the data of every snapshot)", true)
}

// openData opens the data object key, whose size and sha256 are m's, for reading; name is how
// errors call it, and hint what a wrong size tells the user to do. With bind, the object is a
// snapshot's and must prove it belongs to snapshot m.ID (checkBinding) before Read returns.
func (r *Repository) openData(ctx context.Context, key, name string, m Manifest, hint string, bind bool) (*SnapshotReader, error) {
	br, err := r.bucket.NewReader(ctx, key, nil)
	if isNotFound(err) {
		return nil, fmt.Errorf("%s: %w: data object is missing", name, crypt.ErrIntegrity)
	}
	if err != nil {
		return nil, fmt.Errorf("open data of %s: %w", name, err)
	}
	// The store knows the object's size before the first byte is read: a truncated object, or
	// another snapshot's data copied over this one, is refused before a restore writes anything.
	if size := br.Size(); size != m.StoredBytes {
		br.Close()
		return nil, fmt.Errorf("%s: %w: data object has %d bytes, manifest says %d%s", name, crypt.ErrIntegrity, size, m.StoredBytes, hint)
	}
	sr := &SnapshotReader{m: m, br: br, hash: sha256.New()}
	sr.stored.r = io.TeeReader(br, sr.hash)
	keys, err := r.waitKeys(ctx)
	if err != nil {
		br.Close()
		return nil, err
	}
	sr.dec, err = crypt.Decrypt(&sr.stored, keys...)
	if err != nil {
		br.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if bind {
		// Before the first key: a data object of another snapshot is refused here.
		if sr.dec, err = checkBinding(sr.dec, m, keys); err != nil {
			br.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	// One goroutine: the decoder runs in the reader's, as the compressor does in the writer's
	// (CompressionConcurrency); a restore's bottleneck is the server, which wants the other core.
	sr.zr, err = zstd.NewReader(sr.dec, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		br.Close()
		return nil, err
	}
	return sr, nil
}

// Read returns plaintext RESP.
func (sr *SnapshotReader) Read(p []byte) (int, error) {
	if sr.err != nil {
		return 0, sr.err
	}
	n, err := sr.zr.Read(p)
	if err == io.EOF {
		err = sr.verify()
		if err == nil {
			err = io.EOF
		}
	} else if err != nil {
		if !errors.Is(err, crypt.ErrIntegrity) && !errors.Is(err, crypt.ErrRead) {
			err = fmt.Errorf("%w: decompress: %w", crypt.ErrIntegrity, err)
		}
		err = fmt.Errorf("snapshot %s: %w", sr.m.ID, err)
	}
	sr.err = err
	return n, err
}

// verify drains what is left of the encrypted and the stored stream and checks size and hash.
func (sr *SnapshotReader) verify() error {
	if n, err := io.Copy(io.Discard, sr.dec); err != nil {
		return fmt.Errorf("snapshot %s: %w", sr.m.ID, err)
	} else if n > 0 {
		return fmt.Errorf("snapshot %s: %w: %d bytes after the end of the compressed stream", sr.m.ID, crypt.ErrIntegrity, n)
	}
	if _, err := io.Copy(io.Discard, &sr.stored); err != nil {
		return fmt.Errorf("read data of snapshot %s: %w", sr.m.ID, err)
	}
	if sr.stored.n != sr.m.StoredBytes {
		return fmt.Errorf("snapshot %s: %w: data object has %d bytes, manifest says %d", sr.m.ID, crypt.ErrIntegrity, sr.stored.n, sr.m.StoredBytes)
	}
	if sum := hex.EncodeToString(sr.hash.Sum(nil)); sum != sr.m.SHA256 {
		return fmt.Errorf("snapshot %s: %w: data sha256 %s, manifest says %s", sr.m.ID, crypt.ErrIntegrity, sum, sr.m.SHA256)
	}
	return nil
}

// Close releases the reader.
func (sr *SnapshotReader) Close() error {
	sr.zr.Close()
	return sr.br.Close()
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
