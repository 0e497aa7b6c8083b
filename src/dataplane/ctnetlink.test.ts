import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNetlinkBatch, type NetlinkMessage } from '../netfilter/netlink.js';
import { parseConntrackList, type CtEntry } from './conntrack.js';
import {
  CT_DELETE_TYPE,
  CT_NEW_TYPE,
  decodeCtEntry,
  encodeCtDelete,
  encodeCtDump,
  encodeCtTuple,
} from './ctnetlink.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function att(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc((4 + value.length + 3) & ~3);
  out.writeUInt16LE(4 + value.length, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}
const nest = (type: number, ...kids: Buffer[]): Buffer => att(type | 0x8000, Buffer.concat(kids));
const be16 = (v: number): Buffer => Buffer.from([v >> 8, v & 0xff]);
const be32 = (v: number): Buffer => Buffer.from([v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]);
const v4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));

/** A dump entry message as the kernel sends it: nfgenmsg, then the attributes. */
function dumpMsg(family: number, attrs: Buffer[], type = CT_NEW_TYPE): NetlinkMessage {
  const payload = Buffer.concat([Buffer.from([family, 0, 0, 0]), ...attrs]);
  return { type, flags: 2, seq: 1, pid: 0, payload };
}

// ---- requests, byte for byte

test('encodeCtDump: GET with NLM_F_REQUEST|NLM_F_DUMP, family in nfgenmsg', () => {
  for (const [family, nfg] of [
    [0, '00000000'],
    [2, '02000000'],
    [10, '0a000000'],
  ] as const) {
    assert.deepEqual(encodeCtDump(9, family), hex(`14000000 0101 0103 09000000 00000000 ${nfg}`));
  }
});

const tcp4: CtEntry = {
  family: 4,
  proto: 'tcp',
  protonum: 6,
  orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 40000, dport: 80 },
  reply: { src: '10.0.0.2', dst: '10.0.0.1', sport: 80, dport: 40000 },
};

const deleteCases: [string, CtEntry, boolean, string][] = [
  [
    'tcp v4 with id, acked',
    { ...tcp4, id: 0x01020304 },
    true,
    // nlmsghdr: len 80, CT_DELETE, REQUEST|ACK, seq 7; nfgenmsg AF_INET
    '50000000 0201 0500 07000000 00000000 02000000' +
      // CTA_TUPLE_ORIG { CTA_TUPLE_IP { V4_SRC, V4_DST }, CTA_TUPLE_PROTO { NUM 6, SRC 40000, DST 80 } }
      '34000180 14000180 08000100 0a000001 08000200 0a000002' +
      '1c000280 05000100 06000000 06000200 9c400000 06000300 00500000' +
      // CTA_ID
      '08000c00 01020304',
  ],
  [
    'tcp v4 in zone 5, no id, not acked (only an error answers)',
    { ...tcp4, zone: 5 },
    false,
    '50000000 0201 0100 07000000 00000000 02000000' +
      '34000180 14000180 08000100 0a000001 08000200 0a000002' +
      '1c000280 05000100 06000000 06000200 9c400000 06000300 00500000' +
      // CTA_ZONE, big-endian u16
      '06001200 00050000',
  ],
  [
    'icmp: id, type, code instead of ports',
    {
      family: 4,
      proto: 'icmp',
      protonum: 1,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', icmp: { type: 8, code: 0, id: 0x1234 } },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', icmp: { type: 0, code: 0, id: 0x1234 } },
    },
    true,
    '50000000 0201 0500 07000000 00000000 02000000' +
      '3c000180 14000180 08000100 0a000001 08000200 0a000002' +
      '24000280 05000100 01000000 06000400 12340000 05000500 08000000 05000600 00000000',
  ],
  [
    'udp v6, family AF_INET6',
    {
      family: 6,
      proto: 'udp',
      protonum: 17,
      orig: { src: 'fd00::1', dst: 'fd00::2', sport: 53, dport: 5353 },
      reply: { src: 'fd00::2', dst: 'fd00::1', sport: 5353, dport: 53 },
    },
    true,
    '60000000 0201 0500 07000000 00000000 0a000000' +
      '4c000180 2c000180 14000300 fd000000 00000000 00000000 00000001' +
      '14000400 fd000000 00000000 00000000 00000002' +
      '1c000280 05000100 11000000 06000200 00350000 06000300 14e90000',
  ],
];

