package chaos

import (
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/dataset"
	"stash.dev/redis/test/faultproxy"
	"stash.dev/redis/test/gcstest"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/redistest"
	"stash.dev/redis/test/runnertest"
)

// TestStorageNetworkFaults: the link between the runner and S3 (MinIO behind the fault proxy)
// cut or reset mid-upload does not fail the backup (the S3 client sends the part again on a new
// connection) and the snapshot reads back whole; cut or reset mid-download fails the restore at
// once, naming the object, and the next restore gives the source's data. A stalled link is
// TestStorageStalled's.
func TestStorageNetworkFaults(t *testing.T) {
	for _, kind := range []faultproxy.Kind{faultproxy.Cut, faultproxy.Reset} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			src := source(t)
			runnertest.FillRandom(t, src, 2500, 4096) // ~10 MB that does not compress: several parts
			digest := src.Digest(t)
			m := miniotest.Start(t, "chaos")
			p := proxyTo(t, strings.TrimPrefix(m.Endpoint, "http://"))
			url := "s3://" + m.Bucket + "/repo?endpoint=http://" + p.Addr() + "&region=us-east-1"

			p.Set(faultproxy.Fault{Kind: kind, Dir: faultproxy.ToServer, After: midStream})
			pr := startEnv(t, m.Env(), "backup", "--redis", src.URL(), "--repository", url)
			if err := pr.wait(t); err != nil {
				t.Fatalf("backup with the upload %s: %v\n%s", kind, err, pr.errOut.String())
			}
			if !p.Active() {
				t.Fatalf("the %s never took effect (%d bytes uploaded)", kind, p.Bytes(faultproxy.ToServer))
			}
			p.Clear()
			mustRunEnv(t, m.Env(), "check", "--repository", url, "--read-data")
			record(t, row{Op: "backup, S3 (MinIO)", Fault: "upload " + kind.String() + " mid-stream (runner→S3, after 2 MiB)",
				Outcome: "succeeds: the S3 client sends the part again on a new connection", Detect: "took " + seconds(pr.end.Sub(pr.start)),
				Left: "a complete snapshot (`check --read-data` passes)", Next: "—"})

			dst := redistest.Start(t)
			p.Set(faultproxy.Fault{Kind: kind, Dir: faultproxy.ToClient, After: midStream})
			stop := make(chan struct{})
			at := activeAt(p, stop)
			pr = startEnv(t, m.Env(), "restore", "--redis", dst.URL(), "--repository", url, "--method", "restore")
			err := pr.wait(t)
			close(stop)
			if err == nil {
				t.Fatalf("restore with the download %s succeeded", kind)
			}
			msg := pr.message()
			if !strings.Contains(msg, "data.resp.zst.age") {
				t.Fatalf("restore with the download %s: the error does not name the object: %s", kind, msg)
			}
			when := at()
			if when.IsZero() {
				t.Fatalf("the %s never took effect", kind)
			}
			detect := pr.end.Sub(when)
			within(t, "failing after the "+kind.String(), detect, 15*time.Second)
			left := targetState(t, dst)
			p.Clear()
			mustRunEnv(t, m.Env(), "restore", "--redis", dst.URL(), "--repository", url, "--flush")
			if d := dst.Digest(t); d != digest {
				t.Fatalf("digest after the next restore %s, source %s", d, digest)
			}
			dataset.Same(t, src, dst)
			record(t, row{Op: "restore --method restore, S3 (MinIO)", Fault: "download " + kind.String() + " mid-stream (S3→runner, after 2 MiB)",
				Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: "succeeds with --flush"})
		})
	}
}

func mustRunEnv(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	p := startEnv(t, env, args...)
	if err := p.wait(t); err != nil {
		t.Fatalf("stash-runner %s: %v\n%s", strings.Join(args, " "), err, p.errOut.String())
	}
	return p.out.String()
}

