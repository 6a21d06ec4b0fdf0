package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stash.dev/redis/test/testproc"
)

// TestAlertRules checks the rule file and runs its unit tests: a failing backup, a stale one
// and a healthy one, each firing or not as it should (monitoring/prometheus-rules_test.yaml).
func TestAlertRules(t *testing.T) {
	bin := testproc.Tool(t, "promtool")
	for _, args := range [][]string{
		{"check", "rules", "prometheus-rules.yaml"},
		{"test", "rules", "prometheus-rules_test.yaml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "monitoring"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestChartCarriesTheRules: the Helm chart ships the same rule file (make generate copies it).
func TestChartCarriesTheRules(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("monitoring", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "charts", "stash-redis", "files", "prometheus-rules.yaml"))
	if err != nil || string(got) != string(want) {
		t.Errorf("charts/stash-redis/files/prometheus-rules.yaml differs from config/monitoring/prometheus-rules.yaml (err %v): run make generate", err)
	}
}
