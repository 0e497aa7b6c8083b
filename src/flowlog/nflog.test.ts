import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatAddress } from '../model/cidr.js';
import {
  decodeIpPacket,
  decodeNetlinkAck,
  decodeNflogPacket,
  encodeNflogConfig,
  NFLOG_PACKET_TYPE,
  NFULNL_CFG_F_SEQ,
  parseNetlinkBatch,
  tcpFlagsText,
  type NflogConfigItem,
  type PacketInfo,
  type ParseErrors,
} from './nflog.js';
import {
  hex,
  TCP,
  tcp,
  udp,
  sctp,
  icmp,
  ipv4,
  ipv6,
  nlattr,
  nlmsg,
  be,
  nflogMsg,
  OUTPUT_BATCH,
  INPUT_PACKET,
} from '../../test/support/nflog.js';

// ---- encodeNflogConfig

const configCases: [string, number, NflogConfigItem[], string][] = [
  ['bind', 7, [{ kind: 'bind' }], '05000100 01000000'],
  ['unbind', 7, [{ kind: 'unbind' }], '05000100 02000000'],
  ['mode 128', 7, [{ kind: 'mode', copyRange: 128 }], '0a000200 00000080 0200 0000'],
  ['mode meta', 7, [{ kind: 'mode', copyRange: 0, copyMode: 'meta' }], '0a000200 00000000 0100 0000'],
  ['flags seq', 7, [{ kind: 'flags', flags: NFULNL_CFG_F_SEQ }], '06000600 0001 0000'],
  ['timeout 100ms', 7, [{ kind: 'timeout', ms: 100 }], '08000400 0000000a'],
  ['qthresh', 7, [{ kind: 'qthresh', packets: 50 }], '08000500 00000032'],
  ['nlbufsiz', 7, [{ kind: 'nlbufsiz', bytes: 65536 }], '08000300 00010000'],
  ['group 300', 300, [{ kind: 'bind' }], '05000100 01000000'],
  [
    'bind and mode in one request',
    7,
    [{ kind: 'bind' }, { kind: 'mode', copyRange: 128 }],
    '05000100 01000000 0a000200 00000080 0200 0000',
  ],
];

for (const [name, group, items, attrs] of configCases) {
  test(`encodeNflogConfig: ${name}`, () => {
    const msg = encodeNflogConfig(group, items, 42);
    const body = hex(attrs);
    const nfg = Buffer.from([0, 0, group >> 8, group & 0xff]);
    const want = Buffer.concat([Buffer.alloc(16), nfg, body]);
    want.writeUInt32LE(want.length, 0);
    want.writeUInt16LE(0x0401, 4); // NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG
    want.writeUInt16LE(1 | 4, 6); // NLM_F_REQUEST | NLM_F_ACK
    want.writeUInt32LE(42, 8);
    assert.equal(msg.toString('hex'), want.toString('hex'));
  });
}

test('encodeNflogConfig: the prototype verified on Linux: bind group 7', () => {
  assert.equal(
    encodeNflogConfig(7, [{ kind: 'bind' }], 1).toString('hex'),
    '1c000000010405000100000000000000' + '00000007' + '0500010001000000',
  );
});

test('encodeNflogConfig: out-of-range values are programmer errors', () => {
  assert.throws(() => encodeNflogConfig(65536, [{ kind: 'bind' }]), /NFLOG group: 65536/);
  assert.throws(() => encodeNflogConfig(1, [{ kind: 'mode', copyRange: -1 }]), /copyRange/);
  assert.throws(() => encodeNflogConfig(1, [{ kind: 'flags', flags: 0x10000 }]), /flags/);
});

// ---- parseNetlinkBatch

test('parseNetlinkBatch: the captured output-hook datagram: 4 packets and NLMSG_DONE', () => {
  const errors: ParseErrors = { count: 0 };
  const msgs = parseNetlinkBatch(OUTPUT_BATCH, errors);
  assert.equal(errors.count, 0);
  assert.deepEqual(
    msgs.map((m) => [m.type, m.payload.length + 16]),
    [
      [0x400, 116],
      [0x400, 136],
      [0x400, 140],
      [0x400, 160],
      [3, 20],
    ],
  );
});

