// ctnetlink (the conntrack subsystem of nfnetlink), pure: dump and delete requests, and dump
// entries decoded into the CtEntry that parseConntrackList gives for `conntrack -L`, so the
// cleanup plan judges them the same way. The I/O is in ct-socket.ts (in a child: ct-child.ts).
// Numbers: linux/netfilter/nfnetlink.h, include/uapi/linux/netfilter/nfnetlink_conntrack.h.
import {
  be16,
  be32,
  encodeNfnlRequest,
  ipv4Text,
  ipv6Text,
  nla,
  nlaNested,
  NFGENMSG_LEN,
  NLA_TYPE_MASK,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NetlinkMessage,
} from '../netfilter/netlink.js';
import { parseIP } from '../model/cidr.js';
import type { CtEntry, CtTuple } from './conntrack.js';

export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;
/** nlmsghdr.type of a dump entry (the kernel answers a GET dump with CT_NEW messages). */
export const CT_NEW_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
export const CT_GET_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
export const CT_DELETE_TYPE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

// enum ctattr_type
export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_ID = 12;
export const CTA_ZONE = 18;
// enum ctattr_tuple
export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
// enum ctattr_ip
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;
// enum ctattr_l4proto
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
export const CTA_PROTO_ICMP_ID = 4;
export const CTA_PROTO_ICMP_TYPE = 5;
export const CTA_PROTO_ICMP_CODE = 6;
export const CTA_PROTO_ICMPV6_ID = 7;
export const CTA_PROTO_ICMPV6_TYPE = 8;
export const CTA_PROTO_ICMPV6_CODE = 9;

const ICMP = 1;
const ICMPV6 = 58;

/** The names conntrack-tools prints (its l4 protocol table); any other number is "unknown". */
const PROTO_NAMES: Readonly<Record<number, string>> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  33: 'dccp',
  47: 'gre',
  58: 'icmpv6',
  132: 'sctp',
  136: 'udplite',
};

/**
 * A dump of the conntrack table (one walk of the kernel's hash table, this netns's entries).
 * family AF_UNSPEC lists both families in that one walk; AF_INET / AF_INET6 only one.
 */
export function encodeCtDump(seq: number, family: number = AF_UNSPEC): Buffer {
  return encodeNfnlRequest({ type: CT_GET_TYPE, flags: NLM_F_REQUEST | NLM_F_DUMP, seq, family });
}

