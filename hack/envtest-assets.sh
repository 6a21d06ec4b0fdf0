#!/usr/bin/env bash
# Build kube-apiserver (and optionally kube-controller-manager) and etcd from the Go module
# proxy into a cache directory, and print that directory. setup-envtest downloads prebuilt
# binaries, which our machines cannot reach; building from source needs only the module proxy.
#
# usage: hack/envtest-assets.sh [K8S_VERSION] [ETCD_VERSION]
#   WITH_CONTROLLER_MANAGER=1 also builds kube-controller-manager (for the e2e suite).
# The cache survives between runs ($ENVTEST_ASSETS_ROOT, default ~/.cache/envtest-assets);
# a second call returns at once.
set -euo pipefail
# shellcheck source=lib/quiet.sh
source "$(dirname "$0")/lib/quiet.sh"
K8S="${1:-1.37.2}"
ETCD="${2:-3.5.21}"
ASSETS="${ENVTEST_ASSETS_ROOT:-$HOME/.cache/envtest-assets}/k8s-$K8S-etcd-$ETCD"
want=(kube-apiserver etcd)
[[ "${WITH_CONTROLLER_MANAGER:-0}" == 1 ]] && want+=(kube-controller-manager)

missing=0
for b in "${want[@]}"; do [[ -x "$ASSETS/$b" ]] || missing=1; done
if [[ $missing == 0 ]]; then echo "$ASSETS"; exit 0; fi

mkdir -p "$ASSETS"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-p=${GOBUILD_P:-2} -buildvcs=false" CGO_ENABLED=0 GOWORK=off

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/kube-build.sh
source "$HERE/kube-build.sh"

build_etcd_from_proxy() {
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd" || return
  printf 'module envtestassets/etcd\n\ngo 1.23.0\n' > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go get "go.etcd.io/etcd/server/v3@v$ETCD" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp.$$" go.etcd.io/etcd/server/v3 && mv "$ASSETS/etcd.tmp.$$" "$ASSETS/etcd"
}

# One line per command built; go's download and build output goes to the log (hack/lib/quiet.sh).
for cmd in kube-apiserver kube-controller-manager; do
  [[ $cmd == kube-controller-manager && "${WITH_CONTROLLER_MANAGER:-0}" != 1 ]] && continue
  [[ -x "$ASSETS/$cmd" ]] || quietly "$cmd-v$K8S" build_kube "$K8S" "$cmd" "$ASSETS" "$WORK"
done

[[ -x "$ASSETS/etcd" ]] || quietly "etcd-v$ETCD" build_etcd_from_proxy
# The tests drive the real kubectl; build one when the machine has none.
if command -v kubectl >/dev/null; then
  ln -sf "$(command -v kubectl)" "$ASSETS/kubectl"
elif [[ ! -x "$ASSETS/kubectl" ]]; then
  quietly "kubectl-v$K8S" build_kube "$K8S" kubectl "$ASSETS" "$WORK"
fi
echo "$ASSETS"
