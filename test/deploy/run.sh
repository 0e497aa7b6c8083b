#!/usr/bin/env bash
# Renders every way of deploying moat (kustomize overlays, the Helm chart, the flannel sidecar
# patch), lints the chart, validates every object against the Kubernetes OpenAPI schemas offline,
# and asserts the agent's security properties. Idempotent: tools and schemas are cached in
# $MOAT_CACHE (default ~/.cache/moat, shared by every clone on the machine) and reused. Prints "deploy: N passed, M failed"; exits 1 on failure.
#
# Offline schemas: kubeconform fetches its schemas from GitHub at run time, which CI cannot reach.
# Instead the swagger.json that ships in the k8s.io/kubernetes Go module (api/openapi-spec) comes
# through the Go module proxy, checked against go.sum's database like any module, and
# test/deploy/k8s-schemas.ts turns it into strict per-kind JSON schemas for kubeconform.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"

HELM_VERSION=v3.22.0             # helm.sh/helm/v3
KUBECONFORM_VERSION=v0.8.0       # github.com/yannh/kubeconform
KUSTOMIZE_VERSION=v5.5.0         # sigs.k8s.io/kustomize/kustomize/v5, only if there is no kubectl
K8S_VERSIONS=(1.30.14 1.37.2)    # the chart's kubeVersion floor, and the newest release
CACHE=${MOAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat}
BIN=$CACHE/bin
export GOBIN=$BIN GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"

