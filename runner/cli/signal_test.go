package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// TestImportHonoursSIGTERMWhileItsInputStalls: `stash-runner import` of a FIFO whose writer has
// stopped mid-file exits within 2 s of SIGTERM, failed, with no snapshot.
func TestImportHonoursSIGTERMWhileItsInputStalls(t *testing.T) {
	bin := runnerBinary(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "dump.rdb")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Held open for writing (read-write, so the open does not wait for a reader): the start
	// of an RDB file, then nothing.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString("REDIS0011\xfa\x09redis-ver"); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(dir, "repo")
	cmd := exec.Command(bin, "import", fifo, "--repository", "file://"+repoDir, "--kdf-work-factor", "10")
	cmd.Env = append(os.Environ(), "RESTIC_PASSWORD="+testPassword)
	var out testproc.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// The repository is created before the file is read.
	testproc.Eventually(t, 10*time.Second, "the import to create its repository", func() error {
		_, err := os.Stat(filepath.Join(repoDir, "keys"))
		return err
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("import of a stalled input succeeded: %s", out.String())
		}
		t.Logf("exited %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(2 * time.Second):
		t.Fatalf("import still running 2 s after SIGTERM: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(repoDir, "snapshots")); err == nil {
		if entries, _ := os.ReadDir(filepath.Join(repoDir, "snapshots")); len(entries) > 0 {
			t.Fatalf("a stopped import left %d snapshot directories", len(entries))
		}
	}
}
