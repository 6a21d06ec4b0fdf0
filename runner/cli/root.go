// Package cli holds the cobra commands of stash-runner. Commands map flags and environment onto
// the runner's library packages (backup, restore, repo) and print results; they hold no logic of
// their own that a controller would need, so the controller calls the libraries directly.
// The in-cluster commands (session.go: backup/restore --session, trigger, continuous) are the
// same over runner/session, which is why cli imports it; the conversion of retention rules
// both need lives in runner/repo (PolicyOf).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"stash.dev/redis/api/v1alpha1"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/store"
)

// Streams are the command's input and outputs; tests pass buffers.
type Streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Environment variables read by the runner. Secrets come from the environment (or files), never
// from flag values, so that they do not show in process listings.
const (
	EnvResticPassword     = v1alpha1.SecretKeyResticPassword
	EnvEncryptionPassword = v1alpha1.SecretKeyEncryptionPassword
	EnvRedisUsername      = "REDIS_USERNAME"
	EnvRedisPassword      = "REDIS_PASSWORD"
	// EnvRedisSentinelPassword authenticates to the Sentinel; without it REDIS_PASSWORD is used.
	EnvRedisSentinelPassword = "REDIS_SENTINEL_PASSWORD"
)

// repositoryURLForms are the repository URLs runner/store opens, as the help and errors name them.
const repositoryURLForms = "file:///path, gs://bucket/prefix, s3://bucket/prefix or azblob://container/prefix"

// global holds the flags shared by all commands.
type global struct {
	Streams
	getenv           func(string) string
	version          string
	repository       string
	passwordFile     string
	workFactor       int
	progressInterval time.Duration
}

