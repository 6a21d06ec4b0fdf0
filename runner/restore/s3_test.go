package restore_test

import (
	"context"
	"crypto/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/restore"
	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/redistest"
)

func TestRoundTripS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := miniotest.Start(t, "stash-test")
	src := redistest.Start(t)
	fill(t, src, 100_000)
	r := openRepo(t, s3.URL("redis/prod"), s3.Env())
	res, err := backup.Run(ctx, backup.Options{Redis: conn(t, src), Repository: r})
	if err != nil {
		t.Fatal(err)
	}
	r2 := openRepo(t, s3.URL("redis/prod"), s3.Env())
	dst := redistest.Start(t)
	if _, err := restore.Run(ctx, restore.Options{Redis: conn(t, dst), Repository: r2, Snapshot: res.SnapshotID}); err != nil {
		t.Fatal(err)
	}
	if s, d := src.Digest(t), dst.Digest(t); s != d {
		t.Fatalf("digest: source %s, restored %s", s, d)
	}
	other := openRepo(t, s3.URL("redis/other"), s3.Env())
	if all, err := other.List(ctx); err != nil || len(all) != 0 {
		t.Fatalf("other prefix lists %v, %v", all, err)
	}

	tests := []struct {
		name, url string
		env       map[string]string
		want      []string
	}{
		{"wrong secret key", s3.URL("x"), map[string]string{"AWS_ACCESS_KEY_ID": miniotest.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong"},
			[]string{"denied", "AWS_SECRET_ACCESS_KEY"}},
		{"missing bucket", strings.Replace(s3.URL("x"), "stash-test", "no-such-bucket", 1), s3.Env(),
			[]string{`"no-such-bucket" does not exist`}},
		{"no credentials", s3.URL("x"), nil, []string{"no credentials from the AWS default credential chain"}},
		{"bad ca", s3.URL("x"), map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "CA_CERT_DATA": "junk"},
			[]string{"CA_CERT_DATA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Open(ctx, tt.url, tt.env)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Open: %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

func TestS3KilledMidUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := miniotest.Start(t, "stash-fail")
	src := redistest.Start(t)
	p := src.Client.Pipeline()
	for i := range 2000 {
		v := make([]byte, 20000)
		rand.Read(v)
		p.Set(ctx, "rnd:"+strconv.Itoa(i), v, 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	r := openRepo(t, s3.URL("fail"), s3.Env())
	pc := &progress.Counter{}
	go func() {
		for pc.Bytes.Load() < 20<<20 {
			time.Sleep(time.Millisecond)
		}
		s3.Kill()
	}()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := backup.Run(cctx, backup.Options{Redis: conn(t, src), Repository: r, Progress: pc})
	if err == nil {
		t.Fatal("backup succeeded although storage was killed")
	}
	t.Logf("backup error: %v", err)
	s3.Restart(t)
	assertNoSnapshot(t, openRepo(t, s3.URL("fail"), s3.Env()))
}

// TestS3TLS: a private CA is trusted through CA_CERT_DATA, an unknown one fails, and
// insecure_tls=true skips verification.
func TestS3TLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	certs := redistest.NewCerts(t)
	s3 := miniotest.StartTLS(t, "stash-tls", miniotest.TLSFiles{CAFile: certs.CAFile, CertFile: certs.ServerCertFile, KeyFile: certs.ServerKeyFile})
	ca, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	withCA := s3.Env()
	withCA["CA_CERT_DATA"] = string(ca)
	b, err := store.Open(ctx, s3.URL("tls"), withCA)
	if err != nil {
		t.Fatalf("open with CA_CERT_DATA: %v", err)
	}
	if err := b.WriteAll(ctx, "x", []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := store.Open(ctx, s3.URL("tls"), s3.Env()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("open without the CA: %v, want a certificate error", err)
	}
	b, err = store.Open(ctx, s3.URL("tls")+"&insecure_tls=true", s3.Env())
	if err != nil {
		t.Fatalf("open with insecure_tls: %v", err)
	}
	b.Close()
}