test('parseNetlinkBatch: two synthetic messages in one datagram, unaligned lengths padded', () => {
  const a = nflogMsg({
    group: 7,
    prefix: 'moat:A',
    payload: ipv4({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, l4: udp(1, 2) }),
  });
  const b = nflogMsg({ group: 7, prefix: 'moat:B:xyz', payload: Buffer.from([0x45]) });
  const msgs = parseNetlinkBatch(Buffer.concat([a, b]));
  assert.deepEqual(
    msgs.map((m) => decodeNflogPacket(m)?.prefix),
    ['moat:A', 'moat:B:xyz'],
  );
});

const badBatches: [string, Buffer, number][] = [
  ['empty', Buffer.alloc(0), 0],
  ['10 bytes', Buffer.alloc(10), 0],
  ['length 0', Buffer.alloc(16), 0],
  [
    'length past the end',
    Buffer.concat([nlmsg(3, Buffer.alloc(4)), hex('ff000000 0300 0000 00000000 00000000')]),
    1,
  ],
  ['a good message then 7 bytes', Buffer.concat([nlmsg(3, Buffer.alloc(4)), Buffer.alloc(7)]), 1],
];

for (const [name, buf, good] of badBatches) {
  test(`parseNetlinkBatch: ${name}: what it could, and the error counted`, () => {
    const errors: ParseErrors = { count: 0 };
    const msgs = parseNetlinkBatch(buf, errors);
    assert.equal(msgs.length, good);
    assert.equal(errors.count, buf.length === 0 ? 0 : 1);
    if (buf.length > 0) assert.match(errors.last ?? '', /\w/);
  });
}

test('parseNetlinkBatch and decodeNflogPacket: every truncation of the captured datagram', () => {
  const full = parseNetlinkBatch(OUTPUT_BATCH).map(decodeNflogPacket);
  for (let n = 0; n <= OUTPUT_BATCH.length; n++) {
    const errors: ParseErrors = { count: 0 };
    const msgs = parseNetlinkBatch(OUTPUT_BATCH.subarray(0, n), errors);
    // Only whole messages come back, and they are the first ones of the datagram.
    msgs.forEach((m, i) => assert.deepEqual(decodeNflogPacket(m), full[i], `n=${n} message ${i}`));
    const whole = [116, 136, 140, 160, 20].reduce<number[]>((acc, l) => [...acc, (acc.at(-1) ?? 0) + l], []);
    assert.equal(msgs.length, whole.filter((end) => end <= n).length, `n=${n}`);
    assert.equal(errors.count, whole.includes(n) || n === 0 ? 0 : 1, `n=${n}`);
  }
});

test('parseNetlinkBatch, decodeNflogPacket, decodeIpPacket never throw on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (bytes, flip) => {
      const buf = Buffer.from(bytes);
      for (const m of parseNetlinkBatch(buf, { count: 0 })) decodeNflogPacket(m);
      decodeIpPacket(buf);
      // Random damage to a real datagram, too.
      const real = Buffer.from(OUTPUT_BATCH);
      const i = flip % real.length;
      real[i] = real[i]! ^ (bytes[0] ?? 0xff);
      for (const m of parseNetlinkBatch(real, { count: 0 })) {
        const p = decodeNflogPacket(m);
        if (p) decodeIpPacket(p.payload);
      }
    }),
    { numRuns: 2000 },
  );
});

// ---- decodeNetlinkAck

test('decodeNetlinkAck: success and EPERM, as the kernel sent them', () => {
  const [ok] = parseNetlinkBatch(
    hex('240000000200000101000000696b00080000000038000000010405000100000000000000'),
  );
  assert.deepEqual(decodeNetlinkAck(ok!), { errno: 0, seq: 1 });
  const [eperm] = parseNetlinkBatch(
    hex(
      '4c0000000200000001000000676a0008ffffffff380000000104050001000000000000000000000705000100010000000a00020000000080020000000600060000010000080004000000000a',
    ),
  );
  assert.deepEqual(decodeNetlinkAck(eperm!), { errno: 1, seq: 1 });
  assert.equal(decodeNetlinkAck({ type: 2, flags: 0, seq: 0, pid: 0, payload: Buffer.alloc(2) }), undefined);
  assert.equal(decodeNetlinkAck({ type: 3, flags: 0, seq: 0, pid: 0, payload: Buffer.alloc(4) }), undefined);
});

