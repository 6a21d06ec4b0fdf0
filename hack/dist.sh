#!/usr/bin/env bash
# Build the release archives of kubectl-stash and its krew manifest into dist/:
#   kubectl-stash_<os>_<arch>.tar.gz (the binary and LICENSE), sha256sums.txt, stash.yaml
# then check the manifest with validate-krew-manifest (structure only: it cannot download).
#
# usage: hack/dist.sh
# env:   VERSION         release version (default: git describe); made a semver vX.Y.Z[-pre]
#        DIST_DIR        output directory (default: dist)
#        DIST_PLATFORMS  space-separated os/arch list (default: linux, darwin, windows × amd64, arm64)
#        DIST_BASE_URL   where the archives will be published (default: https://stash.dev/releases/VERSION)
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
# krew requires a semver version with a leading v; an untagged build becomes a pre-release.
if [[ ! "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  VERSION="v0.0.0-dev.$(tr -c '0-9A-Za-z\n' '-' <<<"${VERSION#v}")"
fi
DIST="${DIST_DIR:-dist}"
PLATFORMS="${DIST_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64}"
BASE_URL="${DIST_BASE_URL:-https://stash.dev/releases/$VERSION}"
TOOLS_BIN="${STASH_TOOLS_BIN:-$HOME/.cache/kubectl-stash/bin}"
export PATH="$PATH:$TOOLS_BIN"
command -v validate-krew-manifest >/dev/null || { echo "validate-krew-manifest not found: run hack/tools.sh krew (make dist does)" >&2; exit 1; }

mkdir -p "$DIST"
rm -f "$DIST"/kubectl-stash_*.tar.gz "$DIST/sha256sums.txt" "$DIST/stash.yaml" # other targets write into dist/ too
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
platforms_yaml="$stage/platforms.yaml"
: >"$platforms_yaml"
block="$(sed -n '/# platform-begin/,/# platform-end/p' krew/stash.yaml | sed '1d;$d')"

for p in $PLATFORMS; do
  os="${p%/*}" arch="${p#*/}"
  bin=kubectl-stash
  [[ "$os" == windows ]] && bin=kubectl-stash.exe
  dir="$stage/${os}_${arch}"
  mkdir -p "$dir"
  echo "building $os/$arch" >&2
  # The same flags as `make build`, so that the build cache is shared.
  CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath \
    -ldflags "-s -w -X stash.dev/redis/version.Version=$VERSION" -o "$dir/$bin" ./cmd/kubectl-stash
  cp LICENSE "$dir/LICENSE"
  archive="kubectl-stash_${os}_${arch}.tar.gz"
  tar -C "$dir" --owner=0 --group=0 --numeric-owner --mtime='1970-01-01 00:00:00 UTC' -cf - "$bin" LICENSE | gzip -n >"$DIST/$archive"
  sum="$(sha256sum "$DIST/$archive" | cut -d' ' -f1)"
  echo "$sum  $archive" >>"$DIST/sha256sums.txt"
  b="${block//\{\{OS\}\}/$os}"
  b="${b//\{\{ARCH\}\}/$arch}"
  b="${b//\{\{URI\}\}/$BASE_URL/$archive}"
  b="${b//\{\{SHA256\}\}/$sum}"
  b="${b//\{\{BIN\}\}/$bin}"
  printf '%s\n' "$b" >>"$platforms_yaml"
done

# The manifest: the template's header with the version, then one block per platform.
# krew requires the file to be named after the plugin.
sed '/# platform-begin/,$d' krew/stash.yaml | grep -v '^# ' | sed "s/{{VERSION}}/$VERSION/" >"$DIST/stash.yaml"
cat "$platforms_yaml" >>"$DIST/stash.yaml"
validate-krew-manifest -manifest "$DIST/stash.yaml" -skip-install >&2
echo "$DIST: $(cd "$DIST" && ls | tr '\n' ' ')(version $VERSION)" >&2