for (const [name, e, ack, want] of deleteCases) {
  test(`encodeCtDelete: ${name}`, () => {
    const got = encodeCtDelete(e, 7, ack);
    assert.equal(got.toString('hex'), hex(want).toString('hex'));
    const [m] = parseNetlinkBatch(got);
    assert.equal(m?.type, CT_DELETE_TYPE);
  });
}

test('encodeCtDelete: refuses what it cannot encode', () => {
  const bad: [string, CtEntry][] = [
    ['v6 text in a v4 entry', { ...tcp4, orig: { ...tcp4.orig, src: 'fd00::1' } }],
    ['a port out of range', { ...tcp4, orig: { ...tcp4.orig, sport: 70000 } }],
    ['icmp without its id', { ...tcp4, proto: 'icmp', protonum: 1 }],
    ['a zone out of range', { ...tcp4, zone: 65536 }],
  ];
  for (const [name, e] of bad) assert.throws(() => encodeCtDelete(e, 1), RangeError, name);
});

// ---- dump entries

const tuple4 = (src: string, dst: string, proto: Buffer[]): Buffer[] => [
  nest(1, att(1, v4(src)), att(2, v4(dst))),
  nest(2, ...proto),
];
const tcpPorts = (s: number, d: number): Buffer[] => [
  att(1, Buffer.from([6])),
  att(2, be16(s)),
  att(3, be16(d)),
];

test('decodeCtEntry: a DNATed TCP entry is what parseConntrackList reads from its -L line', () => {
  const msg = dumpMsg(2, [
    nest(1, ...tuple4('10.0.0.3', '10.96.0.10', tcpPorts(5000, 80))),
    nest(2, ...tuple4('10.0.0.9', '10.0.0.3', tcpPorts(8080, 5000))),
    att(3, be32(0x18e)), // CTA_STATUS
    nest(4, nest(1, att(1, Buffer.from([3])))), // CTA_PROTOINFO { TCP { STATE established } }
    att(7, be32(431999)), // CTA_TIMEOUT
    att(8, be32(0)), // CTA_MARK
    att(12, be32(0xdeadbeef)), // CTA_ID
    att(11, be32(1)), // CTA_USE
  ]);
  const got = decodeCtEntry(msg);
  const [line] = parseConntrackList(
    'tcp      6 431999 ESTABLISHED src=10.0.0.3 dst=10.96.0.10 sport=5000 dport=80 src=10.0.0.9 dst=10.0.0.3 sport=8080 dport=5000 [ASSURED] mark=0 use=1\n',
  );
  assert.deepEqual(got, { ...line, id: 0xdeadbeef });
});

