package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var (
	linuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// TestWrite packs stand-in binaries for two platforms and reads the archive back as an OCI
// layout: the index, each platform's config and the files in its layers.
func TestWrite(t *testing.T) {
	binDir := t.TempDir()
	binaries := map[string][]byte{}
	for _, p := range []v1.Platform{linuxAMD64, linuxARM64} {
		binaries[p.Architecture] = []byte("#!stand-in stash-runner for " + p.String() + "\n")
		writeFile(t, filepath.Join(binDir, "linux_"+p.Architecture, "stash-runner"), binaries[p.Architecture])
	}
	spec := Spec{
		Name:      "stash-runner",
		Version:   "v1.2.3-4-gabcdef0-dirty",
		BinaryDir: binDir,
		Platforms: []v1.Platform{linuxAMD64, linuxARM64},
		License:   []byte("Apache License 2.0 (test)\n"),
		CABundle:  testCA(t),
	}
	path := filepath.Join(t.TempDir(), "stash-runner.tar")
	res, err := Write(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	if want := "stash.dev/stash-runner:v1.2.3-4-gabcdef0-dirty"; res.Ref != want {
		t.Errorf("Ref = %q, want %q", res.Ref, want)
	}

	idx := readIndex(t, path, res)
	for _, p := range spec.Platforms {
		t.Run(p.String(), func(t *testing.T) {
			img := platformImage(t, idx, p)
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != p.OS || cf.Architecture != p.Architecture {
				t.Errorf("config platform = %s/%s, want %s", cf.OS, cf.Architecture, p)
			}
			wantConfig := v1.Config{
				Entrypoint: []string{"/usr/local/bin/stash-runner"},
				User:       "65532:65532",
				WorkingDir: "/",
				Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
				Labels: map[string]string{
					"org.opencontainers.image.title":    "stash-runner",
					"org.opencontainers.image.version":  "v1.2.3-4-gabcdef0-dirty",
					"org.opencontainers.image.licenses": "Apache-2.0",
				},
			}
			if diff := cmp.Diff(wantConfig, cf.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if cf.Created.Unix() != 0 {
				t.Errorf("created = %v, want the epoch", cf.Created)
			}
			assertManifestTypes(t, img)

			files := extract(t, img)
			bin := files["usr/local/bin/stash-runner"]
			if bin.hdr == nil {
				t.Fatalf("no usr/local/bin/stash-runner in the image; files: %v", names(files))
			}
			if bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode&0o7777 != 0o755 || bin.hdr.Uid != 0 || bin.hdr.Gid != 0 {
				t.Errorf("binary: type %c mode %o owner %d:%d, want regular 0755 0:0", bin.hdr.Typeflag, bin.hdr.Mode, bin.hdr.Uid, bin.hdr.Gid)
			}
			if !bytes.Equal(bin.body, binaries[p.Architecture]) {
				t.Errorf("binary content = %q, want %q", bin.body, binaries[p.Architecture])
			}
			if tmp := files["tmp"]; tmp.hdr == nil || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o7777 != 0o1777 {
				t.Errorf("/tmp = %+v, want a directory with mode 1777", tmp.hdr)
			}
			if home := files["home/nonroot"]; home.hdr == nil || home.hdr.Uid != 65532 || home.hdr.Gid != 65532 {
				t.Errorf("/home/nonroot = %+v, want a directory owned by 65532:65532", home.hdr)
			}
			if got := string(files["etc/passwd"].body); !strings.Contains(got, "\nnonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no nonroot 65532 user:\n%s", got)
			}
			if got := string(files["etc/group"].body); !strings.Contains(got, "\nnonroot:x:65532:") {
				t.Errorf("/etc/group has no nonroot 65532 group:\n%s", got)
			}
			if roots := files["etc/ssl/certs/ca-certificates.crt"]; roots.hdr == nil || roots.hdr.Mode&0o7777 != 0o644 || !bytes.Equal(roots.body, spec.CABundle) {
				t.Errorf("/etc/ssl/certs/ca-certificates.crt = %+v, want the CA bundle, mode 0644", roots.hdr)
			}
			if got := files["LICENSE"].body; !bytes.Equal(got, spec.License) {
				t.Errorf("/LICENSE = %q, want %q", got, spec.License)
			}
			for name, f := range files {
				if !f.hdr.ModTime.Equal(epoch) {
					t.Errorf("%s: mtime %v, want the epoch", name, f.hdr.ModTime)
				}
			}
		})
	}

	// Same binaries, same bytes: the archive is reproducible.
	again := filepath.Join(t.TempDir(), "again.tar")
	if _, err := Write(again, spec); err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, path), readFile(t, again); !bytes.Equal(a, b) {
		t.Errorf("writing the same image twice gave different archives (%d and %d bytes)", len(a), len(b))
	}
}

// TestWriteRealBinary cross-compiles a tiny Go program for linux/amd64 with the Makefile's
// flags, packs it and checks that the binary comes back out of the image byte for byte, as a
// linux/amd64 ELF that runs (on a linux/amd64 host).
func TestWriteRealBinary(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"))
	writeFile(t, filepath.Join(src, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello from the image\\n\") }\n"))
	binDir := t.TempDir()
	out := filepath.Join(binDir, "linux_amd64", "stash-webhook")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}

	path := filepath.Join(t.TempDir(), "stash-webhook.tar")
	spec := Spec{Name: "stash-webhook", Version: "dev", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}, License: []byte("license"), CABundle: testCA(t)}
	res, err := Write(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	idx := readIndex(t, path, res)
	img := platformImage(t, idx, linuxAMD64)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/usr/local/bin/stash-webhook"}, cf.Config.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532 (non-root)", cf.Config.User)
	}
	bin := extract(t, img)["usr/local/bin/stash-webhook"]
	if bin.hdr == nil {
		t.Fatal("no usr/local/bin/stash-webhook in the image")
	}
	if bin.hdr.Mode&0o7777 != 0o755 {
		t.Errorf("binary mode = %o, want 755", bin.hdr.Mode)
	}
	if !bytes.Equal(bin.body, readFile(t, out)) {
		t.Fatal("binary in the image differs from the one built")
	}
	ef, err := elf.NewFile(bytes.NewReader(bin.body))
	if err != nil {
		t.Fatalf("binary in the image is not ELF: %v", err)
	}
	if ef.Machine != elf.EM_X86_64 {
		t.Errorf("binary machine = %v, want EM_X86_64", ef.Machine)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		run := filepath.Join(t.TempDir(), "stash-webhook")
		if err := os.WriteFile(run, bin.body, os.FileMode(bin.hdr.Mode)&0o777); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(run).Output()
		if err != nil || string(got) != "hello from the image\n" {
			t.Errorf("running the binary from the image: %q, %v", got, err)
		}
	}
}

