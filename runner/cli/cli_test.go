package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/cli"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
	"stash.dev/redis/test/testproc"
)

const testPassword = runnertest.Password

type env map[string]string

func (e env) get(k string) string { return e[k] }

// run executes stash-runner in-process; repository keys use a cheap KDF to keep tests fast.
func run(t *testing.T, e env, args ...string) (string, string, error) {
	t.Helper()
	if e == nil {
		e = env{}
	}
	if _, ok := e[cli.EnvResticPassword]; !ok {
		e[cli.EnvResticPassword] = testPassword
	}
	var out, errOut bytes.Buffer
	cmd := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, e.get, "test")
	cmd.SetArgs(append(args, "--kdf-work-factor", "10", "--progress-interval", "0"))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func mustRun(t *testing.T, e env, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, e, args...)
	if err != nil {
		t.Fatalf("stash-runner %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

var idRE = regexp.MustCompile(`\d{8}T\d{6}Z-[0-9a-f]{6}`)

func TestBackupRestoreAndRepositoryCommands(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 5000, "k", 10)
	repoURL := "file://" + t.TempDir()
	resultFile := filepath.Join(t.TempDir(), "result.json")

	out := mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL, "--result-file", resultFile)
	id := idRE.FindString(out)
	if id == "" {
		t.Fatalf("no snapshot id in %q", out)
	}
	var rf struct {
		Operation string
		Success   bool
		Duration  float64
		Result    struct {
			SnapshotID string
			Keys       int64
			RawBytes   int64
		}
	}
	b, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	if !rf.Success || rf.Operation != "backup" || rf.Result.SnapshotID != id || rf.Result.Keys != 5000 || rf.Result.RawBytes == 0 {
		t.Fatalf("result file: %s", b)
	}
	for range 3 {
		mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	}
	list := mustRun(t, nil, "snapshots", "--repository", repoURL)
	if got := len(idRE.FindAllString(list, -1)); got != 4 || !strings.Contains(list, "7.0") && !strings.Contains(list, "REDIS") {
		t.Fatalf("snapshots lists %d snapshots:\n%s", got, list)
	}
	dry := mustRun(t, nil, "forget", "--repository", repoURL, "--keep-last", "2", "--dry-run")
	if !strings.Contains(dry, "would remove 2") {
		t.Fatalf("forget --dry-run: %s", dry)
	}
	if got := len(idRE.FindAllString(mustRun(t, nil, "snapshots", "--repository", repoURL), -1)); got != 4 {
		t.Fatalf("dry run removed snapshots: %d left", got)
	}
	mustRun(t, nil, "forget", "--repository", repoURL, "--keep-last", "2")
	list = mustRun(t, nil, "snapshots", "--repository", repoURL)
	if got := len(idRE.FindAllString(list, -1)); got != 2 || strings.Contains(list, id) {
		t.Fatalf("after forget --keep-last 2:\n%s", list)
	}
	if _, _, err := run(t, nil, "forget", "--repository", repoURL); err == nil {
		t.Fatal("forget without a policy succeeded")
	}
	if out := mustRun(t, nil, "check", "--repository", repoURL, "--read-data"); !strings.Contains(out, "no errors: 2 snapshots") {
		t.Fatalf("check: %s", out)
	}

	dst := redistest.Start(t)
	out = mustRun(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--snapshot", "latest", "--result-file", resultFile)
	if s, d := src.Digest(t), dst.Digest(t); s != d || !strings.Contains(out, "by replication") {
		t.Fatalf("digest: source %s, restored %s; output %q", s, d, out)
	}
	dataset.Same(t, src, dst)
	if b, _ := os.ReadFile(resultFile); !bytes.Contains(b, []byte(`"method": "replication"`)) {
		t.Fatalf("result file: %s", b)
	}
	if _, _, err := run(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--method", "rdb"); err == nil || !strings.Contains(err.Error(), "--method") {
		t.Fatalf("restore --method rdb: %v", err)
	}
	_, _, err = run(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--result-file", resultFile)
	if err == nil || !strings.Contains(err.Error(), "--flush") {
		t.Fatalf("restore into a non-empty target: %v", err)
	}
	b, _ = os.ReadFile(resultFile)
	if !bytes.Contains(b, []byte(`"success": false`)) || !bytes.Contains(b, []byte("refusing")) {
		t.Fatalf("result file of a failed restore: %s", b)
	}
	if out := mustRun(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--flush", "--method", "restore"); !strings.Contains(out, "by restore") {
		t.Fatalf("restore --method restore: %s", out)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest after restore --flush --method restore: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
}

func TestPasswords(t *testing.T) {
	src := redistest.Start(t)
	src.Client.Set(context.Background(), "a", "b", 0)
	repoURL := "file://" + t.TempDir()
	mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)

	_, _, err := run(t, env{cli.EnvResticPassword: "wrong"}, "snapshots", "--repository", repoURL)
	if err == nil || !strings.Contains(err.Error(), "wrong repository password") {
		t.Fatalf("wrong password: %v", err)
	}
	_, _, err = run(t, env{cli.EnvResticPassword: ""}, "snapshots", "--repository", repoURL)
	if err == nil || !strings.Contains(err.Error(), "RESTIC_PASSWORD") {
		t.Fatalf("no password: %v", err)
	}
	mustRun(t, env{cli.EnvResticPassword: "", cli.EnvEncryptionPassword: testPassword}, "snapshots", "--repository", repoURL)
	pf := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pf, []byte(testPassword+"\n"), 0o600)
	mustRun(t, env{cli.EnvResticPassword: ""}, "snapshots", "--repository", repoURL, "--password-file", pf)
	_, _, err = run(t, nil, "restore", "--redis", src.URL(), "--repository", "file://"+t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not initialized") {
		t.Fatalf("restore from an empty repository: %v", err)
	}
}

func TestRedisAuthAndUnixSocket(t *testing.T) {
	src := redistest.Start(t, redistest.WithPassword("adminpw"), redistest.WithUnixSocket(),
		redistest.WithACLUser("backup on >backuppw ~* &* +@all"))
	src.Client.Set(context.Background(), "a", "b", 0)
	repoURL := "file://" + t.TempDir()

	_, _, err := run(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("backup without credentials: %v", err)
	}
	mustRun(t, env{cli.EnvRedisUsername: "backup", cli.EnvRedisPassword: "backuppw"}, "backup", "--redis", src.URL(), "--repository", repoURL)
	_, errOut, err := run(t, nil, "backup", "--redis", "redis://backup:backuppw@"+src.Addr, "--repository", repoURL)
	if err != nil || !strings.Contains(errOut, "WARNING") || !strings.Contains(errOut, "REDIS_PASSWORD") {
		t.Fatalf("password in url: %v, stderr %q", err, errOut)
	}
	mustRun(t, env{cli.EnvRedisPassword: "adminpw"}, "backup", "--redis", "unix://"+src.Socket, "--repository", repoURL)
	if n := len(idRE.FindAllString(mustRun(t, nil, "snapshots", "--repository", repoURL), -1)); n != 3 {
		t.Fatalf("%d snapshots, want 3", n)
	}
	// Through a unix socket the target connects back to the runner on 127.0.0.1.
	dst := redistest.Start(t, redistest.WithPassword("dstpw"), redistest.WithUnixSocket())
	out := mustRun(t, env{cli.EnvRedisPassword: "dstpw"}, "restore", "--redis", "unix://"+dst.Socket, "--repository", repoURL, "--method", "replication")
	if !strings.Contains(out, "by replication") || dst.Client.Get(context.Background(), "a").Val() != "b" {
		t.Fatalf("restore through a unix socket: %s", out)
	}
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	certs := redistest.NewCerts(t)
	src := redistest.Start(t, redistest.WithTLS(certs))
	src.Client.Do(ctx, "DEBUG", "POPULATE", 1000, "k", 10)
	repoURL := "file://" + t.TempDir()
	tlsURL := "rediss://" + src.TLSAddr

	mustRun(t, nil, "backup", "--redis", tlsURL, "--repository", repoURL, "--tls-ca-file", certs.CAFile)
	mustRun(t, nil, "backup", "--redis", tlsURL, "--repository", repoURL, "--tls-ca-file", certs.CAFile,
		"--tls-cert-file", certs.ClientCertFile, "--tls-key-file", certs.ClientKeyFile)

	other := redistest.NewCerts(t)
	_, _, err := run(t, nil, "backup", "--redis", tlsURL, "--repository", repoURL, "--tls-ca-file", other.CAFile)
	if err == nil || !strings.Contains(err.Error(), "--tls-ca-file") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("backup with a wrong CA: %v", err)
	}
	t.Logf("wrong CA: %v", err)
	_, _, err = run(t, nil, "backup", "--redis", "rediss://localhost:"+strings.Split(src.TLSAddr, ":")[1], "--repository", repoURL,
		"--tls-ca-file", certs.CAFile, "--tls-server-name", "wrong.example")
	if err == nil || !strings.Contains(err.Error(), "--tls-server-name") {
		t.Fatalf("backup with a wrong server name: %v", err)
	}
	_, errOut, err := run(t, nil, "backup", "--redis", tlsURL, "--repository", repoURL, "--insecure-skip-verify")
	if err != nil || !strings.Contains(errOut, "WARNING: --insecure-skip-verify") {
		t.Fatalf("--insecure-skip-verify: %v, stderr %q", err, errOut)
	}
	dst := redistest.Start(t, redistest.WithTLS(certs))
	// Over TLS the default method keeps to RESTORE: the replication link would be plain text.
	out := mustRun(t, nil, "restore", "--redis", "rediss://"+dst.TLSAddr, "--repository", repoURL, "--tls-ca-file", certs.CAFile)
	if s, d := src.Digest(t), dst.Digest(t); s != d || !strings.Contains(out, "by restore") {
		t.Fatalf("digest: source %s, restored %s; output %q", s, d, out)
	}
	dataset.Same(t, src, dst)
	_, _, err = run(t, nil, "restore", "--redis", "rediss://"+dst.TLSAddr, "--repository", repoURL, "--tls-ca-file", certs.CAFile, "--flush", "--method", "replication")
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("restore --method replication over TLS: %v", err)
	}
}

