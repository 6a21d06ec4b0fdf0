package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// continuousMain measures continuous backup (`go run ./bench continuous`): stash-runner follow
// records a redis-server's replication stream while redis-benchmark writes to it as fast as
// this machine lets it. It reports the write rate, the follower's CPU and RSS over time, the lag
// of each segment (from the receipt of its first command to its commit in the repository), the
// largest output buffer the master held for the follower, and how fast a restore to a point in
// time replays a journal of about -restore-commands commands.
func continuousMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("continuous", flag.ContinueOnError)
	duration := fs.Duration("duration", 10*time.Minute, "how long redis-benchmark writes")
	interval := fs.Duration("segment-interval", 10*time.Second, "the follower's --segment-interval")
	keys := fs.Int("keys", 200000, "keys loaded before the follower starts (its base)")
	clients := fs.Int("clients", 50, "redis-benchmark connections")
	pipeline := fs.Int("pipeline", 16, "redis-benchmark pipeline depth")
	restoreCommands := fs.Int64("restore-commands", 1000000, "journal commands the restore to a point in time replays")
	runner := fs.String("runner", "", "stash-runner binary (default: build ./cmd/runner)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-continuous")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if *runner == "" {
		*runner = filepath.Join(work, "stash-runner")
		if out, err := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", *runner, "./cmd/runner").CombinedOutput(); err != nil {
			return fmt.Errorf("build runner: %v\n%s", err, out)
		}
	}
	src, err := startRedis(ctx, filepath.Join(work, "src"))
	if err != nil {
		return err
	}
	defer src.stop()
	if err := load(ctx, src.addr, *keys, 0, 0, 0); err != nil {
		return err
	}
	limit := src.client.ConfigGet(ctx, "client-output-buffer-limit").Val()["client-output-buffer-limit"]
	env := append(os.Environ(), "RESTIC_PASSWORD=bench-password")
	repoURL := "file://" + filepath.Join(work, "repo")

	follower := exec.CommandContext(ctx, *runner, "follow", "--redis", "redis://"+src.addr, "--repository", repoURL,
		"--segment-interval", interval.String(), "--progress-interval", "0")
	follower.Env = env
	follower.Stderr = os.Stderr
	out, err := follower.StdoutPipe()
	if err != nil {
		return err
	}
	if err := follower.Start(); err != nil {
		return err
	}
	seg := &segmentLog{based: make(chan struct{})}
	go seg.read(out)
	select {
	case <-seg.based:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("the follower took no base within 2 minutes")
	}
	logf("base taken; redis-benchmark writes for %s", *duration)

	before := commandsProcessed(ctx, src)
	bench := exec.CommandContext(ctx, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(src.port()), "-t", "set,incr",
		"-n", "2000000000", "-r", "1000000", "-d", "64", "-c", strconv.Itoa(*clients), "-P", strconv.Itoa(*pipeline), "-q")
	if err := bench.Start(); err != nil {
		return fmt.Errorf("start redis-benchmark: %w", err)
	}
	start := time.Now()
	var samples []usage
	var maxOmem int64
	tick := time.NewTicker(time.Second)
	for time.Since(start) < *duration {
		<-tick.C
		samples = append(samples, sample(follower.Process.Pid, time.Since(start)))
		maxOmem = max(maxOmem, replicaOmem(ctx, src))
	}
	tick.Stop()
	_ = bench.Process.Signal(syscall.SIGINT)
	_ = bench.Wait()
	elapsed := time.Since(start)
	written := commandsProcessed(ctx, src) - before
	time.Sleep(*interval + 2*time.Second) // the last segment closes
	_ = follower.Process.Signal(syscall.SIGTERM)
	if err := follower.Wait(); err != nil {
		return fmt.Errorf("follower: %w", err)
	}
	seg.mu.Lock()
	segs := slices.Clone(seg.segs)
	seg.mu.Unlock()

	// Restore to the instant by which the journal holds restoreCommands commands.
	var point time.Time
	var replayed int64
	for _, s := range segs {
		replayed += s.commands
		point = s.last
		if replayed >= *restoreCommands {
			break
		}
	}
	dst, err := startRedis(ctx, filepath.Join(work, "dst"))
	if err != nil {
		return err
	}
	defer dst.stop()
	restoreWall, restoreRSS, err := measure(ctx, env, io.Discard, *runner, "restore", "--redis", "redis://"+dst.addr, "--repository", repoURL,
		"--to-time", point.UTC().Format(time.RFC3339Nano), "--progress-interval", "0")
	if err != nil {
		return err
	}

	var lags []time.Duration
	var journal int64
	for _, s := range segs {
		lags = append(lags, s.committed.Sub(s.first))
		journal += s.commands
	}
	slices.Sort(lags)
	cpu := samples[len(samples)-1].cpu - samples[0].cpu
	fmt.Printf("# continuous backup, %s, %d CPUs, %s\n\n", time.Now().UTC().Format("2006-01-02"), numCPU(), redisVersion())
	fmt.Printf("command: `go run ./bench continuous %s`\n\n", strings.Join(args, " "))
	fmt.Println("| measure | value |")
	fmt.Println("|---|---|")
	fmt.Printf("| writes (redis-benchmark -t set,incr -c %d -P %d, unthrottled) | %.0f commands/s for %s |\n", *clients, *pipeline, float64(written)/elapsed.Seconds(), elapsed.Round(time.Second))
	fmt.Printf("| journal | %d segments, %d commands |\n", len(segs), journal)
	fmt.Printf("| follower CPU | %.0f%% of one core (average) |\n", 100*cpu.Seconds()/elapsed.Seconds())
	fmt.Printf("| follower RSS | %s |\n", rssOverTime(samples))
	fmt.Printf("| lag (first command received → segment committed), p50 / p99 / max | %s / %s / %s (segment interval %s) |\n",
		percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1].Round(10*time.Millisecond), interval)
	fmt.Printf("| master's output buffer for the follower, peak | %s (limit `%s`) |\n", human(maxOmem), limit)
	fmt.Printf("| restore to a point in time: base + %d journal commands | %s (%.0f commands/s), peak RSS %d MB |\n",
		replayed, restoreWall.Round(10*time.Millisecond), float64(replayed)/restoreWall.Seconds(), restoreRSS/1024)
	return nil
}