// ---- decodeNflogPacket

test('decodeNflogPacket: the captured output-hook batch', () => {
  const pkts = parseNetlinkBatch(OUTPUT_BATCH).map(decodeNflogPacket);
  assert.equal(pkts[4], undefined, 'NLMSG_DONE is no packet');
  const [a, b, c, d] = pkts;
  const common = { group: 7, hook: 3, outdev: 1, uid: 0, gid: 0 };
  assert.deepEqual(
    { ...a!, payload: a!.payload.length },
    { ...common, family: 2, prefix: 'moat:A:a_x_i0', hwProtocol: 0x0800, seq: 0, payload: 31 },
  );
  assert.deepEqual(
    { ...b!, payload: b!.payload.length },
    { ...common, family: 10, prefix: 'moat:A:a_x_i0', hwProtocol: 0x86dd, seq: 1, payload: 52 },
  );
  assert.equal(c!.prefix, 'moat:B:syn');
  assert.equal(d!.seq, 3);
  assert.deepEqual(decodeIpPacket(a!.payload), {
    family: 'ipv4',
    src: '127.0.0.1',
    dst: '127.0.0.1',
    protocol: 17,
    protocolName: 'UDP',
    srcPort: 48928,
    dstPort: 9999,
  });
  assert.deepEqual(decodeIpPacket(b!.payload), {
    family: 'ipv6',
    src: '::1',
    dst: '::1',
    protocol: 17,
    protocolName: 'UDP',
    srcPort: 35012,
    dstPort: 9999,
  });
  assert.deepEqual(
    [c, d]
      .map((p) => decodeIpPacket(p!.payload))
      .map((i) => [i?.family, i?.protocolName, i?.dstPort, i?.tcpFlags]),
    [
      ['ipv4', 'TCP', 9998, 'SYN'],
      ['ipv6', 'TCP', 9998, 'SYN'],
    ],
  );
});

test('decodeNflogPacket: the captured input-hook packet has indev, hwaddr and the timestamp', () => {
  const [m] = parseNetlinkBatch(INPUT_PACKET);
  const p = decodeNflogPacket(m!);
  assert.ok(p);
  assert.equal(p.prefix, 'moat:IN:x');
  assert.equal(p.hook, 1);
  assert.equal(p.indev, 1);
  assert.equal(p.outdev, undefined);
  assert.equal(p.hwaddr, '00:00:00:00:00:00');
  assert.equal(p.timestamp?.toISOString(), '2026-12-03T05:44:44.304Z');
  assert.equal(decodeIpPacket(p.payload)?.dstPort, 9996);
});

test('decodeNflogPacket: attributes', () => {
  const ts = Buffer.alloc(16);
  ts.writeBigUInt64BE(1700000000n, 0);
  ts.writeBigUInt64BE(123999n, 8);
  const hw = hex('0006 0000 0a0b0c0d0e0f 0000');
  const m = nflogMsg({
    group: 300,
    family: 10,
    hook: 0,
    hwProtocol: 0x86dd,
    prefix: 'moat:ü',
    payload: Buffer.from([1, 2, 3]),
    attrs: [
      [2, be(0xdeadbeef, 4)],
      [3, ts],
      [4, be(5, 4)],
      [5, be(6, 4)],
      [8, hw],
      [11, be(1000, 4)],
      [14, be(1001, 4)],
      [12, be(9, 4)],
      [13, be(99, 4)],
      [0x8000 | 18, Buffer.alloc(8)], // a nested conntrack attribute: skipped
    ],
  });
  const p = decodeNflogPacket(parseNetlinkBatch(m)[0]!);
  assert.deepEqual(p, {
    group: 300,
    family: 10,
    prefix: 'moat:ü',
    hook: 0,
    hwProtocol: 0x86dd,
    mark: 0xdeadbeef,
    timestamp: new Date(1700000000123),
    indev: 5,
    outdev: 6,
    hwaddr: '0a:0b:0c:0d:0e:0f',
    uid: 1000,
    gid: 1001,
    seq: 9,
    seqGlobal: 99,
    payload: Buffer.from([1, 2, 3]),
  });
});

