#!/usr/bin/env bash
# Builds a pinned kube-apiserver and etcd from the Go module proxy into
# ~/.cache/moat/k8s/<K8S_VERSION>/bin (shared by every clone on the machine), reusing them when
# already built; copies the pinned sigs.k8s.io/network-policy-api CRDs from the Go module cache
# into ~/.cache/moat/k8s/crds/network-policy-api/<version>/{standard,experimental}.
# Usage: bash test/k8s/build.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=test/k8s/versions.env
. "$HERE/versions.env"

ROOT="${MOAT_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/k8s}"
CACHE="$ROOT/$K8S_VERSION"
BIN="$CACHE/bin"
WORK="$CACHE/work"
STAMP="$BIN/.stamp"
# The stamp ties the binaries to the exact wrapper module they came from (and not to the CRD
# versions, which need no rebuild).
WANT=$({ grep -E '^(K8S|ETCD)_VERSION=' "$HERE/versions.env"; cat "$HERE/wrapper/go.mod"; } | sha256sum | cut -d' ' -f1)

# The CRDs: `go mod download` fetches (and checks against go.sum's database) the module; only its
# config/crd YAML is kept. Keyed by module version, so a bump in versions.env fetches anew.
fetch_crds() { # fetch_crds <version>
  local v=$1 dst="$ROOT/crds/network-policy-api/$1" tmp dir
  if [[ "${FORCE:-}" != 1 && -f "$dst/.stamp" ]]; then return 0; fi
  command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
  tmp=$(mktemp -d)
  # Outside any module (a bare temp dir), so no go.mod is consulted or changed.
  dir=$(cd "$tmp" && GOFLAGS= go mod download -json "sigs.k8s.io/network-policy-api@$v" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  rmdir "$tmp"
  [[ -n "$dir" && -d "$dir/config/crd" ]] || { echo "build.sh: network-policy-api@$v has no config/crd" >&2; exit 1; }
  rm -rf "$dst.tmp"
  for ch in standard experimental; do
    mkdir -p "$dst.tmp/$ch"
    cp "$dir/config/crd/$ch"/policy.networking.k8s.io_*.yaml "$dst.tmp/$ch/"
  done
  chmod -R u+w "$dst.tmp"
  echo "$v" >"$dst.tmp/.stamp"
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
  echo "network-policy-api $v CRDs in $dst"
}
FORCE=$([[ "${1:-}" == "--force" ]] && echo 1 || true)
mkdir -p "$ROOT/crds/network-policy-api"
fetch_crds "$NETPOL_API_CNP_VERSION"
fetch_crds "$NETPOL_API_ANP_VERSION"

if [[ "${1:-}" != "--force" && -x "$BIN/kube-apiserver" && -x "$BIN/etcd" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "k8s test binaries up to date in $BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }

mkdir -p "$BIN" "$WORK"
cp "$HERE/wrapper/go.mod" "$WORK/go.mod"
if [[ -f "$HERE/wrapper/go.sum" ]]; then cp "$HERE/wrapper/go.sum" "$WORK/go.sum"; fi

# -mod=mod lets go resolve the wrapper's module graph and fill go.sum; GOPROXY
# is left as configured on the machine. -p 2: the machine has 2 cores and
# each compile of the big k8s packages takes ~1 GiB.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
JOBS="${MOAT_K8S_BUILD_JOBS:-2}"

ver=${K8S_VERSION#v}
major=${ver%%.*}
minor=${ver#*.}
minor=${minor%%.*}
# Same variables the Kubernetes release build stamps (hack/lib/version.sh), so
# /version reports the real release instead of v0.0.0-master.
pkg=k8s.io/component-base/version
cpkg=k8s.io/client-go/pkg/version
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
for p in $pkg $cpkg; do
  ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
done

TIME=()
if [[ -x /usr/bin/time ]]; then TIME=(/usr/bin/time -v); fi

build() { # build <output> <package>
  echo "== go build $2 -> $1 (-p $JOBS)"
  (cd "$WORK" && "${TIME[@]}" go build -p "$JOBS" -trimpath -ldflags "$ldflags" -o "$1.tmp" "$2")
  mv "$1.tmp" "$1"
}

start=$(date +%s)
build "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
# etcd: the server module's own main package, at the version k8s pins.
etcd_ldflags="-s -w"
(cd "$WORK" && "${TIME[@]}" go build -p "$JOBS" -trimpath -ldflags "$etcd_ldflags" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$BIN/etcd.tmp" "$BIN/etcd"
echo "$WANT" >"$STAMP"
echo "built in $(($(date +%s) - start))s:"
"$BIN/kube-apiserver" --version
# Not `| head -1`: with pipefail, etcd dying of SIGPIPE on its second line fails the build (exit 141).
"$BIN/etcd" --version | sed -n 1p