func TestOrphans(t *testing.T) {
	src := redistest.Start(t)
	src.Client.Set(context.Background(), "a", "b", 0)
	dir := t.TempDir()
	repoURL := "file://" + dir
	mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	// What a backup that died between data and manifest leaves behind.
	orphan := filepath.Join(dir, "snapshots", "20200101T000000Z-abcdef")
	os.MkdirAll(orphan, 0o700)
	os.WriteFile(filepath.Join(orphan, "data.resp.zst.age"), []byte("partial"), 0o600)

	if n := len(idRE.FindAllString(mustRun(t, nil, "snapshots", "--repository", repoURL), -1)); n != 1 {
		t.Fatalf("orphan is visible: %d snapshots", n)
	}
	out := mustRun(t, nil, "check", "--repository", repoURL)
	if !strings.Contains(out, "20200101T000000Z-abcdef: orphan") {
		t.Fatalf("check: %s", out)
	}
	out = mustRun(t, nil, "check", "--repository", repoURL, "--prune-orphans")
	if !strings.Contains(out, "orphan kept") {
		t.Fatalf("young orphan pruned: %s", out)
	}
	out = mustRun(t, nil, "check", "--repository", repoURL, "--prune-orphans", "--orphan-min-age", "0s")
	if !strings.Contains(out, "orphan removed") {
		t.Fatalf("check --prune-orphans: %s", out)
	}
	if _, err := os.Stat(filepath.Join(orphan, "data.resp.zst.age")); !os.IsNotExist(err) {
		t.Fatalf("orphan still there: %v", err)
	}
}

