// Package replication speaks Redis replication with a Redis server. Serve (serve.go) is the
// master side: it serves a snapshot stream to an empty standalone target as the RDB file of a full
// resynchronization, the "replication" method of runner/restore, which Redis loads about twice as
// fast as RESTORE commands.
//
// Serve is the second loader beside runner/load (RESTORE commands), so it imports load for what
// both loaders share and load owns: the key selection (load.Selection, load.Keys) and the
// counts (load.Stats) that runner/restore verifies whichever loader ran. load knows nothing of
// replication; the edge points from the newer loader to the shared one.
package replication

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/rdb"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/resp"
)

// ErrServeUnavailable wraps every reason Serve gives up before the target has changed or a byte
// of the snapshot was read: the server refuses CONFIG or REPLICAOF, or it cannot connect back to
// the runner. The caller can restore with RESTORE commands (runner/load) instead.
var ErrServeUnavailable = errors.New("cannot restore through replication")

// ServeOptions configure Serve.
type ServeOptions struct {
	// Redis is the target.
	Redis redisconn.Options
	// Selection says which keys are loaded, as for load.Run.
	load.Selection
	// RDBVersion of the snapshot: the RDB file is written in it, or in the newest version
	// Selection.Target reads when that is older.
	RDBVersion int
	// Progress, if set, is updated as keys are loaded.
	Progress *progress.Counter
	// KeysHint is the number of keys per database, to size the server's tables up front.
	KeysHint map[int]int64
	// ListenHost is the address the target connects back to. Empty means the runner's side
	// of a connection to the target, which is right unless something translates addresses.
	ListenHost string
	// AcceptTimeout bounds the wait for the target to connect; 0 means 10 s.
	AcceptTimeout time.Duration
	// RefuseDuplicates, if set, records every key sent and fails the transfer at a key sent
	// twice, which would stop the target ("Duplicated key found in RDB file"). Set for snapshots
	// that may hold one (imported from an RDB file by a runner that did not check); it costs
	// memory per key (see rdb.KeySet).
	RefuseDuplicates *rdb.KeySet
}

