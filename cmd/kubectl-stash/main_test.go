package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// TestSignalEndsEveryCommand: `kubectl stash validate` exits within 2 s of SIGTERM, both while
// it reads a standard input that never ends and while its server-side dry run waits for an
// API server that never answers.
func TestSignalEndsEveryCommand(t *testing.T) {
	bin, err := testproc.OurBinary(t.TempDir(), "kubectl-stash")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: db}}]
current-context: c
`, testproc.Silent(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin bool
	}{
		{"stdin that never ends", []string{"validate", "-f", "-"}, true},
		{"server-side dry run against a silent server", []string{"validate", "--server-side", "-f", "../../test/fixtures/valid/repository-gcs.yaml"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
			var out testproc.Output
			cmd.Stdout, cmd.Stderr = &out, &out
			var stdin io.WriteCloser
			if tc.stdin {
				if stdin, err = cmd.StdinPipe(); err != nil {
					t.Fatal(err)
				}
				defer stdin.Close()
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			// Under way: it has read more of its stdin than a pipe holds (so this write returned),
			// or it has a connection to the server.
			if tc.stdin {
				if _, err := io.WriteString(stdin, strings.Repeat("# a comment line of the manifest to come\n", 4096)); err != nil {
					t.Fatal(err)
				}
			} else {
				testproc.Eventually(t, 10*time.Second, "the dry run to connect", func() error {
					fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", cmd.Process.Pid))
					for _, fd := range fds {
						if l, _ := os.Readlink(fd); strings.HasPrefix(l, "socket:") {
							return nil
						}
					}
					return errors.New("no socket yet")
				})
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
					t.Fatalf("after SIGTERM: %v, want an exit status of its own (the signal handled): %s", err, out.String())
				}
				t.Logf("exited %s after SIGTERM (%v)", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(2 * time.Second):
				t.Fatalf("still running 2 s after SIGTERM: %s", out.String())
			}
		})
	}
}
