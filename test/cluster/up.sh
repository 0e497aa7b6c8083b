#!/usr/bin/env bash
# A one-node Kubernetes cluster inside one network namespace (moat-cluster): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (its own root, state and socket), kubelet and
# kube-proxy (nftables mode), all started with `nsenter --net` (not `ip netns exec`: it hides the
# cgroup mounts the kubelet needs). The host's own network namespace,
# rules and links are never touched; everything lives under DIR and is removed by down.sh.
#
# Usage: bash test/cluster/up.sh [DIR]     (default /run/moat-cluster)
# Env:   MOAT_CLUSTER_CNI=bridge|none       bridge: the bridge plugin (kind's shape, br_netfilter);
#                                           none: no CNI config (flannel installs its own)
# Prints KEY=VALUE lines (also in DIR/env): KUBECONFIG, MOAT_CLUSTER_NETNS, ...
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=test/cluster/versions.env
. "$HERE/versions.env"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/moat"
CBIN="${MOAT_CLUSTER_BIN:-${MOAT_CLUSTER_CACHE:-$CACHE_ROOT/cluster}/$K8S_VERSION/bin}"
KBIN="${MOAT_K8S_BIN:-${MOAT_K8S_CACHE:-$CACHE_ROOT/k8s}/$K8S_VERSION/bin}"
DIR="${1:-/run/moat-cluster}"
NS=moat-cluster
NODE=moat-node
NODE_IP=10.201.0.2
POD_CIDR=10.244.0.0/16
SVC_CIDR=10.96.0.0/16
CNI=${MOAT_CLUSTER_CNI:-bridge}

for b in "$KBIN/kube-apiserver" "$KBIN/etcd" "$CBIN/kubelet" "$CBIN/kube-proxy" \
  "$CBIN/kube-controller-manager" "$CBIN/kube-scheduler"; do
  [[ -x "$b" ]] || { echo "up.sh: $b is missing: run test/k8s/build.sh and test/cluster/build.sh" >&2; exit 2; }
done
for t in containerd runc ctr openssl curl nft; do
  command -v "$t" >/dev/null || { echo "up.sh: $t is not installed" >&2; exit 2; }
done
if ip netns list | grep -qw "^$NS"; then
  echo "up.sh: network namespace $NS exists: a cluster is up (test/cluster/down.sh removes it)" >&2
  exit 2
fi

mkdir -p "$DIR"/{pki,etcd,log,run,kubelet,containerd,cni/net.d,cni/bin,manifests}
DIR=$(cd "$DIR" && pwd)
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "up.sh: failed, logs in $DIR/log" >&2
    bash "$HERE/down.sh" --keep-logs "$DIR" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT
