#!/usr/bin/env bash
# Compacts etcd of a cluster made by up.sh past every revision written so
# far, so any watch or list at an older resourceVersion that reaches etcd
# gets 410 Gone.
# Prints the revision compacted at.
# Usage: bash test/k8s/compact.sh DIR
set -euo pipefail
DIR="${1:?usage: compact.sh DIR}"
# shellcheck disable=SC1091
. "$DIR/env"
# Two writes to a key outside /registry (the apiserver never sees them) move
# the revision to R+2, R being the newest revision the apiserver could have
# handed out; compacting there makes every such R older than the compaction
# point. (With one write, a watch from R would start exactly at the compaction
# revision and be allowed.)
marker=$(printf '/moat-test/compact-marker' | base64 -w0)
put() {
  curl -fsS -X POST "$MOAT_K8S_ETCD/v3/kv/put" -d "{\"key\":\"$marker\",\"value\":\"$(printf '%s' "$1" | base64 -w0)\"}" |
    sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p'
}
put 1 >/dev/null
rev=$(put 2)
[[ -n "$rev" ]] || { echo "compact.sh: could not write to etcd at $MOAT_K8S_ETCD" >&2; exit 1; }
curl -fsS -X POST "$MOAT_K8S_ETCD/v3/kv/compaction" -d "{\"revision\":\"$rev\",\"physical\":true}" >/dev/null
echo "$rev"
