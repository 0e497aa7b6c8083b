#!/usr/bin/env bash
# (Re)starts the kube-apiserver of a cluster made by up.sh, with the same
# arguments and port, and waits for /readyz.
# Usage: bash test/k8s/restart-apiserver.sh [--start] DIR
set -euo pipefail
start_only=false
if [[ "${1:-}" == "--start" ]]; then start_only=true; shift; fi
DIR="${1:?usage: restart-apiserver.sh [--start] DIR}"
# shellcheck disable=SC1091
. "$DIR/env"

if ! $start_only && [[ -f "$DIR/apiserver.pid" ]]; then
  pid=$(cat "$DIR/apiserver.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
fi

mapfile -t args <"$DIR/apiserver.args"
"$MOAT_K8S_BIN/kube-apiserver" "${args[@]}" >>"$DIR/apiserver.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$DIR/apiserver.pid"

# /readyz covers etcd, the RBAC bootstrap roles and the other post-start
# hooks; authenticated as admin so it does not depend on RBAC being ready.
for _ in $(seq 1 600); do
  if curl -fsS --cacert "$MOAT_K8S_CA" --cert "$MOAT_K8S_ADMIN_CERT" --key "$MOAT_K8S_ADMIN_KEY" \
    "$MOAT_K8S_SERVER/readyz" >/dev/null 2>&1; then
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "restart-apiserver.sh: kube-apiserver exited; last log lines:" >&2
    tail -30 "$DIR/apiserver.log" >&2
    exit 1
  fi
  sleep 0.2
done
echo "restart-apiserver.sh: kube-apiserver not ready after 120s; see $DIR/apiserver.log" >&2
exit 1