// TestRun drives the command's flags end to end: both images, one archive each.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"stash-runner", "stash-webhook"} {
		writeFile(t, filepath.Join(dir, "bin", "linux_amd64", n), []byte(n))
	}
	writeFile(t, filepath.Join(dir, "LICENSE"), []byte("license"))
	writeFile(t, filepath.Join(dir, "roots.pem"), testCA(t))
	outDir := filepath.Join(dir, "dist", "images")
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"-binary-dir", filepath.Join(dir, "bin"), "-version", "v0.1.0", "-out", outDir,
		"-platforms", "linux/amd64", "-license", filepath.Join(dir, "LICENSE"), "-ca-bundle", filepath.Join(dir, "roots.pem"),
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"stash-runner", "stash-webhook"} {
		if !strings.Contains(out.String(), "stash.dev/"+n+":v0.1.0@sha256:") {
			t.Errorf("output does not name stash.dev/%s:v0.1.0:\n%s", n, out.String())
		}
		lp := untar(t, filepath.Join(outDir, n+".tar"))
		ii, err := lp.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		im, err := ii.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != "stash.dev/"+n+":v0.1.0" {
			t.Errorf("%s.tar index.json = %+v, want one entry named stash.dev/%s:v0.1.0", n, im.Manifests, n)
		}
	}
}

