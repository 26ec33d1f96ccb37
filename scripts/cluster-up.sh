#!/usr/bin/env bash
# Start (or reuse) a single-node Kubernetes cluster for tests, on 127.0.0.1 only:
#   etcd -> kube-apiserver -> kube-controller-manager, kube-scheduler -> the node.
# Node modes (MLDEPLOY_CLUSTER_NODE or --node=):
#   real (default): containerd v2 + runc + a CNI bridge, and a kubelet that runs the images
#                   of the local registry (127.0.0.1:5000) as real containers; beside it a
#                   simulated node (kwok, tainted kwok.x-k8s.io/node=fake:NoSchedule).
#   kwok:           a simulated node (sigs.k8s.io/kwok); pod states come from the Stage
#                   files in tools/kubernetes/kwok/, nothing is run.
# State, certificates, logs and pid files: $MLDEPLOY_HOME/cluster (default ~/.mldeploy).
# Binaries: built once per Kubernetes version by scripts/cluster-build.sh.
# The last line printed is `export KUBECONFIG=<admin kubeconfig>`.
set -euo pipefail
# shellcheck source=scripts/cluster-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

NODE_MODE="${MLDEPLOY_CLUSTER_NODE:-real}"
for arg in "$@"; do
  case "$arg" in
    --node=*) NODE_MODE="${arg#--node=}" ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $arg (use --node=real|kwok)" ;;
  esac
done
case "$NODE_MODE" in real|kwok) ;; *) die "MLDEPLOY_CLUSTER_NODE must be real or kwok, not $NODE_MODE" ;; esac
# The simulated node gets its own default name so nobody mistakes it for a real one.
[ "$NODE_MODE" = kwok ] && [ -z "${MLDEPLOY_CLUSTER_NODE_NAME:-}" ] && NODE_NAME=mldeploy-kwok-node
[ "$(id -u)" = 0 ] || die "the cluster needs root (kubelet, containerd, network namespaces); run as root"

mkdir -p "$CLUSTER_DIR" "$CLUSTER_LOGS" "$CLUSTER_RUN"
# A cluster started in one mode is reused in that mode only.
if [ -f "$CLUSTER_RUN/node-mode" ] && [ "$(cat "$CLUSTER_RUN/node-mode")" != "$NODE_MODE" ] \
   && running_pid kube-apiserver >/dev/null; then
  die "a cluster with node mode $(cat "$CLUSTER_RUN/node-mode") is running; run scripts/cluster-down.sh first"
fi
echo "$NODE_MODE" >"$CLUSTER_RUN/node-mode"
say "Kubernetes $K8S_VERSION, node mode $NODE_MODE, state in $CLUSTER_DIR"

# --- Binaries -------------------------------------------------------------------------
need_bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
if [ "$NODE_MODE" = real ]; then
  need_bins+=(kubelet kube-proxy containerd containerd-shim-runc-v2 crictl pause cni/bridge cni/host-local cni/loopback kwok)
else
  need_bins+=(kwok)