const decodeCases: [string, NetlinkMessage, CtEntry | undefined][] = [
  [
    'IPv6 UDP in zone 3: canonical text, zone kept',
    dumpMsg(10, [
      nest(
        1,
        nest(
          1,
          att(3, hex('fd000000000000000000000000000001')),
          att(4, hex('fd000000000000000000000000000abc')),
        ),
        nest(2, att(1, Buffer.from([17])), att(2, be16(53)), att(3, be16(40000))),
      ),
      nest(
        2,
        nest(
          1,
          att(3, hex('fd000000000000000000000000000abc')),
          att(4, hex('fd000000000000000000000000000001')),
        ),
        nest(2, att(1, Buffer.from([17])), att(2, be16(40000)), att(3, be16(53))),
      ),
      att(18, be16(3)),
    ]),
    {
      family: 6,
      proto: 'udp',
      protonum: 17,
      orig: { src: 'fd00::1', dst: 'fd00::abc', sport: 53, dport: 40000 },
      reply: { src: 'fd00::abc', dst: 'fd00::1', sport: 40000, dport: 53 },
      zone: 3,
    },
  ],
  [
    'ICMP: type, code and id, no ports',
    dumpMsg(2, [
      nest(
        1,
        ...tuple4('10.0.0.1', '10.0.0.2', [
          att(1, Buffer.from([1])),
          att(4, be16(7)),
          att(5, Buffer.from([8])),
          att(6, Buffer.from([0])),
        ]),
      ),
      nest(
        2,
        ...tuple4('10.0.0.2', '10.0.0.1', [
          att(1, Buffer.from([1])),
          att(4, be16(7)),
          att(5, Buffer.from([0])),
          att(6, Buffer.from([0])),
        ]),
      ),
    ]),
    {
      family: 4,
      proto: 'icmp',
      protonum: 1,
      orig: { src: '10.0.0.1', dst: '10.0.0.2', icmp: { type: 8, code: 0, id: 7 } },
      reply: { src: '10.0.0.2', dst: '10.0.0.1', icmp: { type: 0, code: 0, id: 7 } },
    },
  ],
  [
    'a protocol conntrack-tools does not name: "unknown", by number',
    dumpMsg(2, [
      nest(1, ...tuple4('10.0.0.1', '10.0.0.2', [att(1, Buffer.from([99]))])),
      nest(2, ...tuple4('10.0.0.2', '10.0.0.1', [att(1, Buffer.from([99]))])),
    ]),
    {
      family: 4,
      proto: 'unknown',
      protonum: 99,
      orig: { src: '10.0.0.1', dst: '10.0.0.2' },
      reply: { src: '10.0.0.2', dst: '10.0.0.1' },
    },
  ],
  [
    'typed CT_GET (some kernels): read the same',
    dumpMsg(
      2,
      [
        nest(1, ...tuple4('10.0.0.1', '10.0.0.2', tcpPorts(1, 2))),
        nest(2, ...tuple4('10.0.0.2', '10.0.0.1', tcpPorts(2, 1))),
      ],
      0x101,
    ),
    { ...tcp4, orig: { ...tcp4.orig, sport: 1, dport: 2 }, reply: { ...tcp4.reply, sport: 2, dport: 1 } },
  ],
  ['no reply tuple', dumpMsg(2, [nest(1, ...tuple4('10.0.0.1', '10.0.0.2', tcpPorts(1, 2)))]), undefined],
  [
    'an IPv6 address in an IPv4 entry',
    dumpMsg(2, [
      nest(
        1,
        nest(1, att(1, hex('fd000000000000000000000000000001')), att(2, v4('10.0.0.2'))),
        nest(2, ...tcpPorts(1, 2)),
      ),
      nest(2, ...tuple4('10.0.0.2', '10.0.0.1', tcpPorts(2, 1))),
    ]),
    undefined,
  ],
  ['an attribute longer than the message', dumpMsg(2, [hex('ff000180 00000000')]), undefined],
  ['family bridge', dumpMsg(7, [nest(1, ...tuple4('10.0.0.1', '10.0.0.2', tcpPorts(1, 2)))]), undefined],
  ['not a conntrack message', { type: 3, flags: 0, seq: 1, pid: 0, payload: Buffer.alloc(4) }, undefined],
  ['short of nfgenmsg', { type: CT_NEW_TYPE, flags: 0, seq: 1, pid: 0, payload: Buffer.alloc(2) }, undefined],
];

for (const [name, msg, want] of decodeCases) {
  test(`decodeCtEntry: ${name}`, () => assert.deepEqual(decodeCtEntry(msg), want));
}

test('decodeCtEntry reads what encodeCtTuple writes, for every entry of the delete cases', () => {
  for (const [name, e] of deleteCases) {
    const msg = dumpMsg(e.family === 4 ? 2 : 10, [
      nest(1, ...encodeCtTuple(e, e.orig)),
      nest(2, ...encodeCtTuple(e, e.reply)),
      ...(e.zone !== undefined ? [att(18, be16(e.zone))] : []),
      ...(e.id !== undefined ? [att(12, be32(e.id))] : []),
    ]);
    assert.deepEqual(decodeCtEntry(msg), e, name);
  }
});
