//go:build unix

package repo

import (
	"errors"
	"syscall"
)

// processRuns reports whether pid names a process of this pid namespace (signal 0 probes it
// without signalling); only "no such process" counts as not running.
func processRuns(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