fi
missing=()
for b in "${need_bins[@]}"; do [ -x "$CLUSTER_BIN/$b" ] || missing+=("$b"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "binaries missing in $CLUSTER_BIN (${missing[*]}): running scripts/cluster-build.sh"
  bash "$CLUSTER_REPO/scripts/cluster-build.sh"
else
  say "using cached binaries in $CLUSTER_BIN"
fi

# port_free PORT: nothing listens on 127.0.0.1:PORT (or on all addresses).
port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
# ensure_port_for NAME PORT: fail early when a foreign process holds a port we need.
ensure_port_for() {
  running_pid "$1" >/dev/null && return 0
  port_free "$2" || die "port $2 (for $1) is in use by another process: $(ss -Hltnp "sport = :$2" | head -n1)"
}

# --- PKI (openssl; generated once, reused) --------------------------------------------
mkdir -p "$CLUSTER_PKI"; chmod 700 "$CLUSTER_PKI"
new_certs=()
# mkca NAME CN: a self-signed CA (the cluster CA, and the front-proxy CA for aggregation).
mkca() {
  [ -s "$CLUSTER_PKI/$1.key" ] && [ -s "$CLUSTER_PKI/$1.crt" ] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CLUSTER_PKI/$1.key" 2>/dev/null
  openssl req -x509 -new -key "$CLUSTER_PKI/$1.key" -sha256 -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$CLUSTER_PKI/$1.crt" 2>/dev/null
  new_certs+=("$1")
}
mkca ca mldeploy-cluster-ca
mkca front-proxy-ca mldeploy-front-proxy-ca
# mkcert NAME SUBJECT EKU [SANS] [CA]: a leaf certificate signed by the cluster CA (or CA).
mkcert() {
  local name="$1" subj="$2" eku="$3" sans="${4:-}" ca="${5:-ca}"
  [ -s "$CLUSTER_PKI/$name.crt" ] && [ -s "$CLUSTER_PKI/$name.key" ] && return 0
  local ext; ext="$(mktemp)"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$ext"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$CLUSTER_PKI/$name.key" 2>/dev/null
  openssl req -new -key "$CLUSTER_PKI/$name.key" -subj "$subj" 2>/dev/null \
    | openssl x509 -req -CA "$CLUSTER_PKI/$ca.crt" -CAkey "$CLUSTER_PKI/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days 3650 -sha256 -extfile "$ext" -out "$CLUSTER_PKI/$name.crt" 2>/dev/null
  rm -f "$ext"
  chmod 600 "$CLUSTER_PKI/$name.key"
  new_certs+=("$name")
}
apiserver_sans="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
apiserver_sans+=",DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
mkcert apiserver "/CN=kube-apiserver" serverAuth "$apiserver_sans"
mkcert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
mkcert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
mkcert etcd-server "/CN=etcd" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
mkcert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
mkcert admin "/O=system:masters/CN=mldeploy-admin" clientAuth
mkcert controller-manager "/CN=system:kube-controller-manager" clientAuth
mkcert scheduler "/CN=system:kube-scheduler" clientAuth
mkcert kube-proxy "/CN=system:kube-proxy" clientAuth
mkcert "kubelet-$NODE_NAME-client" "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
mkcert "kubelet-$NODE_NAME-server" "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1"
if [ ! -s "$CLUSTER_PKI/sa.key" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$CLUSTER_PKI/sa.key" 2>/dev/null
  openssl pkey -in "$CLUSTER_PKI/sa.key" -pubout -out "$CLUSTER_PKI/sa.pub" 2>/dev/null
  chmod 600 "$CLUSTER_PKI/sa.key"
  new_certs+=(service-account-keys)
fi
chmod 600 "$CLUSTER_PKI"/*.key
if [ "${#new_certs[@]}" -gt 0 ]; then say "generated certificates in $CLUSTER_PKI: ${new_certs[*]}"
else say "reusing certificates in $CLUSTER_PKI"; fi

# write_kubeconfig FILE CERTNAME: a self-contained kubeconfig (embedded CA, cert and key).
write_kubeconfig() {
  local file="$1" cert="$2" tmp
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mldeploy
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$CLUSTER_PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$CLUSTER_PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$CLUSTER_PKI/$cert.key")
contexts:
- name: mldeploy
  context:
    cluster: mldeploy
    user: $cert
current-context: mldeploy
EOF
  chmod 600 "$tmp"
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv -f "$tmp" "$file"; fi
}
mkdir -p "$CLUSTER_DIR/kubeconfigs"
write_kubeconfig "$CLUSTER_KUBECONFIG" admin
for c in controller-manager scheduler kube-proxy "kubelet-$NODE_NAME-client"; do
  write_kubeconfig "$CLUSTER_DIR/kubeconfigs/$c.kubeconfig" "$c"
done
say "kubeconfigs written: $CLUSTER_KUBECONFIG (admin) and $CLUSTER_DIR/kubeconfigs/"

# --- etcd ------------------------------------------------------------------------------
P="$CLUSTER_PKI"
etcd_healthy() {
  curl -fsS --cacert "$P/ca.crt" --cert "$P/apiserver-etcd-client.crt" --key "$P/apiserver-etcd-client.key" \
    "https://127.0.0.1:$ETCD_CLIENT_PORT/health" | grep -q '"health":"true"'
}
ensure_port_for etcd "$ETCD_CLIENT_PORT"
start_bg etcd "$CLUSTER_BIN/etcd" --name mldeploy --data-dir "$CLUSTER_DIR/etcd" \
  --listen-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "mldeploy=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
  --cert-file "$P/etcd-server.crt" --key-file "$P/etcd-server.key" --trusted-ca-file "$P/ca.crt" --client-cert-auth \
  --snapshot-count 10000 --quota-backend-bytes 2147483648 --log-level warn
wait_for "etcd is healthy on https://127.0.0.1:$ETCD_CLIENT_PORT" 60 etcd_healthy \
  || die "etcd did not become healthy; see $CLUSTER_LOGS/etcd.log"

# --- kube-apiserver --------------------------------------------------------------------
apiserver_ready() { curl -fsS --cacert "$P/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -q ok; }
ensure_port_for kube-apiserver "$APISERVER_PORT"
# --endpoint-reconciler-type=none: Endpoints may not hold a loopback address, and there is no
# other address to advertise; nothing here reaches the apiserver through the kubernetes Service.
start_bg kube-apiserver "$CLUSTER_BIN/kube-apiserver" \
  --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --etcd-servers="https://127.0.0.1:$ETCD_CLIENT_PORT" --etcd-cafile="$P/ca.crt" \
  --etcd-certfile="$P/apiserver-etcd-client.crt" --etcd-keyfile="$P/apiserver-etcd-client.key" \
  --client-ca-file="$P/ca.crt" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --service-node-port-range=30000-32767 \
  --requestheader-client-ca-file="$P/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false --v=1
wait_for "kube-apiserver is ready on https://127.0.0.1:$APISERVER_PORT" 120 apiserver_ready \
  || die "kube-apiserver did not become ready; see $CLUSTER_LOGS/kube-apiserver.log"

# --- kube-controller-manager, kube-scheduler -------------------------------------------
K="$CLUSTER_DIR/kubeconfigs"
ensure_port_for kube-controller-manager "$KCM_PORT"
start_bg kube-controller-manager "$CLUSTER_BIN/kube-controller-manager" \
  --kubeconfig="$K/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$K/controller-manager.kubeconfig" --authorization-kubeconfig="$K/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
  --allocate-node-cidrs=false --cluster-name=mldeploy --profiling=false --v=1
ensure_port_for kube-scheduler "$SCHEDULER_PORT"
start_bg kube-scheduler "$CLUSTER_BIN/kube-scheduler" \
  --kubeconfig="$K/scheduler.kubeconfig" \
  --authentication-kubeconfig="$K/scheduler.kubeconfig" --authorization-kubeconfig="$K/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false --profiling=false --v=1
healthz() { curl -fsSk "https://127.0.0.1:$1/healthz" | grep -q ok; }
wait_for "kube-controller-manager is healthy on 127.0.0.1:$KCM_PORT" 60 healthz "$KCM_PORT" \
  || die "kube-controller-manager is not healthy; see $CLUSTER_LOGS/kube-controller-manager.log"
wait_for "kube-scheduler is healthy on 127.0.0.1:$SCHEDULER_PORT" 60 healthz "$SCHEDULER_PORT" \
  || die "kube-scheduler is not healthy; see $CLUSTER_LOGS/kube-scheduler.log"

# --- The node ---------------------------------------------------------------------------
node_ready() {
  [ "$(kctl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_real_node() {
  # Host tools the node needs; Debian packages, installed only when absent.
  local pkgs=()
  command -v runc >/dev/null || pkgs+=(runc)
  command -v iptables >/dev/null || pkgs+=(iptables)
  command -v nsenter >/dev/null || pkgs+=(util-linux)
  command -v conntrack >/dev/null || pkgs+=(conntrack)  # kube-proxy
  command -v docker >/dev/null || die "the real node needs the Docker engine to build the pause image: run make setup"
  if [ "${#pkgs[@]}" -gt 0 ]; then
    say "installing ${pkgs[*]} (Debian)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  fi
  curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null || die "no registry on http://$REGISTRY_ADDR: run make setup first"

  # The pod sandbox image: no public registry is reachable, so it is built here.
  local pause_ref="$REGISTRY_ADDR/pause:$PAUSE_IMAGE_TAG"
  if curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
       "http://$REGISTRY_ADDR/v2/pause/manifests/$PAUSE_IMAGE_TAG"; then
    say "pause image $pause_ref is in the registry"
  else
    local ctx; ctx="$(mktemp -d)"
    cp "$CLUSTER_BIN/pause" "$ctx/pause"
    printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    docker build -q -t "$pause_ref" "$ctx" >"$ctx/build.log" 2>&1 \
      || { cat "$ctx/build.log" >&2; die "docker build of the pause image failed"; }
    docker push -q "$pause_ref" >"$ctx/push.log" 2>&1 \
      || { cat "$ctx/push.log" >&2; die "docker push of the pause image failed"; }
    rm -rf "$ctx"
    say "built and pushed the pause image $pause_ref"
  fi

  # CNI: one bridge, host-local addresses from $POD_CIDR, no masquerading and no default
  # route (nothing leaves the host; pods reach each other, the host and Service IPs).
  # Kept apart from Docker's and any other CNI config on the machine.
  local cni="$CLUSTER_DIR/cni"
  mkdir -p "$cni/net.d"
  write_if_changed "$cni/net.d/10-mldeploy.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "mldeploy",
  "plugins": [
    {"type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "$SERVICE_CIDR"}], "dataDir": "$CONTAINERD_STATE/cni-ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # Docker sets the FORWARD policy to DROP; let pod-to-pod traffic on our bridge through.
  if ! iptables -C FORWARD -i "$CNI_BRIDGE" -j ACCEPT -m comment --comment mldeploy-cluster 2>/dev/null; then
    iptables -I FORWARD -i "$CNI_BRIDGE" -j ACCEPT -m comment --comment mldeploy-cluster
    iptables -I FORWARD -o "$CNI_BRIDGE" -j ACCEPT -m comment --comment mldeploy-cluster
    say "allowed forwarding on the pod bridge $CNI_BRIDGE (iptables, comment mldeploy-cluster)"
  fi

  # containerd: its own root, state and socket, so it never touches Docker's containerd.
  mkdir -p "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$CLUSTER_DIR/containerd/certs.d/$REGISTRY_ADDR"
  write_if_changed "$CLUSTER_DIR/containerd/certs.d/$REGISTRY_ADDR/hosts.toml" <<EOF
server = "http://$REGISTRY_ADDR"
[host."http://$REGISTRY_ADDR"]
  capabilities = ["pull", "resolve"]
EOF
  # Without CAP_SYS_RESOURCE (some sandboxes/VMs drop it) runc cannot lower oom_score_adj
  # (the kubelet asks -998 for the pause container): clamp to containerd's own value instead.
  local restrict_oom=false
  if (( ((0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24) & 1) == 0 )); then
    restrict_oom=true
    say "no CAP_SYS_RESOURCE here: containerd will clamp oom_score_adj (restrict_oom_score_adj)"
  fi
  # Config schema 4 (containerd 2.4); imports=[] so no host drop-in (/etc/containerd/conf.d) leaks in.
  write_if_changed "$CLUSTER_DIR/containerd/config.toml" <<EOF
version = 4
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri"]
[plugins."io.containerd.server.v1.grpc"]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.server.v1.ttrpc"]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "$CONTAINERD_STREAM_PORT"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$pause_ref"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$CLUSTER_DIR/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CLUSTER_BIN/cni"]
    conf_dir = "$cni/net.d"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "${MLDEPLOY_CLUSTER_RUNC:-$(command -v runc)}"
        Root = "$CONTAINERD_STATE/runc"
        SystemdCgroup = false
EOF
  ensure_port_for containerd "$CONTAINERD_STREAM_PORT"
  # The shim is looked up on PATH.
  start_bg containerd env PATH="$CLUSTER_BIN:$PATH" "$CLUSTER_BIN/containerd" \
    --config "$CLUSTER_DIR/containerd/config.toml" --log-level warn
  crictl_ok() { "$CLUSTER_BIN/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCK" info; }
  wait_for "containerd answers on $CONTAINERD_SOCK" 60 crictl_ok \
    || die "containerd did not come up; see $CLUSTER_LOGS/containerd.log"

  # kubelet: cgroupfs (no systemd), cgroup v1 allowed, swap tolerated, everything on
  # 127.0.0.1. Eviction thresholds are absolute and small, and pressure clears after 30 s instead of
  # 5 min: on a shared 250 GB disk "1%" meant 2.5 GB, and one dip tainted the only node (DiskPressure)
  # for the rest of a test run.
  mkdir -p "$CLUSTER_DIR/kubelet" "$CLUSTER_DIR/pod-logs"
  write_if_changed "$CLUSTER_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $P/kubelet-$NODE_NAME-server.crt
tlsPrivateKeyFile: $P/kubelet-$NODE_NAME-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: $CLUSTER_DIR/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
evictionHard: {memory.available: 100Mi, nodefs.available: 512Mi, imagefs.available: 512Mi, nodefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 30s
rotateCertificates: false
serverTLSBootstrap: false
EOF
  ensure_port_for kubelet "$KUBELET_PORT"
  # --cloud-provider=external: the kubelet refuses a loopback node IP, so it registers without
  # one and this script, standing in for a cloud controller, sets InternalIP 127.0.0.1 below.
  start_bg kubelet "$CLUSTER_BIN/kubelet" --config="$CLUSTER_DIR/kubelet/config.yaml" \
    --kubeconfig="$K/kubelet-$NODE_NAME-client.kubeconfig" --hostname-override="$NODE_NAME" \
    --root-dir="$CLUSTER_DIR/kubelet/root" --cert-dir="$CLUSTER_DIR/kubelet/pki" \
    --cloud-provider=external --v=1
  wait_for "node $NODE_NAME registered" 90 kctl get node "$NODE_NAME" \
    || die "the kubelet did not register node $NODE_NAME; see $CLUSTER_LOGS/kubelet.log"
  local addr
  addr="$(kctl get node "$NODE_NAME" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
  if [ "$addr" != 127.0.0.1 ]; then
    kctl patch node "$NODE_NAME" --subresource=status --type=merge \
      -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$NODE_NAME\"}]}}" >/dev/null
    say "set node $NODE_NAME address InternalIP=127.0.0.1"
  fi
  if kctl get node "$NODE_NAME" -o jsonpath='{.spec.taints[*].key}' | grep -q node.cloudprovider.kubernetes.io/uninitialized; then
    kctl taint node "$NODE_NAME" node.cloudprovider.kubernetes.io/uninitialized- >/dev/null
    say "removed the cloud-provider 'uninitialized' taint from $NODE_NAME"
  fi
  wait_for "node $NODE_NAME is Ready" 120 node_ready "$NODE_NAME" \
    || die "node $NODE_NAME is not Ready; see $CLUSTER_LOGS/kubelet.log and containerd.log"

  # kube-proxy (iptables): Service ClusterIPs, and NodePorts on 127.0.0.1 only.
  write_if_changed "$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $K/kube-proxy.kubeconfig}
mode: iptables
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
clusterCIDR: $POD_CIDR
nodePortAddresses: ["127.0.0.1/32"]
hostnameOverride: $NODE_NAME
conntrack: {maxPerCore: 0}
EOF
  # kube-proxy sets route_localnet=1 for NodePorts on 127.0.0.1; cluster-down restores this.
  [ -f "$CLUSTER_RUN/route_localnet.orig" ] || sysctl -n net.ipv4.conf.all.route_localnet >"$CLUSTER_RUN/route_localnet.orig"
  ensure_port_for kube-proxy "$KUBE_PROXY_HEALTHZ_PORT"
  start_bg kube-proxy "$CLUSTER_BIN/kube-proxy" --config="$CLUSTER_DIR/kube-proxy.yaml" --v=1
  proxy_healthy() { curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" | grep -q '"healthy":true'; }
  wait_for "kube-proxy is healthy (NodePorts on 127.0.0.1)" 60 proxy_healthy \
    || die "kube-proxy is not healthy; see $CLUSTER_LOGS/kube-proxy.log"
}

# start_kwok_node NAME [TAINT]: the simulated node NAME, managed by kwok; with TAINT (real mode, beside the
# real node) only pods that tolerate kwok.x-k8s.io/node=fake land on it.
start_kwok_node() {
  local name="$1" taint="${2:-}" stages=() f
  for f in "$CLUSTER_TOOLS"/kwok/*.yaml; do stages+=(--config "$f"); done
  ensure_port_for kwok "$KWOK_PORT"
  # MLDEPLOY_KWOK_FLAGS: extra kwok flags, split on spaces (e.g. -v=DEBUG to trace stages).
  # shellcheck disable=SC2086
  start_bg kwok "$CLUSTER_BIN/kwok" --kubeconfig="$CLUSTER_KUBECONFIG" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --server-address="127.0.0.1:$KWOK_PORT" --cidr=10.244.1.0/24 --node-ip=10.244.0.1 "${stages[@]}" ${MLDEPLOY_KWOK_FLAGS:-}
  if ! kctl get node "$name" >/dev/null 2>&1; then
    kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: $name, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec:
  taints: [$taint]
status:
  allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
  capacity: {cpu: "8", memory: 32Gi, pods: "110"}
EOF
    say "created the simulated node $name (kwok${taint:+, tainted})"
  fi
  wait_for "node $name is Ready (kwok)" 60 node_ready "$name" \
    || die "kwok node $name is not Ready; see $CLUSTER_LOGS/kwok.log"
}

if [ "$NODE_MODE" = real ]; then
  start_real_node
  # and a simulated node beside it, for failure states no real container should be made to produce
  start_kwok_node "$KWOK_NODE_NAME" "{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}"
else
  start_kwok_node "$NODE_NAME"
fi

# Pods can be created once the default ServiceAccount exists (ServiceAccount admission).
wait_for "default service account exists" 60 kctl -n default get serviceaccount default \
  || die "no default service account; see $CLUSTER_LOGS/kube-controller-manager.log"
say "cluster is up in $(elapsed): $("$CLUSTER_BIN/kubectl" version --kubeconfig "$CLUSTER_KUBECONFIG" 2>/dev/null | tail -n1)"
echo "export KUBECONFIG=$CLUSTER_KUBECONFIG"
