# Sourced by hack/tools.sh and hack/envtest-assets.sh: run a slow first-time step (a go
# install, an apt-get, a build from the module proxy) with its output in a log file, and
# print one line for it with the time it took. On failure the log's last lines follow.
#
#   quietly NAME COMMAND [ARG...]    (COMMAND may be a shell function)
#
# Logs go to $STASH_LOG_DIR (default ~/.cache/kubectl-stash/logs), one file per NAME.
# STASH_VERBOSE=1 prints everything as it happens instead.
STASH_LOG_DIR="${STASH_LOG_DIR:-$HOME/.cache/kubectl-stash/logs}"

quietly() {
  local name="$1"; shift
  if [[ "${STASH_VERBOSE:-0}" == 1 ]]; then
    echo "building $name" >&2
    "$@" >&2
    return
  fi
  mkdir -p "$STASH_LOG_DIR"
  local log="$STASH_LOG_DIR/$name.log" start=$SECONDS
  printf 'building %s (first time only) ... ' "$name" >&2
  if "$@" >"$log" 2>&1; then
    printf 'done in %ds\n' $((SECONDS - start)) >&2
  else
    local rc=$?
    printf 'FAILED after %ds (exit %d); the last lines of %s:\n' $((SECONDS - start)) "$rc" "$log" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
    return "$rc"
  fi
}
