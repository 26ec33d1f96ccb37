#!/usr/bin/env bash
# Stop the local test cluster started by scripts/cluster-up.sh.
# Stops only what cluster-up started (recorded pids, whole process groups), removes the
# pods/containers the node created, the pod bridge and its iptables rules, and the cluster's
# etcd/kubelet state, so the next cluster-up starts empty. Keeps the cached binaries, the
# certificates and kubeconfig (still valid next time), the pulled-image cache and the logs.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

if [ ! -d "$CLUSTER_RUN" ]; then
  say "no cluster state in $CLUSTER_DIR: nothing to stop"
  exit 0
fi

# --- The node first, so nothing restarts what is being removed ---------------------------
stop_component kwok
stop_component kube-proxy
# kube-proxy's iptables chains (KUBE-*) go with it.
if [ -f "$CLUSTER_DIR/kube-proxy.yaml" ] && iptables -S 2>/dev/null | grep -q -- '-N KUBE-'; then
  if "$CLUSTER_BIN/kube-proxy" --cleanup --config="$CLUSTER_DIR/kube-proxy.yaml" >>"$CLUSTER_LOGS/kube-proxy.log" 2>&1; then
    say "removed kube-proxy's iptables rules"
  else
    say "warning: kube-proxy --cleanup failed (see $CLUSTER_LOGS/kube-proxy.log)"
  fi
fi
stop_component kubelet 30

crictl_() { "$CLUSTER_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s "$@"; }
if running_pid containerd >/dev/null && [ -x "$CLUSTER_BIN/crictl" ]; then
  n="$(crictl_ pods -q 2>/dev/null | wc -l)"
  if [ "$n" -gt 0 ]; then
    # Stops and removes every pod sandbox with its containers; CNI releases the addresses.
    crictl_ rmp --all --force >/dev/null 2>&1 || say "warning: crictl rmp reported an error"
    say "removed $n pod(s) and their containers"
  fi
fi
stop_component containerd 30

# Shims outlive containerd by design; end those of our containerd (they name its socket).
for d in /proc/[0-9]*; do
  cmd="$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null || true)"
  case "$cmd" in
    *containerd-shim-runc-v2*"-address $CONTAINERD_SOCK"*)
      if kill -KILL "${d#/proc/}" 2>/dev/null; then say "ended leftover shim ${d#/proc/}"; fi ;;
  esac
done
# Containers whose shim is gone are still known to runc under our own runc root.
if [ -d "$CONTAINERD_STATE/runc" ] && command -v runc >/dev/null; then
  for root in "$CONTAINERD_STATE"/runc/*; do
    [ -d "$root" ] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      if runc --root "$root" delete --force "$id" >/dev/null 2>&1; then say "removed leftover container ${id:0:12}"; fi
    done
  done
fi

# Mounts left by containerd (rootfs, netns, shm) and the kubelet (volumes), deepest first.
umount_under() {
  local prefix="$1" m count=0
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    count=$((count + 1))
  done < <(awk -v p="$prefix" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r)
  [ "$count" -eq 0 ] || say "unmounted $count leftover mount(s) under $prefix"
}
umount_under "$CONTAINERD_STATE/"
umount_under "$CONTAINERD_ROOT/"
umount_under "$CLUSTER_DIR/kubelet/"

# The kubelet's own iptables chains (it re-creates them on start).
for ipt in iptables ip6tables; do
  for t in filter nat mangle; do
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      "$ipt" -t "$t" -S "$chain" >/dev/null 2>&1 || continue
      for parent in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
        while "$ipt" -t "$t" -D "$parent" -j "$chain" 2>/dev/null; do :; done
      done
      "$ipt" -t "$t" -F "$chain" 2>/dev/null; "$ipt" -t "$t" -X "$chain" 2>/dev/null || true
    done
  done
done
if [ -f "$CLUSTER_RUN/route_localnet.orig" ]; then
  sysctl -qw "net.ipv4.conf.all.route_localnet=$(cat "$CLUSTER_RUN/route_localnet.orig")" && rm -f "$CLUSTER_RUN/route_localnet.orig"
  say "restored net.ipv4.conf.all.route_localnet=$(sysctl -n net.ipv4.conf.all.route_localnet)"
fi
if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
  ip link del "$CNI_BRIDGE" && say "removed the pod bridge $CNI_BRIDGE"
fi
while iptables -D FORWARD -i "$CNI_BRIDGE" -j ACCEPT -m comment --comment mldeploy-cluster 2>/dev/null; do :; done
while iptables -D FORWARD -o "$CNI_BRIDGE" -j ACCEPT -m comment --comment mldeploy-cluster 2>/dev/null; do :; done

# --- Control plane -------------------------------------------------------------------------
stop_component kube-scheduler
stop_component kube-controller-manager
stop_component kube-apiserver 30
stop_component etcd 30

# The next cluster-up starts from an empty cluster: objects, pod state, CNI addresses.
rm -rf --one-file-system "$CLUSTER_DIR/etcd" "$CLUSTER_DIR/kubelet/root" "$CLUSTER_DIR/pod-logs" "$CONTAINERD_STATE"
rm -f "$CLUSTER_RUN/node-mode"
say "cluster stopped; state removed (kept: binaries in $CLUSTER_BIN, certificates, kubeconfig, image cache, logs in $CLUSTER_LOGS)"
