package cli_test

import (
	"errors"
	"strings"
	"testing"

	"stash.dev/redis/api/v1alpha1"
)

// TestPointInTimeSelectionNamesTheFlags: restore --to-time with --databases is refused before
// any I/O by the API's rule (v1alpha1.CheckPointInTimeSelection), in stash-runner's flags.
func TestPointInTimeSelectionNamesTheFlags(t *testing.T) {
	_, _, err := run(t, nil, "restore", "--redis", "redis://127.0.0.1:1", "--repository", "file://"+t.TempDir(),
		"--to-time", "2026-12-02T10:15:00Z", "--databases", "1")
	var sel *v1alpha1.PointInTimeSelectionError
	if !errors.As(err, &sel) || !strings.Contains(err.Error(), "drop --databases") {
		t.Fatalf("restore --to-time --databases: %v", err)
	}
}
