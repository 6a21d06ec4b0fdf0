#!/usr/bin/env bash
# Install the tools the build and the tests need, once, into a cache that survives between runs.
# Prints the bin directory; `make` puts it first on PATH.
#
# usage: hack/tools.sh [tool...]   (default: everything make test needs)
# Debian packages (redis-server, redis-tools, redis-sentinel) are installed with apt-get when missing.
set -euo pipefail
# shellcheck source=lib/quiet.sh
source "$(dirname "$0")/lib/quiet.sh"
BIN="${STASH_TOOLS_BIN:-$HOME/.cache/kubectl-stash/bin}"
mkdir -p "$BIN"
export GOBIN="$BIN" GOFLAGS="-buildvcs=false" GOWORK=off CGO_ENABLED=0

# Every tool below is one case line that calls goinstall, npminstall or quietly, so that
# its first-time build prints one line and keeps the details in a log (hack/lib/quiet.sh).
goinstall() { # name module@version
  local name="$1" pkg="$2"
  [[ -x "$BIN/$name" ]] && return 0
  quietly "$name" go install -trimpath -ldflags "-s -w" "$pkg"
}

npminstall() { # name package@version: into ~/.cache/kubectl-stash/<name>, linked into BIN
  local name="$1" pkg="$2" dir="${STASH_TOOLS_BIN:-$HOME/.cache/kubectl-stash/bin}/../$1"
  [[ -x "$BIN/$name-blob" ]] && return 0
  command -v npm >/dev/null || { echo "npm not found: install node.js (20+) to run the $name tests" >&2; exit 1; }
  quietly "$name" npm install --no-audit --no-fund --prefix "$dir" "$pkg"
  ln -sf "$(cd "$dir" && pwd)/node_modules/.bin/$name-blob" "$BIN/$name-blob"
}

apt_redis() {
  if command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v redis-sentinel >/dev/null; then return 0; fi
  quietly redis-apt apt_install redis-server redis-tools redis-sentinel
}

apt_install() { # package...: apt-get update once, then install
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

tools=("$@")
[[ ${#tools[@]} == 0 ]] && tools=(redis controller-gen fake-gcs-server minio azurite)
for t in "${tools[@]}"; do
  case "$t" in
    redis) apt_redis ;;
    controller-gen) goinstall controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 ;;
    fake-gcs-server) goinstall fake-gcs-server github.com/fsouza/fake-gcs-server@v1.56.1 ;;
    minio) goinstall minio github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c ;; # RELEASE tags are not semver
    azurite) npminstall azurite azurite@3.37.0 ;;
    krew) goinstall krew sigs.k8s.io/krew/cmd/krew@v0.4.4; ln -sf "$BIN/krew" "$BIN/kubectl-krew"
          goinstall validate-krew-manifest sigs.k8s.io/krew/cmd/validate-krew-manifest@v0.4.4 ;;
    helm) goinstall helm helm.sh/helm/v3/cmd/helm@v3.22.0 ;;
    promtool) goinstall promtool github.com/prometheus/prometheus/cmd/promtool@v0.316.0 ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
echo "$BIN"
