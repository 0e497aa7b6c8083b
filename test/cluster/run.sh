#!/usr/bin/env bash
# moat on a real kubelet: for each deployment a fresh one-node cluster (up.sh), the images imported
# into its containerd, moat deployed the way docs/install.md tells users, then the upstream
# `[sig-network] Netpol` e2e specs and the checks of checks.test.ts, then down.sh.
#
#   bash test/cluster/run.sh [DEPLOYMENT...]
#
# Deployments (default: all, in this order):
#   control          the bridge CNI without moat: a few specs must FAIL (the harness can fail)
#   kind             the bridge CNI (kind's shape, br_netfilter), moat from deploy/overlays/kind
#   flannel          real flannel (its kube-flannel.yml), moat added by deploy/overlays/flannel
#   helm             the bridge CNI, moat's Helm chart with `helm install`
#   flannel-chart    flannel's own chart, netpol.enabled=true, netpol.image = moat's image
# Env: MOAT_E2E_FOCUS     spec regex (default Netpol); with it, every deployment runs only those
#      MOAT_E2E_PROCS     parallel ginkgo processes (default 4)
#      MOAT_E2E_FULL      deployments that run every Netpol spec (default "kind flannel"); the
#                         others run MOAT_E2E_QUICK (a handful, to keep CI within its budget)
# Results: one line per deployment (passed/failed/skipped, seconds), in $OUT/summary.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
# shellcheck source=test/cluster/versions.env
. "$HERE/versions.env"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/moat"
CBIN="$CACHE_ROOT/cluster/$K8S_VERSION/bin"
IMAGES="$CACHE_ROOT/cluster/$K8S_VERSION/images"
DIR=/run/moat-cluster
OUT=${MOAT_CLUSTER_OUT:-$REPO/build/cluster}
PROCS=${MOAT_E2E_PROCS:-4}
FULL=${MOAT_E2E_FULL:-kind flannel}
QUICK=${MOAT_E2E_QUICK:-"Netpol.*(should support a 'default-deny-ingress' policy|should allow ingress access from namespace on one named port|should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector|should support allow-all policy|should work with Ingress, Egress specified together)"}
FOCUS=${MOAT_E2E_FOCUS:-}
DEPLOYMENTS=("$@")
[ ${#DEPLOYMENTS[@]} -gt 0 ] || DEPLOYMENTS=(control kind flannel helm flannel-chart)
FLANNEL_DIR=$(go env GOMODCACHE)/github.com/flannel-io/flannel@$FLANNEL_VERSION
rm -rf "$OUT" && mkdir -p "$OUT"
: >"$OUT/summary"

if [ "$(id -u)" != 0 ]; then
  echo "cluster: skipped: the test cluster needs root (network namespaces, containerd, kubelet)"
  exit 0
fi
t_build=$(date +%s)
bash test/k8s/build.sh
bash "$HERE/build.sh"
bash deploy/image/build.sh "$REPO/build/image" >/dev/null
bash "$HERE/images.sh" >/dev/null
[ -f "$FLANNEL_DIR/Documentation/kube-flannel.yml" ] || (cd "$REPO" && go mod download "github.com/flannel-io/flannel@$FLANNEL_VERSION")
echo "cluster: builds ready in $(($(date +%s) - t_build))s"
HELM=$CACHE_ROOT/bin/helm
[ -x "$HELM" ] || bash test/deploy/run.sh >/dev/null

K=(nsenter --net=/run/netns/moat-cluster kubectl --kubeconfig "$DIR/admin.kubeconfig")
kc() { "${K[@]}" "$@"; }

import_images() {
  local c=(ctr --address "$DIR/run/containerd.sock" -n k8s.io images import)
  "${c[@]}" --base-name registry.k8s.io/pause "$IMAGES/pause.tar" >/dev/null
  "${c[@]}" --base-name registry.k8s.io/e2e-test-images/agnhost "$IMAGES/agnhost.tar" >/dev/null
  "${c[@]}" --base-name ghcr.io/flannel-io/flannel "$IMAGES/flannel.tar" >/dev/null
  "${c[@]}" --base-name ghcr.io/flannel-io/flannel-cni-plugin "$IMAGES/flannel-cni-plugin.tar" >/dev/null
  "${c[@]}" --base-name docker.io/library/moat "$REPO/build/image/moat-0.1.0.oci.tar" >/dev/null
}

# flannel's manifests as they come, with only the host paths moved under DIR (the test cluster's
# CNI directories, flannel's run dir) and the conflist at CNI 0.4.0 (the flannel CNI plugin built
# here, from containernetworking/plugins v0.9.1, speaks up to 0.4.0).
flannel_cni_conf() {
  cat <<JSON
{
  "name": "cbr0",
  "cniVersion": "0.4.0",
  "plugins": [
    {"type": "flannel", "subnetFile": "$DIR/flannel/subnet.env", "dataDir": "$DIR/cni/flannel",
     "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

deploy_flannel() {
  mkdir -p "$DIR/flannel"
  node -e '
    const fs = require("node:fs");
    const [src, dir, conf] = process.argv.slice(1);
    let y = fs.readFileSync(src, "utf8");
    y = y.replace(/path: \/opt\/cni\/bin/g, `path: ${dir}/cni/bin`)
      .replace(/path: \/etc\/cni\/net.d/g, `path: ${dir}/cni/net.d`)
      .replace(/path: \/run\/flannel/g, `path: ${dir}/flannel`);
    const i = y.indexOf("  cni-conf.json: |"), j = y.indexOf("  net-conf.json: |");
    y = y.slice(0, i) + "  cni-conf.json: |\n" + conf.split("\n").map((l) => "    " + l).join("\n") + "\n" + y.slice(j);
    process.stdout.write(y);
  ' "$FLANNEL_DIR/Documentation/kube-flannel.yml" "$DIR" "$(flannel_cni_conf)" >"$OUT/kube-flannel.yml"
  kc apply -f "$OUT/kube-flannel.yml" >/dev/null
  kc -n kube-flannel rollout status ds/kube-flannel-ds --timeout=180s >/dev/null
}

deploy() {
  case $1 in
  control) ;;
  kind)
    kc apply -k deploy/overlays/kind >/dev/null
    kc -n kube-system rollout status ds/moat --timeout=180s >/dev/null
    MOAT_NS=kube-system MOAT_DS=moat STANDALONE=1
    ;;
  helm)
    kc create namespace moat-system >/dev/null
    nsenter --net=/run/netns/moat-cluster "$HELM" --kubeconfig "$DIR/admin.kubeconfig" install moat deploy/helm/moat \
      -n moat-system --set image.repository=moat --set image.tag=0.1.0 --set image.pullPolicy=Never --wait --timeout 180s >/dev/null
    MOAT_NS=moat-system MOAT_DS=moat STANDALONE=1
    ;;
  flannel)
    deploy_flannel
    # As docs/install.md: moat's RBAC for flannel's ServiceAccount, then the sidecar patch.
    kc apply -k deploy/overlays/flannel >/dev/null
    kc -n kube-flannel patch daemonset kube-flannel-ds --type=strategic \
      --patch-file=deploy/overlays/flannel/sidecar-patch.yaml >/dev/null
    kc -n kube-flannel rollout status ds/kube-flannel-ds --timeout=180s >/dev/null
    MOAT_NS=kube-flannel MOAT_DS=kube-flannel-ds STANDALONE=0
    ;;
  flannel-chart)
    mkdir -p "$DIR/flannel"
    flannel_cni_conf >"$OUT/flannel-cni-conf.json"
    # The chart fixes flannel's run dir at /run/flannel: moved under DIR, as in kube-flannel.yml.
    cat >"$OUT/post-render" <<SH
#!/bin/sh
exec sed 's|path: /run/flannel\$|path: $DIR/flannel|'
SH
    chmod +x "$OUT/post-render"
    nsenter --net=/run/netns/moat-cluster "$HELM" --kubeconfig "$DIR/admin.kubeconfig" install flannel \
      "$FLANNEL_DIR/chart/kube-flannel" -n kube-flannel --create-namespace --post-renderer "$OUT/post-render" \
      --set netpol.enabled=true --set netpol.image.repository=docker.io/library/moat --set netpol.image.tag=0.1.0 \
      --set flannel.cniBinDir="$DIR/cni/bin" --set flannel.cniConfDir="$DIR/cni/net.d" \
      --set-file flannel.cniConf="$OUT/flannel-cni-conf.json" --wait --timeout 180s >/dev/null
    MOAT_NS=kube-flannel MOAT_DS=kube-flannel-ds STANDALONE=0
    ;;
  esac
}

e2e() { # e2e NAME FOCUS: the upstream specs, in parallel; junit in $OUT/NAME.xml
  local name=$1 focus=$2 skip='SCTP'
  [ -e /proc/net/sctp ] && skip='^$'
  nsenter --net=/run/netns/moat-cluster "$CBIN/ginkgo" -p --procs="$PROCS" --timeout=2h --no-color --silence-skips \
    --focus="$focus" --skip="$skip" --junit-report="$name.xml" --output-dir="$OUT" \
    "$CBIN/e2e.test" -- --kubeconfig="$DIR/admin.kubeconfig" --provider=skeleton >"$OUT/$name.e2e.log" 2>&1
}

status=0
for d in "${DEPLOYMENTS[@]}"; do
  t0=$(date +%s)
  echo "== $d"
  cni=bridge
  case $d in flannel | flannel-chart) cni=none ;; esac
  bash "$HERE/down.sh" >/dev/null
  MOAT_CLUSTER_CNI=$cni bash "$HERE/up.sh" "$DIR" >/dev/null
  import_images
  MOAT_NS='' MOAT_DS='' STANDALONE=1
  deploy "$d"
  if [ "$d" = control ]; then
    # No moat: policies are stored and nothing enforces them; these specs must fail.
    if e2e control "Netpol.*(should support a 'default-deny-ingress' policy|should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector)"; then
      echo "cluster: control: the specs passed without moat: the harness cannot fail" | tee -a "$OUT/summary"
      status=1
    fi
    counts=$(node dist/test/cluster/junit.js "$OUT/control.xml")
    echo "control (no moat, must fail): $counts, $(($(date +%s) - t0))s" | tee -a "$OUT/summary"
    case $counts in *failed=0*) status=1 ;; esac
    continue
  fi
  checks=ok
  MOAT_CLUSTER_NETNS=moat-cluster KUBECONFIG="$DIR/admin.kubeconfig" MOAT_CLUSTER_MOAT_NS=$MOAT_NS \
    MOAT_CLUSTER_MOAT_DS=$MOAT_DS MOAT_CLUSTER_MOAT_STANDALONE=$STANDALONE \
    node --test --test-reporter=spec dist/test/cluster/checks.test.js >"$OUT/$d.checks.log" 2>&1 || { checks=FAILED; status=1; }
  focus=${FOCUS:-Netpol}
  if [ -z "$FOCUS" ] && [[ " $FULL " != *" $d "* ]]; then focus=$QUICK; fi
  e2e "$d" "$focus" || status=1
  counts=$(node dist/test/cluster/junit.js "$OUT/$d.xml" Netpol --list-failed)
  echo "$d: ${counts%%$'\n'*}, checks $checks, $(($(date +%s) - t0))s" | tee -a "$OUT/summary"
  grep '^FAILED' <<<"$counts" || true
  case $counts in *failed=0*) ;; *) status=1 ;; esac
done
bash "$HERE/down.sh" >/dev/null
echo "== summary (logs and JUnit reports in $OUT)"
cat "$OUT/summary"
exit $status