// runnerBinary returns the stash-runner built by `make build`, or builds one.
func runnerBinary(t *testing.T) string {
	t.Helper()
	p, err := testproc.OurBinary(t.TempDir(), "stash-runner")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCatPipe: a snapshot is a plain RESP stream that redis-cli --pipe restores.
func TestCatPipe(t *testing.T) {
	ctx := context.Background()
	bin := runnerBinary(t)
	redisCLI := redistest.Binary(t, "redis-cli")
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 20000, "k", 50)
	for _, db := range []int{2, 9} {
		c := src.Client.Conn()
		c.Select(ctx, db)
		c.Set(ctx, "in-db", db, 0)
		c.XAdd(ctx, &redis.XAddArgs{Stream: "s", Values: []any{"f", db}})
		c.Close()
	}
	repoURL := "file://" + t.TempDir()
	out := mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL)
	id := idRE.FindString(out)

	dst := redistest.Start(t)
	sh := exec.Command("bash", "-o", "pipefail", "-c",
		`"$RUNNER" cat "$ID" --repository "$REPO" | "$REDIS_CLI" -p "$PORT" --pipe`)
	sh.Env = append(os.Environ(), "RUNNER="+bin, "ID="+id, "REPO="+repoURL, "REDIS_CLI="+redisCLI,
		"PORT="+strings.Split(dst.Addr, ":")[1], cli.EnvResticPassword+"="+testPassword)
	b, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("cat | redis-cli --pipe: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "errors: 0") {
		t.Fatalf("redis-cli --pipe: %s", b)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, piped %s", s, d)
	}
	dataset.Same(t, src, dst)
	vb, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(vb), "stash-runner ") {
		t.Fatalf("version: %q %v", vb, err)
	}
}

