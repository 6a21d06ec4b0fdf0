#!/usr/bin/env bash
# `make demo`: what kubectl-stash does today, end to end on this machine.
#  1. a Redis with sample data (every type, TTLs, two databases);
#  2. stash-runner backs it up into an encrypted local-filesystem repository;
#  3. the snapshot is listed and checked;
#  4. stash-runner restores it into a second, empty Redis, and DEBUG DIGEST proves equality;
#  5. kubectl stash validate gives the admission webhook's verdict on sample manifests.
# The in-cluster flow (CronJob -> BackupSession -> Job) joins this demo when the controller lands.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/bin"
WORK="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis() { # port
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command yes \
    --dir "$WORK" --logfile "$WORK/redis-$1.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis on port $1 did not start" >&2; exit 1
}

SRC=$(free_port); start_redis "$SRC"
DST=$(free_port); start_redis "$DST"

say "1. sample data in redis :$SRC (strings, hashes, lists, sets, zsets, streams, TTLs, db 0 and 3)"
redis-cli -p "$SRC" debug populate 20000 user 64 >/dev/null
{
  for i in $(seq 1 200); do
    echo "HSET profile:$i name user$i visits $i"
    echo "RPUSH events:$((i % 20)) login-$i"
    echo "SADD tags:$((i % 10)) t$i"
    echo "ZADD leaderboard $i player$i"
    echo "XADD stream:orders * id $i total $((i * 3))"
  done
  for i in $(seq 1 100); do echo "SET session:$i token$i PX $((600000 + i))"; done
  echo "SELECT 3"
  for i in $(seq 1 500); do echo "SET cache:$i value$i EX 3600"; done
} | redis-cli -p "$SRC" >/dev/null
redis-cli -p "$SRC" info keyspace | grep ^db

say "2. stash-runner backup into file://$WORK/repo (zstd + age encryption)"
export RESTIC_PASSWORD="demo-password-$RANDOM"
"$BIN/stash-runner" backup --redis "redis://127.0.0.1:$SRC" --repository "file://$WORK/repo" --result-file "$WORK/result.json"
cat "$WORK/result.json"; echo

say "3. snapshots in the repository, and a full check"
"$BIN/stash-runner" snapshots --repository "file://$WORK/repo"
"$BIN/stash-runner" check --repository "file://$WORK/repo" --read-data

say "4. restore the latest snapshot into the empty redis :$DST"
"$BIN/stash-runner" restore --redis "redis://127.0.0.1:$DST" --repository "file://$WORK/repo" --snapshot latest
a=$(redis-cli -p "$SRC" debug digest); b=$(redis-cli -p "$DST" debug digest)
echo "source   digest $a"; echo "restored digest $b"
echo "session:1 TTL on source $(redis-cli -p "$SRC" pttl session:1) ms, restored $(redis-cli -p "$DST" pttl session:1) ms"

say "5. kubectl stash validate: the admission webhook's verdict, offline"
"$BIN/kubectl-stash" validate -f test/fixtures/valid/backupconfiguration-appbinding.yaml
"$BIN/kubectl-stash" validate -f test/fixtures/invalid/bc-bad-schedule.yaml || echo "(exit $?: invalid, as it should be)"

if [[ "$a" != "$b" ]]; then echo "digest MISMATCH" >&2; exit 1; fi
say "digest match"
