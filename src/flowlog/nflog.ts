// NFLOG over netlink, pure: config requests, datagrams split into messages, packet messages
// decoded, and the IP and transport headers they carry. The I/O is in nflog-reader.ts.
// Layouts: linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nfnetlink_log.h.

import {
  be32,
  encodeNfnlRequest,
  ipv4Text,
  ipv6Text,
  nla,
  NFGENMSG_LEN,
  NLA_TYPE_MASK,
  NLM_F_ACK,
  NLM_F_REQUEST,
  u32,
  type NetlinkMessage,
} from '../netfilter/netlink.js';

// The netlink framing moved to netfilter/netlink.ts (ctnetlink shares it); re-exported here.
export {
  decodeNetlinkAck,
  NETLINK_NETFILTER,
  NLM_F_ACK,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  parseNetlinkBatch,
  type NetlinkAck,
  type NetlinkMessage,
  type ParseErrors,
} from '../netfilter/netlink.js';

export const NFNL_SUBSYS_ULOG = 4;
export const NFULNL_MSG_PACKET = 0;
export const NFULNL_MSG_CONFIG = 1;
/** nlmsghdr.type of NFLOG packet and config messages. */
export const NFLOG_PACKET_TYPE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
export const NFLOG_CONFIG_TYPE = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

/** NFULA_CFG_FLAGS bits. */
export const NFULNL_CFG_F_SEQ = 1;
export const NFULNL_CFG_F_SEQ_GLOBAL = 2;
export const NFULNL_CFG_F_CONNTRACK = 4;

/** Netfilter hook numbers (NFULA_PACKET_HDR.hook) for the inet families. */
export const HOOK_NAMES: readonly string[] = ['prerouting', 'input', 'forward', 'output', 'postrouting'];

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const EMPTY = Buffer.alloc(0);

const CFG_CMD = 1;
const CFG_MODE = 2;
const CFG_NLBUFSIZ = 3;
const CFG_TIMEOUT = 4;
const CFG_QTHRESH = 5;
const CFG_FLAGS = 6;
const CMD_BIND = 1;
const CMD_UNBIND = 2;
const COPY_MODES = { none: 0, meta: 1, packet: 2 } as const;

const A_PACKET_HDR = 1;
const A_MARK = 2;
const A_TIMESTAMP = 3;
const A_IFINDEX_INDEV = 4;
const A_IFINDEX_OUTDEV = 5;
const A_HWADDR = 8;
const A_PAYLOAD = 9;
const A_PREFIX = 10;
const A_UID = 11;
const A_SEQ = 12;
const A_SEQ_GLOBAL = 13;
const A_GID = 14;

/** One setting of an NFLOG instance (one attribute of an NFULNL_MSG_CONFIG request). */
export type NflogConfigItem =
  | { readonly kind: 'bind' }
  | { readonly kind: 'unbind' }
  /** How much of each packet to copy: copyRange bytes from the IP header on (mode packet). */
  | { readonly kind: 'mode'; readonly copyRange: number; readonly copyMode?: keyof typeof COPY_MODES }
  /** NFULNL_CFG_F_* bits. */
  | { readonly kind: 'flags'; readonly flags: number }
  /** How long the kernel holds a batch before sending it (it keeps 1/100 s). */
  | { readonly kind: 'timeout'; readonly ms: number }
  /** Send a batch when it holds this many packets. */
  | { readonly kind: 'qthresh'; readonly packets: number }
  /** The size of a batch's buffer (the kernel accepts 4096..131072). */
  | { readonly kind: 'nlbufsiz'; readonly bytes: number };

