// Command bench compares stash-runner with redis-dump-go, redis-cli --pipe, redis-cli --rdb and a
// minimal pipelined DUMP/RESTORE loop on a real redis-server loaded with mixed data.
// See bench/README.md; `make bench` runs it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/testproc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && (os.Args[1] == "minimal-dump" || os.Args[1] == "minimal-restore") {
		if err := minimalMain(ctx, os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "fill" {
		if err := fillMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "scale" {
		if err := scaleMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "continuous" {
		if err := continuousMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "cluster" {
		if err := clusterMain(ctx, os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func minimalMain(ctx context.Context, mode string, args []string) error {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	addr := fs.String("addr", "", "redis address")
	db := fs.Int("db", 0, "database")
	file := fs.String("file", "", "dump file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if mode == "minimal-dump" {
		return minimalDump(ctx, *addr, *db, *file)
	}
	return minimalRestore(ctx, *addr, *db, *file)
}

// fillMain loads bench's dataset into a running server, for profiling one tool by hand
// (`go run ./bench fill -addr 127.0.0.1:6379 -keys 1000000`).
func fillMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	addr := fs.String("addr", "", "redis address")
	n := fs.Int("keys", 1000000, "keys in db 0")
	bigKeys := fs.Int("big-keys", 3, "keys with -big-size elements")
	bigSize := fs.Int("big-size", 1000000, "elements in each big key")
	streams := fs.Int("streams", 20000, "stream keys in db 1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return load(ctx, *addr, *n, *bigKeys, *bigSize, *streams)
}

type config struct {
	sizes      []int
	bigKeys    int
	bigSize    int
	streams    int
	rounds     int
	slow       bool
	dumpGo     string
	runner     string
	workDir    string
	keepRuns   bool
	onlyRunner bool

	compareFirstOnly bool
}

func run(ctx context.Context) error {
	var cfg config
	var sizes string
	flag.StringVar(&sizes, "keys", "1000000,3000000", "comma-separated dataset sizes (keys in db 0)")
	flag.BoolVar(&cfg.compareFirstOnly, "compare-first-only", true, "run redis-dump-go and redis-cli --pipe on the first size only (the others show how stash-runner scales)")
	flag.IntVar(&cfg.bigKeys, "big-keys", 3, "keys with -big-size elements (a zset, a hash, a list, ...)")
	flag.IntVar(&cfg.bigSize, "big-size", 1000000, "elements in each big key")
	flag.IntVar(&cfg.streams, "streams", 20000, "stream keys in db 1 (redis-dump-go cannot dump streams, so they are measured separately)")
	flag.IntVar(&cfg.rounds, "rounds", 2, "rounds; tools alternate their order each round and the median is reported")
	flag.BoolVar(&cfg.slow, "dump-go-default", true, "also run redis-dump-go with its default settings (about 6 minutes per 1M keys; first size and first round only)")
	flag.StringVar(&cfg.dumpGo, "redis-dump-go", "", "redis-dump-go binary (default: PATH, ~/.cache/kubectl-stash/bin, or built from the module cache)")
	flag.StringVar(&cfg.runner, "runner", "", "stash-runner binary (default: built from ./cmd/runner)")
	flag.StringVar(&cfg.workDir, "dir", "", "work directory (default: a temp dir, removed at the end)")
	flag.BoolVar(&cfg.onlyRunner, "only-runner", false, "measure only stash-runner, redis-cli --rdb and the minimal loop")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-keys: %w", err)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if cfg.workDir == "" {
		d, err := os.MkdirTemp("", "stash-bench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		cfg.workDir = d
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if cfg.runner == "" {
		cfg.runner = filepath.Join(cfg.workDir, "stash-runner")
		logf("building stash-runner")
		if out, err := exec.Command("go", "build", "-trimpath", "-o", cfg.runner, "stash.dev/redis/cmd/runner").CombinedOutput(); err != nil {
			return fmt.Errorf("build stash-runner: %v\n%s", err, out)
		}
	}
	if !cfg.onlyRunner {
		if cfg.dumpGo, err = findDumpGo(cfg.dumpGo, cfg.workDir); err != nil {
			return err
		}
	}
	fmt.Printf("# stash-runner benchmark, %s, %d CPUs, %s\n\n", time.Now().UTC().Format("2006-01-02"), numCPU(), redisVersion())
	fmt.Printf("command: `go run ./bench %s`\n\n", strings.Join(os.Args[1:], " "))
	for i, n := range cfg.sizes {
		c := cfg
		if i > 0 && cfg.compareFirstOnly {
			c.onlyRunner = true
		}
		if err := benchSize(ctx, c, self, n, i == 0); err != nil {
			return err
		}
	}
	return nil
}

type result struct {
	tool, op string
	wall     []time.Duration
	rssKB    []int64
	size     int64
	note     string
}

func benchSize(ctx context.Context, cfg config, self string, n int, first bool) error {
	dir := filepath.Join(cfg.workDir, strconv.Itoa(n))
	os.MkdirAll(dir, 0o700)
	defer os.RemoveAll(dir)
	src, err := startRedis(ctx, filepath.Join(dir, "src"))
	if err != nil {
		return err
	}
	defer src.stop()
	dst, err := startRedis(ctx, filepath.Join(dir, "dst"))
	if err != nil {
		return err
	}
	defer dst.stop()
	logf("loading %d keys (+%d keys of %d elements, %d streams in db 1)", n, cfg.bigKeys, cfg.bigSize, cfg.streams)
	t0 := time.Now()
	if err := load(ctx, src.addr, n, cfg.bigKeys, cfg.bigSize, cfg.streams); err != nil {
		return err
	}
	info := src.client.Info(ctx, "memory", "keyspace").Val()
	logf("loaded in %s: %s", time.Since(t0).Round(time.Millisecond), grepInfo(info, "used_memory_human", "db0", "db1"))
	db0 := src.client.DBSize(ctx).Val()

	results := map[string]*result{}
	var order []string
	record := func(key, tool, op string, wall time.Duration, rss int64, size int64, note string) {
		r := results[key]
		if r == nil {
			r = &result{tool: tool, op: op, note: note}
			results[key] = r
			order = append(order, key)
		}
		r.wall = append(r.wall, wall)
		r.rssKB = append(r.rssKB, rss)
		r.size = size
		logf("%-40s %-8s %8s  RSS %4d MB  %s", tool, op, wall.Round(time.Millisecond), rss/1024, human(size))
	}
	env := append(os.Environ(), "RESTIC_PASSWORD=bench-password")
	repoDir := filepath.Join(dir, "repo")
	srcURL, dstURL := "redis://"+src.addr, "redis://"+dst.addr
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	resetDst := func() error { return dst.client.FlushAll(ctx).Err() }
	checkDst := func(what string, want int64) error {
		if got := dst.client.DBSize(ctx).Val(); got != want {
			return fmt.Errorf("%s restored %d keys in db 0, want %d", what, got, want)
		}
		return nil
	}

	var snapshotID, allSnapshotID string // of db 0, and of every database
	allRepoDir := filepath.Join(dir, "repo-all")
	runnerRestore := func(method, tool string) error {
		if err := resetDst(); err != nil {
			return err
		}
		w, rss, err := measure(ctx, env, nil, cfg.runner, "restore", "--method", method, "--redis", dstURL, "--repository", "file://"+repoDir, "--snapshot", snapshotID, "--progress-interval", "0")
		if err != nil {
			return err
		}
		record("runner-restore-"+method, tool, "restore", w, rss, 0, "")
		return checkDst(tool, db0)
	}
	// Every measured backup goes into an existing repository, as a scheduled backup does:
	// creating one costs a key derivation (0.1 s), once, in the first backup ever. The
	// repository is created by an unmeasured backup of db 1 with SCAN + DUMP, and the snapshots
	// of earlier backups are removed before each one, so that the size recorded is its own.
	runnerBackup := func(key, tool, repoDir string, id *string, args ...string) error {
		if _, err := os.Stat(filepath.Join(repoDir, "keys")); err != nil {
			create := exec.CommandContext(ctx, cfg.runner, "backup", "--redis", srcURL, "--repository", "file://"+repoDir,
				"--method", "dump", "--databases", "1", "--progress-interval", "0")
			create.Env = env
			if out, err := create.CombinedOutput(); err != nil {
				return fmt.Errorf("create repository %s: %w\n%s", repoDir, err, out)
			}
			settle()
		}
		os.RemoveAll(filepath.Join(repoDir, "snapshots"))
		out := &strings.Builder{}
		args = append([]string{"backup", "--redis", srcURL, "--repository", "file://" + repoDir, "--progress-interval", "0"}, args...)
		w, rss, err := measure(ctx, env, out, cfg.runner, args...)
		if err != nil {
			return err
		}
		if f := strings.Fields(out.String()); len(f) > 1 && id != nil {
			*id = f[1]
		}
		record(key, tool, "backup", w, rss, dirSize(filepath.Join(repoDir, "snapshots")), "")
		return nil
	}
	srcKeys := keyCount(ctx, src.client)

	type step struct {
		name string
		run  func() error
	}
	backups := []step{
		{"rdb", func() error {
			f := filepath.Join(dir, "dump.rdb")
			w, rss, err := measure(ctx, nil, nil, "redis-cli", "-p", port(src.addr), "--rdb", f)
			if err == nil {
				record("rdb", "redis-cli --rdb (floor; all dbs, no TTL loss)", "backup", w, rss, fileSize(f), "")
			}
			return err
		}},
		{"runner-all", func() error {
			return runnerBackup("runner-all", "stash-runner by replication (the default; all dbs, like --rdb)", allRepoDir, &allSnapshotID, "--method", "replication")
		}},
		{"runner", func() error {
			return runnerBackup("runner", "stash-runner by replication (zstd + age, db 0)", repoDir, &snapshotID, "--method", "replication", "--databases", "0")
		}},
		{"runner-dump", func() error {
			return runnerBackup("runner-dump", "stash-runner SCAN + DUMP (zstd + age, db 0)", filepath.Join(dir, "repo-dump"), nil, "--method", "dump", "--databases", "0")
		}},
		{"minimal", func() error {
			f := filepath.Join(dir, "minimal.bin")
			w, rss, err := measure(ctx, nil, nil, self, "minimal-dump", "-addr", src.addr, "-db", "0", "-file", f)
			if err == nil {
				record("minimal", "minimal DUMP/RESTORE loop (go-redis, 1 conn)", "backup", w, rss, fileSize(f), "")
			}
			return err
		}},
	}
	if !cfg.onlyRunner {
		backups = append(backups, step{"dump-go-200", func() error {
			f := filepath.Join(dir, "dump-go.resp")
			w, rss, err := measureTo(ctx, f, cfg.dumpGo, "-host", "127.0.0.1", "-port", port(src.addr), "-db", "0", "-n", "200", "-s")
			if err == nil {
				record("dump-go-200", "redis-dump-go -n 200", "backup", w, rss, fileSize(f), "")
			}
			return err
		}})
	}
	restores := []step{
		{"load-floor", func() error {
			// The server's own load of the RDB that redis-cli --rdb saved: redis-server started
			// on it, the time its log reports.
			floor := filepath.Join(dir, "floor")
			os.RemoveAll(floor)
			os.MkdirAll(floor, 0o700)
			if err := os.Link(filepath.Join(dir, "dump.rdb"), filepath.Join(floor, "dump.rdb")); err != nil {
				return err
			}
			s, err := startRedis(ctx, floor)
			if err != nil {
				return err
			}
			defer s.stop()
			secs, err := loadSeconds(filepath.Join(floor, "redis.log"))
			if err != nil {
				return err
			}
			record("load-floor", "redis-server loading the --rdb file at start-up (floor; all dbs)", "restore", secs, 0, 0, "from its log")
			return nil
		}},
		{"link-floor", func() error {
			// The same file loaded over the replication link, as the runner's restore loads:
			// a master started on it serves it from its disk (repl-diskless-sync no, so the
			// transfer is never waiting for a serializer), and the target loads it as it
			// arrives (repl-diskless-load on-empty-db). The time is the target's, from its
			// log: "Loading DB in memory" to "Done loading RDB".
			floor := filepath.Join(dir, "link-floor")
			os.RemoveAll(floor)
			os.MkdirAll(floor, 0o700)
			if err := os.Link(filepath.Join(dir, "dump.rdb"), filepath.Join(floor, "dump.rdb")); err != nil {
				return err
			}
			m, err := startRedis(ctx, floor, "--repl-diskless-sync", "no")
			if err != nil {
				return err
			}
			defer m.stop()
			if err := resetDst(); err != nil {
				return err
			}
			secs, err := linkLoadSeconds(ctx, dst, filepath.Join(dir, "dst", "redis.log"), m.addr)
			if err != nil {
				return err
			}
			record("link-floor", "redis-server loading the --rdb file from a master over the replication link (all dbs)", "restore", secs, 0, 0, "from its log")
			return resetDst()
		}},
		{"runner-all-restore", func() error {
			if err := resetDst(); err != nil {
				return err
			}
			w, rss, err := measure(ctx, env, nil, cfg.runner, "restore", "--method", "replication", "--redis", dstURL, "--repository", "file://"+allRepoDir, "--snapshot", allSnapshotID, "--progress-interval", "0")
			if err != nil {
				return err
			}
			record("runner-all-restore", "stash-runner by replication (all dbs)", "restore", w, rss, 0, "")
			if got := keyCount(ctx, dst.client); got != srcKeys {
				return fmt.Errorf("restore of every database: %d keys, want %d", got, srcKeys)
			}
			return nil
		}},
		{"runner", func() error { return runnerRestore("replication", "stash-runner (replication, the default)") }},
		{"runner-restore-cmds", func() error { return runnerRestore("restore", "stash-runner --method restore (RESTORE commands)") }},
		{"minimal", func() error {
			if err := resetDst(); err != nil {
				return err
			}
			w, rss, err := measure(ctx, nil, nil, self, "minimal-restore", "-addr", dst.addr, "-db", "0", "-file", filepath.Join(dir, "minimal.bin"))
			if err != nil {
				return err
			}
			record("minimal-restore", "minimal DUMP/RESTORE loop (go-redis, 1 conn)", "restore", w, rss, 0, "")
			return checkDst("minimal loop", db0)
		}},
	}
	if !cfg.onlyRunner {
		restores = append(restores, step{"pipe", func() error {
			if err := resetDst(); err != nil {
				return err
			}
			in, err := os.Open(filepath.Join(dir, "dump-go.resp"))
			if err != nil {
				return err
			}
			defer in.Close()
			w, rss, err := measureIn(ctx, in, "redis-cli", "-p", port(dst.addr), "--pipe")
			if err != nil {
				return err
			}
			record("pipe-restore", "redis-cli --pipe < redis-dump-go output", "restore", w, rss, 0, "")
			return checkDst("redis-cli --pipe", db0)
		}})
	}
	for round := range cfg.rounds {
		b, r := slices.Clone(backups), slices.Clone(restores)
		if round%2 == 1 {
			slices.Reverse(b)
			slices.Reverse(r)
		}
		for _, s := range b {
			settle()
			if err := s.run(); err != nil {
				return fmt.Errorf("%s backup: %w", s.name, err)
			}
		}
		if round == 0 {
			// The first load into a fresh redis-server also pays for taking its memory from the
			// OS; an unmeasured load first gives every measured restore the same warm server.
			if err := resetDst(); err != nil {
				return err
			}
			warm := exec.CommandContext(ctx, cfg.runner, "restore", "--method", "restore", "--redis", dstURL, "--repository", "file://"+repoDir, "--snapshot", snapshotID, "--progress-interval", "0")
			warm.Env = env
			if out, err := warm.CombinedOutput(); err != nil {
				return fmt.Errorf("warm-up restore: %w: %s", err, out)
			}
		}
		for _, s := range r {
			settle()
			if err := s.run(); err != nil {
				return fmt.Errorf("%s restore: %w", s.name, err)
			}
		}
	}
	if first && cfg.slow && !cfg.onlyRunner {
		f := filepath.Join(dir, "dump-go-default.resp")
		logf("redis-dump-go with default settings (slow)")
		w, rss, err := measureTo(ctx, f, cfg.dumpGo, "-host", "127.0.0.1", "-port", port(src.addr), "-db", "0", "-s")
		if err != nil {
			return err
		}
		record("dump-go-default", "redis-dump-go (default: -n 10)", "backup", w, rss, fileSize(f), "1 round")
	}

	fmt.Printf("## %d keys in db 0 (+ %d keys of %d elements; %d streams in db 1)\n\n", n, cfg.bigKeys, cfg.bigSize, cfg.streams)
	fmt.Printf("%s\n\n", grepInfo(info, "used_memory_human", "db0", "db1"))
	fmt.Println("| tool | op | wall (median) | peak RSS | output |")
	fmt.Println("|---|---|---:|---:|---:|")
	for _, k := range order {
		r := results[k]
		size := ""
		if r.size > 0 {
			size = human(r.size)
		}
		note := ""
		if r.note != "" {
			note = " (" + r.note + ")"
		}
		rss := "" // not measured: the server's own load
		if m := slices.Max(r.rssKB); m > 0 {
			rss = fmt.Sprintf("%d MB", m/1024)
		}
		fmt.Printf("| %s | %s | %s%s | %s | %s |\n", r.tool, r.op, median(r.wall).Round(10*time.Millisecond), note, rss, size)
	}
	fmt.Println()
	return nil
}

// measure runs a command and returns its wall time and peak RSS in KiB.
func measure(ctx context.Context, env []string, stdout io.Writer, name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	var stderr strings.Builder
	cmd.Stderr = &stderr
	return wait(cmd, &stderr)
}

func measureTo(ctx context.Context, file string, name string, args ...string) (time.Duration, int64, error) {
	f, err := os.Create(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	return wait(cmd, &stderr)
}

func measureIn(ctx context.Context, in io.Reader, name string, args ...string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = in
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	return wait(cmd, &stderr)
}

func wait(cmd *exec.Cmd, stderr *strings.Builder) (time.Duration, int64, error) {
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		return wall, 0, fmt.Errorf("%s: %w\n%s", cmd.Path, err, stderr.String())
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var rss int64
	if ru != nil {
		rss = ru.Maxrss
	}
	return wall, rss, nil
}

type server struct {
	addr   string
	cmd    *exec.Cmd
	client *redis.Client
}

func (s *server) port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

func startRedis(ctx context.Context, dir string, extra ...string) (*server, error) {
	os.MkdirAll(dir, 0o700)
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port)}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}, extra...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server (apt-get install redis-server, or hack/tools.sh redis): %w", err)
	}
	s.client = redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, DisableIdentity: true, ReadTimeout: -1})
	deadline := time.Now().Add(5 * time.Minute) // a server started on an RDB file loads it first
	for {
		if err := s.client.Ping(ctx).Err(); err == nil {
			return s, nil
		} else if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keyCount sums the keys of every database (INFO keyspace).
func keyCount(ctx context.Context, c *redis.Client) int64 {
	var n int64
	for line := range strings.Lines(c.Info(ctx, "keyspace").Val()) {
		if _, v, ok := strings.Cut(line, "keys="); ok {
			k, _, _ := strings.Cut(v, ",")
			x, _ := strconv.ParseInt(k, 10, 64)
			n += x
		}
	}
	return n
}

// loadSeconds reads the time a redis-server took to load its RDB at start-up from its log
// ("DB loaded from disk: 1.234 seconds").
func loadSeconds(log string) (time.Duration, error) {
	b, err := os.ReadFile(log)
	if err != nil {
		return 0, err
	}
	_, after, ok := strings.Cut(string(b), "DB loaded from disk: ")
	if !ok {
		return 0, fmt.Errorf("%s: no 'DB loaded from disk' line", log)
	}
	secs, _, _ := strings.Cut(after, " ")
	f, err := strconv.ParseFloat(secs, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", log, err)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// settle starts each measurement from the same state: what the previous tool wrote (hundreds
// of MB of snapshots and dumps) is flushed to disk first, so that its writeback does not land
// in the next tool's time, and the machine is given a second to be idle.
func settle() {
	syscall.Sync()
	time.Sleep(time.Second)
}

// linkLoadSeconds makes s a replica of master until it has loaded the master's data, and
// returns the time s took to load it, from its log (which lines it wrote before is skipped).
func linkLoadSeconds(ctx context.Context, s *server, log, master string) (time.Duration, error) {
	before, err := os.ReadFile(log)
	if err != nil {
		return 0, err
	}
	host, port, _ := net.SplitHostPort(master)
	for _, cmd := range [][]any{{"CONFIG", "SET", "repl-diskless-load", "on-empty-db"}, {"REPLICAOF", host, port}} {
		if err := s.client.Do(ctx, cmd...).Err(); err != nil {
			return 0, fmt.Errorf("%v: %w", cmd, err)
		}
	}
	defer func() {
		_ = s.client.Do(context.WithoutCancel(ctx), "REPLICAOF", "NO", "ONE").Err()
		_ = s.client.Do(context.WithoutCancel(ctx), "CONFIG", "SET", "repl-diskless-load", "disabled").Err()
	}()
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		b, err := os.ReadFile(log)
		if err != nil {
			return 0, err
		}
		lines := string(b[min(len(before), len(b)):])
		start, end := logTime(lines, "Loading DB in memory"), logTime(lines, "Done loading RDB")
		if !start.IsZero() && !end.IsZero() {
			return end.Sub(start), nil
		}
	}
	return 0, fmt.Errorf("%s: the replica did not load its master's data within 10 minutes", s.addr)
}

// logTime returns the time of the first line of a redis-server log that contains what.
func logTime(log, what string) time.Time {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, what) {
			continue
		}
		// "pid:S 06 Dec 2026 19:02:30.855 * ..."
		f := strings.Fields(line)
		if len(f) < 5 {
			return time.Time{}
		}
		t, err := time.Parse("02 Jan 2006 15:04:05.000", strings.Join(f[1:5], " "))
		if err != nil {
			return time.Time{}
		}
		return t
	}
	return time.Time{}
}

func (s *server) stop() {
	s.client.Close()
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// load fills db 0 with n mixed keys (40% strings, 15% hashes, 15% lists, 15% sets, 15% zsets,
// 20% of all with a TTL of 1-10 hours), bigKeys keys with bigSize elements, and db 1 with streams.
// It writes RESP on a raw connection while a reader drains the replies: the fastest way in.
func load(ctx context.Context, addr string, n, bigKeys, bigSize, streams int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		r := resp.NewReader(bufio.NewReaderSize(c, 1<<20))
		var firstErr error
		for {
			err := r.Discard()
			if _, ok := err.(resp.Error); ok {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if err != nil { // EOF after QUIT
				done <- firstErr
				return
			}
		}
	}()
	w := bufio.NewWriterSize(c, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	cmd := func(args ...string) {
		b = resp.AppendCommand(b[:0], args...)
		w.Write(b)
	}
	val := func(lo, hi int) string {
		buf := make([]byte, lo+rng.IntN(hi-lo+1))
		for i := range buf {
			buf[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
		}
		return string(buf)
	}
	num := strconv.Itoa
	now := time.Now()
	for i := range n {
		k := "key:" + num(i)
		switch p := rng.IntN(100); {
		case p < 40:
			k += ":s"
			cmd("SET", k, val(20, 200))
		case p < 55:
			k += ":h"
			cmd("HSET", k, "name", val(5, 20), "email", val(10, 30), "age", num(rng.IntN(100)), "city", val(5, 15), "n", num(i))
		case p < 70:
			k += ":l"
			cmd("RPUSH", k, val(5, 30), val(5, 30), val(5, 30), val(5, 30), val(5, 30))
		case p < 85:
			k += ":set"
			cmd("SADD", k, val(5, 20), val(5, 20), val(5, 20), val(5, 20), val(5, 20))
		default:
			k += ":z"
			cmd("ZADD", k, num(rng.IntN(1000)), "a"+num(i), num(rng.IntN(1000)), "b", num(rng.IntN(1000)), "c", num(rng.IntN(1000)), "d")
		}
		if rng.IntN(100) < 20 {
			cmd("PEXPIREAT", k, strconv.FormatInt(now.Add(time.Hour+time.Duration(rng.Int64N(int64(9*time.Hour)))).UnixMilli(), 10))
		}
	}
	for i := 0; i < bigKeys; i++ {
		k := "big:" + num(i)
		for j := 0; j < bigSize; j += 1000 {
			var args []string
			switch i % 3 {
			case 0:
				args = append(args, "ZADD", k+":z")
				for e := j; e < j+1000 && e < bigSize; e++ {
					args = append(args, num(e), "member:"+num(e))
				}
			case 1:
				args = append(args, "HSET", k+":h")
				for e := j; e < j+1000 && e < bigSize; e++ {
					args = append(args, "field:"+num(e), num(e*7))
				}
			case 2:
				args = append(args, "RPUSH", k+":l")
				for e := j; e < j+1000 && e < bigSize; e++ {
					args = append(args, "item:"+num(e))
				}
			}
			cmd(args...)
		}
	}
	cmd("SELECT", "1")
	for i := range streams {
		k := "stream:" + num(i)
		for e := range 5 {
			cmd("XADD", k, "*", "event", num(e), "payload", val(10, 40))
		}
		if i%10 == 0 {
			cmd("XGROUP", "CREATE", k, "g", "0")
		}
	}
	cmd("QUIT")
	if err := w.Flush(); err != nil {
		return err
	}
	return <-done
}

func findDumpGo(flagPath, workDir string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p, err := exec.LookPath("redis-dump-go"); err == nil {
		return p, nil
	}
	home, _ := os.UserHomeDir()
	if p := filepath.Join(home, ".cache", "kubectl-stash", "bin", "redis-dump-go"); fileSize(p) > 0 {
		return p, nil
	}
	// `go install ...@v0.8.2` fails here because the proxy refuses the module's version list
	// (deprecation lookup), while the module itself downloads: build it from the module cache.
	logf("building redis-dump-go v0.8.2 from the module cache")
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/yannh/redis-dump-go@v0.8.2").Output()
	if err != nil {
		return "", fmt.Errorf("download redis-dump-go: %w", err)
	}
	var dir string
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == `"Dir"` {
			dir = strings.Trim(strings.TrimSpace(v), `",`)
		}
	}
	src := filepath.Join(workDir, "redis-dump-go-src")
	if out, err := exec.Command("cp", "-r", dir, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy redis-dump-go: %v %s", err, out)
	}
	exec.Command("chmod", "-R", "u+w", src).Run()
	bin := filepath.Join(workDir, "redis-dump-go")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build redis-dump-go: %v\n%s", err, out)
	}
	return bin, nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func human(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func grepInfo(info string, keys ...string) string {
	var out []string
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		for _, k := range keys {
			if strings.HasPrefix(l, k+":") {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, ", ")
}

func redisVersion() string {
	out, _ := exec.Command("redis-server", "--version").Output()
	return strings.TrimSpace(string(out))
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
