#!/usr/bin/env bash
# Installs what moat's lab, agent and tests need from Debian's packages, when the machine lacks it:
# nftables, iproute2 and conntrack (the dataplane and the lab), iptables and ipset (the deploy
# checks' image contents), iperf3 (the traffic benchmark), ping (the lab's reachability checks),
# python3 with venv (the SCTP prober and the crafted-packet tests, which take scapy from PyPI into
# ~/.cache), and the real-cluster tests' node (below). Run as root; idempotent.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have nft || need+=(nftables)
have ip || need+=(iproute2)
have conntrack || need+=(conntrack)
have iptables || need+=(iptables)
have ipset || need+=(ipset)
have iperf3 || need+=(iperf3)
have ping || need+=(iputils-ping)
have curl || need+=(curl ca-certificates)
have python3 || need+=(python3)
# The real-cluster tests (test/cluster): containerd with runc and the CNI plugins run the pods,
# mmdebstrap and umoci build moat's image without a registry, gcc builds the static pause binary.
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have mmdebstrap || need+=(mmdebstrap)
have umoci || need+=(umoci)
have gcc || need+=(gcc libc6-dev)
# A Python without venv (Debian splits it out) cannot make the scapy venv.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then need+=(python3-venv); fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: missing ${need[*]}; run as root (apt-get install)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "setup: nft $(nft --version | cut -d' ' -f2), $(ip -V | sed 's/.*iproute2-\([^,]*\).*/iproute2 \1/'), $(conntrack --version 2>&1 | cut -d' ' -f2), $(python3 --version)"
