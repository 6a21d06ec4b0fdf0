package redistest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAssets returns the directory of Redis's own test suite RDB files (tests/assets/*.rdb),
// which `hack/tools.sh redis-test-assets` unpacks from Debian's redis source package;
// STASH_REDIS_TEST_ASSETS overrides it.
func TestAssets(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STASH_REDIS_TEST_ASSETS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "kubectl-stash", "redis-src", "tests", "assets")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.rdb"))
	if len(files) == 0 {
		t.Fatalf("no redis test RDB files in %s: run `make tools` or `hack/tools.sh redis-test-assets`", dir)
	}
	return dir
}
