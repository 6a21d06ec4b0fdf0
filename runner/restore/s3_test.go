package restore_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/miniotest"
	"stash.dev/redis/test/redistest"
)

func TestRoundTripS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s3 := miniotest.Start(t, "stash-test")
	roundTripThrough(t, s3, 100_000)

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
