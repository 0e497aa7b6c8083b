#!/usr/bin/env bash
# Packs a root filesystem directory as a one-layer OCI image tarball (umoci), for images the test
# cluster cannot pull (no registry is reachable): agnhost, pause, flannel.
# Usage: oci.sh ROOTFS OUT.tar TAG ENTRYPOINT... [-- CMD...]
set -euo pipefail
ROOTFS=$1 OUT=$2 TAG=$3
shift 3
entry=()
cmd=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do entry+=("$1"); shift; done
[ "${1:-}" = -- ] && shift && cmd=("$@")
W=$(mktemp -d "${TMPDIR:-/tmp}/moat-oci.XXXXXX")
trap 'rm -rf "$W"' EXIT
umoci init --layout "$W/oci"
umoci new --image "$W/oci:$TAG"
umoci unpack --image "$W/oci:$TAG" "$W/bundle" >/dev/null
rm -rf "$W/bundle/rootfs"
cp -a "$ROOTFS" "$W/bundle/rootfs"
umoci repack --image "$W/oci:$TAG" "$W/bundle"
args=()
for e in "${entry[@]}"; do args+=(--config.entrypoint "$e"); done
for c in "${cmd[@]}"; do args+=(--config.cmd "$c"); done
umoci config --image "$W/oci:$TAG" "${args[@]}" --config.user 0:0 \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin >/dev/null
umoci gc --layout "$W/oci"
tar -C "$W/oci" -cf "$OUT" oci-layout index.json blobs
