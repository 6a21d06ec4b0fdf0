#!/usr/bin/env bash
# `make demo`: the whole story of kubectl-stash on a local cluster, without Docker: stash-webhook
# installed with `kubectl stash install`; a Redis with sample data; a storage Secret and a
# local-filesystem Repository; a BackupConfiguration scheduled every minute; the scheduled backup;
# a triggered backup; the snapshots; a restore into a second Redis; DEBUG DIGEST compared; status
# and metrics. Exits non-zero on any failure.
#
# Two clusters can run it (STASH_DEMO_NODE):
#   real   a real node (test/realnode): etcd, kube-apiserver, kube-controller-manager,
#          kube-scheduler, containerd + runc, a kubelet, kube-proxy and CoreDNS; the project's
#          images (`hack/image`) run as the stash-webhook Deployment and the backup and restore
#          Jobs; Redis runs in Pods behind Services. Needs root on Linux with cgroup v1
#          controllers, and the node's pieces (hack/node-assets.sh, ~15 min the first time).
#   agent  a control plane (etcd, kube-apiserver, kube-controller-manager) and the test node
#          agent, which runs each Pod's command as a local process (the runner binary stands in
#          for its image); stash-webhook and Redis run as local processes. Runs anywhere.
# The default is real where the machine allows it, else agent (saying why).
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
# wait_ready DIR LOG: wait until a cluster command (the last of pids) has written DIR/ready.
wait_ready() {
  for _ in $(seq 900); do
    [[ -f "$1/ready" ]] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$2"; exit 1; }
    sleep 1
  done
  [[ -f "$1/ready" ]] || { cat "$2"; echo "the cluster did not start" >&2; exit 1; }
  grep '^---' "$2" | sed 's/^--- /   /'
}

MODE="${STASH_DEMO_NODE:-}"
if [[ -z "$MODE" ]]; then
  MODE=agent
  if [[ "$(uname -s)" == Linux && "$(id -u)" == 0 ]]; then
    go build -o "$WORK/stash-real-node" ./test/realnode/cmd/stash-real-node
    if why=$("$WORK/stash-real-node" -check); then MODE=real; else echo "note: $why: the demo runs on the stand-in node agent"; fi
  else
    echo "note: a real node needs root on Linux: the demo runs on the stand-in node agent (STASH_DEMO_NODE=agent)"
  fi
fi

case "$MODE" in
real)
  say "a real node: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc, a kubelet, kube-proxy, CoreDNS; the images; stash-webhook"
  STASH_NODE_ASSETS="$(hack/node-assets.sh "${K8S_VERSION:-1.37.2}")"
  export STASH_NODE_ASSETS
  [[ -x "$WORK/stash-real-node" ]] || go build -o "$WORK/stash-real-node" ./test/realnode/cmd/stash-real-node
  "$WORK/stash-real-node" --bin-dir "$BIN" --dir "$WORK/cluster" 2> "$WORK/cluster.log" &
  pids+=($!)
  wait_ready "$WORK/cluster" "$WORK/cluster.log"
  export KUBECONFIG="$WORK/cluster/kubeconfig" PATH="$BIN:$PATH"
  run kubectl get nodes -o wide
  run kubectl get pods -n stash-system -o wide

  run kubectl create namespace demo
  say "two Redis Pods (Debian's redis-server as an image) behind Services, sample data in one: every type, TTLs, databases 0 and 3"
  for name in redis-src redis-dst; do
    cat > "$WORK/$name.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: demo, labels: {app: $name}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: redis
    image: $(cat "$WORK/cluster/redis-image")
    imagePullPolicy: Never
    args: [--port, "6379", --bind, 0.0.0.0, --protected-mode, "no", --save, "", --appendonly, "no", --enable-debug-command, "yes", --dir, /data]
    readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: $name, namespace: demo}
spec:
  selector: {app: $name}
  ports: [{port: 6379}]
YAML
    run kubectl apply -f "$WORK/$name.yaml"
  done
  run kubectl wait --for=condition=Ready pod/redis-src pod/redis-dst -n demo --timeout=2m
  # The host reaches the Services' cluster IPs through kube-proxy's rules, like a Pod does.
  SRC_HOST=$(kubectl get service redis-src -n demo -o jsonpath='{.spec.clusterIP}') SRC_PORT=6379
  DST_HOST=$(kubectl get service redis-dst -n demo -o jsonpath='{.spec.clusterIP}') DST_PORT=6379
  for _ in $(seq 30); do redis-cli -h "$SRC_HOST" ping >/dev/null 2>&1 && redis-cli -h "$DST_HOST" ping >/dev/null 2>&1 && break; sleep 1; done
  TARGET=(--redis-service redis-src) RESTORE_TO=service/redis-dst
  # The runner runs as uid 65532 and writes the repository on this host directory.
  REPO_MOUNT=/repository
  ;;
