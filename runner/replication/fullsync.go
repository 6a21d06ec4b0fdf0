package replication

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
)

// ErrSyncRefused wraps every reason StartFullSync gives up because the server will not serve a
// replica: PSYNC renamed away or blocked (managed services), an ACL user without +psync, a
// replica that lost its own master. Nothing has changed on the server, and the caller can read
// the keys another way (SCAN + DUMP) instead.
var ErrSyncRefused = errors.New("the server does not serve a replica")

// ClientName is the name the runner's replica connection carries in CLIENT LIST, so that an
// operator can tell it from a real replica in INFO replication and the slow log.
const ClientName = "stash-runner"

// SyncOptions configure StartFullSync.
type SyncOptions struct {
	// Redis says how to reach and authenticate to the source.
	Redis redisconn.Options
	// ListeningPort is announced with REPLCONF listening-port; INFO replication on the source
	// lists the runner as a replica with this port. 0 announces 0, which no real replica uses.
	ListeningPort int
	// KeepSyncDelay leaves repl-diskless-sync-delay as it is. By default the runner sets it to 0
	// for the moment of its PSYNC, because otherwise the source waits that long (5 s by
	// default) for more replicas to share the fork with, and puts it back right after.
	KeepSyncDelay bool
	// AckInterval is how often REPLCONF ACK is sent while the link is open; 0 means 1 s.
	AckInterval time.Duration
	// Logf, if set, is told what the runner changed or could not change on the source.
	Logf func(format string, args ...any)
	// Server describes the source; nil means read it (INFO) before the sync. What the runner
	// announces as a replica follows from it (redisconn.ServerInfo.ReplicaVersion): Valkey 9
	// sends a replica that announces no version RDB 11, and aborts the transfer when a key
	// cannot be stored in it.
	Server *redisconn.ServerInfo
}

// ErrTransferAborted is wrapped by the error for an RDB transfer that the source ended before the
// end of the file while it still answers: the source gave up (Valkey 9 does so for a key that the
// RDB version the replica can read cannot hold; a failed fork or disk does too). Nothing of the
// transfer can be used, and reading the keys another way (SCAN + DUMP) may still work.
var ErrTransferAborted = errors.New("the source aborted the RDB transfer")

// FullSync is a full resynchronization in progress: the source has forked and is sending the
// RDB file of its dataset as it was at the instant of the fork, the replication ID and offset of
// which are ReplID and Offset. After the RDB, Stream reads the replication stream that follows.
// A FullSync from Resume may instead be a partial resynchronization (Continued).
type FullSync struct {
	// ReplID and Offset name the instant the RDB represents in the source's replication history.
	// For a continued link, they are where the stream continues: Stream's first byte is the one
	// after Offset, and ReplID is the id the source continues under (a new one after a failover).
	ReplID string
	Offset int64
	// Continued says the source accepted PSYNC <replid> <offset+1> (+CONTINUE): there is no RDB
	// (RDB is nil) and the stream continues where the caller's copy of it ended.
	Continued bool
	// Diskless says the source streams the RDB as it serializes it (an EOF-marked transfer);
	// otherwise it wrote the file to its disk first and Size is the file's length.
	Diskless bool
	Size     int64
	// RDB reads the RDB file. It returns io.EOF at its end, and an error when the transfer ends
	// early or, for a diskless transfer, when the closing mark is missing.
	RDB io.Reader

	conn    *redisconn.Conn
	redis   redisconn.Options
	wmu     sync.Mutex
	ackOff  atomic.Int64
	stopAck chan struct{}
	ackDone chan struct{}
	once    sync.Once
}

