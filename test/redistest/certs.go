package redistest

import (
	"crypto/x509"
	"testing"

	"stash.dev/redis/test/testproc"
)

// Certs are PEM files of a test CA, a server certificate for 127.0.0.1/localhost (and the extra
// hosts asked for) and a client certificate, all written to a test directory.
type Certs struct {
	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
}

// NewCerts generates a fresh CA and certificates signed by it. extraHosts (IP addresses or DNS
// names) are added to the server certificate: a node's Pods reach a host server by an address
// of its bridge, a Service by its name.
func NewCerts(t testing.TB, extraHosts ...string) *Certs {
	t.Helper()
	ca, err := testproc.NewCA(t.TempDir(), "redistest CA")
	if err != nil {
		t.Fatal(err)
	}
	hosts := append([]string{"localhost", "127.0.0.1"}, extraHosts...)
	c := &Certs{CAFile: ca.File}
	if c.ServerCertFile, c.ServerKeyFile, err = ca.Issue("server", x509.ExtKeyUsageServerAuth, hosts...); err != nil {
		t.Fatal(err)
	}
	if c.ClientCertFile, c.ClientKeyFile, err = ca.Issue("client", x509.ExtKeyUsageClientAuth, hosts...); err != nil {
		t.Fatal(err)
	}
	return c
}