function port(name: string, v: number): Buffer {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name}: ${v} is not a port`);
  return be16(v);
}

function addrBytes(name: string, family: 4 | 6, text: string): Buffer {
  const a = parseIP(text);
  if (a === undefined || a.family !== family)
    throw new RangeError(`${name}: "${text}" is not an IPv${family} address`);
  const b = Buffer.alloc(family === 4 ? 4 : 16);
  let v = a.value;
  for (let i = b.length - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/** CTA_TUPLE_ORIG's (or REPLY's) content for tuple `t` of an entry. */
export function encodeCtTuple(e: Pick<CtEntry, 'family' | 'protonum'>, t: CtTuple): Buffer[] {
  const [srcType, dstType] = e.family === 4 ? [CTA_IP_V4_SRC, CTA_IP_V4_DST] : [CTA_IP_V6_SRC, CTA_IP_V6_DST];
  const ip = nlaNested(CTA_TUPLE_IP, [
    nla(srcType, addrBytes('src', e.family, t.src)),
    nla(dstType, addrBytes('dst', e.family, t.dst)),
  ]);
  if (!Number.isInteger(e.protonum) || e.protonum < 0 || e.protonum > 255)
    throw new RangeError(`protonum: ${e.protonum} is not a protocol number`);
  const proto: Buffer[] = [nla(CTA_PROTO_NUM, Buffer.from([e.protonum]))];
  if (e.protonum === ICMP || e.protonum === ICMPV6) {
    if (t.icmp === undefined) throw new RangeError(`ICMP tuple ${t.src} -> ${t.dst}: no type/code/id`);
    const [id, type, code] =
      e.protonum === ICMP
        ? [CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE]
        : [CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE];
    proto.push(
      nla(id, port('icmp id', t.icmp.id)),
      nla(type, Buffer.from([t.icmp.type & 0xff])),
      nla(code, Buffer.from([t.icmp.code & 0xff])),
    );
  } else {
    if (t.sport !== undefined) proto.push(nla(CTA_PROTO_SRC_PORT, port('sport', t.sport)));
    if (t.dport !== undefined) proto.push(nla(CTA_PROTO_DST_PORT, port('dport', t.dport)));
  }
  return [ip, nlaNested(CTA_TUPLE_PROTO, proto)];
}

/**
 * Deletes one entry by its original tuple: a hash lookup, no walk. With the entry's id the kernel
 * deletes only that entry (ENOENT when it is gone, even if another flow took its tuple since).
 * flags: NLM_F_REQUEST always; add NLM_F_ACK to be answered on success too (errors always are).
 */
export function encodeCtDelete(e: CtEntry, seq: number, ack = true): Buffer {
  const attrs = [nlaNested(CTA_TUPLE_ORIG, encodeCtTuple(e, e.orig))];
  if (e.zone !== undefined && e.zone !== 0) attrs.push(nla(CTA_ZONE, port('zone', e.zone)));
  if (e.id !== undefined) attrs.push(nla(CTA_ID, be32(e.id)));
  return encodeNfnlRequest({
    type: CT_DELETE_TYPE,
    flags: NLM_F_REQUEST | (ack ? NLM_F_ACK : 0),
    seq,
    family: e.family === 4 ? AF_INET : AF_INET6,
    attrs,
  });
}

// Decoding walks attributes by offset into scratch tables, with no views or maps: a busy node's
// dump is 10^5 entries, and a Buffer view costs about a microsecond to make.
const TOP = new Int32Array(2 * 32);
const TUPLE = new Int32Array(2 * 4);
const IP = new Int32Array(2 * 5);
const PROTO = new Int32Array(2 * 10);

/** t[2k], t[2k+1]: offset and length of attribute k's value in p[off, end); -1 when absent. */
function scan(p: Buffer, off: number, end: number, t: Int32Array): boolean {
  t.fill(-1);
  while (off + 4 <= end) {
    // Byte reads, not readUInt16LE: its argument checks cost more than the rest of the scan.
    const len = p[off]! | (p[off + 1]! << 8);
    if (len < 4 || off + len > end) return false;
    const type = (p[off + 2]! | (p[off + 3]! << 8)) & NLA_TYPE_MASK;
    if (2 * type + 1 < t.length) {
      t[2 * type] = off + 4;
      t[2 * type + 1] = len - 4;
    }
    off += (len + 3) & ~3;
  }
  return true;
}

const at = (t: Int32Array, k: number): number => t[2 * k]!;
const u16be = (p: Buffer, o: number): number => (p[o]! << 8) | p[o + 1]!;

/** IPv4 text by address: a dump repeats the node's pod addresses, and number-to-text is dear. */
const v4text = new Map<number, string>();
function ipv4At(p: Buffer, o: number): string {
  const k = ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;
  let s = v4text.get(k);
  if (s === undefined) {
    if (v4text.size > 100_000) v4text.clear();
    s = ipv4Text(p, o);
    v4text.set(k, s);
  }
  return s;
}
const size = (t: Int32Array, k: number): number => t[2 * k + 1]!;

function decodeTuple(
  p: Buffer,
  off: number,
  len: number,
  family: 4 | 6,
): { t: CtTuple; protonum: number } | undefined {
  if (!scan(p, off, off + len, TUPLE)) return undefined;
  const ipOff = at(TUPLE, CTA_TUPLE_IP);
  const protoOff = at(TUPLE, CTA_TUPLE_PROTO);
  if (ipOff < 0 || protoOff < 0) return undefined;
  const protoEnd = protoOff + size(TUPLE, CTA_TUPLE_PROTO);
  if (!scan(p, ipOff, ipOff + size(TUPLE, CTA_TUPLE_IP), IP)) return undefined;
  const [n, srcType, dstType] =
    family === 4 ? [4, CTA_IP_V4_SRC, CTA_IP_V4_DST] : [16, CTA_IP_V6_SRC, CTA_IP_V6_DST];
  if (size(IP, srcType) !== n || size(IP, dstType) !== n) return undefined;
  const text = family === 4 ? ipv4At : ipv6Text;
  const src = text(p, at(IP, srcType));
  const dst = text(p, at(IP, dstType));
  if (!scan(p, protoOff, protoEnd, PROTO) || size(PROTO, CTA_PROTO_NUM) < 1) return undefined;
  const protonum = p[at(PROTO, CTA_PROTO_NUM)]!;
  const be = (k: number): number | undefined => (size(PROTO, k) >= 2 ? u16be(p, at(PROTO, k)) : undefined);
  const u8 = (k: number): number | undefined => (size(PROTO, k) >= 1 ? p[at(PROTO, k)] : undefined);
  if (protonum === ICMP || protonum === ICMPV6) {
    const v6 = protonum === ICMPV6;
    const id = be(v6 ? CTA_PROTO_ICMPV6_ID : CTA_PROTO_ICMP_ID);
    const type = u8(v6 ? CTA_PROTO_ICMPV6_TYPE : CTA_PROTO_ICMP_TYPE);
    const code = u8(v6 ? CTA_PROTO_ICMPV6_CODE : CTA_PROTO_ICMP_CODE);
    if (id === undefined || type === undefined || code === undefined) return { t: { src, dst }, protonum };
    return { t: { src, dst, icmp: { type, code, id } }, protonum };
  }
  // Ports of every protocol that has them (GRE's keys too): the plan reads them only for the
  // protocols it models, as it does those of `conntrack -L`.
  const sport = be(CTA_PROTO_SRC_PORT);
  const dport = be(CTA_PROTO_DST_PORT);
  const t: { src: string; dst: string; sport?: number; dport?: number } = { src, dst };
  if (sport !== undefined) t.sport = sport;
  if (dport !== undefined) t.dport = dport;
  return { t, protonum };
}

/**
 * Decodes one entry of a dump (CT_NEW, or CT_GET as some kernels type them). Undefined when it is
 * not one, is of a family other than IPv4/IPv6, or its tuples are malformed.
 */
export function decodeCtEntry(msg: NetlinkMessage): CtEntry | undefined {
  if (msg.type !== CT_NEW_TYPE && msg.type !== CT_GET_TYPE) return undefined;
  const p = msg.payload;
  if (p.length < NFGENMSG_LEN) return undefined;
  const family = p[0] === AF_INET ? 4 : p[0] === AF_INET6 ? 6 : undefined;
  if (family === undefined || !scan(p, NFGENMSG_LEN, p.length, TOP)) return undefined;
  const [oOff, oLen] = [at(TOP, CTA_TUPLE_ORIG), size(TOP, CTA_TUPLE_ORIG)];
  const [rOff, rLen] = [at(TOP, CTA_TUPLE_REPLY), size(TOP, CTA_TUPLE_REPLY)];
  const zone = size(TOP, CTA_ZONE) >= 2 ? u16be(p, at(TOP, CTA_ZONE)) : 0;
  const id = size(TOP, CTA_ID) >= 4 ? p.readUInt32BE(at(TOP, CTA_ID)) : undefined;
  if (oOff < 0 || rOff < 0) return undefined;
  const o = decodeTuple(p, oOff, oLen, family);
  const r = o && decodeTuple(p, rOff, rLen, family);
  if (o === undefined || r === undefined) return undefined;
  const e: { -readonly [K in keyof CtEntry]: CtEntry[K] } = {
    family,
    proto: PROTO_NAMES[o.protonum] ?? 'unknown',
    protonum: o.protonum,
    orig: o.t,
    reply: r.t,
  };
  if (zone !== 0) e.zone = zone;
  if (id !== undefined) e.id = id;
  return e;
}
