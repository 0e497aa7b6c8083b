#!/usr/bin/env bash
# Starts a throw-away etcd + kube-apiserver on 127.0.0.1 (random free ports),
# writes an admin kubeconfig and prints the environment as KEY=VALUE lines
# (also written to $DIR/env). Stop with: bash test/k8s/down.sh "$DIR".
#
# Usage: bash test/k8s/up.sh [DIR]      (DIR defaults to a new mktemp dir)
# Env:   MOAT_K8S_BIN           directory holding kube-apiserver and etcd
#        MOAT_K8S_WATCH_CACHE   "false" to serve watches straight from etcd
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=test/k8s/versions.env
. "$HERE/versions.env"
BIN="${MOAT_K8S_BIN:-${MOAT_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/k8s}/$K8S_VERSION/bin}"

for b in kube-apiserver etcd; do
  if [[ ! -x "$BIN/$b" ]]; then
    echo "up.sh: $BIN/$b is missing: build it with 'bash test/k8s/build.sh'" >&2
    exit 2
  fi
done
command -v openssl >/dev/null || { echo "up.sh: openssl is not installed" >&2; exit 2; }
command -v curl >/dev/null || { echo "up.sh: curl is not installed" >&2; exit 2; }

DIR="${1:-$(mktemp -d "${TMPDIR:-/tmp}/moat-k8s.XXXXXX")}"
mkdir -p "$DIR/pki" "$DIR/etcd"
DIR=$(cd "$DIR" && pwd)
# If anything below fails, do not leave half a cluster running.
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "up.sh: failed, logs in $DIR" >&2
    bash "$HERE/down.sh" --keep "$DIR" >/dev/null 2>&1 || true
  fi
}
trap on_exit EXIT

# Three distinct free loopback ports, held open together so they differ.
read -r ETCD_PORT PEER_PORT API_PORT < <(node -e '
  const net = require("node:net");
  const ss = [0, 1, 2].map(() => net.createServer());
  Promise.all(ss.map((s) => new Promise((r) => s.listen(0, "127.0.0.1", r)))).then(() => {
    console.log(ss.map((s) => s.address().port).join(" "));
    ss.forEach((s) => s.close());
  });')

# --- PKI (openssl): CA, apiserver serving cert, admin client cert, SA keys.
P="$DIR/pki"
ossl() { openssl "$@" >>"$DIR/openssl.log" 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=moat-test-ca" \
  -keyout "$P/ca.key" -out "$P/ca.crt"
cat >"$P/serving.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
EXT
ossl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$P/apiserver.key" -out "$P/apiserver.csr"
ossl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
  -days 2 -extfile "$P/serving.ext" -out "$P/apiserver.crt"
cat >"$P/client.ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
# O=system:masters: the group the RBAC bootstrap binds to cluster-admin.
ossl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=moat-admin" -keyout "$P/admin.key" -out "$P/admin.csr"
ossl x509 -req -in "$P/admin.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
  -days 2 -extfile "$P/client.ext" -out "$P/admin.crt"
ossl genrsa -out "$P/sa.key" 2048
ossl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"
# A bearer token for an unprivileged user, for RBAC tests (no bindings exist
# until a test creates them).
USER_TOKEN=$(openssl rand -hex 24)
echo "$USER_TOKEN,moat-user,moat-user-uid,moat-users" >"$P/tokens.csv"
chmod 600 "$P"/*.key "$P/tokens.csv"

# --- etcd
"$BIN/etcd" \
  --name moat \
  --data-dir "$DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "moat=http://127.0.0.1:$PEER_PORT" \
  --initial-cluster-state new \
  --unsafe-no-fsync \
  --log-level warn \
  >"$DIR/etcd.log" 2>&1 </dev/null &
echo $! >"$DIR/etcd.pid"

ETCD_URL="http://127.0.0.1:$ETCD_PORT"
for _ in $(seq 1 100); do
  if curl -fsS "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'; then break; fi
  kill -0 "$(cat "$DIR/etcd.pid")" 2>/dev/null || { echo "up.sh: etcd exited:" >&2; tail -20 "$DIR/etcd.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$ETCD_URL/health" | grep -q '"health":"true"' || { echo "up.sh: etcd not healthy" >&2; exit 1; }

# --- kube-apiserver: arguments are kept in a file so restart-apiserver.sh
# can start it again identically.
WATCH_CACHE="${MOAT_K8S_WATCH_CACHE:-true}"
cat >"$DIR/apiserver.args" <<ARGS
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=$API_PORT
--tls-cert-file=$P/apiserver.crt
--tls-private-key-file=$P/apiserver.key
--client-ca-file=$P/ca.crt
--token-auth-file=$P/tokens.csv
--etcd-servers=$ETCD_URL
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=$P/sa.pub
--service-account-signing-key-file=$P/sa.key
--service-cluster-ip-range=10.96.0.0/16
--authorization-mode=Node,RBAC
--disable-admission-plugins=ServiceAccount
--allow-privileged=true
--watch-cache=$WATCH_CACHE
--profiling=false
--v=1
ARGS
cat >"$DIR/env" <<ENV
MOAT_K8S_DIR=$DIR
KUBECONFIG=$DIR/kubeconfig
MOAT_K8S_SERVER=https://127.0.0.1:$API_PORT
MOAT_K8S_ETCD=$ETCD_URL
MOAT_K8S_CA=$P/ca.crt
MOAT_K8S_ADMIN_CERT=$P/admin.crt
MOAT_K8S_ADMIN_KEY=$P/admin.key
MOAT_K8S_USER_TOKEN=$USER_TOKEN
MOAT_K8S_VERSION=$K8S_VERSION
MOAT_ETCD_VERSION=$ETCD_VERSION
MOAT_K8S_BIN=$BIN
ENV

cat >"$DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: moat-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $P/ca.crt
users:
- name: moat-admin
  user:
    client-certificate: $P/admin.crt
    client-key: $P/admin.key
- name: moat-user
  user:
    token: $USER_TOKEN
contexts:
- name: moat-admin
  context: {cluster: moat-test, user: moat-admin}
- name: moat-user
  context: {cluster: moat-test, user: moat-user}
current-context: moat-admin
KC
chmod 600 "$DIR/kubeconfig"

bash "$HERE/restart-apiserver.sh" --start "$DIR"

echo "ETCD_PID=$(cat "$DIR/etcd.pid")" >>"$DIR/env"
cat "$DIR/env"
echo "APISERVER_PID=$(cat "$DIR/apiserver.pid")"