agent)
  say "a local cluster: etcd, kube-apiserver, kube-controller-manager, a node agent, stash-webhook"
  go build -o "$WORK/stash-local-cluster" ./test/localcluster/cmd/stash-local-cluster
  "$WORK/stash-local-cluster" --bin-dir "$BIN" --dir "$WORK/cluster" 2> "$WORK/cluster.log" &
  pids+=($!)
  wait_ready "$WORK/cluster" "$WORK/cluster.log"
  export KUBECONFIG="$WORK/cluster/kubeconfig" PATH="$BIN:$PATH"
  METRICS="$(cat "$WORK/cluster/ready")"

  SRC_HOST=127.0.0.1 SRC_PORT=$(free_port); start_redis "$SRC_PORT"
  DST_HOST=127.0.0.1 DST_PORT=$(free_port); start_redis "$DST_PORT"
  say "a Redis on 127.0.0.1:$SRC_PORT with sample data: every type, TTLs, databases 0 and 3"
  TARGET=(--redis-address "127.0.0.1:$SRC_PORT") RESTORE_TO="127.0.0.1:$DST_PORT"
  REPO_MOUNT="$WORK/repository"
  ;;
*) echo "STASH_DEMO_NODE=$MODE: use real or agent" >&2; exit 2 ;;
esac
src() { redis-cli -h "$SRC_HOST" -p "$SRC_PORT" "$@"; }
dst() { redis-cli -h "$DST_HOST" -p "$DST_PORT" "$@"; }

{
  echo "DEBUG POPULATE 20000 user 64"
  for i in $(seq 1 200); do
    echo "HSET profile:$i name user$i visits $i"; echo "RPUSH events:$((i % 20)) login-$i"
    echo "SADD tags:$((i % 10)) t$i"; echo "ZADD leaderboard $i player$i"; echo "XADD orders * id $i"
  done
  for i in $(seq 1 100); do echo "SET session:$i token$i PX $((600000 + i))"; done
  echo "SELECT 3"
  for i in $(seq 1 500); do echo "SET cache:$i value$i EX 3600"; done
} | src >/dev/null
src info keyspace | grep ^db

say "a storage Secret (the repository password, read from stdin) and a local-filesystem Repository"
[[ "$MODE" == real ]] || run kubectl create namespace demo
echo "demo-password-$RANDOM" | run kubectl stash create secret storage storage -n demo --password-stdin
mkdir -p "$WORK/repository"
[[ "$MODE" == agent ]] || chmod 777 "$WORK/repository"
run kubectl stash create repository local -n demo --provider local --host-path "$WORK/repository" --mount-path "$REPO_MOUNT" --secret storage

say "a BackupConfiguration scheduled every minute, keeping the last 5 snapshots"
run kubectl stash create backupconfig redis-every-minute -n demo --repo local "${TARGET[@]}" --schedule "* * * * *" --keep-last 5
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
[[ "$MODE" == agent ]] || run kubectl get pods -n demo -l app.kubernetes.io/component=backup -o wide

say "the snapshots in the repository"
run kubectl stash snapshots list local -n demo

say "restore the latest snapshot into the empty Redis ($RESTORE_TO)"
run kubectl stash restore local -n demo --snapshot latest --to "$RESTORE_TO" --wait --wait-timeout 2m

say "compare the two servers"
a=$(src debug digest); b=$(dst debug digest)
echo "source   DEBUG DIGEST $a"
echo "restored DEBUG DIGEST $b"
echo "TTL of session:1: source $(src pttl session:1) ms, restored $(dst pttl session:1) ms"

say "what kubectl shows, and the controller's metrics"
run kubectl get bc,backupsession,restoresession,repo -n demo
if [[ "$MODE" == real ]]; then
  # The elected replica runs the controllers and serves their metrics.
  leader=$(kubectl get lease stash-webhook.stash.dev -n stash-system -o jsonpath='{.spec.holderIdentity}')
  METRICS="http://$(kubectl get pod "${leader%%_*}" -n stash-system -o jsonpath='{.status.podIP}'):8080/metrics"
fi
curl -s "$METRICS" | grep '^stash_appscode_com_' | grep -E 'success|last_success|snapshot_count' | sed 's/^/   /'

if [[ "$a" != "$b" ]]; then echo "digest MISMATCH" >&2; exit 1; fi
printf '\n\033[1mdigest match\033[0m\n'
