# Sourced by hack/envtest-assets.sh and hack/node-assets.sh: build one command of
# k8s.io/kubernetes from the Go module proxy. k8s.io/kubernetes points its staging modules at
# ./staging, so each build gets a throwaway module that requires k8s.io/kubernetes and pins
# every staging module to its published version.
#
# build_kube VERSION CMD DEST_DIR WORK_DIR   (go output goes to stderr)
build_kube() {
  local k8s="$1" cmd="$2" dest="$3" work="$4" minor
  minor="$(echo "$k8s" | cut -d. -f2)"
  [[ -x "$dest/$cmd" ]] && return 0
  mkdir -p "$work/$cmd" && (
    cd "$work/$cmd"
    export GOFLAGS="-p=${GOBUILD_P:-2} -buildvcs=false" CGO_ENABLED=0 GOWORK=off
    cp "$(go mod download -json "k8s.io/kubernetes@v$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" k8s.mod
    { printf 'module envtestassets/%s\n\ngo 1.23.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$cmd" "$k8s"
      grep -E '=> ./staging/' k8s.mod | awk -v v="v0.$minor.${k8s##*.}" '{printf "\t%s => %s %s\n", $1, $1, v}'
      echo ")"; } > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" > tools.go
    go mod tidy >&2
    local ldf="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldf="$ldf -X $p.gitVersion=v$k8s -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
    go build -trimpath -ldflags "$ldf" -o "$dest/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
    mv "$dest/$cmd.tmp" "$dest/$cmd"
  )
}

# timed NAME COMMAND...: run COMMAND with its output appended to $LOG, and print one line
# with NAME and how long it took (or where to look when it failed).
timed() {
  local name="$1" start=$SECONDS; shift
  if "$@" >>"$LOG" 2>&1; then
    echo "built $name in $((SECONDS - start)) s" >&2
  else
    echo "building $name failed after $((SECONDS - start)) s; see $LOG" >&2
    return 1
  fi
}
