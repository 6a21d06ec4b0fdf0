package plugin_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"stash.dev/redis/test/testproc"
)

// toolsBin is the directory of the tools hack/tools.sh builds (krew, validate-krew-manifest,
// helm); the test fails when one of them is missing there.
func toolsBin(t *testing.T, tools ...string) string {
	t.Helper()
	dir := ""
	for _, tool := range tools {
		dir = filepath.Dir(testproc.Tool(t, tool))
	}
	return dir
}

// TestKrewInstallFromDist builds the release archive of this platform with hack/dist.sh
// (DIST_PLATFORMS limits it; the default builds only the host's to keep the test short),
// installs it with krew offline into a fresh KREW_ROOT, runs the installed plugin through
// kubectl, and checks that krew refuses an archive whose sha256 does not match.
func TestKrewInstallFromDist(t *testing.T) {
	tools := toolsBin(t, "kubectl-krew", "validate-krew-manifest")
	platforms := os.Getenv("DIST_PLATFORMS")
	host := runtime.GOOS + "/" + runtime.GOARCH
	if platforms == "" {
		platforms = host
	}
	if !strings.Contains(platforms, host) {
		t.Fatalf("DIST_PLATFORMS=%q must include this machine's %s so that krew can install it", platforms, host)
	}
	dist := t.TempDir()
	path := tools + string(os.PathListSeparator) + os.Getenv("PATH")
	cmd := exec.Command(filepath.Join(root, "hack", "dist.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST_DIR="+dist, "DIST_PLATFORMS="+platforms, "VERSION=v0.9.9-test", "PATH="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/dist.sh: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "structural validation OK") {
		t.Errorf("validate-krew-manifest did not run:\n%s", out)
	}
	manifest := filepath.Join(dist, "stash.yaml")
	archive := filepath.Join(dist, "kubectl-stash_"+runtime.GOOS+"_"+runtime.GOARCH+".tar.gz")
	sums, err := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if err != nil || !strings.Contains(string(sums), filepath.Base(archive)) {
		t.Fatalf("sha256sums.txt: %v\n%s", err, sums)
	}

	kubectlBin := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	krew := func(krewRoot, manifest string, args ...string) (string, error) {
		cmd := exec.Command(kubectlBin, args...)
		cmd.Env = append(os.Environ(), "KREW_ROOT="+krewRoot, "KUBECONFIG="+cluster.Kubeconfig,
			"PATH="+filepath.Join(krewRoot, "bin")+string(os.PathListSeparator)+path)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	krewRoot := t.TempDir()
	out, err := krew(krewRoot, manifest, "krew", "install", "--manifest="+manifest, "--archive="+archive)
	if err != nil || !strings.Contains(out, "Installed plugin: stash") {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	// kubectl finds the plugin krew installed (not the test's build: that is not on this PATH).
	out, err = krew(krewRoot, manifest, "stash", "version")
	if err != nil || strings.TrimSpace(out) != "kubectl-stash v0.9.9-test" {
		t.Errorf("installed plugin: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(krewRoot, "store", "stash", "v0.9.9-test", "LICENSE")); err != nil {
		t.Errorf("LICENSE not installed: %v", err)
	}

	// A manifest whose sha256 does not match the archive is refused.
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	bad := regexp.MustCompile(`sha256: "[0-9a-f]{64}"`).ReplaceAllString(string(data), `sha256: "`+strings.Repeat("0", 64)+`"`)
	badDir := t.TempDir()
	badManifest := filepath.Join(badDir, "stash.yaml")
	writeFile(t, badManifest, bad)
	out, err = krew(t.TempDir(), badManifest, "krew", "install", "--manifest="+badManifest, "--archive="+archive)
	if err == nil || !strings.Contains(out, "checksum does not match") {
		t.Errorf("krew accepted a wrong sha256: %v\n%s", err, out)
	}
}

// TestDistManifestListsSixPlatforms runs hack/dist.sh with its default platforms and checks
// the krew manifest it writes: linux, darwin and windows × amd64 and arm64, each with its
// archive's URI and sha256 and the right binary name, accepted by validate-krew-manifest.
// Cross-compiling six binaries takes minutes, so a stand-in `go` on PATH writes each binary's
// name instead: what is under test is the packaging, not the compiler (TestKrewInstallFromDist
// installs a real one).
func TestDistManifestListsSixPlatforms(t *testing.T) {
	tools := toolsBin(t, "validate-krew-manifest")
	stub := t.TempDir()
	writeFile(t, filepath.Join(stub, "go"), "#!/bin/sh\n"+
		`while [ $# -gt 0 ]; do if [ "$1" = -o ]; then shift; echo "kubectl-stash for $GOOS/$GOARCH" > "$1"; fi; shift; done`+"\n")
	if err := os.Chmod(filepath.Join(stub, "go"), 0o755); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "hack", "dist.sh"))
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DIST_PLATFORMS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DIST_DIR="+dist, "VERSION=v0.9.9-test", "DIST_BASE_URL=https://example.invalid/v0.9.9-test",
		"PATH="+stub+string(os.PathListSeparator)+tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/dist.sh: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "structural validation OK") {
		t.Errorf("validate-krew-manifest did not run:\n%s", out)
	}
	raw, err := os.ReadFile(filepath.Join(dist, "stash.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Platforms []struct {
				Selector struct {
					MatchLabels map[string]string `json:"matchLabels"`
				} `json:"selector"`
				URI    string `json:"uri"`
				SHA256 string `json:"sha256"`
				Bin    string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	var got []string
	for _, p := range m.Spec.Platforms {
		goos, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		got = append(got, goos+"/"+arch)
		archive := "kubectl-stash_" + goos + "_" + arch + ".tar.gz"
		if p.URI != "https://example.invalid/v0.9.9-test/"+archive {
			t.Errorf("%s/%s: uri %s", goos, arch, p.URI)
		}
		if sum := sha256File(t, filepath.Join(dist, archive)); p.SHA256 != sum {
			t.Errorf("%s/%s: sha256 %s, archive has %s", goos, arch, p.SHA256, sum)
		}
		if want := map[bool]string{true: "kubectl-stash.exe", false: "kubectl-stash"}[goos == "windows"]; p.Bin != want {
			t.Errorf("%s/%s: bin %s, want %s", goos, arch, p.Bin, want)
		}
	}
	want := []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("manifest platforms %v, want %v", got, want)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
