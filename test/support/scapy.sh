#!/usr/bin/env bash
# Ensures a Python venv with scapy (from PyPI) for the crafted-packet tests and prints its python.
# Cached under $HOME/.cache, keyed by version, so every clone on the machine shares it.
set -euo pipefail
SCAPY_VERSION=2.8.0
DIR="${MOAT_SCAPY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/moat/scapy-$SCAPY_VERSION}"
if ! "$DIR/bin/python" -c "import scapy, sys; sys.exit(scapy.VERSION != '$SCAPY_VERSION')" 2>/dev/null; then
  command -v python3 >/dev/null || { echo "scapy.sh: python3 is required" >&2; exit 1; }
  rm -rf "$DIR"
  mkdir -p "$(dirname "$DIR")"
  python3 -m venv "$DIR" >&2
  "$DIR/bin/pip" install --quiet --disable-pip-version-check "scapy==$SCAPY_VERSION" >&2
fi
echo "$DIR/bin/python"
