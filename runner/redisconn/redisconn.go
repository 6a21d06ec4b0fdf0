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
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

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
	// DB is the database selected by the URL path; the runner selects databases itself.
	DB int
	// TLS is nil for plain connections.
	TLS *tls.Config
	// ServerNameFixed says that TLS.ServerName was given explicitly; otherwise it is the host of
	// Addr and follows the address to other cluster nodes or to the master a Sentinel names.
	ServerNameFixed bool
	// DialTimeout bounds connecting and authenticating; 0 means 10 s.
	DialTimeout time.Duration
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

// ParseURL parses redis://[user:pass@]host:port[/db], rediss://... (TLS) and unix:///path[?db=N].
// userPassInURL reports whether the URL carried a password, so the caller can warn that it is
// visible in the process arguments.
func ParseURL(raw string) (o Options, passwordInURL bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Options{}, false, fmt.Errorf("parse redis url: %w", err)
	}
	if u.User != nil {
		_, passwordInURL = u.User.Password()
	}
	ro, err := redis.ParseURL(raw)
	if err != nil {
		return Options{}, false, fmt.Errorf("parse redis url: %w", err)
	}
	o = Options{Network: ro.Network, Addr: ro.Addr, Username: ro.Username, Password: ro.Password, DB: ro.DB}
	if u.Scheme == "rediss" {
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	}
	return o, passwordInURL, nil
}

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
		return errors.New("--tls-cert-file and --tls-key-file must be given together")
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

// Client returns a go-redis client for control commands (INFO, DBSIZE, FLUSHDB, ...).
func (o Options) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: db,
		TLSConfig: o.TLS, DialTimeout: o.dialTimeout(), PoolSize: 2,
		ReadTimeout: -1, WriteTimeout: -1, Protocol: 2, DisableIdentity: true,
	})
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
func (o Options) Dial(ctx context.Context, db int) (*Conn, error) {
	d := net.Dialer{Timeout: o.dialTimeout(), KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, o.Network, o.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to redis %s: %w", o.Addr, err)
	}
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		hctx, cancel := context.WithTimeout(ctx, o.dialTimeout())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with redis %s: %w", o.Addr, ExplainTLS(err))
		}
		nc = tc
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

// ExplainTLS adds a hint to certificate verification failures.
func ExplainTLS(err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua) || (errors.As(err, &cv) && strings.Contains(err.Error(), "unknown authority")):
		return fmt.Errorf("%w (the server certificate is not signed by a trusted CA: pass the CA with --tls-ca-file)", err)
	case errors.As(err, &hn):
		return fmt.Errorf("%w (set --tls-server-name to a name in the certificate)", err)
	}
	return err
}

// ServerInfo is what the runner needs to know about a server.
type ServerInfo struct {
	Version string
	// Mode is standalone, cluster or sentinel.
	Mode string
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
	si.Databases = 16
	if v, err := c.ConfigGet(ctx, "databases").Result(); err == nil {
		if n, err := strconv.Atoi(v["databases"]); err == nil && n > 0 {
			si.Databases = n
		}
	}
	return si, nil
}

// Connect opens a client on database 0 of the data node: o itself, or the master (a replica if
// replica is set) that the Sentinel s names. It reads the node's INFO and fails if its mode is
// not mode (see CheckMode). It returns the data node's options with the client; the caller closes it.
func Connect(ctx context.Context, o Options, s *Sentinel, replica bool, mode string) (Options, *redis.Client, ServerInfo, error) {
	if s != nil {
		var err error
		if o, err = o.ResolveSentinel(ctx, *s, replica); err != nil {
			return o, nil, ServerInfo{}, err
		}
	}
	c := o.Client(0)
	info, err := Inspect(ctx, c)
	if err == nil {
		err = info.CheckMode(o.Addr, mode)
	}
	if err != nil {
		c.Close()
		return o, nil, ServerInfo{}, err
	}
	return o, c, info, nil
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
		case k == "redis_mode":
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
		return fmt.Errorf("redis %s is a Sentinel, not a data node: name the master set (--sentinel-master NAME, or mode sentinel with masterName in the target)", addr)
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
