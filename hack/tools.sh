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

# Newer servers than bookworm's run beside its redis 7.0 with their own suite's loader (docs:
# test-infra "Newer servers"): Debian trixie's redis 8.0 and valkey 8.1, and Debian sid's newest redis
# 8.0.x and valkey 9.x. Packages are fetched from the machine's own Debian mirror (read from its apt
# sources, suite changed) into ~/.cache/kubectl-stash/SUITE, unpacked there, and reached through
# wrapper scripts in BIN: redis-server-8.0, redis-cli-8.0, valkey-server-8.1, valkey-cli-8.1 (trixie);
# redis-server-sid, redis-cli-sid, valkey-server-sid, valkey-cli-sid (sid, whose versions move: tests
# check features, never version strings). Nothing is installed into the system.
TRIXIE="${STASH_TRIXIE_DIR:-$HOME/.cache/kubectl-stash/trixie}"
SID="${STASH_SID_DIR:-$HOME/.cache/kubectl-stash/sid}"
suite_apt() { # dir suite apt-get-arguments...: run against that suite's package lists only
  local dir="$1" suite="$2"; shift 2
  mkdir -p "$dir/parts" "$dir/lists/partial" "$dir/cache/archives/partial"
  local uri
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n "$uri" ]] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n "$uri" ]] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  printf 'Types: deb deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "$uri" "$suite" >"$dir/parts/$suite.sources"
  local a=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/parts" -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache" -qq)
  [[ $(id -u) != 0 ]] || a+=(-o APT::Sandbox::User=root) # the cache is root's own: no _apt sandbox warning
  if ! ls "$dir"/lists/*_"${suite}"_main_source_Sources* >/dev/null 2>&1; then
    apt-get "${a[@]}" update >&2
  fi
  apt-get "${a[@]}" "$@" >&2
}
trixie_apt() { suite_apt "$TRIXIE" trixie "$@"; }

suite_servers() { # dir suite suffix: redis and valkey of that suite, wrapped as NAME-SUFFIX in BIN
  local dir="$1" suite="$2" rsuffix="$3" vsuffix="$4" w
  for w in "redis-server-$rsuffix" "redis-cli-$rsuffix" "valkey-server-$vsuffix" "valkey-cli-$vsuffix"; do
    [[ -x "$BIN/$w" ]] || w=""; [[ -n "$w" ]] || break
  done
  [[ -n "$w" ]] && return 0
  echo "installing redis and valkey from Debian $suite into $dir" >&2
  rm -rf "$dir/debs" "$dir/root"; mkdir -p "$dir/debs" "$dir/root"
  # zlib1g: sid's libcrypto links libz, which the host would otherwise lend.
  (cd "$dir/debs" && suite_apt "$dir" "$suite" download redis-server redis-tools valkey-server valkey-tools \
    libc6 libssl3t64 libjemalloc2 liblzf1 libsystemd0 libcap2 libgcrypt20 liblz4-1 liblzma5 libzstd1 libgpg-error0 \
    libatomic1 libstdc++6 libgcc-s1 zlib1g)
  local f
  for f in "$dir"/debs/*.deb; do dpkg-deb -x "$f" "$dir/root"; done
  wrap() { # name binary
    printf '#!/bin/sh\n# %s from Debian %s, run with its own loader (hack/tools.sh %s).\nR=%q\nexec "$R/usr/lib64/ld-linux-x86-64.so.2" --library-path "$R/usr/lib/x86_64-linux-gnu:$R/lib/x86_64-linux-gnu" "$R/usr/bin/%s" "$@"\n' \
      "$2" "$suite" "$suite" "$dir/root" "$2" >"$BIN/$1.tmp" && chmod +x "$BIN/$1.tmp" && mv "$BIN/$1.tmp" "$BIN/$1"
  }
  wrap "redis-server-$rsuffix" redis-server; wrap "redis-cli-$rsuffix" redis-cli
  wrap "valkey-server-$vsuffix" valkey-server; wrap "valkey-cli-$vsuffix" valkey-cli
  # The versions go to the log of the run: sid moves, and a failure should say what it ran.
  "$BIN/redis-server-$rsuffix" --version >&2 && "$BIN/valkey-server-$vsuffix" --version >&2
}

# The RDB files of Redis's own test suite (tests/assets/*.rdb), from Debian trixie's redis source
# package, unpacked into ~/.cache/kubectl-stash/redis-src. STASH_REDIS_TEST_ASSETS points the reader's
# tests at them.
redis_test_assets() {
  local dst="$HOME/.cache/kubectl-stash/redis-src"
  ls "$dst"/tests/assets/*.rdb >/dev/null 2>&1 && return 0
  echo "fetching the redis source package (test RDB files) from Debian trixie" >&2
  rm -rf "$TRIXIE/src"; mkdir -p "$TRIXIE/src" "$dst"
  # Only the upstream tarball is needed (apt checks it against the signed index); the mirror may lack
  # the Debian .dsc of a fresh security revision, so a failure is judged by the tarball alone.
  (cd "$TRIXIE/src" && trixie_apt source --download-only redis) || true
  local tarball
  tarball=$(ls "$TRIXIE"/src/redis_*.orig.tar.* 2>/dev/null | head -1)
  [[ -n "$tarball" ]] || { echo "could not fetch the redis source package from Debian trixie" >&2; exit 1; }
  tar -xf "$tarball" -C "$dst" --strip-components=1 --wildcards '*/tests/assets/*'
}

tools=("$@")
[[ ${#tools[@]} == 0 ]] && tools=(redis trixie sid redis-test-assets controller-gen fake-gcs-server minio azurite)
for t in "${tools[@]}"; do
  case "$t" in
    redis) apt_redis ;;
    trixie) suite_servers "$TRIXIE" trixie 8.0 8.1 ;;
    sid) suite_servers "$SID" sid sid sid ;;
    redis-test-assets) redis_test_assets ;;
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
