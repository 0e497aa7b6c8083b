// The addresses of a network namespace over rtnetlink (RTM_GETADDR dump), pure: what
// `ip -j address show` prints as each address's "local", in the text parseIpAddrJson gives.
// Layouts: linux/rtnetlink.h, linux/if_addr.h.
import {
  ipv4Text,
  ipv6Text,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
  u32,
  type NetlinkMessage,
} from '../netfilter/netlink.js';

export const NETLINK_ROUTE = 0;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
const IFADDRMSG_LEN = 8;
const AF_INET = 2;
const AF_INET6 = 10;

/** Every address of every link, both families (AF_UNSPEC), in one dump. */
export function encodeAddrDump(seq: number): Buffer {
  const out = Buffer.alloc(NLMSG_HDRLEN + IFADDRMSG_LEN);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(RTM_GETADDR, 4);
  out.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  out.writeUInt32LE(u32('seq', seq), 8);
  return out; // ifaddrmsg all zero: family AF_UNSPEC, any link
}

/**
 * The address of an RTM_NEWADDR message as `ip` shows it: IFA_LOCAL when present (IPv4; on a
 * point-to-point link IFA_ADDRESS is the peer), else IFA_ADDRESS. Undefined for anything else.
 */
export function decodeAddr(msg: NetlinkMessage): string | undefined {
  const p = msg.payload;
  if (msg.type !== RTM_NEWADDR || p.length < IFADDRMSG_LEN) return undefined;
  const family = p[0];
  const n = family === AF_INET ? 4 : family === AF_INET6 ? 16 : 0;
  if (n === 0) return undefined;
  let address: number | undefined;
  let local: number | undefined;
  for (let off = IFADDRMSG_LEN; off + 4 <= p.length;) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > p.length) return undefined;
    const type = p.readUInt16LE(off + 2);
    if (len - 4 === n) {
      if (type === IFA_ADDRESS) address = off + 4;
      else if (type === IFA_LOCAL) local = off + 4;
    }
    off += (len + 3) & ~3;
  }
  const at = local ?? address;
  if (at === undefined) return undefined;
  return n === 4 ? ipv4Text(p, at) : ipv6Text(p, at);
}