function encodeItem(item: NflogConfigItem): Buffer {
  switch (item.kind) {
    case 'bind':
      return nla(CFG_CMD, Buffer.from([CMD_BIND]));
    case 'unbind':
      return nla(CFG_CMD, Buffer.from([CMD_UNBIND]));
    case 'mode': {
      // struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; }
      const v = Buffer.alloc(6);
      v.writeUInt32BE(u32('copyRange', item.copyRange), 0);
      v[4] = COPY_MODES[item.copyMode ?? 'packet'];
      return nla(CFG_MODE, v);
    }
    case 'flags': {
      if (!Number.isInteger(item.flags) || item.flags < 0 || item.flags > 0xffff) {
        throw new RangeError(`flags: ${item.flags} is not a u16`);
      }
      const v = Buffer.alloc(2);
      v.writeUInt16BE(item.flags, 0);
      return nla(CFG_FLAGS, v);
    }
    case 'timeout':
      return nla(CFG_TIMEOUT, be32(u32('timeout', Math.round(item.ms / 10))));
    case 'qthresh':
      return nla(CFG_QTHRESH, be32(u32('qthresh', item.packets)));
    case 'nlbufsiz':
      return nla(CFG_NLBUFSIZ, be32(u32('nlbufsiz', item.bytes)));
  }
}

/**
 * One NFULNL_MSG_CONFIG request for `group` carrying `items` (the kernel applies a bind first,
 * then the other settings), with NLM_F_ACK so the kernel answers with an NLMSG_ERROR (0: done).
 */
export function encodeNflogConfig(group: number, items: readonly NflogConfigItem[], seq = 0): Buffer {
  if (!Number.isInteger(group) || group < 0 || group > 0xffff) {
    throw new RangeError(`NFLOG group: ${group} is not in 0..65535`);
  }
  // nfgenmsg: family AF_UNSPEC, version 0, res_id = the group, big-endian.
  return encodeNfnlRequest({
    type: NFLOG_CONFIG_TYPE,
    flags: NLM_F_REQUEST | NLM_F_ACK,
    seq,
    family: 0,
    resId: group,
    attrs: items.map(encodeItem),
  });
}

export interface NflogPacket {
  /** The NFLOG group (nfgenmsg res_id). */
  readonly group: number;
  /** nfgenmsg family: 2 (IPv4), 10 (IPv6), 7 (bridge), ... */
  readonly family: number;
  /** The rule's log prefix; "" when it has none. */
  readonly prefix: string;
  /** Netfilter hook (HOOK_NAMES): 0 prerouting ... 4 postrouting. */
  readonly hook: number;
  /** Ethertype of the packet: 0x0800 IPv4, 0x86dd IPv6. */
  readonly hwProtocol: number;
  /** The kernel's receive time; it sends one for prerouting, input and forward only. */
  readonly timestamp?: Date;
  readonly indev?: number;
  readonly outdev?: number;
  readonly mark?: number;
  /** The owning socket's uid/gid, for locally generated packets. */
  readonly uid?: number;
  readonly gid?: number;
  /** Per-group sequence number, with NFULNL_CFG_F_SEQ: a gap is records the kernel dropped. */
  readonly seq?: number;
  readonly seqGlobal?: number;
  /** Source link-layer address, "aa:bb:..", on input paths. */
  readonly hwaddr?: string;
  /** The packet from its IP header, at most the copy range (a view into the datagram). */
  readonly payload: Buffer;
}

/**
 * Decodes an NFULNL_MSG_PACKET message. Undefined when it is not one, or its attributes are
 * malformed (a length past the end, a fixed-size attribute of the wrong size, no packet header).
 */
