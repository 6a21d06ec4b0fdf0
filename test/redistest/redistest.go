// Package redistest runs real redis-server processes for tests.
//
// Each server gets its own port (and optionally a unix socket and a TLS port) and directory, runs
// with persistence off and DEBUG enabled so that DEBUG DIGEST can prove byte-exact round trips, and
// is stopped in t.Cleanup. A missing redis-server fails the test: CI must never silently skip
// the tier that exercises real Redis.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/test/testproc"
)

// Option configures a server started by Start: a With... function or a Flavor.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Flavor is a server program tests can run. Redis 7.0 comes from the machine's Debian, Redis 8.0
// and Valkey 8.1 from Debian trixie, the newest Redis 8.0.x and Valkey 9.x from Debian sid, each run
// with its suite's loader through the wrappers that `hack/tools.sh trixie|sid` writes into the tool
// cache. sid moves: a test that needs a feature asks the server for it, never for a version string.
type Flavor struct {
	// Name is how tests name the server: "redis-7.0", "redis-8.0", "valkey-8.1", "redis-sid", "valkey-sid".
	Name string
	// Server and CLI are the names of the server and client programs.
	Server, CLI string
	// Install is the command that installs them.
	Install string
}

func (f Flavor) apply(c *config) { c.flavor = f }

// The servers tests can start; Redis70 is the default.
var (
	Redis70  = Flavor{Name: "redis-7.0", Server: "redis-server", CLI: "redis-cli", Install: "hack/tools.sh redis"}
	Redis80  = Flavor{Name: "redis-8.0", Server: "redis-server-8.0", CLI: "redis-cli-8.0", Install: "hack/tools.sh trixie"}
	Valkey81 = Flavor{Name: "valkey-8.1", Server: "valkey-server-8.1", CLI: "valkey-cli-8.1", Install: "hack/tools.sh trixie"}
	// RedisSid and ValkeySid are Debian sid's newest Redis 8.0.x and Valkey 9.x.
	RedisSid  = Flavor{Name: "redis-sid", Server: "redis-server-sid", CLI: "redis-cli-sid", Install: "hack/tools.sh sid"}
	ValkeySid = Flavor{Name: "valkey-sid", Server: "valkey-server-sid", CLI: "valkey-cli-sid", Install: "hack/tools.sh sid"}
	// Flavors lists every server above, oldest first.
	Flavors = []Flavor{Redis70, Redis80, Valkey81}
)

type config struct {
	port     int
	flavor   Flavor
	password string
	lines    []string
	unix     bool
	tls      *Certs
	cluster  bool
	sentinel bool
}

// WithPort listens on port instead of a free port of its own, for a test that names the
// address before the server runs (a Redis that is down, then back).
func WithPort(port int) Option { return optionFunc(func(c *config) { c.port = port }) }

// WithPassword sets requirepass; the returned Client authenticates with it.
func WithPassword(pw string) Option { return optionFunc(func(c *config) { c.password = pw }) }

// WithACLUser adds an ACL rule line as in a config file, e.g. "alice on >pw ~* +@all -dump".
func WithACLUser(rule string) Option {
	return optionFunc(func(c *config) { c.lines = append(c.lines, "user "+rule) })
}

// WithConfig adds a config file directive, e.g. WithConfig("maxmemory", "100mb").
func WithConfig(name string, values ...string) Option {
	return optionFunc(func(c *config) { c.lines = append(c.lines, name+" "+strings.Join(quoteAll(values), " ")) })
}

// WithUnixSocket also listens on a unix socket (Server.Socket).
func WithUnixSocket() Option { return optionFunc(func(c *config) { c.unix = true }) }

// WithTLS also listens on a TLS port (Server.TLSAddr) with the server certificate of certs.
// Clients may present a certificate signed by the CA but need not.
func WithTLS(certs *Certs) Option { return optionFunc(func(c *config) { c.tls = certs }) }

// Server is a running redis-server.
type Server struct {
	// Addr is the plain TCP address 127.0.0.1:port.
	Addr string
	// Port is the plain TCP port.
	Port int
	// TLSAddr is the TLS address when started WithTLS.
	TLSAddr string
	// Socket is the unix socket path when started WithUnixSocket.
	Socket string
	// Dir is the server's working directory (log file: Dir/redis.log).
	Dir string
	// Password is the requirepass value, if any.
	Password string
	// Client is an administrative client on database 0.
	Client *redis.Client
	// Flavor is the server program that runs.
	Flavor Flavor

	bin      string
	cmd      *exec.Cmd
	done     chan struct{}
	stopOnce sync.Once
}

// Binary returns the path of the named Redis tool (redis-server, redis-cli) or fails the test.
func Binary(t testing.TB, name string) string {
	t.Helper()
	return testproc.Binary(t, name, "hack/tools.sh redis")
}