test('decodeNflogPacket: no prefix, no payload (copy mode meta)', () => {
  const p = decodeNflogPacket(parseNetlinkBatch(nflogMsg({ group: 1 }))[0]!);
  assert.deepEqual(
    { ...p!, payload: p!.payload.length },
    { group: 1, family: 2, prefix: '', hook: 3, hwProtocol: 0x800, payload: 0 },
  );
});

const badPackets: [string, Buffer][] = [
  ['a config message', nlmsg(0x401, Buffer.alloc(8))],
  ['no nfgenmsg', nlmsg(NFLOG_PACKET_TYPE, Buffer.alloc(2))],
  [
    'no packet header',
    nlmsg(NFLOG_PACKET_TYPE, Buffer.concat([Buffer.alloc(4), nlattr(10, Buffer.from('x\0'))])),
  ],
  [
    'a short packet header',
    nlmsg(NFLOG_PACKET_TYPE, Buffer.concat([Buffer.alloc(4), nlattr(1, Buffer.alloc(2))])),
  ],
  ['a short timestamp', nflogMsg({ group: 1, attrs: [[3, Buffer.alloc(8)]] })],
  ['a short ifindex', nflogMsg({ group: 1, attrs: [[4, Buffer.alloc(2)]] })],
  [
    'an attribute past the end',
    nlmsg(
      NFLOG_PACKET_TYPE,
      Buffer.concat([Buffer.alloc(4), nlattr(1, Buffer.alloc(4)), hex('2000 0900 00000000')]),
    ),
  ],
  [
    'an attribute of length 2',
    nlmsg(NFLOG_PACKET_TYPE, Buffer.concat([Buffer.alloc(4), nlattr(1, Buffer.alloc(4)), hex('0200 0900')])),
  ],
];

for (const [name, buf] of badPackets) {
  test(`decodeNflogPacket: ${name}: undefined`, () => {
    const [m] = parseNetlinkBatch(buf);
    assert.ok(m);
    assert.equal(decodeNflogPacket(m), undefined);
  });
}

// ---- decodeIpPacket

const V4 = { src: '10.1.2.3', dst: '192.168.0.10' };
const V6 = { src: 'fd00:250::1', dst: '2001:db8:0:0:a:0:0:1' };
const v4 = { family: 'ipv4', ...V4 } as const;
// Two runs of two zero groups: RFC 5952 compresses the first.
const v6 = { family: 'ipv6', src: 'fd00:250::1', dst: '2001:db8::a:0:0:1' } as const;

