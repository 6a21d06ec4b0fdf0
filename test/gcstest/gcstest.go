// Package gcstest runs the real fake-gcs-server binary for tests of the GCS code path.
//
// The binary, not the in-process fakestorage package, is used so that tests can kill the server
// in the middle of an upload, as a network or storage failure would.
package gcstest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	cmd  *exec.Cmd
	done chan struct{}
	once *sync.Once
}

// Binary returns the fake-gcs-server path or fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("fake-gcs-server"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "kubectl-stash", "bin", "fake-gcs-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("fake-gcs-server not found on PATH or in ~/.cache/kubectl-stash/bin: run `make test` or `hack/tools.sh fake-gcs-server`")
	return ""
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
	var err error
	// The free port can be taken by a parallel test between Listen and the server's bind: retry.
	for range 3 {
		var l net.Listener
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &Server{Host: "127.0.0.1:" + strconv.Itoa(port), Bucket: bucket, bin: bin, port: port, dir: dir}
		if err = s.run(t); err == nil {
			s.createBucket(t)
			return s
		}
	}
	t.Fatal(err)
	return nil
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
	s.done, s.once = make(chan struct{}), &sync.Once{}
	args := []string{"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(s.port),
		"-public-host", host, "-external-url", "http://" + host, "-log-level", "warn"}
	if s.dir != "" {
		args = append(args, "-backend", "filesystem", "-filesystem-root", s.dir)
	} else {
		args = append(args, "-backend", "memory")
	}
	s.cmd = exec.Command(s.bin, args...)
	logf := filepath.Join(t.TempDir(), "fake-gcs-server.log")
	out, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("run fake-gcs-server: %w", err)
	}
	cmd, done := s.cmd, s.done
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(s.Kill)

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/storage/v1/b")
		if err == nil {
			resp.Body.Close()
			select {
			case <-s.done: // another process answered on this port
				return fmt.Errorf("fake-gcs-server exited during startup")
			default:
			}
			break
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(logf)
			return fmt.Errorf("fake-gcs-server exited during startup: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("fake-gcs-server on %s not ready: %v", host, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
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
func (s *Server) Kill() {
	once, done, cmd := s.once, s.done, s.cmd
	once.Do(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
}
