// Package redisconn turns connection settings (URL, credentials, TLS files) into Redis connections:
// a go-redis client for control commands and raw RESP connections for the DUMP/RESTORE hot paths.
// Both kinds are built from the same Options so that authentication and TLS behave identically.
package redisconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/resp"
)

// Parallel connections of a dump or a restore. The default was measured with bench/ on 2 cores:
// more connections keep Redis busy while the runner encodes. MaxWorkers bounds what a user may
// ask for, because each worker holds its own batches in memory and a connection on the server.
const (
	DefaultWorkers = 4
	MaxWorkers     = 64
)

// ClampWorkers maps 0 or less to DefaultWorkers and caps n at MaxWorkers, for library callers
// that did not check the value (the runner's flags refuse one outside 1..MaxWorkers).
func ClampWorkers(n int) int {
	switch {
	case n <= 0:
		return DefaultWorkers
	case n > MaxWorkers:
		return MaxWorkers
	}
	return n
}

// Options says how to reach and authenticate to one Redis server.
type Options struct {
	// Network is "tcp" or "unix".
	Network string
	// Addr is host:port, or a socket path for unix.
	Addr     string
	Username string
	Password string
	// DB is the database the URL names (redis://host:port/N, unix:///path?db=N); DBInURL says
	// that it named one. The runner selects databases itself: the CLI turns it into --databases N.
	DB      int
	DBInURL bool
	// TLS is nil for plain connections.
	TLS *tls.Config
	// ServerNameFixed says that TLS.ServerName was given explicitly; otherwise it is the host of
	// Addr and follows the address to other cluster nodes or to the master a Sentinel names.
	ServerNameFixed bool
	// DialTimeout bounds connecting and authenticating; 0 means 10 s.
	DialTimeout time.Duration
	// ReadTimeout bounds every wait for a reply: a control command's, and each read of a bulk
	// transfer (while bytes keep arriving a transfer of any size goes on). A stalled server (a
	// stopped process, a dead link without a reset) is then detected instead of hanging the
	// runner. 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
	// ReadOnly sends READONLY after connecting, so that a cluster replica serves reads of its
	// master's keys instead of redirecting them.
	ReadOnly bool
}

// TLSOptions are the TLS flags of the runner.
type TLSOptions struct {
	CAFile, CertFile, KeyFile, ServerName string
	// InsecureSkipVerify disables certificate verification; callers must warn loudly.
	InsecureSkipVerify bool
}

// DefaultReadTimeout is how long the runner waits for a reply before it calls the server
// stalled. It is long because Redis is single-threaded: a DUMP or RESTORE of a huge key, or a
// FLUSHDB of a big database, keeps the server silent for as long as it runs. Redis' own
// repl-timeout is 60 s.
const DefaultReadTimeout = 2 * time.Minute

// ParseURL parses redis://[user:pass@]host:port[/db], rediss://... (TLS) and unix:///path[?db=N].
// userPassInURL reports whether the URL carried a password, so the caller can warn that it is
// visible in the process arguments. Errors never contain the URL's user information: a URL that
// does not parse is shown with it replaced by "redacted".
func ParseURL(raw string) (o Options, passwordInURL bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Options{}, false, parseError(raw)
	}
	if u.User != nil {
		_, passwordInURL = u.User.Password()
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		// Without "://" the scheme may be a user name ("alice:pass@host"): it is not repeated.
		return Options{}, false, fmt.Errorf("parse redis url %s: it must start with redis://, rediss:// or unix://", RedactURL(raw))
	}
	ro, err := redis.ParseURL(raw)
	if err != nil {
		// go-redis' own errors name the path or the query, never the user information.
		return Options{}, false, fmt.Errorf("parse redis url %s: %w", RedactURL(raw), err)
	}
	o = Options{Network: ro.Network, Addr: ro.Addr, Username: ro.Username, Password: ro.Password, DB: ro.DB}
	o.DBInURL = strings.Trim(u.Path, "/") != "" && u.Scheme != "unix" || u.Query().Has("db")
	if u.Scheme == "rediss" {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	}
	return o, passwordInURL, nil
}

