// Command image packs already cross-compiled stash-runner and stash-webhook binaries into
// multi-platform OCI image archives, fully offline: no Docker, no registry, no base image.
//
// It builds nothing itself: `make image` cross-compiles into bin/<os>_<arch>/ first, then runs
//
//	go run ./hack/image -binary-dir bin -version $(VERSION) -out dist/images -platforms linux/amd64,linux/arm64
//
// and gets dist/images/stash-runner.tar and dist/images/stash-webhook.tar, each an OCI image
// layout (oci-layout, index.json, blobs/) holding one image index tagged
// stash.dev/<name>:<version>. See the README's "Images" paragraph for loading them.
//
// Every image holds the CA roots of the machine that builds it (-ca-bundle, Debian's
// /etc/ssl/certs/ca-certificates.crt by default; see CABundlePath for why a file). The tests
// also pack a pause image and a Redis image from this machine's files (-host-files).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// defaultImages are the images `make image` writes; each binary has its image's name.
const defaultImages = "stash-runner,stash-webhook"

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	binaryDir := fs.String("binary-dir", "bin", "directory holding <os>_<arch>/<image name> binaries")
	version := fs.String("version", "dev", "image tag and org.opencontainers.image.version label")
	outDir := fs.String("out", "dist/images", "directory to write <image name>.tar archives to")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	license := fs.String("license", "LICENSE", "file copied to /LICENSE in every image")
	images := fs.String("images", defaultImages, "comma-separated images to write")
	caBundle := fs.String("ca-bundle", CABundlePath, "PEM file copied to "+CABundlePath+" in every image (Debian: the ca-certificates package)")
	hostFiles := fs.String("host-files", "", "comma-separated absolute paths of this machine's files to copy into the images (for an image of this machine's platform)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	lic, err := os.ReadFile(*license)
	if err != nil {
		return fmt.Errorf("read license: %w", err)
	}
	roots, err := os.ReadFile(*caBundle)
	if err != nil {
		return fmt.Errorf("read the CA bundle: %w (install Debian's ca-certificates or give -ca-bundle)", err)
	}
	var extra []string
	if *hostFiles != "" {
		extra = strings.Split(*hostFiles, ",")
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	for _, name := range strings.Split(*images, ",") {
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(*outDir, name+".tar")
		res, err := Write(path, Spec{
			Name:      name,
			Version:   *version,
			BinaryDir: *binaryDir,
			Platforms: plats,
			License:   lic,
			CABundle:  roots,
			HostFiles: extra,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s: %s@%s (%s)\n", path, res.Ref, res.Digest, *platforms)
	}
	return nil
}

// parsePlatforms parses "linux/amd64,linux/arm64".
func parsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for _, f := range strings.Split(s, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("parse -platforms %q: %w", s, err)
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("parse -platforms %q: %q is not os/arch", s, f)
		}
		ps = append(ps, *p)
	}
	return ps, nil
}
