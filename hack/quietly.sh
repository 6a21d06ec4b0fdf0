#!/usr/bin/env bash
# usage: hack/quietly.sh NAME COMMAND [ARG...]: run COMMAND with its output in a log file and
# print one line with the time it took (the log's tail on failure); see hack/lib/quiet.sh.
set -euo pipefail
# shellcheck source=lib/quiet.sh
source "$(dirname "$0")/lib/quiet.sh"
quietly "$@"
