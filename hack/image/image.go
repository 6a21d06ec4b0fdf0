package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Registry is the placeholder registry of the image names (config/deploy uses
	// stash.dev/stash-webhook:latest); retag on push.
	Registry = "stash.dev"
	// BinDir is where the binary lands in the image; the entrypoint is BinDir/<name>.
	BinDir = "/usr/local/bin"
	// User is the distroless-style "nonroot" user and group the images run as.
	User = "65532:65532"

	annotationRefName       = "org.opencontainers.image.ref.name" // OCI: the tag
	annotationContainerdRef = "io.containerd.image.name"          // docker load names the image from it
)

// epoch is every mtime and creation time in the images, so that the same binaries always give
// the same digests.
var epoch = time.Unix(0, 0).UTC()

// Spec describes one multi-platform image.
type Spec struct {
	// Name is the binary's and the image's name: BinDir/Name, Registry/Name:Version.
	Name    string
	Version string
	// BinaryDir holds the cross-compiled binaries as <os>_<arch>/<Name>.
	BinaryDir string
	Platforms []v1.Platform
	// License is the content of /LICENSE.
	License []byte
	// CABundle is the content of CABundlePath: the PEM roots the binaries trust (see CABundlePath).
	CABundle []byte
	// HostFiles are files of this machine copied into the image at the same paths (symlinks
	// followed): how the tests pack Debian's redis-server with the shared libraries ldd lists.
	// They are this machine's, so they belong only in an image for this machine's platform.
	HostFiles []string
}

// CABundlePath is where the images hold their CA roots: the first file Go's crypto/x509 reads
// on Linux, and the path of Debian's ca-certificates bundle, which `make image` copies in.
//
// A file rather than golang.org/x/crypto/x509roots/fallback compiled into the binaries because
// the file is what TLS to GCS, S3 and Azure needs without touching the code: it is as fresh as the
// machine that builds the image (a rebuild picks up Debian's updates, not a Go module bump); a
// user can mount their own bundle over it or point SSL_CERT_FILE / SSL_CERT_DIR elsewhere, and the
// fallback package would then be ignored anyway (it applies only when the system has no roots);
// and the size is the same (~220 KB) but stays out of the binaries that also run outside images.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// Ref is the image's tag, e.g. stash.dev/stash-runner:v0.1.0.
func (s Spec) Ref() string { return Registry + "/" + s.Name + ":" + s.Version }

// Result tells what Write wrote.
type Result struct {
	Ref string
	// Digest is the image index's digest: what `crane push` / `skopeo copy --all` push.
	Digest v1.Hash
}

// Write writes the image as an OCI image layout in a tar archive at path: oci-layout,
// index.json with one entry (the multi-platform image index, annotated with the tag) and blobs/.
// skopeo (oci-archive:), podman load, docker load (containerd image store) and crane (after
// untarring, as an OCI layout) read it.
func Write(path string, spec Spec) (Result, error) {
	ref, err := name.NewTag(spec.Ref(), name.StrictValidation)
	if err != nil {
		return Result{}, fmt.Errorf("image %s: invalid version %q: %w", spec.Name, spec.Version, err)
	}
	if len(spec.Platforms) == 0 {
		return Result{}, fmt.Errorf("image %s: no platforms", spec.Name)
	}
	if err := checkCABundle(spec.CABundle); err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	idx, err := Index(spec)
	if err != nil {
		return Result{}, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return Result{}, fmt.Errorf("image %s: digest index: %w", spec.Name, err)
	}

	dir, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+"-layout-")
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return Result{}, fmt.Errorf("image %s: write OCI layout: %w", spec.Name, err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		annotationRefName:       ref.TagStr(),
		annotationContainerdRef: ref.String(),
	})); err != nil {
		return Result{}, fmt.Errorf("image %s: write OCI layout: %w", spec.Name, err)
	}
	if err := tarDir(dir, path); err != nil {
		return Result{}, fmt.Errorf("image %s: %w", spec.Name, err)
	}
	return Result{Ref: ref.String(), Digest: digest}, nil
}