// Start runs a redis-server (or the Flavor among opts) and waits until it answers PING.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{flavor: Redis70}
	for _, o := range opts {
		o.apply(&cfg)
	}
	bin := testproc.Binary(t, cfg.flavor.Server, cfg.flavor.Install)
	if cfg.sentinel {
		bin = Binary(t, "redis-sentinel")
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin, &cfg)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, cfg *config) (*Server, error) {
	dir := t.TempDir()
	port, err := cfg.port, error(nil)
	switch {
	case port != 0:
	case cfg.cluster:
		port, err = testproc.ClusterPort()
	default:
		port, err = testproc.FreePort()
	}
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, Dir: dir, Password: cfg.password, Flavor: cfg.flavor, bin: bin}
	lines := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"daemonize no",
		"dir " + quote(dir),
		"logfile " + quote(filepath.Join(dir, "redis.log")),
	}
	if !cfg.sentinel {
		lines = append(lines, "save \"\"", "appendonly no", "enable-debug-command yes", "repl-diskless-sync-delay 0")
	}
	if cfg.password != "" {
		lines = append(lines, "requirepass "+quote(cfg.password))
	}
	if cfg.unix {
		// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
		sd, err := os.MkdirTemp("", "rt")
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { os.RemoveAll(sd) })
		s.Socket = filepath.Join(sd, "redis.sock")
		lines = append(lines, "unixsocket "+quote(s.Socket), "unixsocketperm 700")
	}
	if cfg.tls != nil {
		tport, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tport))
		lines = append(lines,
			"tls-port "+strconv.Itoa(tport),
			"tls-cert-file "+quote(cfg.tls.ServerCertFile),
			"tls-key-file "+quote(cfg.tls.ServerKeyFile),
			"tls-ca-cert-file "+quote(cfg.tls.CAFile),
			"tls-auth-clients optional",
		)
	}
	lines = append(lines, cfg.lines...)
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	s.Client = redis.NewClient(&redis.Options{Addr: s.Addr, Password: cfg.password, Protocol: 2, DisableIdentity: true, MaxRetries: -1, ReadTimeout: 2 * time.Minute})
	t.Cleanup(func() { s.Client.Close() })
	if err := s.run(); err != nil {
		return nil, err
	}
	t.Cleanup(s.Stop)
	return s, nil
}

// run starts the process on the server's configuration file and waits until it answers PING.
func (s *Server) run() error {
	s.stopOnce = sync.Once{}
	s.done = make(chan struct{})
	s.cmd = exec.Command(s.bin, filepath.Join(s.Dir, "redis.conf"))
	s.cmd.Dir = s.Dir
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	done := s.done
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(done) }(s.cmd)
	err := testproc.Poll(15*time.Second, "redis-server on "+s.Addr+" answers PING", func() error {
		select {
		case <-done:
			return testproc.Abort(errors.New("redis-server exited during startup"))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return s.Client.Ping(ctx).Err()
	})
	if err != nil {
		s.Stop()
		return fmt.Errorf("%w; log: %s", err, s.Log())
	}
	return nil
}

// Restart kills the server if it still runs (as the storage emulators' Restart does) and starts
// it again on the same configuration file, port and directory (a restarted master: a new
// replication ID, and with persistence off no data), then waits until it answers PING.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.run(); err != nil {
		t.Fatalf("restart redis-server: %v", err)
	}
}

// CLI returns the path of the command-line client that goes with the server (redis-cli,
// valkey-cli).
func (s *Server) CLI(t testing.TB) string {
	t.Helper()
	return testproc.Binary(t, s.Flavor.CLI, s.Flavor.Install)
}

// URL returns redis://127.0.0.1:port (without credentials).
func (s *Server) URL() string { return "redis://" + s.Addr }

// Log returns the server log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// Digest returns DEBUG DIGEST: equal digests mean equal datasets (all databases, keys, values and
// expiry times). An empty server has 40 zeros.
func (s *Server) Digest(t testing.TB) string {
	t.Helper()
	d, err := s.Client.Do(context.Background(), "DEBUG", "DIGEST").Text()
	if err != nil {
		t.Fatalf("debug digest on %s: %v", s.Addr, err)
	}
	return d
}

// Kill sends SIGKILL, as a crash would, and waits for the process to exit.
func (s *Server) Kill() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	})
}

// Stop shuts the server down without saving, killing it if it does not exit promptly.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM) // save "" means SIGTERM does not save
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			<-s.done
		}
	})
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func quote(s string) string { return strconv.Quote(s) }

func quoteAll(v []string) []string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = quote(s)
	}
	return out
}

// PID returns the server's process id as it reports it (INFO server process_id): the process
// that a test stops or kills, whatever wrapper started it.
func (s *Server) PID(t testing.TB) int {
	t.Helper()
	txt, err := s.Client.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(txt) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if pid, err := strconv.Atoi(v); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no process_id in INFO server of %s", s.Addr)
	return 0
}

// Freeze stops the server with SIGSTOP, as a hung host or a stalled process would look to its
// clients, and returns thaw, which sends SIGCONT (again and again harmlessly); the test's cleanup
// thaws it too.
func (s *Server) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	pid := s.PID(t)
	thaw = func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(thaw)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP redis-server %s: %v", s.Addr, err)
	}
	return thaw
}

// ReplOffset is master_repl_offset in INFO replication of the server c talks to: how far its
// replication stream has come.
func ReplOffset(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	n, err := strconv.ParseInt(InfoField(t, c, "replication", "master_repl_offset"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