// parseError explains why raw is not a URL without repeating its user information: url.Parse's
// error quotes the whole URL, and its reason can quote part of a password (an "invalid port"
// after "user:pass" without "@", a bad escape inside the password).
func parseError(raw string) error {
	red := RedactURL(raw)
	if _, err := url.Parse(red); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("parse redis url %s: %w", red, err)
	}
	return fmt.Errorf("parse redis url %s: the user or password part is not valid in a URL (percent-encode special characters, or pass the password in $REDIS_PASSWORD)", red)
}

// RedactURL returns raw with its user information replaced by "redacted", whether or not raw
// parses; it is for showing a URL that may carry credentials (v1alpha1.RedactURL, the one
// redaction of every program).
func RedactURL(raw string) string { return v1alpha1.RedactURL(raw) }

// WithAddr returns o pointed at another TCP address with the same credentials and TLS settings;
// the TLS server name follows the address unless it was given explicitly.
func (o Options) WithAddr(addr string) Options {
	o.Network, o.Addr, o.DB = "tcp", addr, 0
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
		if !o.ServerNameFixed {
			o.TLS.ServerName, _, _ = net.SplitHostPort(addr)
		}
	}
	return o
}

// ConfigureTLS applies the TLS flags. Any TLS flag turns TLS on, even for a redis:// URL.
func (o *Options) ConfigureTLS(t TLSOptions) error {
	if t == (TLSOptions{}) {
		return nil
	}
	if o.TLS == nil {
		host, _, _ := net.SplitHostPort(o.Addr)
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if t.ServerName != "" {
		o.TLS.ServerName = t.ServerName
		o.ServerNameFixed = true
	}
	o.TLS.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("read tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls ca file %q contains no PEM certificate", t.CAFile)
		}
		o.TLS.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("a TLS client certificate and its key must be given together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("load tls client certificate: %w", err)
		}
		o.TLS.Certificates = []tls.Certificate{cert}
	}
	return nil
}

func (o Options) dialTimeout() time.Duration {
	if o.DialTimeout > 0 {
		return o.DialTimeout
	}
	return 10 * time.Second
}

func (o Options) readTimeout() time.Duration {
	if o.ReadTimeout > 0 {
		return o.ReadTimeout
	}
	return DefaultReadTimeout
}

// Client returns a go-redis client for control commands (INFO, DBSIZE, FLUSHDB, ...). It dials
// through the same path as Dial, so a rediss:// URL to a plain-text server fails the same way.
func (o Options) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: db,
		Dialer: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return o.dialNet(ctx, false)
		},
		DialTimeout: o.dialTimeout(), PoolSize: 2,
		ReadTimeout: o.readTimeout(), WriteTimeout: -1, Protocol: 2, DisableIdentity: true,
	})
}

// dialNet connects and, for TLS, completes the handshake. With idleReads every Read of the
// returned connection fails after ReadTimeout without a byte (go-redis sets its own deadlines).
func (o Options) dialNet(ctx context.Context, idleReads bool) (net.Conn, error) {
	d := net.Dialer{Timeout: o.dialTimeout(), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, o.Network, o.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to redis %s: %w", o.Addr, err)
	}
	if idleReads {
		nc = &idleConn{Conn: nc, timeout: o.readTimeout(), ctx: ctx}
	}
	if o.TLS == nil {
		return nc, nil
	}
	tc := tls.Client(nc, o.TLS)
	if err := o.handshake(ctx, tc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("tls handshake with redis %s: %w", o.Addr, err)
	}
	return tc, nil
}

// plainProbeAfter is how long a TLS handshake may wait for the server's first reply before the
// runner checks, on a second connection, whether the server speaks plain text.
const plainProbeAfter = 300 * time.Millisecond

// ErrPlainText is returned when a TLS connection was asked for and the server speaks plain RESP.
var ErrPlainText = errors.New("the server answers in plain text, not TLS")

// handshake runs the TLS handshake. A plain-text Redis reads a ClientHello as the start of an
// inline command and never answers, so a handshake that has no answer after plainProbeAfter is
// raced against a PING on a plain connection: a RESP reply to it ends the wait at once.
func (o Options) handshake(ctx context.Context, tc *tls.Conn) error {
	pctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	hctx, cancel := context.WithTimeout(pctx, o.dialTimeout())
	defer cancel()
	probe := time.AfterFunc(plainProbeAfter, func() {
		if speaksPlainText(hctx, o) {
			stop(ErrPlainText)
		}
	})
	err := tc.HandshakeContext(hctx)
	probe.Stop()
	switch {
	case err == nil:
		return nil
	case errors.Is(context.Cause(pctx), ErrPlainText):
		return fmt.Errorf("%w (use redis:// instead of rediss://, or point the URL at the server's TLS port)", ErrPlainText)
	}
	return ExplainTLS(err)
}