// Index builds the image index with one image per platform, reading the binaries from
// spec.BinaryDir.
func Index(spec Spec) (v1.ImageIndex, error) {
	base, err := baseLayer(spec.License, spec.CABundle)
	if err != nil {
		return nil, fmt.Errorf("image %s: base layer: %w", spec.Name, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range spec.Platforms {
		bin := filepath.Join(spec.BinaryDir, p.OS+"_"+p.Architecture, spec.Name)
		b, err := os.ReadFile(bin)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s: read binary: %w (cross-compile it first: make image)", spec.Name, p, err)
		}
		img, err := image(spec, p, base, b)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s: %w", spec.Name, p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, nil
}

func image(spec Spec, p v1.Platform, base v1.Layer, binary []byte) (v1.Image, error) {
	entries, err := hostEntries(spec.HostFiles)
	if err != nil {
		return nil, err
	}
	binLayer, err := layer(append(entries, entry{name: BinDir[1:] + "/" + spec.Name, mode: 0o755, body: binary}))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "hack/image: /etc/passwd, /etc/group (nonroot 65532), " + CABundlePath + ", /tmp, /LICENSE",
		}},
		mutate.Addendum{Layer: binLayer, History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: "hack/image: " + strings.Join(append(spec.HostFiles, BinDir+"/"+spec.Name), ", "),
		}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{BinDir + "/" + spec.Name},
		User:       User,
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Labels: map[string]string{
			"org.opencontainers.image.title":    spec.Name,
			"org.opencontainers.image.version":  spec.Version,
			"org.opencontainers.image.licenses": "Apache-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// baseLayer is the same in every image, so archives and registries store it once.
func baseLayer(license, caBundle []byte) (v1.Layer, error) {
	return layer([]entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: CABundlePath[1:], mode: 0o644, body: caBundle},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{name: "etc/passwd", mode: 0o644, body: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "home/", mode: 0o755},
		{name: "home/nonroot/", mode: 0o700, uid: 65532},
		{name: "tmp/", mode: 0o1777},
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: "usr/local/bin/", mode: 0o755},
		{name: "LICENSE", mode: 0o644, body: license},
	})
}

// checkCABundle refuses a bundle without a single certificate: an image without roots fails
// every TLS connection to a public endpoint, and only at run time.
func checkCABundle(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("no CA bundle (%s): give one with -ca-bundle", CABundlePath)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("the CA bundle holds no PEM certificate")
	}
	return nil
}

// hostEntries reads the host files, and adds the directories leading to them (every directory
// once, before its files, as a tar wants).
func hostEntries(paths []string) ([]entry, error) {
	var entries []entry
	dirs := map[string]bool{"": true, "etc": true, "usr": true, "usr/local": true, "usr/local/bin": true, "tmp": true}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("host file %q: not an absolute path", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("host file: %w", err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("host file: %w", err)
		}
		name := filepath.ToSlash(p[1:])
		var parents []string
		for d := filepath.Dir(name); !dirs[d] && d != "."; d = filepath.Dir(d) {
			dirs[d] = true
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			entries = append(entries, entry{name: d + "/", mode: 0o755})
		}
		entries = append(entries, entry{name: name, mode: int64(fi.Mode().Perm()), body: b})
	}
	return entries, nil
}

// entry is a file, or a directory when name ends in "/". uid is also the gid.
type entry struct {
	name string
	mode int64
	uid  int
	body []byte
}

// layer builds a gzip'ed OCI layer in memory with fixed mtimes and owners.
func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: epoch,
		}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// tarDir writes the files under dir to a tar archive at path, in lexical order with fixed
// mtimes and owners. It writes to a temporary file and renames it, so that an interrupted run
// leaves no truncated archive.
func tarDir(dir, path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("archive OCI layout: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive OCI layout: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("archive OCI layout: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