const ipCases: [string, Buffer, PacketInfo | undefined][] = [
  [
    'IPv4 TCP SYN',
    ipv4({ ...V4, protocol: 6, l4: tcp(40000, 80, TCP.SYN) }),
    { ...v4, protocol: 6, protocolName: 'TCP', srcPort: 40000, dstPort: 80, tcpFlags: 'SYN' },
  ],
  [
    'IPv4 TCP SYN|ACK',
    ipv4({ ...V4, protocol: 6, l4: tcp(80, 40000, TCP.SYN | TCP.ACK) }),
    { ...v4, protocol: 6, protocolName: 'TCP', srcPort: 80, dstPort: 40000, tcpFlags: 'SYN|ACK' },
  ],
  [
    'IPv4 TCP no flags',
    ipv4({ ...V4, protocol: 6, l4: tcp(1, 2, 0) }),
    { ...v4, protocol: 6, protocolName: 'TCP', srcPort: 1, dstPort: 2, tcpFlags: 'NONE' },
  ],
  [
    'IPv4 UDP',
    ipv4({ ...V4, protocol: 17, l4: udp(5353, 53) }),
    { ...v4, protocol: 17, protocolName: 'UDP', srcPort: 5353, dstPort: 53 },
  ],
  [
    'IPv4 SCTP',
    ipv4({ ...V4, protocol: 132, l4: sctp(5000, 5001) }),
    { ...v4, protocol: 132, protocolName: 'SCTP', srcPort: 5000, dstPort: 5001 },
  ],
  [
    'IPv4 ICMP echo',
    ipv4({ ...V4, protocol: 1, l4: icmp(8, 0) }),
    { ...v4, protocol: 1, protocolName: 'ICMP', icmp: { type: 8, code: 0 } },
  ],
  [
    'IPv4 GRE: no ports',
    ipv4({ ...V4, protocol: 47, l4: Buffer.alloc(8) }),
    { ...v4, protocol: 47, protocolName: '47' },
  ],
  [
    'IPv4 with 8 bytes of options',
    ipv4({ ...V4, protocol: 17, options: hex('94040000 01010100'), l4: udp(7, 9) }),
    { ...v4, protocol: 17, protocolName: 'UDP', srcPort: 7, dstPort: 9 },
  ],
  [
    'IPv4 options cut by the copy range',
    ipv4({ ...V4, protocol: 17, options: Buffer.alloc(40), l4: udp(7, 9) }).subarray(0, 40),
    { ...v4, protocol: 17, protocolName: 'UDP', truncated: true },
  ],
  [
    'IPv4 first fragment has ports',
    ipv4({ ...V4, protocol: 17, moreFragments: true, l4: udp(7, 9) }),
    { ...v4, protocol: 17, protocolName: 'UDP', srcPort: 7, dstPort: 9 },
  ],
  [
    'IPv4 later fragment: no ports',
    ipv4({ ...V4, protocol: 17, fragOffset: 185, l4: udp(7, 9) }),
    { ...v4, protocol: 17, protocolName: 'UDP', laterFragment: true },
  ],
  [
    'IPv4 TCP cut after the ports',
    ipv4({ ...V4, protocol: 6, l4: tcp(1, 2, TCP.SYN) }).subarray(0, 28),
    { ...v4, protocol: 6, protocolName: 'TCP', srcPort: 1, dstPort: 2, truncated: true },
  ],
  [
    'IPv4 UDP cut inside the ports',
    ipv4({ ...V4, protocol: 17, l4: udp(1, 2) }).subarray(0, 22),
    { ...v4, protocol: 17, protocolName: 'UDP', truncated: true },
  ],
  [
    'IPv4 tot_len 0 (GSO): the copy bounds it',
    ipv4({ ...V4, protocol: 6, l4: tcp(1, 2, TCP.ACK), totLen: 0 }),
    { ...v4, protocol: 6, protocolName: 'TCP', srcPort: 1, dstPort: 2, tcpFlags: 'ACK' },
  ],
  [
    'IPv4 tot_len shorter than the copy: trailing bytes are not the transport header',
    ipv4({ ...V4, protocol: 17, l4: udp(1, 2), totLen: 22 }),
    { ...v4, protocol: 17, protocolName: 'UDP', truncated: true },
  ],
  ['IPv4 header cut: undefined', ipv4({ ...V4, protocol: 17, l4: udp(1, 2) }).subarray(0, 19), undefined],
  ['IPv4 IHL 4: undefined', Buffer.concat([Buffer.from([0x44]), Buffer.alloc(30)]), undefined],
  [
    'IPv6 TCP SYN',
    ipv6({ ...V6, next: 6, l4: tcp(40000, 443, TCP.SYN) }),
    { ...v6, protocol: 6, protocolName: 'TCP', srcPort: 40000, dstPort: 443, tcpFlags: 'SYN' },
  ],
  [
    'IPv6 UDP',
    ipv6({ ...V6, next: 17, l4: udp(1, 53) }),
    { ...v6, protocol: 17, protocolName: 'UDP', srcPort: 1, dstPort: 53 },
  ],
  [
    'IPv6 SCTP',
    ipv6({ ...V6, next: 132, l4: sctp(5000, 5000) }),
    { ...v6, protocol: 132, protocolName: 'SCTP', srcPort: 5000, dstPort: 5000 },
  ],
  [
    'ICMPv6 echo request',
    ipv6({ ...V6, next: 58, l4: icmp(128, 0) }),
    { ...v6, protocol: 58, protocolName: 'ICMPv6', icmp: { type: 128, code: 0 } },
  ],
  [
    'IPv6 hop-by-hop, routing, dest options, then UDP',
    ipv6({
      ...V6,
      ext: [{ type: 0 }, { type: 43, body: Buffer.alloc(22) }, { type: 60 }],
      next: 17,
      l4: udp(3, 4),
    }),
    { ...v6, protocol: 17, protocolName: 'UDP', srcPort: 3, dstPort: 4 },
  ],
  [
    'IPv6 AH (4-byte units) then TCP',
    ipv6({ ...V6, ext: [{ type: 51, body: Buffer.alloc(22) }], next: 6, l4: tcp(5, 6, TCP.SYN) }),
    { ...v6, protocol: 6, protocolName: 'TCP', srcPort: 5, dstPort: 6, tcpFlags: 'SYN' },
  ],
  [
    'IPv6 first fragment has ports',
    ipv6({ ...V6, ext: [{ type: 44, fragOffset: 0 }], next: 17, l4: udp(3, 4) }),
    { ...v6, protocol: 17, protocolName: 'UDP', srcPort: 3, dstPort: 4 },
  ],
  [
    'IPv6 later fragment: no ports',
    ipv6({ ...V6, ext: [{ type: 0 }, { type: 44, fragOffset: 100 }], next: 17, l4: udp(3, 4) }),
    { ...v6, protocol: 17, protocolName: 'UDP', laterFragment: true },
  ],
  [
    'IPv6 no next header',
    ipv6({ ...V6, next: 59, l4: Buffer.alloc(0) }),
    { ...v6, protocol: 59, protocolName: '59' },
  ],
  [
    'IPv6 extension headers past the copy: the header where it stopped, truncated',
    ipv6({
      ...V6,
      ext: [{ type: 0, body: Buffer.alloc(100) }, { type: 60 }],
      next: 17,
      l4: udp(3, 4),
    }).subarray(0, 128),
    { ...v6, protocol: 60, protocolName: '60', truncated: true },
  ],
  [
    'IPv6 UDP cut inside the ports',
    ipv6({ ...V6, next: 17, l4: udp(3, 4) }).subarray(0, 42),
    { ...v6, protocol: 17, protocolName: 'UDP', truncated: true },
  ],
  [
    'IPv4-mapped and all-zero addresses',
    ipv6({ src: '::ffff:a01:203', dst: '::', next: 17, l4: udp(1, 2) }),
    {
      family: 'ipv6',
      src: '::ffff:a01:203',
      dst: '::',
      protocol: 17,
      protocolName: 'UDP',
      srcPort: 1,
      dstPort: 2,
    },
  ],
  ['IPv6 header cut: undefined', ipv6({ ...V6, next: 17, l4: udp(1, 2) }).subarray(0, 39), undefined],
  ['not IP (version 5)', Buffer.from([0x50, ...Buffer.alloc(40)]), undefined],
  ['empty', Buffer.alloc(0), undefined],
];