// StartFullSync connects to the source as a replica and asks for a full resynchronization:
// REPLCONF listening-port and capa eof psync2, then PSYNC ? -1. The source forks, so the RDB
// that follows is the dataset at one instant, serialized by the server itself. The caller reads
// FullSync.RDB and then calls Close, which drops the link: the source forgets the replica.
//
// While the link is open the runner acknowledges the offset every AckInterval, as a replica does,
// so the source does not time the link out while the runner is slower than the transfer.
func StartFullSync(ctx context.Context, opts SyncOptions) (*FullSync, error) {
	return startSync(ctx, opts, "", 0)
}

// Resume asks the source to continue its replication stream after offset of replID, the end of
// what the caller has of it: PSYNC <replid> <offset+1>, as a replica does after it lost its link.
// If the source still has the bytes that follow in its backlog (and replID is in its history),
// it answers +CONTINUE and the FullSync returned has Continued set, no RDB, and Stream reads
// the stream from the byte after offset. Otherwise (backlog too small, another server, a
// restart) the source answers +FULLRESYNC and the FullSync is a full resynchronization, as from
// StartFullSync.
func Resume(ctx context.Context, opts SyncOptions, replID string, offset int64) (*FullSync, error) {
	if len(replID) != 40 || offset < 0 {
		return nil, fmt.Errorf("resume replication: invalid position %q %d", replID, offset)
	}
	return startSync(ctx, opts, replID, offset)
}

// startSync sends PSYNC ? -1, or PSYNC replID offset+1 when replID is set.
func startSync(ctx context.Context, opts SyncOptions, replID string, offset int64) (*FullSync, error) {
	if opts.AckInterval <= 0 {
		opts.AckInterval = time.Second
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c, err := opts.Redis.Dial(ctx, 0)
	if err != nil {
		return nil, err
	}
	fs := &FullSync{conn: c, Size: -1, redis: opts.Redis}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	// A name and the announced port are courtesies: a server that refuses them still serves.
	_ = c.Simple("CLIENT", "SETNAME", ClientName)
	if err := c.Simple("REPLCONF", "listening-port", strconv.Itoa(opts.ListeningPort)); err != nil {
		return nil, refused("replconf listening-port", c.Err(err))
	}
	if err := c.Simple("REPLCONF", "capa", "eof", "capa", "psync2"); err != nil {
		return nil, refused("replconf capa", c.Err(err))
	}
	if v := replicaVersion(c, opts, logf); v != "" {
		// As a replica of the source's own version would: the source then sends the newest
		// format it writes (Valkey 9: RDB 80). Redis has no such option and is not asked.
		if err := c.Simple("REPLCONF", "version", v); err != nil {
			var re resp.Error
			if !errors.As(err, &re) {
				return nil, c.Err(err)
			}
			logf("the source refused REPLCONF version %s (%v): it may send an older RDB format", v, err)
		}
	}
	if !opts.KeepSyncDelay {
		restore, err := zeroSyncDelay(ctx, opts.Redis)
		if err != nil {
			logf("the source keeps repl-diskless-sync-delay (%v): the transfer starts after that delay", err)
		} else {
			defer restore()
		}
	}
	psync := resp.AppendCommand(nil, "PSYNC", "?", "-1")
	if replID != "" {
		psync = resp.AppendCommand(nil, "PSYNC", replID, strconv.FormatInt(offset+1, 10))
	}
	if _, err := c.W.Write(psync); err != nil {
		return nil, c.Err(err)
	}
	if err := c.W.Flush(); err != nil {
		return nil, c.Err(err)
	}
	// A master that cannot start this replica's sync at once (a save for other replicas is under
	// way) sends a newline now and then before its reply, as a keep-alive; real replicas skip them.
	if err := skipKeepAlives(c.R.Buffered()); err != nil {
		return nil, fmt.Errorf("psync to %s: %w", opts.Redis.Addr, c.Err(err))
	}
	line, err := c.R.ReadStatus()
	if err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return nil, refused("psync", err)
		}
		return nil, fmt.Errorf("psync to %s: %w", opts.Redis.Addr, c.Err(err))
	}
	if id, ok := parseContinue(line, replID); ok {
		fs.ReplID, fs.Offset, fs.Continued = id, offset, true
	} else {
		if fs.ReplID, fs.Offset, err = parseFullResync(line); err != nil {
			return nil, fmt.Errorf("psync to %s: %w", opts.Redis.Addr, err)
		}
		if fs.RDB, fs.Diskless, fs.Size, err = transferReader(c.R.Buffered()); err != nil {
			return nil, fmt.Errorf("full resync from %s: %w", opts.Redis.Addr, fs.Explain(ctx, c.Err(err)))
		}
	}
	fs.ackOff.Store(fs.Offset)
	fs.stopAck, fs.ackDone = make(chan struct{}), make(chan struct{})
	go fs.ack(opts.AckInterval)
	ok = true
	return fs, nil
}