// speaksPlainText sends PING on a plain connection to the server and reports whether a RESP
// reply (+PONG, or an error such as -NOAUTH) comes back. A TLS server answers with an alert
// record or closes the connection instead.
func speaksPlainText(ctx context.Context, o Options) bool {
	d := net.Dialer{Timeout: o.dialTimeout()}
	nc, err := d.DialContext(ctx, o.Network, o.Addr)
	if err != nil {
		return false
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(nc, "PING\r\n"); err != nil {
		return false
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return false
	}
	return b[0] == '+' || b[0] == '-'
}

// idleConn fails a Read that waits longer than timeout for its first byte. The deadline is set
// at each Read, so time spent elsewhere (compressing, uploading) never counts, and a transfer
// of any size goes on while bytes arrive.
type idleConn struct {
	net.Conn
	timeout time.Duration
	// ctx is the connection's context: once it is done, the deadline in the past that
	// cancellation set must not be pushed into the future again.
	ctx context.Context
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	if c.ctx.Err() != nil {
		_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	n, err := c.Conn.Read(p)
	if err == nil || c.ctx.Err() != nil {
		return n, err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("no reply from redis %s in %s (the server or the link to it stalled): %w", c.RemoteAddr(), c.timeout, err)
	}
	return n, c.explain(err)
}

func (c *idleConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil || c.ctx.Err() != nil {
		return n, err
	}
	return n, c.explain(err)
}

// ErrClosedByServer matches the error of a read or write on a connection that the server (or
// something on the link) closed or reset.
var ErrClosedByServer = errors.New("the server closed the connection")

// closedError names the server and what happened when a connection ends under the runner. A
// server never ends a connection the runner still uses: it exited, was killed, dropped the
// client (CLIENT KILL, an output buffer limit) or the link was cut. Without it the error was a
// bare "EOF" (which the RESP reader turns into "unexpected EOF") or a socket error without the
// server's name. It does not unwrap to io.EOF, so no reader takes it for a clean end (nothing
// read from a server ends cleanly that way) and none replaces it with a bare unexpected EOF.
type closedError struct {
	addr  net.Addr
	reset bool
	err   error
}

func (e *closedError) Error() string {
	if e.reset {
		return fmt.Sprintf("redis %s reset the connection (the server died or the link to it was cut): %v", e.addr, e.err)
	}
	return fmt.Sprintf("redis %s closed the connection (the server exited or dropped the client, or the link to it was cut): %v", e.addr, e.err)
}

func (e *closedError) Is(target error) bool { return target == ErrClosedByServer }

// Unwrap gives the socket error of a reset (ECONNRESET, EPIPE), never io.EOF.
func (e *closedError) Unwrap() error {
	if e.err == io.EOF {
		return nil
	}
	return e.err
}

func (c *idleConn) explain(err error) error {
	switch {
	case err == io.EOF, errors.Is(err, syscall.EPIPE):
		return &closedError{addr: c.RemoteAddr(), err: err}
	case errors.Is(err, syscall.ECONNRESET):
		return &closedError{addr: c.RemoteAddr(), reset: true, err: err}
	}
	return err
}

// Conn is a raw RESP connection used for pipelined bulk transfers.
type Conn struct {
	nc   net.Conn
	R    *resp.Reader
	W    *bufio.Writer
	stop func() bool
	ctx  context.Context
	buf  []byte
}

// Dial connects, authenticates and selects db. The connection is closed when ctx is cancelled,
// which unblocks any read or write in progress.
//
// Every read waits at most ReadTimeout for a byte, so a stalled server fails the transfer.
func (o Options) Dial(ctx context.Context, db int) (*Conn, error) {
	nc, err := o.dialNet(ctx, true)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		nc:  nc,
		R:   resp.NewReader(bufio.NewReaderSize(nc, 256<<10)),
		W:   bufio.NewWriterSize(nc, 256<<10),
		ctx: ctx,
	}
	c.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	if o.Password != "" {
		args := []string{"AUTH", o.Password}
		if o.Username != "" {
			args = []string{"AUTH", o.Username, o.Password}
		}
		if err := c.Simple(args...); err != nil {
			c.Close()
			return nil, fmt.Errorf("authenticate to redis %s: %w", o.Addr, err)
		}
	}
	if o.ReadOnly {
		if err := c.Simple("READONLY"); err != nil {
			c.Close()
			return nil, fmt.Errorf("readonly on redis %s: %w", o.Addr, err)
		}
	}
	if err := c.Select(db); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Select switches the connection to database db.
func (c *Conn) Select(db int) error {
	if err := c.Simple("SELECT", strconv.Itoa(db)); err != nil {
		return fmt.Errorf("select database %d: %w", db, err)
	}
	return nil
}

// Simple sends one command and expects a status reply.
func (c *Conn) Simple(args ...string) error {
	c.buf = resp.AppendCommand(c.buf[:0], args...)
	if _, err := c.W.Write(c.buf); err != nil {
		return c.Err(err)
	}
	if err := c.W.Flush(); err != nil {
		return c.Err(err)
	}
	return c.Err(c.R.ReadOK())
}

// Err replaces a network error caused by cancellation with the context's error.
func (c *Conn) Err(err error) error {
	if err != nil && c.ctx.Err() != nil {
		var re resp.Error
		if !errors.As(err, &re) {
			return c.ctx.Err()
		}
	}
	return err
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.stop()
	return c.nc.Close()
}

// Why a server's certificate was refused (TLSVerifyError.Reason).
const (
	// TLSUnknownAuthority: the certificate is not signed by a trusted CA.
	TLSUnknownAuthority = "the server certificate is not signed by a trusted CA"
	// TLSWrongName: the certificate does not name the server as it was reached.
	TLSWrongName = "the server certificate does not name the server"
)

// TLSVerifyError is a server certificate refused for Reason (TLSUnknownAuthority or
// TLSWrongName); the callers say which setting fixes it.
type TLSVerifyError struct {
	Err    error
	Reason string
}

func (e *TLSVerifyError) Error() string { return fmt.Sprintf("%v (%s)", e.Err, e.Reason) }
func (e *TLSVerifyError) Unwrap() error { return e.Err }

// ExplainTLS turns certificate verification failures into a *TLSVerifyError.
func ExplainTLS(err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua) || (errors.As(err, &cv) && strings.Contains(err.Error(), "unknown authority")):
		return &TLSVerifyError{Err: err, Reason: TLSUnknownAuthority}
	case errors.As(err, &hn):
		return &TLSVerifyError{Err: err, Reason: TLSWrongName}
	}
	return err
}

