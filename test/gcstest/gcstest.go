// Package gcstest runs the real fake-gcs-server binary for tests of the GCS code path.
//
// The binary, not the in-process fakestorage package, is used so that tests can kill the server
// in the middle of an upload, as a network or storage failure would.
package gcstest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// Server is a running fake-gcs-server with one bucket.
type Server struct {
	// Host is 127.0.0.1:port, the value for STORAGE_EMULATOR_HOST.
	Host string
	// Bucket is the name of the bucket created at start.
	Bucket string

	bin  string
	port int
	dir  string
	proc *testproc.Process
}

// Binary returns the fake-gcs-server path or fails the test.
func Binary(t testing.TB) string {
	return testproc.Binary(t, "fake-gcs-server", "hack/tools.sh fake-gcs-server")
}

// Start runs fake-gcs-server on a free port with an in-memory backend and creates bucket.
func Start(t testing.TB, bucket string) *Server {
	return start(t, bucket, "")
}

// StartPersistent is Start with the filesystem backend, so that the server can be killed and
// restarted (Restart) with its objects intact, as a storage outage and recovery would.
func StartPersistent(t testing.TB, bucket string) *Server {
	return start(t, bucket, t.TempDir())
}

func start(t testing.TB, bucket, dir string) *Server {
	t.Helper()
	bin := Binary(t)
	var s *Server
	testproc.OnFreePort(t, func(port int) error {
		s = &Server{Host: "127.0.0.1:" + strconv.Itoa(port), Bucket: bucket, bin: bin, port: port, dir: dir}
		return s.run(t)
	})
	s.createBucket(t)
	return s
}

// Restart starts a killed persistent server again on the same port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	if err := s.run(t); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) run(t testing.TB) error {
	t.Helper()
	host := s.Host
	args := []string{"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(s.port),
		"-public-host", host, "-external-url", "http://" + host, "-log-level", "warn"}
	if s.dir != "" {
		args = append(args, "-backend", "filesystem", "-filesystem-root", s.dir)
	} else {
		args = append(args, "-backend", "memory")
	}
	var err error
	s.proc, err = testproc.Start(t, "fake-gcs-server", exec.Command(s.bin, args...), filepath.Join(t.TempDir(), "fake-gcs-server.log"), 15*time.Second,
		func() error {
			resp, err := http.Get("http://" + host + "/storage/v1/b")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
	return err
}

func (s *Server) createBucket(t testing.TB) {
	t.Helper()
	host, bucket := s.Host, s.Bucket
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+"/storage/v1/b?project=test",
		strings.NewReader(fmt.Sprintf(`{"name":%q}`, bucket)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create bucket %q: %v", bucket, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create bucket %q: %s", bucket, resp.Status)
	}
}

// Env returns the storage environment for the runner: STORAGE_EMULATOR_HOST.
func (s *Server) Env() map[string]string {
	return map[string]string{"STORAGE_EMULATOR_HOST": s.Host}
}

// URL returns gs://bucket/prefix.
func (s *Server) URL(prefix string) string { return "gs://" + s.Bucket + "/" + prefix }

// Kill stops the server with SIGKILL, as a storage outage would, and waits for it to exit.
func (s *Server) Kill() { s.proc.Kill() }
