package plugin

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestValidateDuplicateKeys: a key given twice in one mapping, in YAML or in JSON, is refused
// with its line, as the API server's strict field validation refuses it, instead of the last
// copy silently winning.
func TestValidateDuplicateKeys(t *testing.T) {
	b, err := os.ReadFile(fixture("valid", "repository-gcs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	valid := string(b)
	if _, _, err := runValidate(t, valid, "-f", "-"); err != nil {
		t.Fatalf("the fixture itself: %v", err)
	}
	yamlDup := strings.Replace(valid, "spec:\n", "spec:\n  wipeOut: false\n  wipeOut: true\n", 1)
	if yamlDup == valid {
		t.Fatal("fixture has no spec")
	}
	tests := []struct{ name, doc, want string }{
		{"yaml", "# leading comment\n---\n" + yamlDup, `duplicate key "wipeOut" at line 10`},
		{"json", `{"apiVersion":"stash.dev/v1alpha1","kind":"Repository","metadata":{"name":"r","name":"s"}}`, `duplicate key "name" at line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runValidate(t, tt.doc, "-f", "-")
			if !errors.Is(err, ErrInvalid) || !strings.Contains(out, tt.want) || !strings.Contains(out, "the API server refuses a field given twice") {
				t.Fatalf("want %q, got %v:\n%s", tt.want, err, out)
			}
		})
	}
}