# nsenter, not `ip netns exec`: the latter mounts a new /sys, which hides the cgroup mounts the
# kubelet and runc need.
inns() { nsenter --net="/run/netns/$NS" "$@"; }
# start NAME CMD...: a daemon in the namespace, its pid in run/NAME.pid, output in log/NAME.log.
start() {
  local name=$1
  shift
  nsenter --net="/run/netns/$NS" "$@" >"$DIR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/run/$name.pid"
}
# all_alive: every daemon started so far still runs (else its log's tail, and failure).
all_alive() {
  local f name
  for f in "$DIR"/run/*.pid; do
    [[ -e "$f" ]] || continue
    name=$(basename "$f" .pid)
    if ! kill -0 "$(cat "$f")" 2>/dev/null; then
      echo "up.sh: $name exited:" >&2
      tail -15 "$DIR/log/$name.log" >&2
      return 1
    fi
  done
}
wait_for() { # wait_for WHAT SECONDS CMD...: polls CMD until it succeeds
  local what=$1 secs=$2
  shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    all_alive || return 1
    sleep 0.2
  done
  echo "up.sh: timed out waiting for $what" >&2
  return 1
}

# --- the node's network namespace: lo, and a veth pair carrying the node address (this kernel
# has no dummy links). The peer end has no address: the default route leads nowhere.
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add moatcl0 type veth peer name moatcl1
ip -n "$NS" link set moatcl1 up
ip -n "$NS" link set moatcl0 up
ip -n "$NS" addr add "$NODE_IP/24" dev moatcl0
ip -n "$NS" route add default dev moatcl0
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
  net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1

# --- PKI: a CA, the apiserver's serving certificate, a client certificate per component.
P=$DIR/pki
ossl() { openssl "$@" >>"$DIR/log/openssl.log" 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=moat-cluster-ca" -keyout "$P/ca.key" -out "$P/ca.crt"
cat >"$P/serving.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EXT
cat >"$P/client.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
cert() { # cert NAME SUBJECT EXT
  ossl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$P/$1.key" -out "$P/$1.csr"
  ossl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
    -extfile "$P/$3.ext" -out "$P/$1.crt"
}
cert apiserver "/CN=kube-apiserver" serving
cert admin "/O=system:masters/CN=moat-admin" client
cert kubelet "/O=system:nodes/CN=system:node:$NODE" client
cert controller-manager "/CN=system:kube-controller-manager" client
cert scheduler "/CN=system:kube-scheduler" client
cert kube-proxy "/CN=system:kube-proxy" client
cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" client
ossl genrsa -out "$P/sa.key" 2048
ossl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"
chmod 600 "$P"/*.key

API=https://$NODE_IP:6443
kubeconfig() { # kubeconfig NAME CERT
  cat >"$DIR/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: moat-cluster
  cluster: {server: "$API", certificate-authority: "$P/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$P/$2.crt", client-key: "$P/$2.key"}
contexts:
- name: moat-cluster
  context: {cluster: moat-cluster, user: $1}
current-context: moat-cluster
KC
}
for c in admin kubelet controller-manager scheduler kube-proxy; do kubeconfig "$c" "$c"; done

# --- etcd and kube-apiserver
start etcd "$KBIN/etcd" --name moat --data-dir "$DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster moat=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
wait_for etcd 20 inns curl -fsS http://127.0.0.1:2379/health
start kube-apiserver "$KBIN/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" --etcd-servers=http://127.0.0.1:2379 \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range="$SVC_CIDR" --authorization-mode=Node,RBAC --allow-privileged=true \
  --kubelet-client-certificate="$P/apiserver-kubelet.crt" --kubelet-client-key="$P/apiserver-kubelet.key" \
  --kubelet-preferred-address-types=InternalIP,Hostname --profiling=false --v=1
wait_for kube-apiserver 90 inns curl -fsS --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "$API/readyz"

start kube-controller-manager "$CBIN/kube-controller-manager" \
  --kubeconfig="$DIR/controller-manager.kubeconfig" --authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
  --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
  --service-cluster-ip-range="$SVC_CIDR" --use-service-account-credentials=true \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false --controllers='*,-cloud-node-lifecycle' --v=1
start kube-scheduler "$CBIN/kube-scheduler" --kubeconfig="$DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$DIR/scheduler.kubeconfig" --authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --v=1

# --- containerd: its own root, state and socket; pod network namespaces under its state dir.
CTR_SOCK=$DIR/run/containerd.sock
CNI_BIN="$DIR/cni/bin:/usr/lib/cni"
cat >"$DIR/containerd.toml" <<TOML
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$DIR/cni/bin"
    conf_dir = "$DIR/cni/net.d"
TOML
# The Debian CNI plugins, by link, beside whatever a CNI installs (flannel copies its own).
for p in /usr/lib/cni/*; do ln -sf "$p" "$DIR/cni/bin/$(basename "$p")"; done
start containerd containerd --config "$DIR/containerd.toml"
wait_for containerd 30 ctr --address "$CTR_SOCK" version

# --- kubelet
cat >"$DIR/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$P/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
cgroupRoot: /moat-cluster
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CTR_SOCK
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
hairpinMode: hairpin-veth
serializeImagePulls: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
YAML
# The kubelet's cgroup root, in every hierarchy (cgroup v1 here): down.sh kills what is in it.
for h in /sys/fs/cgroup/*/; do
  [[ -d "$h" && -e "$h/cgroup.procs" ]] && mkdir -p "${h}moat-cluster"
done
[[ -e /sys/fs/cgroup/cgroup.controllers ]] && mkdir -p /sys/fs/cgroup/moat-cluster
start kubelet "$CBIN/kubelet" --config="$DIR/kubelet.yaml" --kubeconfig="$DIR/kubelet.kubeconfig" \
  --root-dir="$DIR/kubelet" --hostname-override="$NODE" --node-ip="$NODE_IP" --v=1
KUBECTL=(nsenter --net="/run/netns/$NS" kubectl --kubeconfig "$DIR/admin.kubeconfig")
wait_for "node $NODE" 90 "${KUBECTL[@]}" get node "$NODE"
wait_for "the podCIDR of $NODE" 60 bash -c \
  "[ -n \"\$(${KUBECTL[*]} get node $NODE -o jsonpath='{.spec.podCIDR}')\" ]"
NODE_POD_CIDR=$("${KUBECTL[@]}" get node "$NODE" -o jsonpath='{.spec.podCIDR}')

if [[ $CNI == bridge ]]; then
  # kind's shape: one bridge, host-local addresses from the node's podCIDR, a default route
  # through the bridge, hairpin for Services.
  cat >"$DIR/cni/net.d/10-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "moat-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "moatcni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DIR/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
fi

# --- kube-proxy, nftables mode (its tables live in this namespace only). The conntrack sysctls
# are the host's: leave them alone.
cat >"$DIR/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: "$DIR/kube-proxy.kubeconfig"}
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}
YAML
start kube-proxy "$CBIN/kube-proxy" --config="$DIR/kube-proxy.yaml" --v=1
wait_for kube-proxy 60 inns curl -fsS http://127.0.0.1:10256/healthz

# host-local IPAM networks that down.sh may remove: those that do not exist yet (flannel's cbr0
# keeps its state in /var/lib/cni/networks, whatever the cluster's DIR).
for n in cbr0 moat-bridge; do [[ -e "/var/lib/cni/networks/$n" ]] || echo "$n"; done >"$DIR/run/cni-networks-new"
cat >"$DIR/env" <<ENV
KUBECONFIG=$DIR/admin.kubeconfig
MOAT_CLUSTER_DIR=$DIR
MOAT_CLUSTER_NETNS=$NS
MOAT_CLUSTER_NODE=$NODE
MOAT_CLUSTER_NODE_IP=$NODE_IP
MOAT_CLUSTER_CTR_SOCK=$CTR_SOCK
MOAT_CLUSTER_CNI=$CNI
MOAT_CLUSTER_BIN=$CBIN
ENV
cat "$DIR/env"
trap - EXIT
