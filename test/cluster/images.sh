#!/usr/bin/env bash
# The images the test cluster needs and cannot pull (no registry is reachable), as OCI tarballs
# under ~/.cache/moat/cluster/<K8S_VERSION>/images, rebuilt when their binaries change:
#   registry.k8s.io/pause:3.10                       test/cluster/pause.c, static
#   registry.k8s.io/e2e-test-images/agnhost:2.53     agnhost from the k8s.io/kubernetes module
#   ghcr.io/flannel-io/flannel:FLANNEL_VERSION       flanneld and install-conf, on Debian (iptables)
#   ghcr.io/flannel-io/flannel-cni-plugin:CNI_TAG     the flannel CNI plugin, on Debian (cp)
# Prints NAME=TARBALL lines. Needs test/cluster/build.sh first, and the moat image's Debian base
# (deploy/image/build.sh caches it).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=test/cluster/versions.env
. "$HERE/versions.env"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/moat"
BIN="${MOAT_CLUSTER_CACHE:-$CACHE_ROOT/cluster}/$K8S_VERSION/bin"
OUT="${MOAT_CLUSTER_CACHE:-$CACHE_ROOT/cluster}/$K8S_VERSION/images"
BASE=$(ls "$CACHE_ROOT"/image/debian-bookworm-*.tar 2>/dev/null | head -1 || true)
[ -n "$BASE" ] || { echo "images.sh: no Debian base in $CACHE_ROOT/image: run deploy/image/build.sh" >&2; exit 2; }
mkdir -p "$OUT"
W=$(mktemp -d "${TMPDIR:-/tmp}/moat-images.XXXXXX")
trap 'rm -rf "$W"' EXIT

# image NAME TAR KEY-FILES... -- build steps run with $R as the root: only when KEY changed.
image() {
  local name=$1 tar=$2
  shift 2
  local key
  key=$(cat "$@" "$HERE/images.sh" | sha256sum | cut -c1-16)
  if [ -f "$OUT/$tar" ] && [ "$(cat "$OUT/$tar.key" 2>/dev/null)" = "$key" ]; then
    echo "$name=$OUT/$tar"
    return 1
  fi
  echo "$key" >"$W/key"
  return 0
}
done_image() { # done_image NAME TAR TAG ENTRYPOINT...
  local name=$1 tar=$2 tag=$3
  shift 3
  bash "$HERE/oci.sh" "$W/root" "$OUT/$tar.part" "$tag" "$@"
  mv "$OUT/$tar.part" "$OUT/$tar"
  cp "$W/key" "$OUT/$tar.key"
  rm -rf "$W/root"
  echo "$name=$OUT/$tar"
}

if image registry.k8s.io/pause:3.10 pause.tar "$HERE/pause.c"; then
  mkdir -p "$W/root"
  gcc -O2 -static -o "$W/root/pause" "$HERE/pause.c"
  done_image registry.k8s.io/pause:3.10 pause.tar 3.10 /pause
fi

if image registry.k8s.io/e2e-test-images/agnhost:2.53 agnhost.tar "$BIN/agnhost"; then
  mkdir -p "$W/root/tmp"
  cp "$BIN/agnhost" "$W/root/agnhost"
  done_image registry.k8s.io/e2e-test-images/agnhost:2.53 agnhost.tar 2.53 /agnhost
fi

if image "ghcr.io/flannel-io/flannel:$FLANNEL_VERSION" flannel.tar "$BIN/flanneld" "$BIN/install-conf" "$BASE"; then
  mkdir -p "$W/root"
  tar -C "$W/root" -xf "$BASE"
  mkdir -p "$W/root/opt/bin"
  cp "$BIN/flanneld" "$BIN/install-conf" "$W/root/opt/bin/"
  done_image "ghcr.io/flannel-io/flannel:$FLANNEL_VERSION" flannel.tar "$FLANNEL_VERSION" /opt/bin/flanneld
fi

if image "ghcr.io/flannel-io/flannel-cni-plugin:$FLANNEL_CNI_TAG" flannel-cni-plugin.tar "$BIN/flannel" "$BASE"; then
  mkdir -p "$W/root"
  tar -C "$W/root" -xf "$BASE"
  cp "$BIN/flannel" "$W/root/flannel"
  done_image "ghcr.io/flannel-io/flannel-cni-plugin:$FLANNEL_CNI_TAG" flannel-cni-plugin.tar "$FLANNEL_CNI_TAG" /flannel
fi