// TestStorageStalled: the link to the storage — S3 (MinIO) and GCS (fake-gcs-server), each
// behind the fault proxy — stalls (open, silent) mid-upload and mid-download. Every read and
// write of a storage connection has an idle deadline (io_timeout in the repository URL, 60 s by
// default; 3 s here), so the request fails, is retried up to max_attempts, and the command then
// fails naming the stall instead of hanging; a failed backup leaves no snapshot, and the next
// run succeeds.
func TestStorageStalled(t *testing.T) {
	src := source(t)
	runnertest.FillRandom(t, src, 2500, 4096)
	digest := src.Digest(t)
	const options = "io_timeout=3s&max_attempts=2"

	m := miniotest.Start(t, "chaos")
	p := proxyTo(t, strings.TrimPrefix(m.Endpoint, "http://"))
	storageStalled(t, src, digest, p, "S3 (MinIO)", m.Env(),
		"s3://"+m.Bucket+"/repo?endpoint=http://"+p.Addr()+"&region=us-east-1&"+options)

	g := gcstest.Start(t, "chaos")
	p = proxyTo(t, g.Host)
	env := g.Env()
	env[store.EnvStorageEmulatorHost] = p.Addr()
	storageStalled(t, src, digest, p, "GCS (fake-gcs-server)", env, g.URL("repo")+"?"+options)
}

// storageStalled runs the stalled upload and the stalled download through p, the proxy in
// front of the storage of url, and records their rows.
func storageStalled(t *testing.T, src *redistest.Server, digest string, p *faultproxy.Proxy, storage string, env map[string]string, url string) {
	t.Helper()
	p.Set(faultproxy.Fault{Kind: faultproxy.Stall, Dir: faultproxy.ToServer, After: midStream})
	stop := make(chan struct{})
	at := activeAt(p, stop)
	pr := startEnv(t, env, "backup", "--redis", src.URL(), "--repository", url)
	err := pr.wait(t)
	close(stop)
	if err == nil {
		t.Fatalf("%s: backup with a stalled upload succeeded", storage)
	}
	msg := pr.message()
	if !says(msg, "the link stalled") {
		t.Fatalf("%s: backup with a stalled upload: the error does not say the storage link stalled: %s", storage, msg)
	}
	when := at()
	if when.IsZero() {
		t.Fatalf("%s: the stall never took effect", storage)
	}
	detect := pr.end.Sub(when)
	within(t, storage+": failing after the upload stalled", detect, 30*time.Second)
	p.Clear()
	if ids := idRE.FindAllString(mustRunEnv(t, env, "snapshots", "--repository", url), -1); len(ids) != 0 {
		t.Fatalf("%s: a stalled backup left snapshots %v", storage, ids)
	}
	record(t, row{Op: "backup, " + storage, Fault: "upload stalled mid-stream (io_timeout=3s, max_attempts=2)",
		Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: "nothing", Next: "succeeds"})
	mustRunEnv(t, env, "backup", "--redis", src.URL(), "--repository", url)

	dst := redistest.Start(t)
	p.Set(faultproxy.Fault{Kind: faultproxy.Stall, Dir: faultproxy.ToClient, After: midStream})
	stop = make(chan struct{})
	at = activeAt(p, stop)
	pr = startEnv(t, env, "restore", "--redis", dst.URL(), "--repository", url, "--method", "restore")
	err = pr.wait(t)
	close(stop)
	if err == nil {
		t.Fatalf("%s: restore with a stalled download succeeded", storage)
	}
	msg = pr.message()
	if !says(msg, "the link stalled") {
		t.Fatalf("%s: restore with a stalled download: the error does not say the storage link stalled: %s", storage, msg)
	}
	when = at()
	if when.IsZero() {
		t.Fatalf("%s: the download stall never took effect", storage)
	}
	detect = pr.end.Sub(when)
	within(t, storage+": failing after the download stalled", detect, 30*time.Second)
	left := targetState(t, dst)
	p.Clear()
	mustRunEnv(t, env, "restore", "--redis", dst.URL(), "--repository", url, "--flush")
	if d := dst.Digest(t); d != digest {
		t.Fatalf("%s: digest after the next restore %s, source %s", storage, d, digest)
	}
	dataset.Same(t, src, dst)
	record(t, row{Op: "restore --method restore, " + storage, Fault: "download stalled mid-stream (io_timeout=3s)",
		Outcome: "fails: " + excerpt(msg), Detect: seconds(detect), Left: left, Next: "succeeds with --flush"})
}
