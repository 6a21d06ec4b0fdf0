package cli

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/restore"
)

// TestHintsNameTheFlags: what stash-runner prints after a refused restore (a non-empty target,
// a lossy restore, a point in time with a selection) names its own flags, and keeps the
// library's error underneath.
func TestHintsNameTheFlags(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"non-empty target", &restore.TargetNotEmptyError{Addr: "h:1", DB: 0, Keys: 3}, []string{"--flush", "--replace"}},
		{"lossy", &restore.LossyError{Snapshot: "s", Target: "Valkey 8.1", Keys: 1, Reasons: []string{"r"}, Examples: []string{`db 0 "k"`}}, []string{"--allow-lossy"}},
		{"point in time", fmt.Errorf("restore: %w", v1alpha1.CheckPointInTimeSelection(1, "")), []string{"--databases", "--key-pattern"}},
	}
	for _, c := range cases {
		err := withHint("restore", c.err)
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %s", c.name, err, w)
			}
		}
		if !errors.Is(err, c.err) || withHint("restore", err) != err {
			t.Errorf("%s: the hint hides the error or is added twice: %v", c.name, err)
		}
	}
}

// TestLibrariesNameNoFlag: no string of runner/'s libraries names a flag or an API field;
// only runner/cli and runner/session, which know their users, do.
func TestLibrariesNameNoFlag(t *testing.T) {
	words := regexp.MustCompile(`(^|[^-\w])--[a-z]|spec\.[a-z]|flushBeforeRestore|conflictPolicy|allowLossy|readFromReplica`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "cli" || name == "session" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if l, ok := n.(*ast.BasicLit); ok && l.Kind == token.STRING && words.MatchString(l.Value) {
				t.Errorf("%s: %s names a flag or a field", fset.Position(l.Pos()), l.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