for (const [name, buf, want] of ipCases) {
  test(`decodeIpPacket: ${name}`, () => {
    assert.deepEqual(decodeIpPacket(buf), want);
  });
}

test('decodeIpPacket: a cut copy never shows a field the whole packet does not have', () => {
  for (const [name, buf, want] of ipCases) {
    if (!want) continue;
    for (let n = 0; n <= buf.length; n++) {
      const got = decodeIpPacket(buf.subarray(0, n));
      if (!got) continue;
      for (const [k, v] of Object.entries(got)) {
        if (k === 'truncated') continue;
        // Where a truncated IPv6 chain stopped is reported as its protocol, and flagged.
        if (k === 'protocol' || k === 'protocolName') {
          if (got.truncated) continue;
        }
        assert.deepEqual(v, (want as unknown as Record<string, unknown>)[k], `${name}: n=${n}: ${k}`);
      }
    }
  }
});

test('tcpFlagsText', () => {
  assert.equal(tcpFlagsText(TCP.FIN | TCP.ACK), 'FIN|ACK');
  assert.equal(tcpFlagsText(TCP.RST), 'RST');
  assert.equal(tcpFlagsText(0xff), 'FIN|SYN|RST|PSH|ACK|URG|ECE|CWR');
});

test('decodeIpPacket: IPv6 text is formatAddress (RFC 5952) for any address', () => {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  const address = fc.array(group, { minLength: 8, maxLength: 8 });
  fc.assert(
    fc.property(address, address, (a, b) => {
      const text = (g: number[]): string =>
        formatAddress({ family: 6, value: g.reduce((v, x) => (v << 16n) | BigInt(x), 0n) });
      const pkt = ipv6({ src: text(a), dst: text(b), next: 17, l4: udp(1, 2) });
      const got = decodeIpPacket(pkt);
      assert.equal(got?.src, text(a));
      assert.equal(got?.dst, text(b));
    }),
    { numRuns: 3000 },
  );
});
