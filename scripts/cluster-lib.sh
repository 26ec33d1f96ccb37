# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for scripts/cluster-{build,up,down}.sh (sourced, not run).
# One pinned Kubernetes release, built from the Go module proxy into a per-version cache
# outside the repo; the cluster's state (certs, etcd data, logs, pids) lives under
# $MLDEPLOY_HOME/cluster. Everything listens on 127.0.0.1 only.

CLUSTER_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_TOOLS="$CLUSTER_REPO/tools/kubernetes"
MLDEPLOY_CACHE="${MLDEPLOY_CACHE:-$HOME/.cache/mldeploy}"
MLDEPLOY_HOME="${MLDEPLOY_HOME:-$HOME/.mldeploy}"

# Go is installed outside PATH on some machines (/usr/local/go).
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

# --- Versions: the go.mod files of tools/kubernetes are the single source for k8s and etcd.
# (a module's version in a go.mod: "require M vX" or "M vX" inside a require block)
gomod_version() { awk -v m="$2" '($1==m && $2 ~ /^v/) {print $2; exit} ($1=="require" && $2==m) {print $3; exit}' "$1"; }
K8S_VERSION="$(gomod_version "$CLUSTER_TOOLS/go.mod" k8s.io/kubernetes)"
ETCD_VERSION="$(gomod_version "$CLUSTER_TOOLS/etcd/go.mod" go.etcd.io/etcd/server/v3)"
if [ -z "$K8S_VERSION" ] || [ -z "$ETCD_VERSION" ]; then
  echo "[cluster] ERROR: cannot read versions from $CLUSTER_TOOLS/go.mod" >&2; exit 1
fi
CONTAINERD_VERSION="v2.4.2"   # github.com/containerd/containerd/v2 (CRI runtime of the real node)
CNI_PLUGINS_VERSION="v1.9.1"  # github.com/containernetworking/plugins (bridge, host-local, loopback, portmap)
CRICTL_VERSION="v1.34.0"      # sigs.k8s.io/cri-tools (cluster-down removes pods through CRI)
KWOK_VERSION="v0.8.0"         # sigs.k8s.io/kwok (simulated nodes)
PAUSE_IMAGE_TAG="3.10-mldeploy"

CLUSTER_BIN="$MLDEPLOY_CACHE/kubernetes/$K8S_VERSION/bin"
CLUSTER_DIR="$MLDEPLOY_HOME/cluster"
CLUSTER_PKI="$CLUSTER_DIR/pki"
CLUSTER_LOGS="$CLUSTER_DIR/logs"
CLUSTER_RUN="$CLUSTER_DIR/run"            # pid files
CLUSTER_KUBECONFIG="$CLUSTER_DIR/kubeconfig"

# --- Addresses (127.0.0.1 only; ports chosen away from the usual 6443/2379/102xx defaults).
REGISTRY_ADDR="${MLDEPLOY_REGISTRY_ADDR:-127.0.0.1:5000}"
APISERVER_PORT="${MLDEPLOY_APISERVER_PORT:-26443}"
ETCD_CLIENT_PORT=22379
ETCD_PEER_PORT=22380
KCM_PORT=20257
SCHEDULER_PORT=20259
KUBELET_PORT=20250
KUBELET_HEALTHZ_PORT=20248
KUBE_PROXY_HEALTHZ_PORT=20256
KUBE_PROXY_METRICS_PORT=20249
CONTAINERD_STREAM_PORT=20010
KWOK_PORT=20247
SERVICE_CIDR="10.96.0.0/16"
POD_CIDR="10.244.0.0/24"
CNI_BRIDGE="mldeploy0"
NODE_NAME="${MLDEPLOY_CLUSTER_NODE_NAME:-mldeploy-node}"
KWOK_NODE_NAME="mldeploy-kwok-node"   # the simulated node (beside the real one in real mode)
CONTAINERD_ROOT="$CLUSTER_DIR/containerd/root"
CONTAINERD_STATE="/run/mldeploy-containerd"
CONTAINERD_SOCK="$CONTAINERD_STATE/containerd.sock"

say() { printf '[cluster] %s\n' "$*"; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

# Elapsed seconds since the script started (for "took Ns" messages).
_cluster_t0="$(date +%s)"
elapsed() { echo "$(( $(date +%s) - _cluster_t0 ))s"; }

# pid recorded for component $1, if that process is still alive and still that program
# (a stale pid file must not make us reuse, or kill, an unrelated process).
running_pid() {
  local f="$CLUSTER_RUN/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "/$1 " || return 1
  echo "$pid"
}

# start_bg NAME CMD...: start CMD in its own session/process group (setsid), stdout+stderr
# to logs/NAME.log, pid to run/NAME.pid. Reuses a recorded process that is still alive.
start_bg() {
  local name="$1"; shift
  local pid
  if pid="$(running_pid "$name")"; then
    say "$name is already running (pid $pid), reusing it"
    return 0
  fi
  mkdir -p "$CLUSTER_LOGS" "$CLUSTER_RUN"
  # Keep the previous run's log (it may hold why that run died).
  [ -s "$CLUSTER_LOGS/$name.log" ] && mv -f "$CLUSTER_LOGS/$name.log" "$CLUSTER_LOGS/$name.log.1"
  setsid "$@" >>"$CLUSTER_LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$CLUSTER_RUN/$name.pid"
  say "started $name (pid $!, log $CLUSTER_LOGS/$name.log)"
}

# wait_for DESCRIPTION SECONDS CMD...: poll CMD every 0.5s until it succeeds or the deadline.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.5
  done
  say "$what ($(elapsed))"
}

# stop_component NAME: TERM the recorded process group, KILL it after a deadline.
stop_component() {
  local name="$1" pid
  if ! pid="$(running_pid "$name")"; then
    rm -f "$CLUSTER_RUN/$name.pid"
    return 0
  fi
  local t0; t0="$(date +%s%N)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + ${2:-20} ))
  while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    say "stopped $name (pid $pid, killed after the deadline)"
  else
    say "stopped $name (pid $pid, $(( ($(date +%s%N) - t0) / 1000000 ))ms)"
  fi
  rm -f "$CLUSTER_RUN/$name.pid"
}

# write_if_changed FILE < content: rewrite FILE only when the content differs (kube-proxy,
# for one, exits when its config file is touched).
write_if_changed() {
  local tmp; tmp="$(mktemp)"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; chmod 644 "$1"; fi
}

kctl() { "$CLUSTER_BIN/kubectl" --kubeconfig "$CLUSTER_KUBECONFIG" "$@"; }
