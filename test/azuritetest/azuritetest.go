// Package azuritetest runs Azurite, the Azure Blob Storage emulator, for tests of the azblob://
// code path.
//
// `hack/tools.sh azurite` installs it with npm into ~/.cache/kubectl-stash/azurite and links
// azurite-blob into ~/.cache/kubectl-stash/bin; a missing binary fails the test (run `make test`).
package azuritetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite's published development account.
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running azurite-blob with one container.
type Server struct {
	// Host is 127.0.0.1:port.
	Host      string
	Container string

	bin, dir string
	port     int
	cmd      *exec.Cmd
	done     chan struct{}
	once     *sync.Once
}

// Binary returns the azurite-blob path or fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "kubectl-stash", "bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("azurite-blob not found on PATH or in ~/.cache/kubectl-stash/bin: run `make test` or `hack/tools.sh azurite`")
	return ""
}

// Start runs azurite-blob on a free port with its data in a temporary directory and creates
// the container.
func Start(t testing.TB, containerName string) *Server {
	t.Helper()
	s := &Server{Container: containerName, bin: Binary(t), dir: t.TempDir()}
	var err error
	for range 3 { // a parallel test can take the port between Listen and azurite's bind
		l, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		s.Host = "127.0.0.1:" + strconv.Itoa(s.port)
		if err = s.run(t); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	cred, err := azblob.NewSharedKeyCredential(Account, Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential("http://"+s.Host+"/"+Account, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(context.Background(), containerName, nil); err != nil {
		t.Fatalf("create container %q: %v", containerName, err)
	}
	return s
}

func (s *Server) run(t testing.TB) error {
	t.Helper()
	s.done, s.once = make(chan struct{}), &sync.Once{}
	s.cmd = exec.Command(s.bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(s.port),
		"--location", filepath.Join(s.dir, "data"), "--silent", "--skipApiVersionCheck")
	logf := filepath.Join(s.dir, "azurite.log")
	out, err := os.OpenFile(logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("run azurite-blob: %w", err)
	}
	cmd, done := s.cmd, s.done
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(s.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Host + "/" + Account + "?comp=list")
		if err == nil {
			resp.Body.Close() // any HTTP answer (403 without a signature) means it is up
			return nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf)
			return fmt.Errorf("azurite-blob exited during startup: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("azurite-blob on %s not ready: %v", s.Host, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Env returns the storage Secret keys for the runner.
func (s *Server) Env() map[string]string {
	return map[string]string{"AZURE_ACCOUNT_NAME": Account, "AZURE_ACCOUNT_KEY": Key}
}

// URL returns azblob://container/prefix?domain=...&protocol=http&localemu=true.
func (s *Server) URL(prefix string) string {
	return "azblob://" + s.Container + "/" + prefix + "?domain=" + s.Host + "&protocol=http&localemu=true"
}

// Kill stops the server with SIGKILL.
func (s *Server) Kill() {
	once, done, cmd := s.once, s.done, s.cmd
	once.Do(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
}