export function decodeNflogPacket(msg: NetlinkMessage): NflogPacket | undefined {
  if (msg.type !== NFLOG_PACKET_TYPE) return undefined;
  const p = msg.payload;
  if (p.length < NFGENMSG_LEN) return undefined;
  const family = p[0]!;
  const group = p.readUInt16BE(2);
  let hook: number | undefined;
  const out: Mutable<NflogPacket> = { group, family, prefix: '', hook: 0, hwProtocol: 0, payload: EMPTY };
  let off = NFGENMSG_LEN;
  while (off + 4 <= p.length) {
    const len = p.readUInt16LE(off);
    const type = p.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > p.length) return undefined;
    // The value is p[v, v + n): offsets, not views, on this per-packet path.
    const v = off + 4;
    const n = len - 4;
    switch (type) {
      case A_PACKET_HDR:
        // struct nfulnl_msg_packet_hdr { __be16 hw_protocol; __u8 hook; __u8 _pad; }
        if (n < 4) return undefined;
        out.hwProtocol = p.readUInt16BE(v);
        hook = p[v + 2]!;
        break;
      case A_PREFIX: {
        const nul = p.indexOf(0, v);
        out.prefix = p.toString('utf8', v, nul < 0 || nul > v + n ? v + n : nul);
        break;
      }
      case A_PAYLOAD:
        out.payload = p.subarray(v, v + n);
        break;
      case A_TIMESTAMP: {
        // struct nfulnl_msg_packet_timestamp { __aligned_be64 sec; __aligned_be64 usec; }
        if (n < 16) return undefined;
        const ms = Number(p.readBigUInt64BE(v)) * 1000 + Math.floor(Number(p.readBigUInt64BE(v + 8)) / 1000);
        out.timestamp = new Date(ms);
        break;
      }
      case A_IFINDEX_INDEV:
      case A_IFINDEX_OUTDEV:
      case A_MARK:
      case A_UID:
      case A_GID:
      case A_SEQ:
      case A_SEQ_GLOBAL: {
        if (n < 4) return undefined;
        const x = p.readUInt32BE(v);
        if (type === A_IFINDEX_INDEV) out.indev = x;
        else if (type === A_IFINDEX_OUTDEV) out.outdev = x;
        else if (type === A_MARK) out.mark = x;
        else if (type === A_UID) out.uid = x;
        else if (type === A_GID) out.gid = x;
        else if (type === A_SEQ) out.seq = x;
        else out.seqGlobal = x;
        break;
      }
      case A_HWADDR: {
        // struct nfulnl_msg_packet_hw { __be16 hw_addrlen; __u16 _pad; __u8 hw_addr[8]; }
        if (n < 4) return undefined;
        const k = Math.min(p.readUInt16BE(v), n - 4, 8);
        const parts: string[] = [];
        for (let i = 0; i < k; i++) parts.push(p[v + 4 + i]!.toString(16).padStart(2, '0'));
        out.hwaddr = parts.join(':');
        break;
      }
      default:
        break; // attributes we do not use (conntrack, VLAN, L2 header, ...)
    }
    off += (len + 3) & ~3;
  }
  if (hook === undefined) return undefined;
  out.hook = hook;
  return out;
}

export type IpProtocolName = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ICMPv6';

export interface PacketInfo {
  readonly family: 'ipv4' | 'ipv6';
  readonly src: string;
  readonly dst: string;
  /** The transport protocol number (IPv6: after the extension headers). */
  readonly protocol: number;
  /** An IpProtocolName, or the number as text. */
  readonly protocolName: string;
  /** TCP, UDP and SCTP, when the packet holds them (not in a later fragment). */
  readonly srcPort?: number;
  readonly dstPort?: number;
  readonly icmp?: { readonly type: number; readonly code: number };
  /** TCP: the flags set, in bit order (FIN|SYN|RST|PSH|ACK|URG|ECE|CWR), "NONE" for none. */
  readonly tcpFlags?: string;
  /** Set when the copy ended before a header this decoder wanted: fields past it are absent. */
  readonly truncated?: true;
  /** Set for a fragment other than the first: it has no transport header. */
  readonly laterFragment?: true;
}

const PROTOCOL_NAMES: Readonly<Record<number, IpProtocolName>> = {
  1: 'ICMP',
  6: 'TCP',
  17: 'UDP',
  58: 'ICMPv6',
  132: 'SCTP',
};
const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'] as const;

export function protocolName(n: number): string {
  return PROTOCOL_NAMES[n] ?? String(n);
}

