package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func runValidate(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	streams, in, out, errOut := genericiooptions.NewTestIOStreams()
	in.WriteString(stdin)
	cmd := NewCmdStash(streams)
	cmd.SetArgs(append([]string{"validate"}, args...))
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func fixture(parts ...string) string {
	return filepath.Join(append([]string{"..", "test", "fixtures"}, parts...)...)
}

// The verdicts on malformed input: clear, with file and line, and no crash.
func TestValidateMalformedInput(t *testing.T) {
	tests := []struct {
		file  string
		want  string
		valid bool
	}{
		{"bad-indent.yaml", fixture("malformed", "bad-indent.yaml") + ":2: (no kind): invalid: malformed YAML: yaml: line 9: did not find expected key", false},
		{"typo-kind.yaml", fixture("malformed", "typo-kind.yaml") + `:1: BackupConfig/typo: invalid: unknown kind "BackupConfig" in stash.dev/v1alpha1; did you mean BackupConfiguration? (known kinds: Repository, BackupConfiguration, BackupSession, RestoreSession)`, false},
		{"deployment.yaml", fixture("malformed", "deployment.yaml") + ":1: Deployment/redis: skipped: not a stash.dev object; nothing to check", true},
		{"stash-appscode.yaml", fixture("malformed", "stash-appscode.yaml") + ":1: BackupConfiguration/sample-redis-backup: invalid: stash.appscode.com/v1beta1 is the API of Stash (stash.appscode.com), not of kubectl stash; use apiVersion stash.dev/v1alpha1 (kubectl stash convert turns Stash manifests into ours)", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, _, err := runValidate(t, "", "-f", fixture("malformed", tt.file))
			if !strings.Contains(out, tt.want+"\n") {
				t.Errorf("output lacks\n%s\ngot:\n%s", tt.want, out)
			}
			if tt.valid != (err == nil) {
				t.Errorf("exit: want valid=%v, got err=%v", tt.valid, err)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("want ErrInvalid, got %v", err)
			}
		})
	}
}

func TestValidateDirectoryAndStdin(t *testing.T) {
	out, _, err := runValidate(t, "", "-f", fixture("valid"))
	if err != nil {
		t.Fatalf("valid fixtures: %v\n%s", err, out)
	}
	if n := strings.Count(out, ": valid\n"); n != 14 {
		t.Errorf("want 14 valid objects in the valid fixtures, got %d:\n%s", n, out)
	}

	data, err := os.ReadFile(fixture("invalid", "bc-bad-schedule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = runValidate(t, string(data), "-f", "-", "-o", "json")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	var got []ValidationResult
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	want := []ValidationResult{{
		File: "-", Document: 1, Line: 2, APIVersion: "stash.dev/v1alpha1", Kind: "BackupConfiguration",
		Namespace: "demo", Name: "bc-bad-schedule", Verdict: VerdictInvalid,
		Errors: []FieldError{{Field: "spec.schedule", Type: "FieldValueInvalid",
			Message: `Invalid value: "61 * * * *": not a valid cron expression: end of range (61) above maximum (59): 61`}},
	}}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(ValidationResult{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".object" }, cmp.Ignore())); d != "" {
		t.Errorf("-o json (-want +got):\n%s", d)
	}
}

func TestValidateFlags(t *testing.T) {
	if _, _, err := runValidate(t, ""); err == nil || !strings.Contains(err.Error(), "no input") {
		t.Errorf("want a no-input error, got %v", err)
	}
	if _, _, err := runValidate(t, "", "-f", fixture("valid"), "-o", "yaml"); err == nil || !strings.Contains(err.Error(), `unknown output format "yaml"`) {
		t.Errorf("want an output-format error, got %v", err)
	}
	if _, _, err := runValidate(t, "", "-f", "no-such-file.yaml"); err == nil || !strings.Contains(err.Error(), "no-such-file.yaml") {
		t.Errorf("want the missing file named, got %v", err)
	}
}

func TestSplitDocumentsKeepsLines(t *testing.T) {
	in := "# leading comment\n\napiVersion: v1\nkind: A\n---\n# only a comment\n---\n\napiVersion: v1\nkind: B\n"
	docs, err := splitDocuments("f", bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	var got [][2]int
	for _, d := range docs {
		got = append(got, [2]int{d.index, d.line})
	}
	if d := cmp.Diff([][2]int{{1, 3}, {2, 9}}, got); d != "" {
		t.Errorf("documents (index, line) (-want +got):\n%s", d)
	}
}

func TestVersion(t *testing.T) {
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	o := &VersionOptions{IOStreams: streams, getter: genericclioptions.NewConfigFlags(false)}
	if err := o.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "kubectl-stash ") {
		t.Errorf("version output %q", out.String())
	}
}

// TestValidateHostileInput: an alias bomb, nesting 100,000 deep and 10,000 documents get
// verdicts; a line longer than any manifest holds is refused naming the line. Each takes about a
// second or less (10,000 documents: 1 s; 12 s under -race on a busy machine): the bound below
// catches a blow-up, not a slow machine.
func TestValidateHostileInput(t *testing.T) {
	aliases := "a: &a [x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		aliases += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 8) + "*" + prev + "]\n"
		prev = n
	}
	var many strings.Builder
	for i := range 10000 {
		if i > 0 {
			many.WriteString("---\n")
		}
		many.WriteString("apiVersion: stash.dev/v1alpha1\nkind: Repository\nmetadata: {name: r" + strings.Repeat("x", i%7) + ", namespace: db}\nspec: {backend: {gcs: {bucket: bucket}, storageSecretName: s}}\n")
	}
	tests := []struct {
		name, input, want string
	}{
		{"alias bomb", "apiVersion: stash.dev/v1alpha1\nkind: Repository\n" + aliases, "malformed YAML: yaml: document contains excessive aliasing"},
		{"deep nesting", "a: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", "malformed YAML: yaml: exceeded max depth"},
		{"10,000 documents", many.String(), "-:10000: Repository/rxxx: valid"},
		{"a 17 MiB line", "apiVersion: stash.dev/v1alpha1\nkind: Repository\nmetadata: {name: r, annotations: {a: " + strings.Repeat("x", 17<<20) + "}}\n", "line 3 is longer than 16 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			out, errOut, err := runValidate(t, tt.input, "-f", "-")
			if got := out + errOut + fmt.Sprint(err); !strings.Contains(got, tt.want) {
				t.Fatalf("want %q in:\n%.2000s", tt.want, got)
			}
			if d := time.Since(start); d > time.Minute {
				t.Errorf("took %s", d)
			}
		})
	}
}

// TestValidateWarnsAboutContinuousBackup: a BackupConfiguration with continuous backup is valid,
// with the warning admission gives: managed services refuse the follower's PSYNC.
func TestValidateWarnsAboutContinuousBackup(t *testing.T) {
	bc := "apiVersion: stash.dev/v1alpha1\nkind: BackupConfiguration\nmetadata: {name: pitr, namespace: db}\n" +
		"spec: {schedule: '@daily', repository: {name: repo}, target: {redis: {address: 'redis:6379'}}, continuous: {enabled: true}}\n"
	out, errOut, err := runValidate(t, bc, "-f", "-")
	if err != nil || !strings.Contains(out, "BackupConfiguration/pitr: valid") || !strings.Contains(errOut, "warning: spec.continuous: the follower connects to the target as a replica (PSYNC)") {
		t.Fatalf("err %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}
