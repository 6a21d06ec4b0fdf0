package chaos

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"stash.dev/redis/test/runnertest"
)

// smallDisk is a tmpfs of 4 MiB, mounted in a mount namespace of its own so that it needs no
// cleanup and, with a user namespace, no root: `unshare --mount` as root, `unshare --user
// --map-root-user --mount` otherwise. A holder process keeps the namespace alive; every other
// process reaches the mount through /proc/<holder>/root, so the runner under test runs as it
// always does.
type smallDisk struct {
	// Dir is the mount point as seen from outside the namespace.
	Dir   string
	stdin io.WriteCloser
	lines *bufio.Reader
}

func newSmallDisk(t *testing.T) *smallDisk {
	t.Helper()
	dir := t.TempDir()
	args := []string{"--mount"}
	if os.Geteuid() != 0 {
		args = []string{"--user", "--map-root-user", "--mount"}
	}
	script := `mount -t tmpfs -o size=4m tmpfs "$1" || exit 1
echo ready
read -r _ || exit 0
mount -o remount,size=64m tmpfs "$1" || exit 1
echo grown
read -r _
exit 0`
	cmd := exec.Command("unshare", append(args, "sh", "-c", script, "sh", dir)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	d := &smallDisk{Dir: "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/root" + dir, stdin: stdin, lines: bufio.NewReader(stdout)}
	d.expect(t, "ready", &stderr)
	return d
}

func (d *smallDisk) expect(t *testing.T, want string, stderr *strings.Builder) {
	t.Helper()
	got := make(chan string, 1)
	go func() { l, _ := d.lines.ReadString('\n'); got <- strings.TrimSpace(l) }()
	select {
	case l := <-got:
		if l != want {
			t.Fatalf("mount a tmpfs in a mount namespace: %q, want %q; stderr: %v", l, want, stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tmpfs holder did not answer in 10 s")
	}
}

// grow makes the disk 64 MiB, as an operator who frees or adds space would.
func (d *smallDisk) grow(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(d.stdin, "grow\n"); err != nil {
		t.Fatal(err)
	}
	d.expect(t, "grown", &strings.Builder{})
}

// TestRepositoryDiskFull: a backup into a repository whose disk fills up (ENOSPC on a 4 MiB
// tmpfs, with a snapshot of about 10 MB that does not compress) fails with "no space left on
// device" naming the file, leaves no manifest and no listed snapshot, and `check` finds what
// is left; once the disk has room, the next backup succeeds.
func TestRepositoryDiskFull(t *testing.T) {
	for _, method := range methods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			src := source(t)
			runnertest.FillRandom(t, src, 2500, 4096)
			disk := newSmallDisk(t)
			repoURL := "file://" + disk.Dir
			pr, err := run(t, backupArgs(src.Addr, repoURL, method)...)
			if err == nil {
				t.Fatal("a backup of 10 MB into a 4 MiB disk succeeded")
			}
			msg := pr.message()
			if !strings.Contains(msg, "no space left on device") || !strings.Contains(msg, disk.Dir) {
				t.Fatalf("backup into a full disk: the error does not say \"no space left on device\" in %s: %s", disk.Dir, msg)
			}
			left := leftBehind(t, repoURL, disk.Dir)
			disk.grow(t)
			mustRun(t, backupArgs(src.Addr, repoURL, method)...)
			if ids := snapshots(t, repoURL); len(ids) != 1 {
				t.Fatalf("snapshots after the next backup: %v", ids)
			}
			mustRun(t, "check", "--repository", repoURL, "--read-data")
			record(t, row{Op: "backup --method " + method, Fault: "repository disk full (ENOSPC, 4 MiB tmpfs)",
				Outcome: "fails: " + excerpt(msg), Detect: "took " + seconds(pr.end.Sub(pr.start)), Left: left, Next: "succeeds once the disk has room"})
		})
	}
}
