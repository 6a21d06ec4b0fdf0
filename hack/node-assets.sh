#!/usr/bin/env bash
# Build or install the pieces of a real Kubernetes node into a cache directory, and print that
# directory: kubelet, kube-scheduler and kube-proxy built from k8s.io/kubernetes on the Go module
# proxy (the way hack/envtest-assets.sh builds kube-apiserver), containerd, ctr and the runc shim
# from the module proxy, CoreDNS (cluster DNS, run beside the kubelet) from the module proxy, and
# runc, the CNI plugins, iptables and conntrack from Debian.
# test/realnode runs them (the README, "How the tests stand up a real cluster").
#
# usage: hack/node-assets.sh [K8S_VERSION] [CONTAINERD_VERSION]
# Quiet: one line per piece it builds, with its time; the build output goes to $ASSETS/build.log.
# The cache survives between runs ($NODE_ASSETS_ROOT, default ~/.cache/kubectl-stash/node);
# a second call returns at once. A cold build takes ~15 min on 2 cores (kubelet ~11 min).
set -euo pipefail
K8S="${1:-1.37.2}"
CONTAINERD="${2:-2.4.2}"
COREDNS="${COREDNS_VERSION:-1.14.7}"
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/kube-build.sh
source "$HERE/kube-build.sh"
ASSETS="${NODE_ASSETS_ROOT:-$HOME/.cache/kubectl-stash/node}/k8s-$K8S-containerd-$CONTAINERD"
kube=(kubelet kube-scheduler kube-proxy)
containerd=(containerd ctr containerd-shim-runc-v2)
debs=(runc containernetworking-plugins iptables conntrack)

have_debs() { command -v runc >/dev/null && [[ -x /usr/lib/cni/bridge ]] && command -v iptables-restore >/dev/null && command -v conntrack >/dev/null; }

missing=0
for b in "${kube[@]}" "${containerd[@]}" coredns; do [[ -x "$ASSETS/$b" ]] || missing=1; done
have_debs || missing=1
if [[ $missing == 0 ]]; then echo "$ASSETS"; exit 0; fi

mkdir -p "$ASSETS"
LOG="$ASSETS/build.log"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

install_debs() {
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${debs[@]}"
}
have_debs || timed "${debs[*]} (apt)" install_debs

install_containerd() {
  local pkgs=() c
  for c in "${containerd[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$c@v$CONTAINERD"); done
  GOBIN="$WORK/containerd-bin" GOFLAGS="-p=${GOBUILD_P:-2} -buildvcs=false" CGO_ENABLED=0 GOWORK=off \
    go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD" "${pkgs[@]}"
  for c in "${containerd[@]}"; do mv "$WORK/containerd-bin/$c" "$ASSETS/$c"; done
}
[[ -x "$ASSETS/containerd" && -x "$ASSETS/ctr" && -x "$ASSETS/containerd-shim-runc-v2" ]] ||
  timed "containerd, ctr, containerd-shim-runc-v2 v$CONTAINERD" install_containerd

install_coredns() {
  GOBIN="$WORK/coredns-bin" GOFLAGS="-p=${GOBUILD_P:-2} -buildvcs=false" CGO_ENABLED=0 GOWORK=off \
    go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS"
  mv "$WORK/coredns-bin/coredns" "$ASSETS/coredns"
}
[[ -x "$ASSETS/coredns" ]] || timed "coredns v$COREDNS" install_coredns

for c in "${kube[@]}"; do
  [[ -x "$ASSETS/$c" ]] || timed "$c v$K8S" build_kube "$K8S" "$c" "$ASSETS" "$WORK"
done
echo "$ASSETS"
