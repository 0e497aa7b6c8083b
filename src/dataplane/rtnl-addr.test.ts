import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetlinkMessage } from '../netfilter/netlink.js';
import { decodeAddr, encodeAddrDump, RTM_NEWADDR } from './rtnl-addr.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function att(type: number, value: Buffer): Buffer {
  const out = Buffer.alloc((4 + value.length + 3) & ~3);
  out.writeUInt16LE(4 + value.length, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

/** RTM_NEWADDR: ifaddrmsg {family, prefixlen, flags, scope, index}, then the attributes. */
function addrMsg(family: number, attrs: Buffer[], type = RTM_NEWADDR): NetlinkMessage {
  const ifa = Buffer.from([family, 24, 0, 0, 2, 0, 0, 0]);
  return { type, flags: 2, seq: 1, pid: 0, payload: Buffer.concat([ifa, ...attrs]) };
}

test('encodeAddrDump: RTM_GETADDR, NLM_F_REQUEST|NLM_F_DUMP, AF_UNSPEC', () => {
  assert.deepEqual(encodeAddrDump(5), hex('18000000 1600 0103 05000000 00000000 00000000 00000000'));
});

const cases: [string, NetlinkMessage, string | undefined][] = [
  [
    'IPv4: IFA_LOCAL',
    addrMsg(2, [att(1, hex('0a000001')), att(2, hex('0a000001')), att(3, Buffer.from('eth0\0'))]),
    '10.0.0.1',
  ],
  [
    'IPv4 point-to-point: IFA_LOCAL, not the peer',
    addrMsg(2, [att(1, hex('0a0000fe')), att(2, hex('0a000001'))]),
    '10.0.0.1',
  ],
  [
    'IPv6: IFA_ADDRESS, canonical text',
    addrMsg(10, [att(1, hex('fd000000000000000000000000000abc'))]),
    'fd00::abc',
  ],
  ['another family', addrMsg(17, [att(1, hex('0a000001'))]), undefined],
  ['no address', addrMsg(2, [att(3, Buffer.from('lo\0'))]), undefined],
  ['an address of the wrong size', addrMsg(2, [att(1, hex('0a0000'))]), undefined],
  ['an attribute past the end', addrMsg(2, [hex('ff000100 0a000001')]), undefined],
  ['not RTM_NEWADDR', addrMsg(2, [att(1, hex('0a000001'))], 3), undefined],
];
for (const [name, msg, want] of cases) {
  test(`decodeAddr: ${name}`, () => assert.equal(decodeAddr(msg), want));
}
