// Package replication speaks Redis replication with a Redis server. Serve (serve.go) is the
// master side: it serves a snapshot stream to an empty standalone target as the RDB file of a full
// resynchronization, the "replication" method of runner/restore, which Redis loads about twice as
// fast as RESTORE commands.
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

	// Settings changed for the duration are put back, also when ctx is cancelled.
	var undo []func(context.Context) error
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](uctx); uerr != nil && err == nil {
				err = uerr
			}
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
	if token == "" {
		token = randomHex(20)
		if err := setConfig("masterauth", token, ""); err != nil {
			return st, err
		}
	}
	if loadCfg["repl-diskless-load"] == "disabled" {
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
		st.Keys, st.Total = map[int]int64{}, 0
		return st, fmt.Errorf("%w (the load was aborted: %s discards what it received)", err, opts.Redis.Addr)
	}
	if err := waitLoaded(br, rd); err != nil {
		st.Keys, st.Total = map[int]int64{}, 0
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, fmt.Errorf("%s did not load the snapshot (its log says why): %w", opts.Redis.Addr, err)
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
		if rec.DB != db {
			db = rec.DB
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
		st.Keys[db]++
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
// closes the connection instead.
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
