#!/usr/bin/env bash
# Builds the test cluster's node binaries (kubelet, kube-proxy, kube-controller-manager,
# kube-scheduler), the upstream e2e suite (e2e.test) and agnhost from the Go module proxy into
# ~/.cache/moat/cluster/<K8S_VERSION>/bin, stamped: reused when already built from the same pins.
# The control plane's kube-apiserver and etcd come from test/k8s/build.sh.
# Usage: bash test/cluster/build.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/cluster/versions.env
. "$HERE/versions.env"

CACHE="${MOAT_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/cluster}/$K8S_VERSION"
BIN="$CACHE/bin"
WORK="$CACHE/work"
STAMP="$BIN/.stamp"
WANT=$(cat "$HERE/versions.env" "$HERE/wrapper/go.mod" "$HERE/build.sh" | sha256sum | cut -d' ' -f1)
TOOLS=(kubelet kube-proxy kube-controller-manager kube-scheduler e2e.test agnhost)

have_all() {
  for t in "${TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
}
if [[ "${1:-}" != "--force" ]] && have_all && [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "cluster binaries up to date in $BIN"
  exit 0
fi

command -v go >/dev/null || { echo "cluster/build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$BIN" "$WORK"
cp "$HERE/wrapper/go.mod" "$WORK/go.mod"
[[ -f "$HERE/wrapper/go.sum" ]] && cp "$HERE/wrapper/go.sum" "$WORK/go.sum"
# -mod=mod: let go resolve the wrapper's graph and fill go.sum. -p 2: 2 cores, ~1 GiB per compile.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
JOBS="${MOAT_K8S_BUILD_JOBS:-2}"

ver=${K8S_VERSION#v}
major=${ver%%.*}
minor=${ver#*.}
minor=${minor%%.*}
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
done

build() { # build <output> <package>
  [[ -x "$BIN/$1" && "${1:-}" != "--force" && -f "$BIN/.$1.stamp" && "$(cat "$BIN/.$1.stamp")" == "$WANT" ]] && {
    echo "== $1 up to date"
    return 0
  }
  echo "== go build $2 -> $1 (-p $JOBS)"
  local t0
  t0=$(date +%s)
  (cd "$WORK" && go build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/$1.tmp" "$2")
  mv "$BIN/$1.tmp" "$BIN/$1"
  echo "$WANT" >"$BIN/.$1.stamp"
  echo "   $1 built in $(($(date +%s) - t0))s"
}

start=$(date +%s)
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build agnhost k8s.io/kubernetes/test/images/agnhost
# The e2e suite is a test binary: go test -c.
if [[ -x "$BIN/e2e.test" && -f "$BIN/.e2e.test.stamp" && "$(cat "$BIN/.e2e.test.stamp")" == "$WANT" ]]; then
  echo "== e2e.test up to date"
else
  echo "== go test -c k8s.io/kubernetes/test/e2e -> e2e.test (-p $JOBS)"
  t0=$(date +%s)
  (cd "$WORK" && go test -c -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$BIN/e2e.test.tmp" k8s.io/kubernetes/test/e2e)
  mv "$BIN/e2e.test.tmp" "$BIN/e2e.test"
  echo "$WANT" >"$BIN/.e2e.test.stamp"
  echo "   e2e.test built in $(($(date +%s) - t0))s"
fi
echo "$WANT" >"$STAMP"
echo "built in $(($(date +%s) - start))s into $BIN"
"$BIN/kubelet" --version
