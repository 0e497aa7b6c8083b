# Crafted packets for the attack tests (test/e2e/attacks.test.ts), sent with scapy from inside a lab
# pod's network namespace, as a hostile pod with CAP_NET_RAW (a default container capability) can:
# raw Ethernet frames on eth0, any source address, any flags.
#
#   ip netns exec POD python attack.py '[{"kind": "udp", "src": ..., "dst": ..., "mac": ...}, ...]'
#
# kinds: udp, syn (a TCP SYN), nd (an ICMPv6 neighbour solicitation carrying data), arp (an ARP
# reply claiming `src` for this pod's MAC, sent to `dst`). `mac` is the next hop's MAC address.
import json
import sys

from scapy.all import ARP, ICMPv6ND_NS, IP, TCP, UDP, Ether, IPv6, Raw, conf, get_if_hwaddr, sendp

conf.verb = 0
me = get_if_hwaddr("eth0")
frames = []
for job in json.loads(sys.argv[1]):
    kind, src, dst, mac = job["kind"], job["src"], job["dst"], job["mac"]
    # Each case is told apart at the destination by its source port (or, for nd, its ICMPv6 code).
    tag = int(job["tag"])
    port = int(job.get("port", 31337))
    payload = Raw(load=b"moat-attack " + kind.encode())
    # A source MAC other than the pod's own (forwarding database poisoning), when asked.
    eth = Ether(src=job.get("srcMac", me), dst=mac)
    if kind == "arp":
        frames.append(eth / ARP(op=2, psrc=src, hwsrc=job.get("srcMac", me), pdst=dst, hwdst=mac))
        continue
    v6 = ":" in dst
    l3 = IPv6(src=src, dst=dst, hlim=int(job.get("hlim", 64))) if v6 else IP(src=src, dst=dst, ttl=64)
    if kind == "udp":
        l4 = UDP(sport=tag, dport=port) / payload
    elif kind == "syn":
        l4 = TCP(sport=tag, dport=port, flags="S", seq=1000)
    elif kind == "nd":
        if not v6:
            sys.exit("nd: IPv6 only")
        # The code marks the test's packets (ND itself has code 0); the data rides in the payload.
        l4 = ICMPv6ND_NS(code=tag, tgt=dst) / payload
    else:
        sys.exit("unknown kind " + kind)
    frames.append(eth / l3 / l4)

# Three copies of each, so a single lost frame does not pass for a drop.
sendp(frames * 3, iface="eth0", inter=0.005)