// segmentLog collects the follower's "segment" lines as they come.
type segmentLog struct {
	mu    sync.Mutex
	segs  []segmentLine
	based chan struct{}
}

type segmentLine struct {
	first, last, committed time.Time
	commands               int64
}

// read parses the follower's stdout: "base snapshot ... saved" and
// "segment CHAIN/START: offsets A-B, N commands, FIRST to LAST, SIZE stored".
func (l *segmentLog) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		now := time.Now()
		if strings.HasPrefix(line, "base snapshot ") {
			select {
			case <-l.based:
			default:
				close(l.based)
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, "segment ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		// [name: offsets A-B, N commands, FIRST to LAST, SIZE stored]
		if len(f) < 8 {
			continue
		}
		n, _ := strconv.ParseInt(f[3], 10, 64)
		first, err1 := time.Parse(time.RFC3339Nano, strings.TrimSuffix(f[5], ","))
		last, err2 := time.Parse(time.RFC3339Nano, strings.TrimSuffix(f[7], ","))
		if err1 != nil || err2 != nil || n == 0 {
			continue
		}
		l.mu.Lock()
		l.segs = append(l.segs, segmentLine{first: first, last: last, committed: now, commands: n})
		l.mu.Unlock()
	}
}

type usage struct {
	at  time.Duration
	cpu time.Duration
	rss int64 // bytes
}

// sample reads a process's CPU time and RSS from /proc.
func sample(pid int, at time.Duration) usage {
	u := usage{at: at}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				ut, _ := strconv.ParseInt(f[11], 10, 64)
				st, _ := strconv.ParseInt(f[12], 10, 64)
				u.cpu = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				u.rss = kb << 10
			}
		}
	}
	return u
}

// rssOverTime gives the RSS at a few moments and the peak, to show whether it grows.
func rssOverTime(s []usage) string {
	var parts []string
	var peak int64
	for _, u := range s {
		peak = max(peak, u.rss)
	}
	for _, frac := range []float64{0.1, 0.5, 1} {
		u := s[min(len(s)-1, int(frac*float64(len(s))))]
		parts = append(parts, fmt.Sprintf("%s at %s", human(u.rss), u.at.Round(time.Second)))
	}
	return strings.Join(parts, ", ") + "; peak " + human(peak)
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)].Round(10 * time.Millisecond)
}

// replicaOmem is the output buffer memory the master holds for its replicas (the follower).
func replicaOmem(ctx context.Context, s *server) int64 {
	var m int64
	for line := range strings.Lines(s.client.ClientList(ctx).Val()) {
		if !strings.Contains(line, "flags=S") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "omem="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				m = max(m, n)
			}
		}
	}
	return m
}

func commandsProcessed(ctx context.Context, s *server) int64 {
	for line := range strings.Lines(s.client.Info(ctx, "stats").Val()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
