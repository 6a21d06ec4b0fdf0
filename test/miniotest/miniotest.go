// Package miniotest runs a real MinIO server for tests of the S3 code path.
//
// The binary is built by `hack/tools.sh minio` into ~/.cache/kubectl-stash/bin; a missing binary
// fails the test (run `make test`), it never skips.
package miniotest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"stash.dev/redis/test/testproc"
)

// Root credentials of every test server.
const (
	AccessKey = "minioadmin"
	SecretKey = "minioadmin-secret"
)

// Server is a running minio server with one bucket.
type Server struct {
	// Endpoint is http://127.0.0.1:port.
	Endpoint string
	Bucket   string

	bin, dir string
	host     string
	port     int
	tls      *TLSFiles
	proc     *testproc.Process
}

// Binary returns the minio path or fails the test.
func Binary(t testing.TB) string {
	return testproc.Binary(t, "minio", "hack/tools.sh minio")
}

// TLSFiles are PEM files for StartTLS: the server certificate and key, and the CA that signed it.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Start runs minio on a free port with its data in a temporary directory and creates bucket.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	return start(t, bucket, "127.0.0.1", nil)
}

// StartTLS is Start with HTTPS only, serving the given certificate.
func StartTLS(t testing.TB, bucket string, files TLSFiles) *Server {
	t.Helper()
	return start(t, bucket, "127.0.0.1", &files)
}

// StartTLSOn is StartTLS listening on host (an address of this machine) instead of
// 127.0.0.1: a real node's Pods reach the host through their bridge's address.
func StartTLSOn(t testing.TB, bucket, host string, files TLSFiles) *Server {
	t.Helper()
	return start(t, bucket, host, &files)
}

func start(t testing.TB, bucket, host string, files *TLSFiles) *Server {
	t.Helper()
	s := &Server{Bucket: bucket, bin: Binary(t), dir: t.TempDir(), tls: files, host: host}
	scheme := "http"
	if files != nil {
		scheme = "https"
		certs := filepath.Join(s.dir, "certs")
		for src, dst := range map[string]string{files.CertFile: "public.crt", files.KeyFile: "private.key"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(certs, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(certs, dst), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	testproc.OnFreePort(t, func(port int) error {
		s.port, s.Endpoint = port, scheme+"://"+s.host+":"+strconv.Itoa(port)
		return s.run(t)
	})
	if _, err := s.Client(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %q: %v", bucket, err)
	}
	return s
}

// Restart starts a killed server again on the same port with the same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.run(t); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) run(t testing.TB) error {
	t.Helper()
	console, err := testproc.FreePort()
	if err != nil {
		return err
	}
	args := []string{"server", "--quiet", "--address", s.host + ":" + strconv.Itoa(s.port),
		"--console-address", "127.0.0.1:" + strconv.Itoa(console)}
	if s.tls != nil {
		args = append(args, "--certs-dir", filepath.Join(s.dir, "certs"))
	}
	cmd := exec.Command(s.bin, append(args, filepath.Join(s.dir, "data"))...)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	client := s.httpClient(t)
	s.proc, err = testproc.Start(t, "minio", cmd, filepath.Join(s.dir, "minio.log"), 30*time.Second, func() error {
		resp, err := client.Get(s.Endpoint + "/minio/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("minio health: %s", resp.Status)
		}
		return nil
	})
	return err
}

// httpClient trusts the CA of a TLS server.
func (s *Server) httpClient(t testing.TB) *http.Client {
	if s.tls == nil {
		return http.DefaultClient
	}
	pem, err := os.ReadFile(s.tls.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// Client is an S3 client with the root credentials.
func (s *Server) Client(t testing.TB) *s3.Client {
	return s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		HTTPClient:  s.httpClient(t),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

// Env returns the storage Secret keys for the runner.
func (s *Server) Env() map[string]string {
	return map[string]string{"AWS_ACCESS_KEY_ID": AccessKey, "AWS_SECRET_ACCESS_KEY": SecretKey}
}

// URL returns s3://bucket/prefix?endpoint=...
func (s *Server) URL(prefix string) string {
	return "s3://" + s.Bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&region=us-east-1"
}

// Kill stops the server with SIGKILL, as a storage outage would.
func (s *Server) Kill() { s.proc.Kill() }