// Serve loads the snapshot stream r into an empty standalone Redis the way a replica loads
// its master's data: it listens, makes the target a replica of the runner with REPLICAOF, sends
// the keys as an RDB file in the full resynchronization, and promotes the target again with
// REPLICAOF NO ONE once it has loaded them. Redis then builds its tables in one pass, sized up
// front, instead of executing a RESTORE per key, which is what makes this the fast path.
//
// A full resynchronization replaces every database of the target, so the caller must make sure
// it is empty. The load is all or nothing: when the stream fails (a truncated or tampered
// snapshot), the runner drops the connection before the end of the file and the target discards
// what it received. The replica must authenticate with masterauth (a random token set for the
// duration if none is configured) before it gets any data. The target's repl-diskless-load is
// set to on-empty-db for the duration, so that it loads while the data arrives instead of
// writing it to disk first.
func Serve(ctx context.Context, r io.Reader, opts ServeOptions) (st load.Stats, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AcceptTimeout == 0 {
		opts.AcceptTimeout = 10 * time.Second
	}
	st = load.NewStats()
	if opts.RDBVersion <= 0 {
		return st, fmt.Errorf("%w: the snapshot does not name its RDB version", ErrServeUnavailable)
	}
	ctl := opts.Redis.Client(0)
	defer ctl.Close()
	host := opts.ListenHost
	if host == "" {
		if host, err = localHost(ctx, opts.Redis); err != nil {
			return st, err
		}
	}
	cfg, err := ctl.ConfigGet(ctx, "master*").Result()
	if err != nil {
		return st, fmt.Errorf("%w: config get: %w", ErrServeUnavailable, err)
	}
	loadCfg, err := ctl.ConfigGet(ctx, "repl-diskless-load").Result()
	if err != nil {
		return st, fmt.Errorf("%w: config get: %w", ErrServeUnavailable, err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return st, fmt.Errorf("%w: listen on %s for the target: %w", ErrServeUnavailable, host, err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())

	// Settings changed for the duration are put back, also when ctx is cancelled. When that
	// fails too (a stopped or dead target) the error says so; the marker makes the next restore
	// finish the job (recoverLeftover in runner/restore).
	var undo []func(context.Context) error
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var first error
		for i := len(undo) - 1; i >= 0; i-- {
			uerr := undo[i](uctx)
			if uerr == nil {
				continue
			}
			if first == nil {
				first = uerr
			}
			var ne net.Error
			if errors.As(uerr, &ne) {
				// The target does not answer (stopped, dead, cut off): every other step would
				// wait its own read timeout for nothing. The marker, undone last, stays, so
				// the next restore finds and finishes this.
				break
			}
		}
		switch {
		case first == nil:
		case err == nil:
			err = first
		default:
			err = fmt.Errorf("%w; putting the target back failed too (the next restore does it): %w", err, first)
		}
	}()
	setConfig := func(name, value, old string) error {
		if err := ctl.ConfigSet(ctx, name, value).Err(); err != nil {
			return fmt.Errorf("%w: config set %s: %w", ErrServeUnavailable, name, err)
		}
		undo = append(undo, func(uctx context.Context) error {
			if err := ctl.ConfigSet(uctx, name, old).Err(); err != nil {
				return fmt.Errorf("put back %s of %s: %w", name, opts.Redis.Addr, err)
			}
			return nil
		})
		return nil
	}
	token, user := cfg["masterauth"], cfg["masteruser"]
	setAuth, setLoad := token == "", loadCfg["repl-diskless-load"] == "disabled"
	// The marker goes first, naming what is changed next: a runner killed at any later point
	// leaves a target that the next restore recognises and puts back (recoverLeftover in
	// runner/restore).
	if _, ok := cfg["masteruser"]; ok && user == "" {
		user = Marker{SetMasterauth: setAuth, SetDisklessLoad: setLoad}.String()
		if err := setConfig("masteruser", user, ""); err != nil {
			return st, err
		}
	}
	if setAuth {
		token = randomHex(20)
		if err := setConfig("masterauth", token, ""); err != nil {
			return st, err
		}
	}
	if setLoad {
		if err := setConfig("repl-diskless-load", "on-empty-db", "disabled"); err != nil {
			return st, err
		}
	}
	if err := ctl.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
		return st, fmt.Errorf("%w: replicaof: %w", ErrServeUnavailable, err)
	}
	promoted := false
	undo = append(undo, func(uctx context.Context) error {
		if promoted {
			return nil
		}
		if err := ctl.Do(uctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			return fmt.Errorf("%s is left a replica of the runner at %s:%s (run REPLICAOF NO ONE on it): %w", opts.Redis.Addr, host, port, err)
		}
		return nil
	})

	conn, err := accept(ctx, l, opts.AcceptTimeout)
	if err != nil {
		return st, fmt.Errorf("%w: %s did not connect to the runner at %s:%s within %s (a network policy may block it; set the listen address if the runner is reached under another address): %w",
			ErrServeUnavailable, opts.Redis.Addr, host, port, opts.AcceptTimeout, err)
	}
	defer conn.Close()
	stopConn := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stopConn()
	conn = &linkConn{Conn: conn, timeout: linkTimeout(opts.Redis), target: opts.Redis.Addr, ctx: ctx}
	br := bufio.NewReader(conn)
	rd := resp.NewReader(br)
	if err := handshake(rd, conn, user, token); err != nil {
		return st, fmt.Errorf("%w: replication handshake with %s: %w", ErrServeUnavailable, opts.Redis.Addr, err)
	}

	// From here on the target is loading: a failure leaves it empty, never half restored.
	if err := sendRDB(ctx, r, conn, opts, &st); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err() // the cancellation, not the write it interrupted
		}
		sent := st.Total
		st.Keys, st.Total = map[int]int64{}, 0
		return st, fmt.Errorf("%w (the load was aborted after %d keys were sent: %s discards what it received)", err, sent, opts.Redis.Addr)
	}
	if err := waitLoaded(br, rd); err != nil {
		sent := st.Total
		st.Keys, st.Total = map[int]int64{}, 0
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		if errors.Is(err, ErrLinkStalled) {
			return st, fmt.Errorf("%s did not finish loading the snapshot after all %d keys were sent: %w", opts.Redis.Addr, sent, err)
		}
		return st, fmt.Errorf("%s did not load the snapshot after all %d keys were sent (its log says why): %w", opts.Redis.Addr, sent, err)
	}
	if err := ctl.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return st, fmt.Errorf("promote %s after loading (run REPLICAOF NO ONE on it): %w", opts.Redis.Addr, err)
	}
	promoted = true
	if err := checkMaxmemory(ctx, ctl); err != nil {
		return st, err
	}
	return st, nil
}

