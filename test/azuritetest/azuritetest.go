// Package azuritetest runs Azurite, the Azure Blob Storage emulator, for tests of the azblob://
// code path.
//
// `hack/tools.sh azurite` installs it with npm into ~/.cache/kubectl-stash/azurite and links
// azurite-blob into ~/.cache/kubectl-stash/bin; a missing binary fails the test (run `make test`).
package azuritetest

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"stash.dev/redis/test/testproc"
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
	proc     *testproc.Process
}

// Binary returns the azurite-blob path or fails the test.
func Binary(t testing.TB) string {
	return testproc.Binary(t, "azurite-blob", "hack/tools.sh azurite")
}

// Start runs azurite-blob on a free port with its data in a temporary directory and creates
// the container.
func Start(t testing.TB, containerName string) *Server {
	t.Helper()
	s := &Server{Container: containerName, bin: Binary(t), dir: t.TempDir()}
	testproc.OnFreePort(t, func(port int) error {
		s.port, s.Host = port, "127.0.0.1:"+strconv.Itoa(port)
		return s.run(t)
	})
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
	cmd := exec.Command(s.bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(s.port),
		"--location", filepath.Join(s.dir, "data"), "--silent", "--skipApiVersionCheck")
	var err error
	s.proc, err = testproc.Start(t, "azurite-blob", cmd, filepath.Join(s.dir, "azurite.log"), 30*time.Second, func() error {
		resp, err := http.Get("http://" + s.Host + "/" + Account + "?comp=list")
		if err == nil {
			resp.Body.Close() // any HTTP answer (403 without a signature) means it is up
		}
		return err
	})
	return err
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
func (s *Server) Kill() { s.proc.Kill() }