// SentinelNotDataNodeError is a Sentinel reached where a data node was expected: the
// master set to ask it for was not named.
type SentinelNotDataNodeError struct{ Addr string }

func (e *SentinelNotDataNodeError) Error() string {
	return fmt.Sprintf("redis %s is a Sentinel, not a data node: name the master set to restore into or back up", e.Addr)
}

// ErrNoMasterName is Sentinel mode without the name of the master set.
var ErrNoMasterName = errors.New("sentinel mode needs the master set name")

// ModeCluster is INFO's redis_mode (Redis) or server_mode (Valkey) on a node of a cluster.
const ModeCluster = "cluster"

// ServerInfo is what the runner needs to know about a server: what it is (Product, versions,
// Mode) and what it holds. Its methods (capabilities.go) say what follows from that, so that
// every path asks them instead of reading INFO fields of its own.
type ServerInfo struct {
	// Version is INFO's redis_version: Redis's version, or the Redis version Valkey claims
	// compatibility with (7.2.4), which says nothing about what Valkey reads and writes.
	Version string
	// ValkeyVersion is set for Valkey (valkey_version).
	ValkeyVersion string
	// ServerName is INFO's server_name ("valkey"); Redis has none.
	ServerName string
	// Mode is standalone, cluster or sentinel: redis_mode on Redis, server_mode on Valkey.
	Mode string
	// ClusterDatabases is the number of databases of a cluster node (Valkey 9's
	// cluster-databases); 1 where the server has only database 0 in cluster mode.
	ClusterDatabases int
	// Keys per database from INFO keyspace.
	Keys map[int]int64
	// Expires per database from INFO keyspace.
	Expires map[int]int64
	// Databases is the "databases" config value if readable, else 16.
	Databases int
}