// localHost returns the runner's IP address on a connection to the target: the address the
// target can reach the runner at. A unix socket means the target runs on this machine.
func localHost(ctx context.Context, o redisconn.Options) (string, error) {
	if o.Network == "unix" {
		return "127.0.0.1", nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return "", fmt.Errorf("connect to redis %s: %w", o.Addr, err)
	}
	defer c.Close()
	h, _, err := net.SplitHostPort(c.LocalAddr().String())
	return h, err
}

func accept(ctx context.Context, l net.Listener, timeout time.Duration) (net.Conn, error) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	if tl, ok := l.(*net.TCPListener); ok {
		_ = tl.SetDeadline(time.Now().Add(timeout))
	}
	c, err := l.Accept()
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return c, err
}

// handshake answers the replica's handshake (PING, AUTH, REPLCONF) up to PSYNC and starts a
// full resynchronization in the EOF-marked format, whose length need not be known up front.
func handshake(rd *resp.Reader, w io.Writer, user, token string) error {
	authed, eof := false, false
	for {
		args, err := readCommand(rd)
		if err != nil {
			return err
		}
		switch strings.ToUpper(args[0]) {
		case "PING":
			_, err = io.WriteString(w, "+PONG\r\n")
		case "AUTH":
			pass, u := args[len(args)-1], ""
			if len(args) == 3 {
				u = args[1]
			}
			if pass != token || (len(args) == 3 && u != user) {
				_, _ = io.WriteString(w, "-WRONGPASS invalid username-password pair\r\n")
				return errors.New("the replica sent the wrong masterauth")
			}
			authed = true
			_, err = io.WriteString(w, "+OK\r\n")
		case "REPLCONF":
			for i := 1; i+1 < len(args); i += 2 {
				if strings.EqualFold(args[i], "capa") && strings.EqualFold(args[i+1], "eof") {
					eof = true
				}
			}
			_, err = io.WriteString(w, "+OK\r\n")
		case "PSYNC", "SYNC":
			if !authed {
				_, _ = io.WriteString(w, "-NOAUTH Authentication required.\r\n")
				return errors.New("the replica did not authenticate")
			}
			if !eof {
				return errors.New("the replica cannot take a diskless transfer (Redis 4 or newer can)")
			}
			_, err = fmt.Fprintf(w, "+FULLRESYNC %s 0\r\n", randomHex(20))
			return err
		default:
			_, err = fmt.Fprintf(w, "-ERR unexpected %s\r\n", args[0])
		}
		if err != nil {
			return err
		}
	}
}

