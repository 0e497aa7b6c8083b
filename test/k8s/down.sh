#!/usr/bin/env bash
# Stops a cluster started by up.sh (by its pid files) and removes its dir.
# Usage: bash test/k8s/down.sh [--keep] DIR    (--keep: leave DIR and logs)
set -euo pipefail
keep=false
if [[ "${1:-}" == "--keep" ]]; then keep=true; shift; fi
DIR="${1:?usage: down.sh [--keep] DIR}"
[[ -d "$DIR" ]] || exit 0

stop() { # stop <pidfile>: TERM, wait up to 5s, then KILL
  local f="$1" pid
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
# apiserver first, so it does not log etcd errors while shutting down.
stop "$DIR/apiserver.pid"
stop "$DIR/etcd.pid"

# Only remove what looks like a directory up.sh made.
if ! $keep && [[ -f "$DIR/apiserver.args" || -d "$DIR/pki" ]]; then
  rm -rf "$DIR"
fi