// replicaVersion is the version the runner announces to the source (see SyncOptions.Server),
// read with INFO server on the replica's own connection c when the caller did not say.
func replicaVersion(c *redisconn.Conn, opts SyncOptions, logf func(string, ...any)) string {
	if opts.Server != nil {
		return opts.Server.ReplicaVersion()
	}
	info, err := infoServer(c)
	if err != nil {
		logf("cannot read the source's INFO (%v): announcing no version as a replica", err)
		return ""
	}
	return redisconn.ParseInfo(info).ReplicaVersion()
}

// infoServer sends INFO server on c and returns the reply; a reply that is not a bulk string
// (an error: INFO renamed or denied) is read and returned as an error.
func infoServer(c *redisconn.Conn) (string, error) {
	if _, err := c.W.Write(resp.AppendCommand(nil, "INFO", "server")); err != nil {
		return "", c.Err(err)
	}
	if err := c.W.Flush(); err != nil {
		return "", c.Err(err)
	}
	b, err := c.R.Buffered().Peek(1)
	if err != nil {
		return "", c.Err(err)
	}
	if b[0] != '$' {
		if err := c.R.Discard(); err != nil {
			return "", c.Err(err)
		}
		return "", fmt.Errorf("INFO answered with a %q reply", b[0])
	}
	out, _, err := c.R.AppendBulkReply(nil)
	return string(out), c.Err(err)
}