// sendRDB writes the wanted keys of r as an RDB file between EOF marks.
func sendRDB(ctx context.Context, r io.Reader, conn net.Conn, opts ServeOptions, st *load.Stats) error {
	mark := randomHex(20)
	bw := bufio.NewWriterSize(conn, 256<<10)
	if _, err := bw.WriteString("$EOF:" + mark + "\r\n"); err != nil {
		return fmt.Errorf("send to replica: %w", err)
	}
	version := opts.RDBVersion
	if opts.Target != nil && !opts.Target.Reads(version) {
		version = opts.Target.WriteVersion() // the payloads are converted to it (load.Keys.Converted)
	}
	w, err := rdb.NewWriter(bw, version)
	if err != nil {
		return err
	}
	keys := load.NewKeys(r, opts.Selection, st)
	db := -1
	// Keys of the current database are counted here and added to st.Keys when it changes: a
	// map update per key was 2% of a restore's CPU.
	var inDB int64
	defer func() {
		if db >= 0 {
			st.Keys[db] += inDB
		}
	}()
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if opts.Progress != nil {
				opts.Progress.Keys.Store(st.Total)
				opts.Progress.Bytes.Store(st.Bytes)
			}
		}
		rec, err := keys.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if !keys.Keep() {
			continue // the next record skips the payload
		}
		// The decoder's buffer grows exactly, not doubled: after a key of 20 MB a doubling
		// buffer would hold 50 MB for the next big key, which is what the runner's memory
		// limit is about.
		payload, keep, err := keys.Converted()
		if err != nil {
			return err
		}
		if !keep {
			continue // the target cannot hold it, and DropLossy said to skip such values
		}
		// A value the target's loader would crash on never reaches it: the load is all or
		// nothing, so refusing here leaves the target as it was.
		if err := rdb.Validate(payload); err != nil {
			return fmt.Errorf("read snapshot: key %q of database %d: %w", rec.Key, rec.DB, err)
		}
		if opts.RefuseDuplicates != nil {
			if err := opts.RefuseDuplicates.Add(rec.DB, rec.Key); err != nil {
				return fmt.Errorf("read snapshot: %w", err)
			}
		}
		if rec.DB != db {
			if db >= 0 {
				st.Keys[db] += inDB
			}
			db, inDB = rec.DB, 0
			if err := w.SelectDB(db, opts.KeysHint[db], 0); err != nil {
				return fmt.Errorf("send to replica: %w", err)
			}
		}
		if err := w.Add(rec.Key, rec.ExpireAt, payload); err != nil {
			if errors.Is(err, rdb.ErrPayload) {
				return fmt.Errorf("read snapshot: %w", err)
			}
			return fmt.Errorf("send to replica: %w", err)
		}
		inDB++
		st.Total++
	}
	// Only a stream read to its verified end gets the EOF opcode, checksum and mark that make
	// the target accept the file.
	if err := w.Close(); err != nil {
		return fmt.Errorf("send to replica: %w", err)
	}
	if _, err := io.WriteString(bw, mark); err != nil {
		return fmt.Errorf("send to replica: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("send to replica: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress.Keys.Store(st.Total)
		opts.Progress.Bytes.Store(st.Bytes)
	}
	return nil
}

// waitLoaded waits for the replica's first REPLCONF ACK, which it sends once the data is loaded.
// While it loads, it sends bare newlines to keep the link alive. A replica that fails to load
// closes the connection instead. The wait has no overall deadline, because a big dataset takes
// as long as it takes to load, but it has a progress check: the link is a linkConn, so a
// replica that sends nothing, not even its once-a-second newline, for the read timeout (a
// stopped or hung server, a dead link) fails the wait instead of hanging the restore.
func waitLoaded(br *bufio.Reader, rd *resp.Reader) error {
	for {
		if b, err := br.Peek(1); err == nil && b[0] == '\n' {
			_, _ = br.Discard(1)
			continue
		}
		args, err := readCommand(rd)
		if err != nil {
			return err
		}
		if len(args) >= 2 && strings.EqualFold(args[0], "REPLCONF") && strings.EqualFold(args[1], "ACK") {
			return nil
		}
	}
}

// checkMaxmemory fails when the loaded data exceeds the target's maxmemory: a replica loads
// regardless of it, but the promoted server would evict or refuse writes.
func checkMaxmemory(ctx context.Context, c *redis.Client) error {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return fmt.Errorf("read memory info: %w", err)
	}
	var used, limit int64
	for line := range strings.Lines(info) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "used_memory":
			used, _ = strconv.ParseInt(v, 10, 64)
		case "maxmemory":
			limit, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if limit > 0 && used > limit {
		return fmt.Errorf("the restored data uses %d bytes, more than maxmemory %d: raise maxmemory before the server evicts keys or refuses writes", used, limit)
	}
	return nil
}