func TestProgress(t *testing.T) {
	src := redistest.Start(t)
	src.Client.Do(context.Background(), "DEBUG", "POPULATE", 100000, "k", 10)
	var out, errOut bytes.Buffer
	cmd := cli.NewRootCommand(cli.Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut},
		env{cli.EnvResticPassword: testPassword}.get, "test")
	cmd.SetArgs([]string{"backup", "--redis", src.URL(), "--repository", "file://" + t.TempDir(), "--kdf-work-factor", "10", "--progress-interval", "5ms"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`backup: \d+ keys, [\d.]+ [KMG]?i?B, \d+ keys/s, [\d.]+% of 100000`).MatchString(errOut.String()) {
		t.Fatalf("no progress line on stderr: %q", errOut.String())
	}
}

// TestWorkersAndDatabasesFlags: --workers outside 1..MaxWorkers is refused before anything is
// allocated or connected, and a database named twice is dumped once, so that the snapshot
// restores by replication (a server loading a duplicated key aborts).
func TestWorkersAndDatabasesFlags(t *testing.T) {
	ctx := context.Background()
	src := redistest.Start(t)
	src.Client.Do(ctx, "DEBUG", "POPULATE", 3000, "k", 10)
	repoURL := "file://" + t.TempDir()
	for _, w := range []string{"0", "-1", "65", "1000000000"} {
		_, _, err := run(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL, "--workers", w)
		if err == nil || !strings.Contains(err.Error(), "--workers "+w+": must be between 1 and 64") {
			t.Fatalf("backup --workers %s: %v", w, err)
		}
	}
	if _, _, err := run(t, nil, "snapshots", "--repository", repoURL); err == nil || !strings.Contains(err.Error(), "not initialized") {
		t.Fatalf("a refused backup touched the repository: snapshots says %v", err)
	}
	resultFile := filepath.Join(t.TempDir(), "result.json")
	mustRun(t, nil, "backup", "--redis", src.URL(), "--repository", repoURL, "--databases", "0,0", "--workers", "64", "--result-file", resultFile)
	var rf struct{ Result struct{ Keys int64 } }
	b, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rf); err != nil || rf.Result.Keys != 3000 {
		t.Fatalf("backup --databases 0,0 wrote %d keys of 3000 (%v): %s", rf.Result.Keys, err, b)
	}
	if out := mustRun(t, nil, "check", "--repository", repoURL, "--read-data"); !strings.Contains(out, "no errors") {
		t.Fatalf("check: %s", out)
	}
	dst := redistest.Start(t)
	mustRun(t, nil, "restore", "--redis", dst.URL(), "--repository", repoURL, "--method", "replication", "--workers", "1")
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	dataset.Same(t, src, dst)
}