PASSED=0
FAILED=0
FAILURES=()
OUT=$(mktemp -d "${TMPDIR:-/tmp}/moat-deploy.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

LAST_OK=true
pass() { PASSED=$((PASSED + 1)); LAST_OK=true; printf 'PASS %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); LAST_OK=false; FAILURES+=("$1"); printf 'FAIL %s\n' "$1"; }
# step NAME CMD...: runs CMD with its output in $OUT/log; shows that output only on failure.
step() {
  local name=$1
  shift
  if "$@" >"$OUT/log" 2>&1; then pass "$name"; else
    fail "$name"
    sed 's/^/    /' "$OUT/log"
  fi
}
# to FILE CMD...: CMD's standard output goes to FILE, which exists only if CMD succeeded and
# printed at least one object (so that nothing downstream validates an empty rendering).
to() {
  local file=$1
  shift
  rm -f "$file"
  "$@" >"$file.part" && grep -q '^kind:' "$file.part" && mv "$file.part" "$file"
}
# expect_fail NAME CMD...: CMD must fail (the check under test must be able to say no).
expect_fail() {
  local name=$1
  shift
  if "$@" >"$OUT/log" 2>&1; then fail "$name (it succeeded)"; else pass "$name"; fi
}

# A Go tool at a pinned version, rebuilt only when missing or at another version.
go_tool() {
  local bin=$1 pkg=$2 version=$3 have
  have=$(go version -m "$BIN/$bin" 2>/dev/null | awk '$1 == "mod" { print $3 }' || true)
  if [ "$have" != "$version" ]; then
    echo "installing $pkg@$version into $BIN"
    go install "$pkg@$version"
  fi
}

echo "== tools"
command -v go >/dev/null || { echo "FAIL go is not installed (needed for helm and kubeconform)"; exit 1; }
mkdir -p "$BIN"
step "install helm $HELM_VERSION" go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
step "install kubeconform $KUBECONFORM_VERSION" \
  go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
if command -v kubectl >/dev/null; then
  kustomize_build() { kubectl kustomize "$@"; }
else
  step "install kustomize $KUSTOMIZE_VERSION" \
    go_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
  kustomize_build() { "$BIN/kustomize" build "$@"; }
fi
HELM=$BIN/helm
KUBECONFORM=$BIN/kubeconform
[ -x "$HELM" ] && [ -x "$KUBECONFORM" ] || { echo "deploy: $PASSED passed, $FAILED failed"; exit 1; }

# The checkers are TypeScript: build them unless dist/ is already newer than their sources.
stale=$(find test/deploy -name '*.ts' -newer dist/test/deploy/check.js 2>/dev/null | head -1 || true)
if [ ! -f dist/test/deploy/check.js ] || [ -n "$stale" ]; then
  echo "building dist/ (tsc)"
  npx tsc -p . >/dev/null || true # emits even when some other file has type errors
fi
step "checker scripts are built" test -f dist/test/deploy/check.js -a -f dist/test/deploy/k8s-schemas.js

echo "== schemas"
schemas_for() {
  local v=$1 dir=$CACHE/k8s-schemas/v$1 json spec
  [ -f "$dir/.done" ] && return 0
  json=$(go mod download -json "k8s.io/kubernetes@v$v")
  spec=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/api/openapi-spec/swagger.json
  [ -f "$spec" ] || { echo "no swagger.json in k8s.io/kubernetes@v$v"; return 1; }
  rm -rf "$dir"
  node dist/test/deploy/k8s-schemas.js "$spec" "$dir"
  sha256sum "$spec" >"$dir/.done"
}
for v in "${K8S_VERSIONS[@]}"; do
  step "JSON schemas for Kubernetes v$v" schemas_for "$v"
done

echo "== render"
R=$OUT/render
mkdir -p "$R"
for overlay in plain kind flannel; do
  step "kustomize overlays/$overlay" to "$R/$overlay.yaml" kustomize_build "deploy/overlays/$overlay"
done

# The optional pieces, composed the way a user would: the iptables lock component on an overlay,
# and the sidecar patch on flannel's DaemonSet (a trimmed stand-in: the real one is not here).
mkdir -p "$OUT/xtables" "$OUT/sidecar"
# kustomize wants directories given relative to the kustomization.
cat >"$OUT/xtables/kustomization.yaml" <<EOF
resources: [$(realpath --relative-to="$OUT/xtables" deploy/overlays/plain)]
components: [$(realpath --relative-to="$OUT/xtables" deploy/components/xtables-lock)]
EOF
cat >"$OUT/sidecar/kustomization.yaml" <<EOF
resources: [$REPO/test/deploy/fixtures/kube-flannel-ds.yaml]
patches: [{ path: $REPO/deploy/overlays/flannel/sidecar-patch.yaml }]
EOF
step "kustomize plain + components/xtables-lock" \
  to "$R/xtables.yaml" kustomize_build --load-restrictor LoadRestrictionsNone "$OUT/xtables"
step "kustomize flannel DaemonSet + sidecar-patch.yaml" \
  to "$R/sidecar-kustomize.yaml" kustomize_build --load-restrictor LoadRestrictionsNone "$OUT/sidecar"
if command -v kubectl >/dev/null; then
  step "kubectl patch --type=strategic (the documented sidecar command)" \
    to "$R/sidecar-kubectl.yaml" kubectl patch --local -o yaml --type=strategic \
    -f test/deploy/fixtures/kube-flannel-ds.yaml --patch-file=deploy/overlays/flannel/sidecar-patch.yaml
fi

CHART=deploy/helm/moat
# A go-installed helm assumes Kubernetes v1.20 (release builds stamp the real one): always say which.
for v in "${K8S_VERSIONS[@]}"; do
  step "helm lint --strict (Kubernetes $v)" "$HELM" lint --strict --kube-version "$v" "$CHART"
done
KV=${K8S_VERSIONS[-1]}
step "helm template (defaults)" \
  to "$R/helm.yaml" "$HELM" template moat "$CHART" -n moat-system --kube-version "$KV"
step "helm template (iptables lock, remove on exit, extra args, other release name)" \
  to "$R/helm-options.yaml" "$HELM" template edge "$CHART" -n net --kube-version "$KV" \
  --set xtablesLock.enabled=true --set onExit=remove --set logLevel=debug --set table=moat_edge \
  --set image.tag=1.2.3 --set-json 'extraArgs=["--kubeconfig=/etc/moat/kubeconfig"]'
expect_fail "helm rejects onExit=sometimes (values.schema.json)" \
  "$HELM" template moat "$CHART" --kube-version "$KV" --set onExit=sometimes
expect_fail "helm rejects metrics.port=0 (values.schema.json)" \
  "$HELM" template moat "$CHART" --kube-version "$KV" --set metrics.port=0
expect_fail "helm refuses Kubernetes 1.20 (Chart.yaml kubeVersion)" \
  "$HELM" template moat "$CHART" --kube-version 1.20.0

xtables_only_where_asked() {
  local f
  for f in xtables helm-options; do
    grep -qF 'mountPath: /run/xtables.lock' "$R/$f.yaml" || { echo "$f: no /run/xtables.lock mount"; return 1; }
  done
  for f in plain kind helm; do
    ! grep -qF xtables "$R/$f.yaml" || { echo "$f: mentions xtables"; return 1; }
  done
}
values_reach_args() {
  local a
  for a in --on-exit=remove --log-level=debug --table=moat_edge --kubeconfig=/etc/moat/kubeconfig moat:1.2.3; do
    grep -qF -- "$a" "$R/helm-options.yaml" || { echo "helm-options.yaml: missing $a"; return 1; }
  done
}
step "the xtables lock is mounted only where asked" xtables_only_where_asked
step "helm values reach the agent's arguments" values_reach_args

echo "== validate (kubeconform -strict, offline schemas)"
RENDERS=("$R"/*.yaml)
validate() { [ -s "$2" ] && "$KUBECONFORM" -strict -summary -schema-location "$1" "$2"; }
for v in "${K8S_VERSIONS[@]}"; do
  loc="$CACHE/k8s-schemas/v$v/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json"
  for f in "${RENDERS[@]}"; do
    step "$(basename "$f") is valid for Kubernetes $v" validate "$loc" "$f"
  done
  # The validator must be able to say no: a typo'd field and a wrong type.
  sed 's/hostNetwork: true/hostNetwrk: true/' "$R/plain.yaml" >"$OUT/bad-field.yaml"
  expect_fail "kubeconform rejects an unknown field (Kubernetes $v)" \
    "$KUBECONFORM" -strict -schema-location "$loc" "$OUT/bad-field.yaml"
  sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: "yes"/' "$R/plain.yaml" >"$OUT/bad-type.yaml"
  expect_fail "kubeconform rejects a wrong type (Kubernetes $v)" \
    "$KUBECONFORM" -strict -schema-location "$loc" "$OUT/bad-type.yaml"
done

echo "== properties"
sidecar_args=("sidecar:flannel-sidecar-kustomize=$R/sidecar-kustomize.yaml")
[ -f "$R/sidecar-kubectl.yaml" ] && sidecar_args+=("sidecar:flannel-sidecar-kubectl=$R/sidecar-kubectl.yaml")
step "security and shape properties of every rendering" node dist/test/deploy/check.js \
  "agent:plain=$R/plain.yaml" "agent:kind=$R/kind.yaml" "agent:xtables=$R/xtables.yaml" \
  "agent:helm=$R/helm.yaml" "agent:helm-options=$R/helm-options.yaml" "rbac:flannel=$R/flannel.yaml" \
  "${sidecar_args[@]}" \
  --same plain,helm --same-container plain,flannel-sidecar-kustomize
$LAST_OK && sed 's/^/    /' "$OUT/log"
step "checker unit tests (each property can fail)" node --test dist/test/deploy/

echo "== Dockerfile"
dockerfile_sources() {
  # Every COPY source from the build context exists and is not excluded by .dockerignore.
  local src ok=0
  for src in $(awk '/^COPY / && !/--from=/ { for (i = 2; i < NF; i++) print $i }' Dockerfile); do
    [ -e "$src" ] || { echo "COPY $src: no such file"; ok=1; }
    # Excluded when it or a parent directory is listed and it is not re-included with "!".
    local p=$src excluded=0
    while :; do
      grep -qxF "$p" .dockerignore && excluded=1
      [ "$p" = "${p%/*}" ] && break
      p=${p%/*}
    done
    grep -qxF "!$src" .dockerignore && excluded=0
    [ $excluded = 1 ] && { echo "COPY $src: excluded by .dockerignore"; ok=1; }
  done
  # deploy/image/build.sh builds the same image without Docker: same Debian packages, same extras.
  local want have
  want=$(sed -n 's/.*apt-get install -y --no-install-recommends \(.*\) \\$/\1/p' Dockerfile | tr ' ' '\n' | sort | tr '\n' ' ')
  have=$(sed -n 's/^PACKAGES=(\(.*\)).*/\1/p' deploy/image/build.sh | tr ' ' '\n' | sort | tr '\n' ' ')
  [ -n "$want" ] && [ "$want" = "$have" ] || { echo "packages: Dockerfile [$want] vs deploy/image/build.sh [$have]"; ok=1; }
  grep -q '^COPY deploy/image/netpol /bin/netpol$' Dockerfile || { echo "Dockerfile lacks /bin/netpol"; ok=1; }
  grep -q 'install -m 0755 deploy/image/netpol "$ROOT/bin/netpol"' deploy/image/build.sh || { echo "build.sh lacks /bin/netpol"; ok=1; }
  grep -q '^ENTRYPOINT \["node", "dist/src/cli/bin.js"\]' Dockerfile || { echo "ENTRYPOINT"; ok=1; }
  [ -f dist/src/cli/bin.js ] || { echo "tsc does not emit dist/src/cli/bin.js"; ok=1; }
  return $ok
}
step "Dockerfile COPY sources and entrypoint" dockerfile_sources

echo
if [ "$FAILED" -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${FAILURES[@]}"
fi
echo "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