// Explain returns err, an error of reading the transfer, marked with ErrTransferAborted when
// the source closed the link while it still answers PING: then the source gave up the transfer,
// rather than died or lost the link.
func (fs *FullSync) Explain(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || !errors.Is(err, redisconn.ErrClosedByServer) || errors.Is(err, ErrTransferAborted) {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := fs.redis.Client(0)
	defer c.Close()
	if c.Ping(pctx).Err() != nil {
		return err
	}
	return fmt.Errorf("%w: it closed the link before the end of the file and still answers (its log says why; Valkey 9 does so for a key that the RDB version it sends cannot hold): %w", ErrTransferAborted, err)
}

// refused marks a server's refusal to serve a replica, with the step that was refused.
func refused(step string, err error) error {
	var re resp.Error
	if errors.As(err, &re) {
		return fmt.Errorf("%w: %s: %w", ErrSyncRefused, step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// zeroSyncDelay sets repl-diskless-sync-delay to 0 and returns the function that puts it back.
// A server without CONFIG (managed services) or with the delay already 0 keeps its setting.
func zeroSyncDelay(ctx context.Context, o redisconn.Options) (func(), error) {
	ctl := o.Client(0)
	vals, err := ctl.ConfigGet(ctx, "repl-diskless-sync-delay").Result()
	if err != nil {
		ctl.Close()
		return nil, err
	}
	old := vals["repl-diskless-sync-delay"]
	if old == "" || old == "0" {
		ctl.Close()
		return func() {}, nil
	}
	if err := ctl.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		ctl.Close()
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = ctl.ConfigSet(uctx, "repl-diskless-sync-delay", old).Err()
		ctl.Close()
	}, nil
}

// parseContinue reads "CONTINUE [<replid>]", the answer to PSYNC <replid> <offset> of a
// source that continues the stream; without an id (an old source) it continues under asked.
func parseContinue(line, asked string) (string, bool) {
	f := strings.Fields(line)
	if asked == "" || len(f) == 0 || f[0] != "CONTINUE" {
		return "", false
	}
	if len(f) == 2 && len(f[1]) == 40 {
		return f[1], true
	}
	return asked, len(f) == 1
}

// parseFullResync reads "FULLRESYNC <replid> <offset>". A CONTINUE (partial resync) cannot
// answer PSYNC ? -1.
func parseFullResync(line string) (string, int64, error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "FULLRESYNC" || len(f[1]) != 40 {
		return "", 0, fmt.Errorf("%w: unexpected reply %q to PSYNC", resp.ErrProtocol, line)
	}
	off, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || off < 0 {
		return "", 0, fmt.Errorf("%w: bad offset in %q", resp.ErrProtocol, line)
	}
	return f[1], off, nil
}

// transferReader reads the preamble of the RDB transfer: newlines the source sends while it
// saves, then "$<length>" (the file from its disk) or "$EOF:<40-byte mark>" (diskless).
// skipKeepAlives consumes the newlines a master sends while a replica waits for it.
func skipKeepAlives(br *bufio.Reader) error {
	for {
		b, err := br.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '\n' {
			return nil
		}
		_, _ = br.Discard(1)
	}
}

func transferReader(br *bufio.Reader) (r io.Reader, diskless bool, size int64, err error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, false, 0, err
		}
		if b == '\n' {
			continue // keep-alive while the source saves
		}
		if b != '$' {
			return nil, false, 0, fmt.Errorf("%w: transfer starts with %q", resp.ErrProtocol, b)
		}
		break
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, false, 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	if mark, ok := strings.CutPrefix(line, "EOF:"); ok {
		if len(mark) != eofMarkLen {
			return nil, false, 0, fmt.Errorf("%w: EOF mark of %d bytes", resp.ErrProtocol, len(mark))
		}
		return &markedReader{br: br, mark: []byte(mark)}, true, -1, nil
	}
	n, err := strconv.ParseInt(line, 10, 64)
	if err != nil || n < 0 {
		return nil, false, 0, fmt.Errorf("%w: bad transfer length %q", resp.ErrProtocol, line)
	}
	return &exactReader{r: br, left: n}, false, n, nil
}

// eofMarkLen is the length of the random mark that ends a diskless transfer.
const eofMarkLen = 40

// exactReader reads a transfer of known length; io.EOF before its end is ErrUnexpectedEOF.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		err = fmt.Errorf("the transfer ended %d bytes early: %w", e.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// markedReader reads a diskless transfer, which ends with the mark announced in its preamble,
// as a replica does: the bytes up to the mark are the file. It holds back the last
// eofMarkLen-1 bytes it has seen until it knows they are not the start of the mark, and leaves
// what follows the mark (the replication stream) unread in br.
type markedReader struct {
	br   *bufio.Reader
	mark []byte
	done bool
	// direct says that the RDB was read from br by an RDB reader (FullSync.RDBReader), which
	// stops at the file's end: what follows must be the mark, and nothing is searched.
	direct bool
}

func (m *markedReader) Read(p []byte) (int, error) {
	if m.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if m.direct {
		got, err := m.br.Peek(eofMarkLen)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the transfer ended without its EOF mark: %w", io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		if !bytes.Equal(got, m.mark) {
			return 0, fmt.Errorf("%w: the RDB file is not followed by the transfer's EOF mark", resp.ErrProtocol)
		}
		_, _ = m.br.Discard(eofMarkLen)
		m.done = true
		return 0, io.EOF
	}
	// Look at what is buffered (at least the mark's length, unless the link ends).
	need := max(m.br.Buffered(), eofMarkLen)
	need = min(need, m.br.Size())
	win, err := m.br.Peek(need)
	// Scan no more than this call can return: a mark that starts within len(p) bytes ends
	// within len(p)+eofMarkLen-1 of them. (Scanning the whole buffer on every call read each
	// byte of a transfer several times.)
	win = win[:min(len(win), len(p)+eofMarkLen-1)]
	if i := bytes.Index(win, m.mark); i >= 0 {
		n := copy(p, win[:i])
		_, _ = m.br.Discard(n)
		if n == i {
			_, _ = m.br.Discard(eofMarkLen)
			m.done = true
		}
		return n, nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("the transfer ended without its EOF mark: %w", io.ErrUnexpectedEOF)
		}
		return 0, err
	}
	// The last eofMarkLen-1 bytes may be the start of the mark: keep them back.
	safe := len(win) - (eofMarkLen - 1)
	n := copy(p, win[:safe])
	_, _ = m.br.Discard(n)
	return n, nil
}

