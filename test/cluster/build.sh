#!/usr/bin/env bash
# Builds the test cluster's binaries from the Go module proxy into
# ~/.cache/moat/cluster/<K8S_VERSION>/bin, each stamped with the pins it came from and rebuilt only
# when they change:
#   kubelet, kube-proxy, kube-controller-manager, kube-scheduler   k8s.io/kubernetes (wrapper/go.mod)
#   e2e.test (the upstream e2e suite, go test -c), agnhost (static)  the same module
#   flanneld, install-conf                                          github.com/flannel-io/flannel
#   flannel (the CNI plugin)                                        FLANNEL_CNI_PLUGIN_MODULE
#   ginkgo (the CLI that runs e2e.test in parallel)                  GINKGO_VERSION
# The control plane's kube-apiserver and etcd come from test/k8s/build.sh.
# Usage: bash test/cluster/build.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=test/cluster/versions.env
. "$HERE/versions.env"
FORCE=false
[[ "${1:-}" == --force ]] && FORCE=true

CACHE="${MOAT_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/cluster}/$K8S_VERSION"
BIN="$CACHE/bin"
WORK="$CACHE/work"
command -v go >/dev/null || { echo "cluster/build.sh: go is not installed" >&2; exit 1; }
mkdir -p "$BIN" "$WORK"
cp "$HERE/wrapper/go.mod" "$WORK/go.mod"
[[ -f "$HERE/wrapper/go.sum" ]] && cp "$HERE/wrapper/go.sum" "$WORK/go.sum"
# -p 2: the machine has 2 cores, and each compile of the big k8s packages takes ~1 GiB.
JOBS="${MOAT_K8S_BUILD_JOBS:-2}"
K8S_PINS=$(cat "$HERE/wrapper/go.mod" | sha256sum | cut -c1-16)

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

# fresh TOOL KEY: whether BIN/TOOL exists and was built from KEY.
fresh() { ! $FORCE && [[ -x "$BIN/$1" && -f "$BIN/.$1.stamp" && "$(cat "$BIN/.$1.stamp")" == "$2" ]]; }
stamp() { echo "$2" >"$BIN/.$1.stamp"; }
timed() { # timed TOOL KEY CMD...: runs CMD (which writes BIN/TOOL.tmp), then stamps TOOL
  local tool=$1 key=$2 t0
  shift 2
  if fresh "$tool" "$key"; then
    echo "== $tool up to date"
    return 0
  fi
  echo "== $tool: $*"
  t0=$(date +%s)
  "$@"
  mv "$BIN/$tool.tmp" "$BIN/$tool"
  stamp "$tool" "$key"
  echo "   $tool built in $(($(date +%s) - t0))s"
}
k8s_build() { # k8s_build TOOL PACKAGE [ENV...]
  local tool=$1 pkg=$2
  shift 2
  timed "$tool" "$K8S_VERSION $K8S_PINS $pkg $*" \
    env GOFLAGS=-mod=mod "$@" sh -c "cd '$WORK' && go build -p $JOBS -trimpath -ldflags '$ldflags' -o '$BIN/$tool.tmp' '$pkg'"
}
go_install() { # go_install TOOL MODULE/PATH@VERSION: go install into a scratch GOBIN, renamed
  local tool=$1 spec=$2 gobin
  gobin=$(mktemp -d "$WORK/gobin.XXXXXX")
  timed "$tool" "$spec CGO_ENABLED=0" sh -c \
    "GOBIN='$gobin' CGO_ENABLED=0 go install -trimpath -ldflags '-s -w' '$spec' && mv '$gobin'/* '$BIN/$tool.tmp'"
  rm -rf "$gobin"
}

start=$(date +%s)
k8s_build kubelet k8s.io/kubernetes/cmd/kubelet
k8s_build kube-proxy k8s.io/kubernetes/cmd/kube-proxy
k8s_build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
k8s_build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
# agnhost runs alone in its image: static, as upstream builds it.
k8s_build agnhost k8s.io/kubernetes/test/images/agnhost CGO_ENABLED=0
# The e2e suite is a test binary.
timed e2e.test "$K8S_VERSION $K8S_PINS e2e" \
  sh -c "cd '$WORK' && GOFLAGS=-mod=mod go test -c -p $JOBS -trimpath -ldflags '$ldflags' -o '$BIN/e2e.test.tmp' k8s.io/kubernetes/test/e2e"
# flanneld and install-conf through flannel-wrapper (a dependency the proxy lacks is stubbed there).
FWORK="$CACHE/flannel-work"
rm -rf "$FWORK"
mkdir -p "$FWORK"
cp -r "$HERE/flannel-wrapper/." "$FWORK/"
FPINS=$(cat "$HERE/flannel-wrapper/go.mod" "$HERE/flannel-wrapper/vpc-stub/v20170312/vpc.go" | sha256sum | cut -c1-16)
fl_ldflags="-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION"
# The udp backend is cgo: flanneld links glibc (its image is Debian).
timed flanneld "$FLANNEL_VERSION $FPINS flanneld" \
  sh -c "cd '$FWORK' && GOFLAGS=-mod=mod go build -trimpath -ldflags '$fl_ldflags' -o '$BIN/flanneld.tmp' github.com/flannel-io/flannel"
timed install-conf "$FLANNEL_VERSION $FPINS install-conf" \
  sh -c "cd '$FWORK' && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$BIN/install-conf.tmp' github.com/flannel-io/flannel/cmd/install_conf"
go_install flannel "${FLANNEL_CNI_PLUGIN_MODULE%@*}/plugins/meta/flannel@${FLANNEL_CNI_PLUGIN_MODULE#*@}"
# The ginkgo CLI runs e2e.test's specs in parallel processes (the version e2e.test is built with).
go_install ginkgo "github.com/onsi/ginkgo/v2/ginkgo@$GINKGO_VERSION"
echo "built in $(($(date +%s) - start))s into $BIN"