// NewRootCommand returns the stash-runner command tree. getenv is os.Getenv in main.
func NewRootCommand(s Streams, getenv func(string) string, version string) *cobra.Command {
	g := &global{Streams: s, getenv: getenv, version: version}
	root := &cobra.Command{
		Use:           "stash-runner",
		Short:         "Back up and restore Redis to an encrypted repository (file://, gs://, s3://, azblob://)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	f := root.PersistentFlags()
	f.StringVar(&g.repository, "repository", "", "repository URL: "+repositoryURLForms)
	f.StringVar(&g.passwordFile, "password-file", "", "file with the repository password (default: $RESTIC_PASSWORD or $ENCRYPTION_PASSWORD)")
	f.DurationVar(&g.progressInterval, "progress-interval", 5*time.Second, "how often to print progress on stderr (0 disables)")
	f.IntVar(&g.workFactor, "kdf-work-factor", crypt.DefaultWorkFactor, "scrypt work factor (log2 N) for a new repository key")
	_ = f.MarkHidden("kdf-work-factor")
	root.AddCommand(
		newBackupCommand(g),
		newRestoreCommand(g),
		newSnapshotsCommand(g),
		newForgetCommand(g),
		newCheckCommand(g),
		newCatCommand(g),
		newImportCommand(g),
		newVersionCommand(g),
		newTriggerCommand(g),
		newFollowCommand(g),
		newContinuousCommand(g),
	)
	hintAll(root)
	return root
}

func (g *global) password() (string, error) {
	if g.passwordFile != "" {
		b, err := os.ReadFile(g.passwordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	for _, k := range v1alpha1.PasswordSecretKeys {
		if v := g.getenv(k); v != "" {
			return v, nil
		}
	}
	return "", errors.New("no repository password: set RESTIC_PASSWORD or ENCRYPTION_PASSWORD, or pass --password-file")
}

func (g *global) validateRepository() error {
	if g.repository == "" {
		return errors.New("--repository is required (" + repositoryURLForms + ")")
	}
	return nil
}

// access says how a command opens the repository.
type access int

const (
	// existing: the repository must exist, and its key is unlocked before the command runs.
	existing access = iota
	// orCreate: an empty repository is initialized (the first backup, import or follower).
	orCreate
	// unlockWhileStarting is orCreate with an existing key unlocked while the command starts
	// (repo.Options.UnlockInBackground): for backup, which stops with the key's error as soon as it is known.
	unlockWhileStarting
)

// withRepository is how every command reaches the repository: it checks --repository, opens and
// unlocks the repository as a says, runs use on it and closes it.
func withRepository[T any](ctx context.Context, g *global, a access, use func(*repo.Repository) (T, error)) (T, error) {
	var zero T
	if err := g.validateRepository(); err != nil {
		return zero, err
	}
	r, err := g.openRepo(ctx, a)
	if err != nil {
		return zero, err
	}
	defer r.Close()
	return use(r)
}

// useRepository is withRepository for a command that returns no result.
func (g *global) useRepository(ctx context.Context, a access, use func(*repo.Repository) error) error {
	_, err := withRepository(ctx, g, a, func(r *repo.Repository) (struct{}, error) { return struct{}{}, use(r) })
	return err
}

// withProgress is withRepository for a run that moves keys (backup, import, restore): the run's
// counter is reported on stderr as op every --progress-interval while it runs.
func withProgress[T any](ctx context.Context, g *global, op string, a access, run func(*repo.Repository, *progress.Counter) (T, error)) (T, error) {
	return withRepository(ctx, g, a, func(r *repo.Repository) (T, error) {
		pr := &progress.Counter{}
		stop := progress.Report(ctx, g.ErrOut, op, pr, g.progressInterval)
		defer stop()
		return run(r, pr)
	})
}

// openRepo opens and unlocks the repository as a says. Commands use withRepository, which
// checks --repository first and closes the repository.
func (g *global) openRepo(ctx context.Context, a access) (*repo.Repository, error) {
	pw, err := g.password()
	if err != nil {
		return nil, err
	}
	env := map[string]string{} // the storage Secret's keys, as the controller maps them into the Job
	for _, k := range v1alpha1.StorageSecretKeys {
		if v := g.getenv(k); v != "" {
			env[k] = v
		}
	}
	b, err := store.Open(ctx, g.repository, env)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	r, err := repo.Open(ctx, b, repo.Options{Password: pw, Create: a != existing, WorkFactor: g.workFactor, Hostname: host,
		UnlockInBackground: a == unlockWhileStarting})
	if err != nil {
		b.Close()
		return nil, err
	}
	return r, nil
}

func (g *global) warn(msg string) { fmt.Fprintln(g.ErrOut, "WARNING:", msg) }

// redisFlags are the connection flags of backup and restore.
type redisFlags struct {
	url       string
	tls       redisconn.TLSOptions
	databases []int
	workers   int
	// readTimeout bounds every wait for a reply from Redis (redisconn.Options.ReadTimeout).
	readTimeout time.Duration
	// sentinelMaster makes --redis a Sentinel that names the master of this set.
	sentinelMaster string
}

func (rf *redisFlags) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&rf.url, "redis", "", "Redis URL: redis://host:port[/db], rediss://host:port (TLS) or unix:///path[?db=N]; credentials from $REDIS_USERNAME/$REDIS_PASSWORD; a /db in the URL means --databases db")
	f.StringVar(&rf.tls.CAFile, "tls-ca-file", "", "CA certificate that signed the Redis server certificate")
	f.StringVar(&rf.tls.CertFile, "tls-cert-file", "", "client certificate for TLS client authentication")
	f.StringVar(&rf.tls.KeyFile, "tls-key-file", "", "client key for TLS client authentication")
	f.StringVar(&rf.tls.ServerName, "tls-server-name", "", "server name to verify the Redis certificate against")
	f.BoolVar(&rf.tls.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the Redis server certificate (insecure)")
	f.IntSliceVar(&rf.databases, "databases", nil, "databases to include (default: all with keys)")
	f.DurationVar(&rf.readTimeout, "redis-read-timeout", redisconn.DefaultReadTimeout, "how long to wait for any reply from Redis before calling it stalled and failing; raise it if a single key takes longer to DUMP or RESTORE")
	f.IntVar(&rf.workers, "workers", redisconn.DefaultWorkers, fmt.Sprintf("parallel Redis connections, 1 to %d", redisconn.MaxWorkers))
	f.StringVar(&rf.sentinelMaster, "sentinel-master", "", "--redis is a Sentinel: find the master of this set through it (Sentinel password from $REDIS_SENTINEL_PASSWORD, else $REDIS_PASSWORD). A cluster needs no flag: any node's address will do")
}

// sentinel returns the Sentinel settings when --sentinel-master is set: o's address is then the
// Sentinel's, and its credentials are the data nodes'.
func (rf *redisFlags) sentinel(g *global, o redisconn.Options) *redisconn.Sentinel {
	if rf.sentinelMaster == "" {
		return nil
	}
	s := &redisconn.Sentinel{Addrs: []string{o.Addr}, MasterName: rf.sentinelMaster, Username: o.Username, Password: o.Password}
	if v := g.getenv(EnvRedisSentinelPassword); v != "" {
		s.Username, s.Password = "", v
	}
	return s
}

func (rf *redisFlags) options(g *global) (redisconn.Options, error) {
	if rf.url == "" {
		return redisconn.Options{}, errors.New("--redis is required (redis://host:port, rediss://host:port or unix:///path)")
	}
	o, pwInURL, err := redisconn.ParseURL(rf.url)
	if err != nil {
		return o, err
	}
	if pwInURL {
		g.warn("the Redis password is part of --redis and visible in the process list; set REDIS_PASSWORD instead")
	}
	if v := g.getenv(EnvRedisUsername); v != "" {
		o.Username = v
	}
	if v := g.getenv(EnvRedisPassword); v != "" {
		o.Password = v
	}
	if err := o.ConfigureTLS(rf.tls); err != nil {
		return o, err
	}
	if rf.tls.InsecureSkipVerify {
		g.warn("--insecure-skip-verify: the Redis server certificate is NOT verified; anyone on the network path can impersonate the server and read the data")
	}
	if rf.workers < 1 || rf.workers > redisconn.MaxWorkers {
		return o, fmt.Errorf("--workers %d: must be between 1 and %d", rf.workers, redisconn.MaxWorkers)
	}
	if rf.readTimeout <= 0 {
		return o, fmt.Errorf("--redis-read-timeout %s: must be positive", rf.readTimeout)
	}
	o.ReadTimeout = rf.readTimeout
	dbs, err := uniqueDatabases(rf.databases)
	if err != nil {
		return o, err
	}
	// The runner selects databases itself; a database named in the URL is taken at its word,
	// as --databases, rather than ignored.
	if o.DBInURL {
		switch {
		case len(dbs) == 0:
			dbs = []int{o.DB}
		case len(dbs) != 1 || dbs[0] != o.DB:
			return o, fmt.Errorf("--redis names database %d and --databases names %s: give the databases in one place", o.DB, joinInts(dbs))
		}
		o.DB, o.DBInURL = 0, false
	}
	rf.databases = dbs
	return o, nil
}

// uniqueDatabases checks a --databases list and drops repeats, keeping the first occurrence:
// "0,0" means db 0 once, never its keys twice in one snapshot (which a server loading the
// snapshot by replication refuses as a duplicated key, and crashes on).
func uniqueDatabases(dbs []int) ([]int, error) {
	seen := make(map[int]bool, len(dbs))
	out := dbs[:0:0]
	for _, db := range dbs {
		if db < 0 {
			return nil, fmt.Errorf("--databases: invalid database %d", db)
		}
		if !seen[db] {
			seen[db] = true
			out = append(out, db)
		}
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// writeResult writes v as JSON to path atomically (temp file + rename), for a controller to read.
func writeResult(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write result file: %w", err)
	}
	return nil
}

// resultFile is the --result-file content.
type resultFile struct {
	Operation string `json:"operation"`
	Success   bool   `json:"success"`
	Error     string `json:"error,omitempty"`
	// Duration in seconds.
	Duration float64 `json:"duration"`
	Result   any     `json:"result,omitempty"`
}

// prepareThen runs the checks of a command that promises a --result-file (Validate, Complete),
// then run: a run refused by a check still writes the result file it promises.
func prepareThen(path, op string, run func() error, checks ...func() error) error {
	start := time.Now()
	for _, check := range checks {
		if err := check(); err != nil {
			return finish(path, op, start, nil, err)
		}
	}
	return run()
}

func finish(path, op string, start time.Time, res any, err error) error {
	err = withHint(op, err)
	rf := resultFile{Operation: op, Success: err == nil, Duration: time.Since(start).Seconds()}
	if err != nil {
		rf.Error = err.Error()
	} else {
		rf.Result = res
	}
	if werr := writeResult(path, rf); werr != nil {
		return errors.Join(err, werr)
	}
	return err
}