func TestErrors(t *testing.T) {
	binDir := t.TempDir()
	writeFile(t, filepath.Join(binDir, "linux_amd64", "stash-runner"), []byte("x"))
	roots := testCA(t)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"missing binary", Spec{Name: "stash-runner", Version: "v1", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64, linuxARM64}, CABundle: roots},
			"linux_arm64/stash-runner"},
		{"invalid tag", Spec{Name: "stash-runner", Version: "v1+build", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}, CABundle: roots},
			`invalid version "v1+build"`},
		{"no platforms", Spec{Name: "stash-runner", Version: "v1", BinaryDir: binDir, CABundle: roots}, "no platforms"},
		{"no CA bundle", Spec{Name: "stash-runner", Version: "v1", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}},
			"no CA bundle"},
		{"CA bundle without certificates", Spec{Name: "stash-runner", Version: "v1", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}, CABundle: []byte("not PEM\n")},
			"holds no PEM certificate"},
		{"relative host file", Spec{Name: "stash-runner", Version: "v1", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}, CABundle: roots, HostFiles: []string{"lib/x.so"}},
			"not an absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.tar")
			_, err := Write(path, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error = %v, want one containing %q", err, tt.want)
			}
			if left, err := os.ReadDir(filepath.Dir(path)); err != nil || len(left) != 0 {
				t.Errorf("a failed Write left files behind: %v %v", left, err)
			}
		})
	}
	if err := run(context.Background(), []string{"-platforms", "linux"}, io.Discard); err == nil || !strings.Contains(err.Error(), "not os/arch") {
		t.Errorf("run -platforms linux: error = %v, want one saying it is not os/arch", err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-bundle.pem")
	if err := run(context.Background(), []string{"-platforms", "linux/amd64", "-license", "main.go", "-ca-bundle", missing}, io.Discard); err == nil || !strings.Contains(err.Error(), "ca-certificates") {
		t.Errorf("run -ca-bundle %s: error = %v, want one naming the ca-certificates package", missing, err)
	}
}

// readIndex reads the archive as an OCI layout and returns the one image index its index.json
// points to, after checking the tag annotations and that its digest is the one Write reported.
func readIndex(t *testing.T, path string, res Result) v1.ImageIndex {
	t.Helper()
	lp := untar(t, path)
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.MediaType != types.OCIImageIndex {
		t.Errorf("index.json entry media type = %s, want %s", d.MediaType, types.OCIImageIndex)
	}
	if d.Digest != res.Digest {
		t.Errorf("index.json entry digest = %s, Write reported %s", d.Digest, res.Digest)
	}
	_, tag, _ := strings.Cut(res.Ref, ":")
	wantAnn := map[string]string{"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": res.Ref}
	if diff := cmp.Diff(wantAnn, d.Annotations); diff != "" {
		t.Errorf("index.json annotations (-want +got):\n%s", diff)
	}
	idx, err := top.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// platformImage returns the image for p, failing unless the index holds exactly the platforms
// of the images in it, each once.
func platformImage(t *testing.T, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var found []v1.Hash
	for _, d := range im.Manifests {
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("index entry %s media type = %s, want %s", d.Digest, d.MediaType, types.OCIManifestSchema1)
		}
		if d.Platform != nil && d.Platform.Equals(p) {
			found = append(found, d.Digest)
		}
	}
	if len(found) != 1 {
		t.Fatalf("index has %d manifests for %s, want 1: %+v", len(found), p, im.Manifests)
	}
	img, err := idx.Image(found[0])
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func assertManifestTypes(t *testing.T, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type = %s, want %s", m.Config.MediaType, types.OCIConfigJSON)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer %s media type = %s, want %s", l.Digest, l.MediaType, types.OCILayer)
		}
	}
}

type file struct {
	hdr  *tar.Header
	body []byte
}

// extract flattens the image's layers the way a runtime would.
func extract(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = file{hdr: h, body: b}
	}
	return files
}

func names(files map[string]file) []string {
	var ns []string
	for n := range files {
		ns = append(ns, n)
	}
	return ns
}