// ack sends REPLCONF ACK <offset> until Close.
func (fs *FullSync) ack(every time.Duration) {
	defer close(fs.ackDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-fs.stopAck:
			return
		case <-t.C:
			if fs.AckNow() != nil {
				return // the reader sees the broken link
			}
		}
	}
}

// RDBReader returns a reader of the transferred RDB file's keys; read the file through it or
// through RDB, not both. For a diskless transfer it reads straight from the link's buffer: the
// RDB format says where the file ends, so EndRDB checks the closing mark once there instead of
// RDB searching every byte for it (which, with the copy it needs, was 3% of a backup's CPU).
func (fs *FullSync) RDBReader() *rdb.Reader {
	if m, ok := fs.RDB.(*markedReader); ok {
		m.direct = true
		return rdb.NewReader(m.br)
	}
	return rdb.NewReader(fs.RDB)
}

// EndRDB consumes what is left of the transfer after the RDB file (a diskless transfer's
// closing mark) and fails if anything else is left. Call it once the RDB's reader returned
// io.EOF.
func (fs *FullSync) EndRDB() error {
	if fs.RDB == nil {
		return nil
	}
	n, err := io.Copy(io.Discard, fs.RDB)
	if err != nil {
		return fmt.Errorf("end of the RDB transfer: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d bytes of the RDB transfer after the end of the file", resp.ErrProtocol, n)
	}
	return nil
}

// Stream returns the replication stream that follows the RDB: the commands the source
// propagates, from the byte after Offset on. Call it after the RDB was read to its end (or, for
// a continued link, at once); it calls EndRDB. The caller reads the stream alone and reports
// its progress with Acknowledge.
func (fs *FullSync) Stream() (*bufio.Reader, error) {
	if err := fs.EndRDB(); err != nil {
		return nil, err
	}
	return fs.conn.R.Buffered(), nil
}

// Acknowledge sets the offset that REPLCONF ACK reports from now on: the end of the stream the
// caller has processed. Without it the runner acknowledges Offset, the RDB's instant.
func (fs *FullSync) Acknowledge(offset int64) { fs.ackOff.Store(offset) }

// AckNow sends REPLCONF ACK with the acknowledged offset at once, as a replica answers the
// source's REPLCONF GETACK.
func (fs *FullSync) AckNow() error {
	cmd := resp.AppendCommand(make([]byte, 0, 64), "REPLCONF", "ACK", strconv.FormatInt(fs.ackOff.Load(), 10))
	fs.wmu.Lock()
	defer fs.wmu.Unlock()
	_, err := fs.conn.W.Write(cmd)
	if err == nil {
		err = fs.conn.W.Flush()
	}
	return err
}

// Close drops the replica link; the source then forgets the runner as a replica.
func (fs *FullSync) Close() error {
	var err error
	fs.once.Do(func() {
		close(fs.stopAck)
		err = fs.conn.Close()
		<-fs.ackDone
	})
	return err
}