export function tcpFlagsText(bits: number): string {
  const set = TCP_FLAGS.filter((_, i) => (bits & (1 << i)) !== 0);
  return set.length === 0 ? 'NONE' : set.join('|');
}

const TCP_FLAGS_TEXT = Array.from({ length: 256 }, (_, i) => tcpFlagsText(i));

// IPv6 extension headers that a transport header may follow (RFC 8200 4.1; AH per RFC 4302).
const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const AH = 51;
const DEST_OPTIONS = 60;

/**
 * Decodes the IP header and what the flow log needs of the transport header. Undefined when
 * the payload is not an IP packet or is too short for its addresses; a payload cut short later
 * gives the fields it holds, with `truncated`, never guessed ones.
 */
export function decodeIpPacket(p: Buffer): PacketInfo | undefined {
  if (p.length < 1) return undefined;
  const version = p[0]! >> 4;
  if (version === 4) {
    if (p.length < 20) return undefined;
    const ihl = (p[0]! & 0x0f) * 4;
    if (ihl < 20) return undefined;
    const r = info('ipv4', ipv4Text(p, 12), ipv4Text(p, 16), p[9]!);
    if ((p.readUInt16BE(6) & 0x1fff) !== 0) {
      r.laterFragment = true;
      return r;
    }
    // tot_len bounds the packet (the copy may hold trailing padding); 0 is a GSO packet.
    const totLen = p.readUInt16BE(2);
    return transport(r, p, ihl, totLen >= ihl ? Math.min(totLen, p.length) : p.length);
  }
  if (version === 6) {
    if (p.length < 40) return undefined;
    const payloadLen = p.readUInt16BE(4);
    const end = payloadLen === 0 ? p.length : Math.min(40 + payloadLen, p.length);
    let next = p[6]!;
    let off = 40;
    let later = false;
    for (;;) {
      if (next === HOP_BY_HOP || next === ROUTING || next === DEST_OPTIONS || next === AH) {
        if (off + 2 > end) break;
        const hdrLen = next === AH ? (p[off + 1]! + 2) * 4 : (p[off + 1]! + 1) * 8;
        next = p[off]!;
        off += hdrLen;
      } else if (next === FRAGMENT) {
        if (off + 8 > end) break;
        later = p.readUInt16BE(off + 2) >> 3 !== 0;
        next = p[off]!;
        off += 8;
        if (later) break;
      } else {
        break;
      }
    }
    const r = info('ipv6', ipv6Text(p, 8), ipv6Text(p, 24), next);
    if (later) {
      r.laterFragment = true;
      return r;
    }
    // Stopped inside the chain (the copy ended): `protocol` is the header it could not read.
    if (isExtension(next)) {
      r.truncated = true;
      return r;
    }
    return transport(r, p, off, end);
  }
  return undefined;
}

function isExtension(n: number): boolean {
  return n === HOP_BY_HOP || n === ROUTING || n === DEST_OPTIONS || n === AH || n === FRAGMENT;
}

function info(family: PacketInfo['family'], src: string, dst: string, protocol: number): Mutable<PacketInfo> {
  return { family, src, dst, protocol, protocolName: protocolName(protocol) };
}

/** Fills in the transport fields from p[off, end). */
function transport(r: Mutable<PacketInfo>, p: Buffer, off: number, end: number): PacketInfo {
  const len = end - off;
  if (len < 0) {
    r.truncated = true;
    return r;
  }
  switch (r.protocol) {
    case 6:
    case 17:
    case 132:
      if (len < 4) break;
      r.srcPort = p.readUInt16BE(off);
      r.dstPort = p.readUInt16BE(off + 2);
      if (r.protocol !== 6) return r;
      if (len < 14) break;
      r.tcpFlags = TCP_FLAGS_TEXT[p[off + 13]!]!;
      return r;
    case 1:
    case 58:
      if (len < 2) break;
      r.icmp = { type: p[off]!, code: p[off + 1]! };
      return r;
    default:
      return r;
  }
  r.truncated = true;
  return r;
}