// untar unpacks an OCI archive into a directory, as skopeo's oci-archive: transport does.
func untar(t *testing.T, path string) layout.Path {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q escapes the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dst, b)
		default:
			t.Fatalf("archive entry %q has type %c, want only files and directories", h.Name, h.Typeflag)
		}
	}
	for _, n := range []string{"oci-layout", "index.json", "blobs/sha256"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("archive is not an OCI layout: %v", err)
		}
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostFiles packs a file of this machine at its own path, with the directories above it.
func TestHostFiles(t *testing.T) {
	binDir := t.TempDir()
	writeFile(t, filepath.Join(binDir, "linux_amd64", "redis-server"), []byte("redis"))
	lib := filepath.Join(t.TempDir(), "lib", "libtest.so.1")
	writeFile(t, lib, []byte("a shared library"))
	if err := os.Chmod(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "redis-server", Version: "test", BinaryDir: binDir, Platforms: []v1.Platform{linuxAMD64}, CABundle: testCA(t), HostFiles: []string{lib}}
	path := filepath.Join(t.TempDir(), "redis.tar")
	res, err := Write(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	files := extract(t, platformImage(t, readIndex(t, path, res), linuxAMD64))
	got := files[lib[1:]]
	if got.hdr == nil || string(got.body) != "a shared library" || got.hdr.Mode&0o777 != 0o755 {
		t.Fatalf("%s in the image = %+v, want the host file with its mode; files: %v", lib, got.hdr, names(files))
	}
	if d := files[filepath.Dir(lib)[1:]]; d.hdr == nil || d.hdr.Typeflag != tar.TypeDir {
		t.Errorf("no directory %s above the host file; files: %v", filepath.Dir(lib), names(files))
	}
}

// TestBinaryTrustsTheImageRoots runs a binary taken out of the image with Go's root lookup
// pointed at the image's bundle only, against a TLS server whose CA is in that bundle and
// nowhere else: it connects; with the machine's bundle instead it does not. (test/realnode runs
// the real runner image on a kubelet, where the image's filesystem is all it has.)
func TestBinaryTrustsTheImageRoots(t *testing.T) {
	// The image's binary for this machine's architecture: the images are built for amd64 and
	// arm64, and only a Linux machine runs either.
	if runtime.GOOS != "linux" {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI runs on Linux, this is %s", runtime.GOOS)
		}
		t.Skip("runs a Linux binary taken out of the image")
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tls ok") }))
	srv.StartTLS()
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "go.mod"), []byte("module get\n\ngo 1.22\n"))
	writeFile(t, filepath.Join(src, "main.go"), []byte(`package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	resp, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b, _ := io.ReadAll(resp.Body)
	fmt.Print(string(b))
}
`))
	binDir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, "linux_"+runtime.GOARCH, "stash-runner"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	// The bundle of a test image: the machine's roots plus the test CA, as test/realnode builds it.
	bundle := append(readFile(t, CABundlePath), caPEM...)
	path := filepath.Join(t.TempDir(), "stash-runner.tar")
	res, err := Write(path, Spec{Name: "stash-runner", Version: "test", BinaryDir: binDir, Platforms: []v1.Platform{platform}, CABundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	files := extract(t, platformImage(t, readIndex(t, path, res), platform))
	root := t.TempDir()
	for _, name := range []string{"usr/local/bin/stash-runner", CABundlePath[1:]} {
		writeFile(t, filepath.Join(root, name), files[name].body)
	}
	if err := os.Chmod(filepath.Join(root, "usr/local/bin/stash-runner"), 0o755); err != nil {
		t.Fatal(err)
	}
	get := func(certFile string) (string, error) {
		cmd := exec.Command(filepath.Join(root, "usr/local/bin/stash-runner"), srv.URL)
		cmd.Env = []string{"SSL_CERT_FILE=" + certFile, "SSL_CERT_DIR=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := get(filepath.Join(root, CABundlePath)); err != nil || out != "tls ok" {
		t.Errorf("with the image's roots: %q, %v; want a verified connection", out, err)
	}
	if out, err := get(CABundlePath); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("with the machine's roots only: %q, %v; want a certificate error (the test would prove nothing)", out, err)
	}
}

// testCA is a PEM certificate to stand for a CA bundle.
func testCA(t *testing.T) []byte {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}
