import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFlowRecord } from './decode.js';

const ok = {
  time: '2026-12-03T05:31:12.345Z',
  node: 'node-a',
  verdict: 'denied',
  direction: 'ingress',
  protocol: 'TCP',
  family: 'ipv4',
  src: { ip: '10.0.0.1', port: 1234, namespace: 'x', pod: 'a' },
  dst: { ip: '10.0.0.2', port: 80 },
  tcpFlags: 'SYN',
  policies: [
    { kind: 'NetworkPolicy', namespace: 'x', name: 'p', tier: 'NetworkPolicy', rule: 0, action: 'allow' },
  ],
  reason: 'rule-matched',
  summary: 'allowed by x/p ingress[0]',
};

test('decodeFlowRecord: a record, with fields and enum values a newer agent may add', () => {
  assert.deepEqual(decodeFlowRecord(JSON.stringify(ok)), ok);
  const newer = { ...ok, verdict: 'redirected', extra: { a: 1 } };
  assert.deepEqual(decodeFlowRecord(JSON.stringify(newer)), newer);
});

test('decodeFlowRecord: why a line is not a record, with the field path', () => {
  const without = (k: keyof typeof ok) => {
    const o: Record<string, unknown> = { ...ok };
    delete o[k];
    return o;
  };
  const cases: [string, string][] = [
    ['{"time": ', 'not JSON: '],
    ['[1]', 'not a flow record: must be an object'],
    ['"x"', 'not a flow record: must be an object'],
    [JSON.stringify(without('time')), 'not a flow record: time: must be a string'],
    [JSON.stringify(without('src')), 'not a flow record: src: must be an object'],
    [JSON.stringify({ ...ok, dst: { port: 80 } }), 'not a flow record: dst.ip: must be a string'],
    [
      JSON.stringify({ ...ok, src: { ...ok.src, port: '80' } }),
      'not a flow record: src.port: must be an integer',
    ],
    [JSON.stringify({ ...ok, policies: {} }), 'not a flow record: policies: must be an array'],
    [
      JSON.stringify({ ...ok, policies: [ok.policies[0], { kind: 'NetworkPolicy', action: 'deny' }] }),
      'not a flow record: policies[1].name: must be a string',
    ],
    [JSON.stringify({ ...ok, icmp: { type: 8 } }), 'not a flow record: icmp.code: must be an integer'],
  ];
  for (const [line, want] of cases) {
    const got = decodeFlowRecord(line);
    assert.equal(typeof got, 'string', line);
    assert.ok((got as string).startsWith(want), `${line}: ${JSON.stringify(got)}`);
  }
});
