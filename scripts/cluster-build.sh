#!/usr/bin/env bash
# Build the local test cluster's binaries from the Go module proxy into
# ${MLDEPLOY_CACHE:-$HOME/.cache/mldeploy}/kubernetes/<k8s version>/bin.
# Idempotent: a binary whose recorded build spec matches is reused, not rebuilt.
#   Kubernetes (tools/kubernetes/go.mod): kube-apiserver, kube-controller-manager,
#     kube-scheduler, kubelet, kube-proxy, kubectl
#   etcd server (tools/kubernetes/etcd/go.mod)
#   containerd v2 + runc shim + ctr, CNI plugins, crictl (the real node; runc is Debian's)
#   kwok (simulated nodes), pause (the pod sandbox image, tools/kubernetes/pause)
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

command -v go >/dev/null 2>&1 || die "go is not installed (need Go >= 1.26 for containerd $CONTAINERD_VERSION)"
mkdir -p "$CLUSTER_BIN"
# Static, path-free, stripped binaries: smaller and faster to link; no C toolchain needed.
export CGO_ENABLED=0
# Keep GOFLAGS from the environment (e.g. -buildvcs=false) but never vendor mode.
GOFLAGS="$(go env GOFLAGS) -buildvcs=false -mod=readonly"
export GOFLAGS

# needs NAME SPEC: true when $CLUSTER_BIN/NAME is missing or was built from another spec.
needs() {
  [ -x "$CLUSTER_BIN/$1" ] && [ "$(cat "$CLUSTER_BIN/.spec-$1" 2>/dev/null)" = "$2" ] && return 1
  return 0
}
record() { local spec="$1"; shift; for n in "$@"; do echo "$spec" >"$CLUSTER_BIN/.spec-$n"; done; }

built=() reused=()
# build_group SPEC NAMES... -- go-build-args...: build the missing names in ONE go invocation
# (shared packages compile once) into a temp dir, then move them into the cache.
build_group() {
  local spec="$1"; shift
  local names=() missing=() n
  while [ "$1" != "--" ]; do names+=("$1"); shift; done; shift
  for n in "${names[@]}"; do if needs "$n" "$spec"; then missing+=("$n"); else reused+=("$n"); fi; done
  [ "${#missing[@]}" -gt 0 ] || return 0
  local out; out="$(mktemp -d "$CLUSTER_BIN/.build.XXXXXX")"
  local t0; t0="$(date +%s)"
  say "building ${names[*]} ($spec) ..."
  "$@" "$out"
  for n in "${names[@]}"; do
    [ -x "$out/$n" ] || die "build of $spec produced no $n"
    mv -f "$out/$n" "$CLUSTER_BIN/$n"
  done
  rm -rf "$out"
  record "$spec" "${names[@]}"
  built+=("${names[@]}")
  say "built ${names[*]} in $(( $(date +%s) - t0 ))s"
}

# --- Kubernetes: version variables as hack/lib/version.sh sets them, so `kubectl version`,
# /version and client libraries see vX.Y.Z rather than v0.0.0-master.
k8s_minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
# buildDate: the release's publication time on the module proxy (reproducible).
k8s_date="$(cd "$CLUSTER_TOOLS" && go list -m -json "k8s.io/kubernetes@$K8S_VERSION" 2>/dev/null \
  | sed -n 's/.*"Time": "\([^"]*\)".*/\1/p' | head -n1)"
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit= -X $pkg.buildDate=${k8s_date:-1970-01-01T00:00:00Z}"
done
k8s_build() {
  (cd "$CLUSTER_TOOLS" && go build -trimpath -ldflags "$k8s_ldflags" -o "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl)
}
# The spec includes the ldflags, so changing the version variables rebuilds.
build_group "k8s.io/kubernetes@$K8S_VERSION ldflags=$(echo "$k8s_ldflags" | sha256sum | cut -c1-12)" \
  kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl -- k8s_build

# --- etcd (wrapper module: its go.mod replaces sibling modules with local folders).
etcd_build() {
  (cd "$CLUSTER_TOOLS/etcd" && go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3)
}
build_group "go.etcd.io/etcd/server/v3@$ETCD_VERSION" etcd -- etcd_build

# --- Modules without replace directives: plain `go install module/pkg@version`.
containerd_build() {
  GOBIN="$1" go install -trimpath -tags no_btrfs \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION#v}" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
}
build_group "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" \
  containerd containerd-shim-runc-v2 ctr -- containerd_build

cni_build() {
  local p="github.com/containernetworking/plugins/plugins"
  mkdir -p "$1/cni"
  GOBIN="$1/cni" go install -trimpath -ldflags "-s -w" \
    "$p/main/bridge@$CNI_PLUGINS_VERSION" "$p/main/loopback@$CNI_PLUGINS_VERSION" \
    "$p/ipam/host-local@$CNI_PLUGINS_VERSION" "$p/meta/portmap@$CNI_PLUGINS_VERSION"
  for n in bridge loopback host-local portmap; do mv "$1/cni/$n" "$1/cni-$n"; done
}
# CNI plugins live in bin/cni/ (containerd's bin_dir); built flat, then moved there below.
cni_names=(cni-bridge cni-loopback cni-host-local cni-portmap)
build_group "github.com/containernetworking/plugins@$CNI_PLUGINS_VERSION" "${cni_names[@]}" -- cni_build
mkdir -p "$CLUSTER_BIN/cni"
for n in bridge loopback host-local portmap; do ln -sf "../cni-$n" "$CLUSTER_BIN/cni/$n"; done

crictl_build() {
  GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}
build_group "sigs.k8s.io/cri-tools@$CRICTL_VERSION" crictl -- crictl_build

kwok_build() {
  GOBIN="$1" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}
build_group "sigs.k8s.io/kwok@$KWOK_VERSION" kwok -- kwok_build

# --- pause: the pod sandbox binary; cluster-up wraps it in a FROM-scratch image.
pause_spec="pause@$(sha256sum "$CLUSTER_TOOLS/pause/main.go" | cut -c1-16)"
pause_build() { (cd "$CLUSTER_TOOLS" && go build -trimpath -ldflags "-s -w" -o "$1/pause" ./pause); }
build_group "$pause_spec" pause -- pause_build

if [ "${#built[@]}" -eq 0 ]; then
  say "all binaries present for Kubernetes $K8S_VERSION in $CLUSTER_BIN (nothing rebuilt)"
else
  say "built ${built[*]} into $CLUSTER_BIN in $(elapsed)"
  [ "${#reused[@]}" -eq 0 ] || say "reused ${reused[*]}"
fi
say "binaries: $(du -sh "$CLUSTER_BIN" | cut -f1) in $CLUSTER_BIN"
