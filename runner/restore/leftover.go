package restore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/replication"
)

// ErrRestoreRunning is returned when the target is being restored by replication by another
// runner that is still alive.
var ErrRestoreRunning = errors.New("another restore by replication is running into the target")

// leftoverProbeTimeout bounds the connection attempt to the runner a target replicates from.
const leftoverProbeTimeout = 2 * time.Second

// recoverLeftover finds and undoes what a replication restore left on the target when its runner
// died before putting things back (SIGKILL, a deleted Pod, a lost node): the target is then a
// replica of a runner that no longer listens, with a random masterauth and repl-diskless-load
// on-empty-db, and every write to it fails with READONLY. Serve marks the target in masteruser
// before it changes anything (replication.Marker), so the leftover is recognised for sure and
// never confused with a replica the user set up. If the runner the target replicates from still
// accepts connections, a restore is running there and nothing is touched.
//
// It returns what it found and fixed, for a warning, or "" when the target carries no marker
// (or refuses CONFIG, as managed services do: a runner could not have changed it either).
func recoverLeftover(ctx context.Context, c *redis.Client, addr string) (string, error) {
	cfg, err := c.ConfigGet(ctx, "masteruser").Result()
	if err != nil {
		return "", nil
	}
	m, ok := replication.ParseMarker(cfg["masteruser"])
	if !ok {
		return "", nil
	}
	txt, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", fmt.Errorf("read replication info of %s: %w", addr, err)
	}
	info := infoFields(txt)
	var found string
	if info["role"] == "slave" {
		master := net.JoinHostPort(info["master_host"], info["master_port"])
		d := net.Dialer{Timeout: leftoverProbeTimeout}
		if nc, err := d.DialContext(ctx, "tcp", master); err == nil {
			nc.Close()
			return "", fmt.Errorf("%w: %s is a replica of the runner at %s, which still accepts connections: wait for that restore to end, or stop it first", ErrRestoreRunning, addr, master)
		}
		found = fmt.Sprintf("%s was left a replica of a runner at %s that is gone (a restore by replication that did not finish)", addr, master)
	} else {
		found = fmt.Sprintf("%s still has the settings of a restore by replication that did not finish", addr)
	}
	var fixed []string
	if info["role"] == "slave" {
		fixed = append(fixed, "made it a master again (REPLICAOF NO ONE)")
	}
	if m.SetDisklessLoad {
		fixed = append(fixed, "put back repl-diskless-load disabled")
	}
	if m.SetMasterauth {
		fixed = append(fixed, "removed the masterauth the runner had set")
	}
	fixed = append(fixed, "removed the runner's masteruser marker")
	if err := m.Undo(ctx, c); err != nil {
		return "", fmt.Errorf("%s; putting it back failed: %w", found, err)
	}
	return fmt.Sprintf("%s: %s", found, strings.Join(fixed, ", ")), nil
}

func infoFields(txt string) map[string]string {
	out := map[string]string{}
	for line := range strings.Lines(txt) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			out[k] = v
		}
	}
	return out
}
