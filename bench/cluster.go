package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/dump"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/test/testproc"
)

// clusterMain benchmarks a 3-master cluster: the runner's parallel dump of every master against
// dumping the masters one after another (the dump stage in-process, to a counting io.Discard),
// and the whole `stash-runner backup` and `restore` (child processes, file:// repository).
func clusterMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	keys := fs.Int("keys", 600000, "keys to load into the cluster")
	rounds := fs.Int("rounds", 3, "rounds; the order of parallel and sequential alternates")
	runner := fs.String("runner", "", "stash-runner binary (default: build ./cmd/runner)")
	masters := fs.Int("masters", 3, "masters")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-cluster")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if *runner == "" {
		*runner = filepath.Join(work, "stash-runner")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", *runner, "./cmd/runner").CombinedOutput(); err != nil {
			return fmt.Errorf("build runner: %v\n%s", err, out)
		}
	}
	src, err := startCluster(ctx, filepath.Join(work, "src"), *masters)
	if err != nil {
		return err
	}
	defer src.stop()
	dst, err := startCluster(ctx, filepath.Join(work, "dst"), *masters)
	if err != nil {
		return err
	}
	defer dst.stop()
	logf("loading %d keys into %d masters", *keys, *masters)
	if err := loadCluster(ctx, src.client, *keys); err != nil {
		return err
	}
	var nodes []redisconn.Options
	for _, a := range src.addrs {
		nodes = append(nodes, redisconn.Options{Network: "tcp", Addr: a})
	}
	var par, seq, backup, restore []time.Duration
	var backupRSS, restoreRSS int64
	repoDir := filepath.Join(work, "repo")
	env := append(os.Environ(), "RESTIC_PASSWORD=bench-password")
	for r := range *rounds {
		order := []string{"parallel", "sequential"}
		if r%2 == 1 {
			order = []string{"sequential", "parallel"}
		}
		for _, o := range order {
			var n atomic.Int64
			w := countWriter{n: &n}
			t0 := time.Now()
			if o == "parallel" {
				_, _, err = dump.WriteShards(ctx, dump.Options{}, nodes, w)
			} else {
				for _, node := range nodes {
					if _, _, err = dump.WriteShards(ctx, dump.Options{}, []redisconn.Options{node}, w); err != nil {
						break
					}
				}
			}
			d := time.Since(t0)
			if err != nil {
				return err
			}
			logf("round %d: %s dump %v (%s)", r+1, o, d.Round(time.Millisecond), human(n.Load()))
			if o == "parallel" {
				par = append(par, d)
			} else {
				seq = append(seq, d)
			}
		}
		d, rss, err := measure(ctx, env, io.Discard, *runner, "backup", "--redis", "redis://"+src.addrs[0],
			"--repository", "file://"+repoDir, "--progress-interval", "0")
		if err != nil {
			return err
		}
		backup, backupRSS = append(backup, d), max(backupRSS, rss)
		d, rss, err = measure(ctx, env, io.Discard, *runner, "restore", "--redis", "redis://"+dst.addrs[0],
			"--repository", "file://"+repoDir, "--flush", "--progress-interval", "0")
		if err != nil {
			return err
		}
		restore, restoreRSS = append(restore, d), max(restoreRSS, rss)
		logf("round %d: stash-runner backup %v, restore %v", r+1, backup[r].Round(time.Millisecond), d.Round(time.Millisecond))
	}
	fmt.Printf("\n### %d-master cluster, %d keys (%d CPUs, Redis %s)\n\n", *masters, *keys, numCPU(), redisVersion())
	fmt.Printf("| what | wall (median of %d) | peak RSS |\n|---|---:|---:|\n", *rounds)
	fmt.Printf("| dump stage, masters in parallel (in-process, to io.Discard) | %.2f s | |\n", median(par).Seconds())
	fmt.Printf("| dump stage, masters one by one (in-process, to io.Discard) | %.2f s | |\n", median(seq).Seconds())
	fmt.Printf("| stash-runner backup (parallel; zstd + age, file://) | %.2f s | %.0f MB |\n", median(backup).Seconds(), float64(backupRSS)/1024)
	fmt.Printf("| stash-runner restore --flush (slot-routed, into %d masters) | %.2f s | %.0f MB |\n", *masters, median(restore).Seconds(), float64(restoreRSS)/1024)
	return nil
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

type benchCluster struct {
	servers []*server
	addrs   []string
	client  *redis.ClusterClient
}

func startCluster(ctx context.Context, dir string, masters int) (*benchCluster, error) {
	c := &benchCluster{}
	for i := range masters {
		d := filepath.Join(dir, strconv.Itoa(i))
		os.MkdirAll(d, 0o700)
		port, err := testproc.ClusterPort()
		if err != nil {
			return nil, err
		}
		s := &server{addr: "127.0.0.1:" + strconv.Itoa(port)}
		s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", d, "--logfile", filepath.Join(d, "redis.log"))
		if err := s.cmd.Start(); err != nil {
			c.stop()
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		s.client = redis.NewClient(&redis.Options{Addr: s.addr, Protocol: 2, DisableIdentity: true, ReadTimeout: -1})
		c.servers = append(c.servers, s)
		c.addrs = append(c.addrs, s.addr)
		for j := 0; s.client.Ping(ctx).Err() != nil; j++ {
			if j > 500 {
				c.stop()
				return nil, fmt.Errorf("redis-server %s not ready", s.addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.servers {
		for j := 0; ; j++ {
			info, _ := s.client.ClusterInfo(ctx).Result()
			if strings.Contains(info, "cluster_state:ok") {
				break
			}
			if j > 1500 {
				c.stop()
				return nil, fmt.Errorf("cluster node %s not ready", s.addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs, Protocol: 2, DisableIdentity: true, ReadTimeout: -1})
	return c, nil
}

func (c *benchCluster) stop() {
	if c.client != nil {
		c.client.Close()
	}
	for _, s := range c.servers {
		s.stop()
	}
}

// loadCluster writes n keys: 60% strings (20-200 B), 20% hashes (5 fields), 20% zsets (4 members),
// 20% of all with a TTL of 1-10 hours.
func loadCluster(ctx context.Context, c *redis.ClusterClient, n int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	val := strings.Repeat("x", 200)
	p := c.Pipeline()
	for i := range n {
		k := "key:" + strconv.Itoa(i)
		switch r := i % 10; {
		case r < 6:
			p.Set(ctx, k, val[:20+rng.IntN(180)], 0)
		case r < 8:
			p.HSet(ctx, k, "a", i, "b", "x", "c", "yy", "d", rng.Int(), "e", "z")
		default:
			p.ZAdd(ctx, k, redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"}, redis.Z{Score: 3, Member: "c"}, redis.Z{Score: 4, Member: i})
		}
		if i%5 == 0 {
			p.Expire(ctx, k, time.Hour+time.Duration(rng.IntN(9*3600))*time.Second)
		}
		if p.Len() >= 20000 {
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
		}
	}
	_, err := p.Exec(ctx)
	return err
}