// readCommand reads one command (an array of bulk strings) sent by the replica.
func readCommand(rd *resp.Reader) ([]string, error) {
	n, err := rd.ReadArrayLen()
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 64 {
		return nil, fmt.Errorf("%w: command of %d arguments", resp.ErrProtocol, n)
	}
	args := make([]string, n)
	var b []byte
	for i := range args {
		if b, _, err = rd.AppendBulkReply(b[:0]); err != nil {
			return nil, err
		}
		args[i] = string(b)
	}
	return args, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// linkTimeout is how long the replication link may carry nothing before the runner calls the
// target stalled: the connection's read timeout (--redis-read-timeout), as for every other
// wait on Redis.
func linkTimeout(o redisconn.Options) time.Duration {
	if o.ReadTimeout > 0 {
		return o.ReadTimeout
	}
	return redisconn.DefaultReadTimeout
}

// ErrLinkStalled is wrapped by the error of a replication link that carried nothing for the
// read timeout.
var ErrLinkStalled = errors.New("the server or the link to it stalled")

// linkConn is the runner's side of the replication link. Every Read and Write may wait at most
// timeout, counted from its start: an idle deadline, so a transfer or a load of any size goes on
// while bytes move (a loading replica sends a newline every second), but a target that is
// stopped, hung or cut off without a reset fails the restore instead of blocking it forever in
// a write (the socket buffers full) or in waitLoaded.
type linkConn struct {
	net.Conn
	timeout time.Duration
	target  string
	// ctx is the restore's: once it is done, the deadline in the past that cancellation set
	// must not be pushed into the future again.
	ctx context.Context
}

func (c *linkConn) Read(p []byte) (int, error) {
	if c.ctx.Err() == nil {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Read(p)
	return n, c.explain(err, "sent nothing")
}

func (c *linkConn) Write(p []byte) (int, error) {
	if c.ctx.Err() == nil {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	n, err := c.Conn.Write(p)
	return n, c.explain(err, "took no data")
}

func (c *linkConn) explain(err error, what string) error {
	if err != nil && c.ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("the replication link to %s %s for %s (%w): %w", c.target, what, c.timeout, ErrLinkStalled, err)
	}
	return err
}

// markerPrefix starts the masteruser a replication restore sets on the target for its duration
// (when the target has none): it marks the target as being restored by a runner, and the rest of
// it names the other settings the runner changed, so that the next command can put back what a
// runner that died (SIGKILL, a deleted Pod, a lost node) left behind. A Redis server keeps
// nothing else about where its master came from.
const markerPrefix = "stash-runner-restore"

// Marker is what a replication restore records on its target in masteruser.
type Marker struct {
	// SetMasterauth: the target had no masterauth and got a random one.
	SetMasterauth bool
	// SetDisklessLoad: repl-diskless-load was "disabled" and is "on-empty-db".
	SetDisklessLoad bool
}

// String is the masteruser value, e.g. stash-runner-restore+masterauth+repl-diskless-load.
func (m Marker) String() string {
	s := markerPrefix
	if m.SetMasterauth {
		s += "+masterauth"
	}
	if m.SetDisklessLoad {
		s += "+repl-diskless-load"
	}
	return s
}

// ParseMarker reads a masteruser value; ok is false unless a replication restore set it.
func ParseMarker(masteruser string) (m Marker, ok bool) {
	rest, ok := strings.CutPrefix(masteruser, markerPrefix)
	if !ok {
		return Marker{}, false
	}
	for part := range strings.SplitSeq(rest, "+") {
		switch part {
		case "":
		case "masterauth":
			m.SetMasterauth = true
		case "repl-diskless-load":
			m.SetDisklessLoad = true
		default:
			return Marker{}, false
		}
	}
	return m, true
}

// Undo puts back on c what a replication restore that carried this marker changed: the
// target's replication (REPLICAOF NO ONE), repl-diskless-load, masterauth and, last, the marker
// itself, so that an undo cut short is found again by the next command.
func (m Marker) Undo(ctx context.Context, c *redis.Client) error {
	if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return fmt.Errorf("replicaof no one: %w", err)
	}
	if m.SetDisklessLoad {
		if err := c.ConfigSet(ctx, "repl-diskless-load", "disabled").Err(); err != nil {
			return fmt.Errorf("put back repl-diskless-load: %w", err)
		}
	}
	if m.SetMasterauth {
		if err := c.ConfigSet(ctx, "masterauth", "").Err(); err != nil {
			return fmt.Errorf("remove the runner's masterauth: %w", err)
		}
	}
	if err := c.ConfigSet(ctx, "masteruser", "").Err(); err != nil {
		return fmt.Errorf("remove the runner's masteruser: %w", err)
	}
	return nil
}
