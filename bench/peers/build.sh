#!/usr/bin/env bash
# Builds the pinned peer agents (bench/peers/versions.env) from the Go module proxy into
# ~/.cache/moat/peers/<name>/<version>/bin (shared by every clone on the machine), reusing a build
# whose stamp matches. Test-time only: nothing of the product depends on them.
# Usage: bash bench/peers/build.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/peers/versions.env
. "$HERE/versions.env"
ROOT="${MOAT_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/peers}"
FORCE=$([[ "${1:-}" == "--force" ]] && echo 1 || true)

build() { # build <name> <module> <package path in module> <version>
  local name=$1 mod=$2 pkg=$3 v=$4
  local bin="$ROOT/$name/$v/bin" want="$mod/$pkg@$v $(go env GOVERSION 2>/dev/null || echo go?)"
  if [[ "$FORCE" != 1 && -x "$bin/$name" && -f "$bin/.stamp" && "$(cat "$bin/.stamp")" == "$want" ]]; then
    echo "$name $v up to date in $bin"
    return 0
  fi
  command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  # go install PKG@VERSION builds the module as released (its own go.mod and go.sum), outside any
  # module of ours; -p 2: the machine has 2 cores.
  (cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS="-p=${MOAT_PEERS_BUILD_JOBS:-2}" \
    go install -ldflags="-s -w" "$mod/$pkg@$v")
  mkdir -p "$bin"
  mv "$tmp/bin/$(basename "$pkg")" "$bin/$name"
  rm -rf "$tmp"
  echo "$want" >"$bin/.stamp"
  echo "$name $v built in $bin"
}

build kube-router github.com/cloudnativelabs/kube-router/v2 cmd/kube-router "$KUBE_ROUTER_VERSION"
# Its main package is cmd/ (the binary would be called "cmd").
build kube-network-policies sigs.k8s.io/kube-network-policies cmd "$KUBE_NETWORK_POLICIES_VERSION"
