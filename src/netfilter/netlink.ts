// Netlink framing shared by the netfilter subsystems moat speaks (NFLOG, ctnetlink), pure:
// nlmsghdr + nfgenmsg requests, attributes (nlattr), datagrams split into messages, acks, and
// address text. Layouts: linux/netlink.h, linux/netfilter/nfnetlink.h.

export const NETLINK_NETFILTER = 12;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 1;
export const NLM_F_ACK = 4;
/** NLM_F_ROOT | NLM_F_MATCH: every object, in as many datagrams as it takes, then NLMSG_DONE. */
export const NLM_F_DUMP = 0x300;
/** On a dump message: the table changed during the dump (entries may be missing or doubled). */
export const NLM_F_DUMP_INTR = 0x10;
export const NLA_F_NESTED = 0x8000;
/** An attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
export const NLA_TYPE_MASK = 0x3fff;

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;

export interface NetlinkMessage {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** What follows the 16-byte nlmsghdr, up to nlmsg_len (a view into the datagram). */
  readonly payload: Buffer;
}

export function u32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${name}: ${v} is not a u32`);
  return v;
}

/** One attribute: length, type, value, padded to 4 bytes. */
export function nla(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

/** A nested attribute holding `children` (already encoded attributes). */
export function nlaNested(type: number, children: readonly Buffer[]): Buffer {
  return nla(type | NLA_F_NESTED, Buffer.concat(children));
}

export function be16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v, 0);
  return b;
}

export function be32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v, 0);
  return b;
}

/**
 * One nfnetlink request: nlmsghdr (type = subsystem << 8 | message), nfgenmsg (family, version 0,
 * res_id big-endian), then the attributes.
 */
export function encodeNfnlRequest(req: {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly family: number;
  readonly resId?: number;
  readonly attrs?: readonly Buffer[];
}): Buffer {
  const body = Buffer.concat(req.attrs ?? []);
  const out = Buffer.alloc(NLMSG_HDRLEN + NFGENMSG_LEN + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeUInt16LE(req.type, 4);
  out.writeUInt16LE(req.flags, 6);
  out.writeUInt32LE(u32('seq', req.seq), 8);
  out[NLMSG_HDRLEN] = req.family;
  out.writeUInt16BE(req.resId ?? 0, NLMSG_HDRLEN + 2);
  body.copy(out, NLMSG_HDRLEN + NFGENMSG_LEN);
  return out;
}

/** Counts what parseNetlinkBatch could not read; `last` says why, for a log line. */
export interface ParseErrors {
  count: number;
  last?: string;
}

/**
 * Splits a datagram into its netlink messages. Never throws: a header that is short or claims
 * more than the datagram holds ends the walk (nothing after it can be framed), is counted in
 * `errors`, and the messages before it are returned.
 */
export function parseNetlinkBatch(buf: Buffer, errors?: ParseErrors): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let off = 0;
  while (off < buf.length) {
    const left = buf.length - off;
    if (left < NLMSG_HDRLEN) {
      fail(errors, `${left} trailing bytes, short of a netlink header`);
      break;
    }
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || len > left) {
      fail(errors, `netlink message length ${len} at offset ${off} (${left} bytes left)`);
      break;
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

function fail(errors: ParseErrors | undefined, why: string): void {
  if (!errors) return;
  errors.count++;
  errors.last = why;
}

/**
 * The attributes in buf[off, end), by type (NLA_TYPE_MASK applied; the last of a repeated type
 * wins), as views. Undefined when one claims more than is there.
 */
export function parseAttrs(buf: Buffer, off = 0, end = buf.length): Map<number, Buffer> | undefined {
  const out = new Map<number, Buffer>();
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > end) return undefined;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

/** An NLMSG_ERROR: errno 0 is an acknowledgement, else the request failed with -errno. */
export interface NetlinkAck {
  /** Positive errno (EPERM = 1, ...), 0 for success. */
  readonly errno: number;
  /** The failed request's nlmsg_seq (the ack's own seq is the same). */
  readonly seq: number;
}

export function decodeNetlinkAck(msg: NetlinkMessage): NetlinkAck | undefined {
  if (msg.type !== NLMSG_ERROR || msg.payload.length < 4) return undefined;
  return { errno: 0 - msg.payload.readInt32LE(0), seq: msg.seq };
}

export function ipv4Text(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 text, as formatAddress in model/cidr.ts gives it (tested equal), without bigints. */
export function ipv6Text(b: Buffer, off: number): string {
  // The longest run of two or more zero groups, the first of equals, becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (b.readUInt16BE(off + 2 * i) !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && b.readUInt16BE(off + 2 * j) === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (s !== '' && !s.endsWith(':')) s += ':';
    s += b.readUInt16BE(off + 2 * i).toString(16);
  }
  return s;
}

/** For callbacks the netlink addon calls: an exception must not unwind into it (it aborts): rethrow them on a clean stack. */
export function guarded<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      fn(...args);
    } catch (e) {
      setImmediate(() => {
        throw e;
      });
    }
  };
}
