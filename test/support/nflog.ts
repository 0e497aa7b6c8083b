// Test support: builders of IPv4/IPv6 packets and NFLOG netlink messages, and datagrams
// captured from a real kernel, for the flowlog NFLOG tests.
import { NFLOG_PACKET_TYPE } from '../../src/flowlog/nflog.js';

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

export function addr4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

export function addr6(a: string): Buffer {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export function ports(sport: number, dport: number, rest = 0): Buffer {
  const b = Buffer.alloc(4 + rest);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
}

export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 };

export function tcp(sport: number, dport: number, flags: number): Buffer {
  const b = ports(sport, dport, 16);
  b[12] = 5 << 4;
  b[13] = flags;
  return b;
}
export const udp = (sport: number, dport: number): Buffer => ports(sport, dport, 4);
export const sctp = (sport: number, dport: number): Buffer => ports(sport, dport, 8);
export const icmp = (type: number, code: number): Buffer => Buffer.from([type, code, 0, 0, 0, 0, 0, 0]);

export function ipv4(o: {
  src: string;
  dst: string;
  protocol: number;
  l4: Buffer;
  options?: Buffer;
  fragOffset?: number;
  moreFragments?: boolean;
  totLen?: number;
}): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  h[0] = 0x40 | (h.length / 4);
  h.writeUInt16BE(o.totLen ?? h.length + o.l4.length, 2);
  h.writeUInt16BE(((o.moreFragments ? 1 : 0) << 13) | (o.fragOffset ?? 0), 6);
  h[8] = 64;
  h[9] = o.protocol;
  addr4(o.src).copy(h, 12);
  addr4(o.dst).copy(h, 16);
  opts.copy(h, 20);
  return Buffer.concat([h, o.l4]);
}

export interface Ext {
  type: number;
  /** Bytes after next-header and length; padded to the header's unit. */
  body?: Buffer;
  fragOffset?: number;
}

export function ipv6(o: { src: string; dst: string; ext?: Ext[]; next: number; l4: Buffer }): Buffer {
  const exts = o.ext ?? [];
  const parts: Buffer[] = [];
  exts.forEach((e, i) => {
    const next = exts[i + 1]?.type ?? o.next;
    if (e.type === 44) {
      const f = Buffer.alloc(8);
      f[0] = next;
      f.writeUInt16BE((e.fragOffset ?? 0) << 3, 2);
      parts.push(f);
      return;
    }
    const unit = e.type === 51 ? 4 : 8;
    const raw = e.body ?? Buffer.alloc(6);
    const len = Math.ceil((2 + raw.length) / unit) * unit;
    const x = Buffer.alloc(len);
    x[0] = next;
    x[1] = e.type === 51 ? len / 4 - 2 : len / 8 - 1;
    raw.copy(x, 2);
    parts.push(x);
  });
  const rest = Buffer.concat([...parts, o.l4]);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(rest.length, 4);
  h[6] = exts[0]?.type ?? o.next;
  h[7] = 64;
  addr6(o.src).copy(h, 8);
  addr6(o.dst).copy(h, 24);
  return Buffer.concat([h, rest]);
}

export function nlattr(type: number, value: Buffer): Buffer {
  const b = Buffer.alloc((4 + value.length + 3) & ~3);
  b.writeUInt16LE(4 + value.length, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}

export function nlmsg(type: number, payload: Buffer, seq = 0, flags = 0): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  const pad = Buffer.alloc((4 - (payload.length % 4)) % 4);
  return Buffer.concat([h, payload, pad]);
}

export function be(n: number, bytes: 2 | 4): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 2) b.writeUInt16BE(n, 0);
  else b.writeUInt32BE(n, 0);
  return b;
}

export function nflogMsg(o: {
  group: number;
  family?: number;
  hook?: number;
  hwProtocol?: number;
  prefix?: string;
  payload?: Buffer;
  attrs?: [number, Buffer][];
}): Buffer {
  const hdr = Buffer.from([0, 0, o.hook ?? 3, 0]);
  hdr.writeUInt16BE(o.hwProtocol ?? 0x0800, 0);
  const attrs = [
    nlattr(1, hdr),
    ...(o.prefix === undefined ? [] : [nlattr(10, Buffer.from(o.prefix + '\0'))]),
    ...(o.attrs ?? []).map(([t, v]) => nlattr(t, v)),
    ...(o.payload === undefined ? [] : [nlattr(9, o.payload)]),
  ];
  const nfg = Buffer.from([o.family ?? 2, 0, o.group >> 8, o.group & 0xff]);
  return nlmsg(NFLOG_PACKET_TYPE, Buffer.concat([nfg, ...attrs]), 0, 2);
}

// ---- fixtures captured on Linux 6.18 (test/e2e/nflog.test.ts rules, `nft ... log group 7`)

/**
 * One datagram from the output hook: UDP 127.0.0.1 -> :9999 and ::1 -> :9999 ("moat:A:a_x_i0"),
 * TCP SYNs to 127.0.0.1:9998 and [::1]:9998 ("moat:B:syn"), seq 0..3, then NLMSG_DONE.
 */
export const OUTPUT_BATCH = hex(`
7400000000040000000000000000000002000007080001000800030012000a006d6f61743a413a615f785f693000
0000080005000000000108000b000000000008000e000000000008000c0000000000230009004500001fa3984000
401199337f0000017f000001bf20270f000bfe1e68690a00880000000004000000000000000000000a0000070800
010086dd030012000a006d6f61743a413a615f785f6930000000080005000000000108000b000000000008000e00
0000000008000c00000000013800090060094fd1000c114000000000000000000000000000000001000000000000
0000000000000000000188c4270f000c001f6869320a8c0000000004000000000000000000000200000708000100
080003000f000a006d6f61743a423a73796e0000080005000000000108000b000000000008000e00000000000800
0c0000000002400009004500003ca3a04000400699197f0000017f0000018e74270ecdbf017e00000000a002ffd7
fe3000000204ffd70402080a6a13fa7f000000000103030aa00000000004000000000000000000000a0000070800
010086dd03000f000a006d6f61743a423a73796e0000080005000000000108000b000000000008000e0000000000
08000c000000000354000900600a6e7e002806400000000000000000000000000000000100000000000000000000
000000000001c498270e73a85fee00000000a002ffc4003000000204ffc40402080ad83334b3000000000103030a
1400000003000000000000000000000000000007`);

/** Input hook, UDP to 127.0.0.1:9996 on lo: with indev, hwaddr and the kernel's timestamp. */
export const INPUT_PACKET = hex(`
a80000000004000000000000000000000200000708000100080001000e000a006d6f61743a494e3a780000000800
0400000000011000080000060000000000000000000006000f000304000006001100000e00001200100000000000
00000000000000000800000014000300000000006b1101cc000000000004a6e108000c0000000000230009004500
001fe8ef4000401153dc7f0000017f000001a709270c000bfe1e68690a00`);
