#!/usr/bin/env bash
# `make demo`: the whole story of kubectl-stash on a local cluster, without Docker.
#   a control plane (etcd, kube-apiserver, kube-controller-manager) and a test node agent that
#   runs Pods as local processes; stash-webhook installed with `kubectl stash install`; a Redis
#   with sample data; a storage Secret and a local-filesystem Repository; a BackupConfiguration
#   scheduled every minute; the scheduled backup; a triggered backup; the snapshots; a restore
#   into a second Redis; DEBUG DIGEST compared; status and metrics. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/bin"
WORK="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
step=0
say() { step=$((step + 1)); printf '\n\033[1m== %d. %s\033[0m\n' "$step" "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis() { # port
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command yes \
    --dir "$WORK" --logfile "$WORK/redis-$1.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "redis on port $1 did not start" >&2; exit 1
}

say "a local cluster: etcd, kube-apiserver, kube-controller-manager, a node agent, stash-webhook"
go build -o "$WORK/stash-local-cluster" ./test/localcluster/cmd/stash-local-cluster
"$WORK/stash-local-cluster" --bin-dir "$BIN" --dir "$WORK/cluster" 2> "$WORK/cluster.log" &
pids+=($!)
for _ in $(seq 180); do
  [[ -f "$WORK/cluster/ready" ]] && break
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$WORK/cluster.log"; exit 1; }
  sleep 1
done
[[ -f "$WORK/cluster/ready" ]] || { cat "$WORK/cluster.log"; echo "the cluster did not start" >&2; exit 1; }
grep '^---' "$WORK/cluster.log" | sed 's/^--- /   /'
export KUBECONFIG="$WORK/cluster/kubeconfig" PATH="$BIN:$PATH"
METRICS="$(cat "$WORK/cluster/ready")"

SRC=$(free_port); start_redis "$SRC"
DST=$(free_port); start_redis "$DST"
say "a Redis on 127.0.0.1:$SRC with sample data: every type, TTLs, databases 0 and 3"
{
  echo "DEBUG POPULATE 20000 user 64"
  for i in $(seq 1 200); do
    echo "HSET profile:$i name user$i visits $i"; echo "RPUSH events:$((i % 20)) login-$i"
    echo "SADD tags:$((i % 10)) t$i"; echo "ZADD leaderboard $i player$i"; echo "XADD orders * id $i"
  done
  for i in $(seq 1 100); do echo "SET session:$i token$i PX $((600000 + i))"; done
  echo "SELECT 3"
  for i in $(seq 1 500); do echo "SET cache:$i value$i EX 3600"; done
} | redis-cli -p "$SRC" >/dev/null
redis-cli -p "$SRC" info keyspace | grep ^db

say "a storage Secret (the repository password, read from stdin) and a local-filesystem Repository"
run kubectl create namespace demo
echo "demo-password-$RANDOM" | run kubectl stash create secret storage storage -n demo --password-stdin
mkdir -p "$WORK/repository"
run kubectl stash create repository local -n demo --provider local --host-path "$WORK/repository" --mount-path "$WORK/repository" --secret storage

say "a BackupConfiguration scheduled every minute, keeping the last 5 snapshots"
run kubectl stash create backupconfig redis-every-minute -n demo --repo local --redis-address "127.0.0.1:$SRC" --schedule "* * * * *" --keep-last 5
sleep 2
run kubectl get backupconfiguration,cronjob -n demo

say "waiting for the CronJob controller to fire the scheduled backup (up to a minute)"
for _ in $(seq 100); do
  phase=$(kubectl get backupsessions -n demo -o jsonpath='{.items[*].status.phase}')
  [[ "$phase" == *Succeeded* ]] && break
  [[ "$phase" == *Failed* ]] && { kubectl stash backup describe redis-every-minute -n demo; exit 1; }
  sleep 2
done
[[ "$phase" == *Succeeded* ]] || { echo "no scheduled backup succeeded" >&2; exit 1; }
run kubectl get backupsessions -n demo

say "a backup on demand, followed until it ends"
run kubectl stash backup trigger redis-every-minute -n demo --wait --timeout 2m

say "the snapshots in the repository"
run kubectl stash snapshots list local -n demo

say "restore the latest snapshot into the empty Redis on 127.0.0.1:$DST"
run kubectl stash restore local -n demo --snapshot latest --to "127.0.0.1:$DST" --wait --wait-timeout 2m

say "compare the two servers"
a=$(redis-cli -p "$SRC" debug digest); b=$(redis-cli -p "$DST" debug digest)
echo "source   DEBUG DIGEST $a"
echo "restored DEBUG DIGEST $b"
echo "TTL of session:1: source $(redis-cli -p "$SRC" pttl session:1) ms, restored $(redis-cli -p "$DST" pttl session:1) ms"

say "what kubectl shows, and the controller's metrics"
run kubectl get bc,backupsession,restoresession,repo -n demo
curl -s "$METRICS" | grep '^stash_appscode_com_' | grep -E 'success|last_success|snapshot_count' | sed 's/^/   /'

if [[ "$a" != "$b" ]]; then echo "digest MISMATCH" >&2; exit 1; fi
printf '\n\033[1mdigest match\033[0m\n'
