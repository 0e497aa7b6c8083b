#!/usr/bin/env bash
# Tears the test cluster down by PID and by path: the daemons of DIR/run/*.pid, the pods' processes
# (the cgroup tree /moat-cluster the kubelet put them in), the mounts under DIR, the network
# namespace moat-cluster, then DIR (kept with --keep-logs, but for log/).
# Usage: bash test/cluster/down.sh [--keep-logs] [DIR]     (default /run/moat-cluster)
set -uo pipefail
KEEP=false
if [[ "${1:-}" == --keep-logs ]]; then KEEP=true; shift; fi
DIR="${1:-/run/moat-cluster}"
NS=moat-cluster
[[ -d "$DIR" ]] && DIR=$(cd "$DIR" && pwd)

# Stop the node first (no restarts of what we kill next), then the control plane.
for name in kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f="$DIR/run/$name.pid"
  [[ -f "$f" ]] && kill "$(cat "$f")" 2>/dev/null
done
# Every process of every pod: the kubelet's cgroup tree (cgroupRoot /moat-cluster), all hierarchies.
kill_cgroup_tree() {
  local sig=$1 d
  for d in /sys/fs/cgroup/*/moat-cluster /sys/fs/cgroup/moat-cluster; do
    [[ -d "$d" ]] || continue
    find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill "-$sig" 2>/dev/null
  done
}
kill_cgroup_tree TERM
sleep 1
kill_cgroup_tree KILL
# containerd and its shims (they run in our namespace; their socket paths are under DIR).
f="$DIR/run/containerd.pid"
[[ -f "$f" ]] && kill "$(cat "$f")" 2>/dev/null
pgrep -f "containerd-shim.*$DIR" | xargs -r kill -9 2>/dev/null
sleep 0.5
for name in kubelet kube-proxy kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
  f="$DIR/run/$name.pid"
  [[ -f "$f" ]] && kill -9 "$(cat "$f")" 2>/dev/null
done
# Remove the cgroup directories, deepest first.
for d in /sys/fs/cgroup/*/moat-cluster /sys/fs/cgroup/moat-cluster; do
  [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done
# Mounts under DIR (pod volumes, overlay snapshots, pod netns files), deepest first.
if [[ -d "$DIR" ]]; then
  findmnt -rn -o TARGET | grep -F "$DIR/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
fi
ip netns del "$NS" 2>/dev/null
# What libcni wrote outside DIR: the result cache entries of this cluster's sandboxes (their netns
# lives under DIR), and host-local IPAM state of networks that did not exist before up.sh.
for f in /var/lib/cni/results/*; do
  [[ -f "$f" ]] && grep -qF "$DIR/" "$f" 2>/dev/null && rm -f "$f"
done
if [[ -f "$DIR/run/cni-networks-new" ]]; then
  while read -r n; do [[ -n "$n" ]] && rm -rf "/var/lib/cni/networks/$n"; done <"$DIR/run/cni-networks-new"
fi
if [[ -d "$DIR" ]]; then
  if $KEEP; then
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name log -exec rm -rf {} + 2>/dev/null
  else
    rm -rf "$DIR"
  fi
fi
exit 0