// Inspect reads INFO server and keyspace.
func Inspect(ctx context.Context, c *redis.Client) (ServerInfo, error) {
	txt, err := c.Info(ctx, "server", "keyspace").Result()
	if err != nil {
		return ServerInfo{}, fmt.Errorf("read redis info: %w", ExplainTLS(err))
	}
	si := ParseInfo(txt)
	si.Databases, si.ClusterDatabases = 16, 1
	if v, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if n, err := strconv.Atoi(v["databases"]); err == nil && n > 0 {
			si.Databases = n
		}
	}
	if si.Mode == ModeCluster {
		// Valkey 9 has numbered databases in cluster mode too; a server without the setting
		// (Redis, Valkey 8) answers with nothing.
		if v, err := c.ConfigGet(ctx, "cluster-databases").Result(); err == nil {
			if n, err := strconv.Atoi(v["cluster-databases"]); err == nil && n > 0 {
				si.ClusterDatabases = n
			}
		}
	}
	return si, nil
}

// ConnectOptions say which server Connect reaches and what it must be.
type ConnectOptions struct {
	Redis Options
	// Sentinel, when set, names the master set whose master (or replica) is the data node;
	// Redis then carries the data nodes' credentials and TLS settings.
	Sentinel *Sentinel
	// Replica asks the Sentinel for a healthy replica instead of the master.
	Replica bool
	// Mode is what the server must run as: "" (anything but a Sentinel), "standalone" or
	// "cluster" (see CheckMode).
	Mode string
}

// Node is a connected data node: the options that reach it (after Sentinel resolution), a client
// on its database 0, and its INFO. The caller closes Client.
type Node struct {
	Redis  Options
	Client *redis.Client
	Info   ServerInfo
}

// Connect opens a client on database 0 of the data node: opts.Redis itself, or the master (a
// replica if opts.Replica) that opts.Sentinel names. It reads the node's INFO and fails if its
// mode is not opts.Mode.
func Connect(ctx context.Context, opts ConnectOptions) (Node, error) {
	o := opts.Redis
	if opts.Sentinel != nil {
		var err error
		if o, err = o.ResolveSentinel(ctx, *opts.Sentinel, opts.Replica); err != nil {
			return Node{Redis: o}, err
		}
	}
	c := o.Client(0)
	info, err := Inspect(ctx, c)
	if err == nil {
		err = info.CheckMode(o.Addr, opts.Mode)
	}
	if err != nil {
		c.Close()
		return Node{Redis: o}, err
	}
	return Node{Redis: o, Client: c, Info: info}, nil
}

// ParseInfo extracts version, mode and keyspace from an INFO reply.
func ParseInfo(txt string) ServerInfo {
	si := ServerInfo{Keys: map[int]int64{}, Expires: map[int]int64{}}
	for line := range strings.Lines(txt) {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case k == "redis_version":
			si.Version = v
		case k == "valkey_version":
			si.ValkeyVersion = v
		case k == "server_name":
			si.ServerName = v
		case k == "redis_mode", k == "server_mode": // Valkey has only server_mode
			si.Mode = v
		case strings.HasPrefix(k, "db"):
			db, err := strconv.Atoi(k[2:])
			if err != nil {
				continue
			}
			for f := range strings.SplitSeq(v, ",") {
				fk, fv, _ := strings.Cut(f, "=")
				n, _ := strconv.ParseInt(fv, 10, 64)
				switch fk {
				case "keys":
					si.Keys[db] = n
				case "expires":
					si.Expires[db] = n
				}
			}
		}
	}
	return si
}

// CheckMode fails when the server's mode (from INFO) is not the one the caller expects: want is
// "" (anything but a Sentinel), "standalone" or "cluster". A Sentinel is never a data source.
func (si ServerInfo) CheckMode(addr, want string) error {
	got := si.Mode
	if got == "" {
		got = "standalone"
	}
	switch {
	case got == "sentinel":
		return &SentinelNotDataNodeError{Addr: addr}
	case want != "" && want != got:
		return fmt.Errorf("redis %s runs in %s mode, but %s mode was asked for (fix the target's mode, or leave it empty to detect it)", addr, got, want)
	}
	return nil
}

// VersionAtLeast reports whether version (e.g. "7.0.15") is at least major.minor.
func VersionAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(parts[1])
	return ma > major || (ma == major && mi >= minor)
}
