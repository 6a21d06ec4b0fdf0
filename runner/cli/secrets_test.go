package cli_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/test/redistest"
)

// TestSecretsNeverShown runs every command of the runner, on its success and its failure paths,
// with recognisable secrets — the Redis password (in the URL and through REDISCLI_AUTH-like
// places), the repository password — and looks for them in everything a user or a log
// collector can see: stdout, stderr, the error, the result files, and every byte the repository
// holds on disk (manifests, keys, data, journal).
func TestSecretsNeverShown(t *testing.T) {
	const redisSecret, repoSecret = "redisPW-7f3a91bd", "repoPW-c04e55aa"
	ctx := context.Background()
	src := redistest.Start(t, redistest.WithPassword(redisSecret))
	dst := redistest.Start(t, redistest.WithPassword(redisSecret))
	if err := src.Client.Do(ctx, "DEBUG", "POPULATE", "2000", "key", "16").Err(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repoURL := "file://" + filepath.Join(dir, "repo")
	srcURL := "redis://default:" + redisSecret + "@" + src.Addr
	dstURL := "redis://default:" + redisSecret + "@" + dst.Addr
	rdbFile := filepath.Join(dir, "dump.rdb")
	if err := src.Client.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	cfgDir := src.Client.ConfigGet(ctx, "dir").Val()["dir"]
	if b, err := os.ReadFile(filepath.Join(cfgDir, "dump.rdb")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(rdbFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	e := env{cli.EnvResticPassword: repoSecret}
	wrong := env{cli.EnvResticPassword: "not-the-" + repoSecret}
	result := func(name string) string { return filepath.Join(dir, name+".json") }
	steps := []struct {
		name string
		env  env
		args []string
		ok   bool
	}{
		{"backup", e, []string{"backup", "--redis", srcURL, "--repository", repoURL, "--result-file", result("backup")}, true},
		{"backup by dump", e, []string{"backup", "--method", "dump", "--redis", srcURL, "--repository", repoURL}, true},
		{"backup, wrong Redis password", e, []string{"backup", "--redis", "redis://default:" + redisSecret + "x@" + src.Addr, "--repository", repoURL, "--result-file", result("backup-wrong")}, false},
		{"backup, unreachable Redis", e, []string{"backup", "--redis", "redis://default:" + redisSecret + "@127.0.0.1:1", "--repository", repoURL, "--redis-read-timeout", "2s"}, false},
		{"backup, unparsable URL", e, []string{"backup", "--redis", "redis://default:" + redisSecret + "@[::1", "--repository", repoURL}, false},
		{"backup, wrong repository password", wrong, []string{"backup", "--redis", srcURL, "--repository", repoURL}, false},
		{"import", e, []string{"import", "--repository", repoURL, rdbFile}, true},
		{"snapshots", e, []string{"snapshots", "--repository", repoURL}, true},
		{"snapshots --json", e, []string{"snapshots", "--repository", repoURL, "--json"}, true},
		{"check --read-data", e, []string{"check", "--repository", repoURL, "--read-data"}, true},
		{"restore", e, []string{"restore", "--redis", dstURL, "--repository", repoURL, "--snapshot", "latest", "--result-file", result("restore")}, true},
		{"restore into a non-empty target", e, []string{"restore", "--redis", dstURL, "--repository", repoURL, "--method", "restore", "--result-file", result("restore-fail")}, false},
		{"restore, wrong repository password", wrong, []string{"restore", "--redis", dstURL, "--repository", repoURL}, false},
		{"cat", e, []string{"cat", "--repository", repoURL, "--snapshot", "latest"}, true},
		{"forget", e, []string{"forget", "--repository", repoURL, "--keep-last", "1"}, true},
		{"version", e, []string{"version"}, true},
	}
	var seen []string
	for _, s := range steps {
		out, errOut, err := run(t, s.env, s.args...)
		if (err == nil) != s.ok {
			t.Fatalf("%s: error %v, want success=%v\nstderr: %s", s.name, err, s.ok, errOut)
		}
		if err != nil {
			seen = append(seen, s.name+" error: "+err.Error())
		}
		seen = append(seen, s.name+" stdout: "+out, s.name+" stderr: "+errOut)
	}
	// The follower too, for a few seconds.
	fctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	var fout, ferr strings.Builder
	cmd := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &fout, ErrOut: &ferr}, e.get, "test")
	cmd.SetArgs([]string{"follow", "--redis", srcURL, "--repository", repoURL, "--segment-interval", "1s", "--kdf-work-factor", "10", "--progress-interval", "0"})
	go func() { // writes for the journal once the base is taken
		for i := 0; fctx.Err() == nil; i++ {
			time.Sleep(200 * time.Millisecond)
			_ = src.Client.Set(ctx, "during-follow", i, 0).Err()
		}
	}()
	_ = cmd.ExecuteContext(fctx)
	seen = append(seen, "follow stdout: "+fout.String(), "follow stderr: "+ferr.String())

	for _, s := range seen {
		for _, secret := range []string{redisSecret, repoSecret} {
			if strings.Contains(s, secret) {
				t.Errorf("a secret in %.3000s", s)
			}
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == rdbFile {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, secret := range []string{redisSecret, repoSecret} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds a secret", strings.TrimPrefix(p, dir))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "repo", "journal")); len(entries) == 0 {
		t.Errorf("the follower wrote no journal: the files it would write were not looked at\n%s", ferr.String())
	}
}
