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
MINOR="$(echo "$K8S" | cut -d. -f2)"
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

build_kube() { # $1 = command name under k8s.io/kubernetes/cmd
  [[ -x "$ASSETS/$1" ]] && return 0
  quietly "$1-v$K8S" build_kube_from_proxy "$1"
}

# build_kube_from_proxy runs under quietly, where `set -e` does not hold: every step returns on failure.
build_kube_from_proxy() {
  local cmd="$1" json
  mkdir -p "$WORK/$cmd" && cd "$WORK/$cmd" || return
  json="$(go mod download -json "k8s.io/kubernetes@v$K8S")" || { echo "$json"; return 1; }
  cp "$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$json")" k8s.mod || return
  # k8s.io/kubernetes points its staging modules at ./staging; point them at the published versions.
  { printf 'module envtestassets/%s\n\ngo 1.23.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$cmd" "$K8S"
    grep -E '=> ./staging/' k8s.mod | awk -v v="v0.$MINOR.${K8S##*.}" '{printf "\t%s => %s %s\n", $1, $1, v}'
    echo ")"; } > go.mod || return
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" > tools.go
  go mod tidy || return
  local ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  go build -trimpath -ldflags "$ldf" -o "$ASSETS/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" && mv "$ASSETS/$cmd.tmp" "$ASSETS/$cmd"
}

build_etcd_from_proxy() {
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd" || return
  printf 'module envtestassets/etcd\n\ngo 1.23.0\n' > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go get "go.etcd.io/etcd/server/v3@v$ETCD" && go mod tidy &&
    go build -trimpath -ldflags "-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

build_kube kube-apiserver
[[ "${WITH_CONTROLLER_MANAGER:-0}" == 1 ]] && build_kube kube-controller-manager

[[ -x "$ASSETS/etcd" ]] || quietly "etcd-v$ETCD" build_etcd_from_proxy
# The tests drive the real kubectl; build one when the machine has none.
if command -v kubectl >/dev/null; then
  ln -sf "$(command -v kubectl)" "$ASSETS/kubectl"
elif [[ ! -x "$ASSETS/kubectl" ]]; then
  build_kube kubectl
fi
echo "$ASSETS"
