import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decidingHit,
  formatCompact,
  formatEndpoint,
  formatHit,
  formatJson,
  formatProtocol,
  formatTable,
} from './format.js';
import type { FlowRecord, PolicyHit } from './record.js';

const denied: FlowRecord = {
  time: '2026-12-03T05:31:12.345Z',
  node: 'node-a',
  verdict: 'denied',
  direction: 'ingress',
  protocol: 'TCP',
  family: 'ipv4',
  src: { ip: '10.244.1.7', port: 41234, namespace: 'shop', pod: 'web', labels: { app: 'web' } },
  dst: { ip: '10.244.2.9', port: 5432, namespace: 'shop', pod: 'db' },
  tcpFlags: 'SYN',
  policies: [
    { kind: 'NetworkPolicy', namespace: 'shop', name: 'default-deny', tier: 'NetworkPolicy', action: 'deny' },
  ],
  reason: 'no-rule-matched',
  summary: 'isolated by shop/default-deny; no rule matched',
};
const np = (name: string, action: PolicyHit['action'], rule?: number): PolicyHit => ({
  kind: 'NetworkPolicy',
  namespace: 'shop',
  name,
  tier: 'NetworkPolicy',
  ...(rule !== undefined ? { rule } : {}),
  action,
});
const anp = (name: string, action: PolicyHit['action'], ruleName?: string): PolicyHit => ({
  kind: 'AdminNetworkPolicy',
  name,
  tier: 'Admin',
  rule: 0,
  ...(ruleName !== undefined ? { ruleName } : {}),
  action,
});
const { tcpFlags: _, ...noFlags } = denied;
const dns: FlowRecord = {
  ...noFlags,
  time: '2026-12-03T05:31:10.001Z',
  node: 'node-b',
  direction: 'egress',
  protocol: 'UDP',
  src: { ip: '10.244.1.7', port: 40001, namespace: 'shop', pod: 'web' },
  dst: { ip: '8.8.8.8', port: 53 },
  policies: [anp('no-external-dns', 'deny', 'r1')],
  reason: 'admin-deny',
  summary: 'denied by AdminNetworkPolicy no-external-dns rule "r1"',
};
const ping: FlowRecord = {
  ...noFlags,
  time: '2026-12-03T05:32:00.000Z',
  verdict: 'allowed',
  protocol: 'ICMPv6',
  family: 'ipv6',
  src: { ip: 'fd00::5' },
  dst: { ip: 'fd00:244::3', namespace: 'monitoring', pod: 'prom' },
  icmp: { type: 128, code: 0 },
  policies: [],
  reason: 'not-isolated',
  summary: 'no policy selects monitoring/prom for ingress',
};

test('formatCompact: one line, as hubble observe', () => {
  assert.equal(
    formatCompact(denied),
    '2026-12-03T05:31:12.345Z node-a  shop/web:41234 -> shop/db:5432 TCP SYN  denied  ingress  isolated by shop/default-deny; no rule matched',
  );
  assert.equal(
    formatCompact(dns),
    '2026-12-03T05:31:10.001Z node-b  shop/web:40001 -> 8.8.8.8:53 UDP  denied  egress  denied by AdminNetworkPolicy no-external-dns rule "r1"',
  );
  assert.equal(
    formatCompact(ping),
    '2026-12-03T05:32:00.000Z node-a  fd00::5 -> monitoring/prom ICMPv6 echo-request  allowed  ingress  no policy selects monitoring/prom for ingress',
  );
});

test('formatEndpoint and formatProtocol', () => {
  const cases: [Parameters<typeof formatEndpoint>[0], string][] = [
    [{ ip: '10.0.0.1', port: 80, namespace: 'x', pod: 'a' }, 'x/a:80'],
    [{ ip: '10.0.0.1', namespace: 'x', pod: 'a' }, 'x/a'],
    [{ ip: '10.0.0.1', port: 80 }, '10.0.0.1:80'],
    [{ ip: 'fd00::1', port: 80 }, '[fd00::1]:80'],
    [{ ip: 'fd00::1' }, 'fd00::1'],
    // A namespace without a pod is no pod's address.
    [{ ip: '10.0.0.1', port: 80, namespace: 'x' }, '10.0.0.1:80'],
  ];
  for (const [e, want] of cases) assert.equal(formatEndpoint(e), want);
  const protos: [Partial<FlowRecord>, string][] = [
    [{ protocol: 'TCP', tcpFlags: 'SYN' }, 'TCP SYN'],
    [{ protocol: 'TCP', tcpFlags: '' }, 'TCP'],
    [{ protocol: 'SCTP' }, 'SCTP'],
    [{ protocol: 'ICMP', family: 'ipv4', icmp: { type: 8, code: 0 } }, 'ICMP echo-request'],
    [{ protocol: 'ICMP', family: 'ipv4', icmp: { type: 0, code: 0 } }, 'ICMP echo-reply'],
    [{ protocol: 'ICMP', family: 'ipv4', icmp: { type: 3, code: 13 } }, 'ICMP type 3 code 13'],
    [{ protocol: 'ICMPv6', family: 'ipv6', icmp: { type: 129, code: 0 } }, 'ICMPv6 echo-reply'],
    [{ protocol: 'ICMPv6', family: 'ipv6', icmp: { type: 8, code: 0 } }, 'ICMPv6 type 8 code 0'],
    [{ protocol: '47' }, '47'],
  ];
  for (const [over, want] of protos) assert.equal(formatProtocol({ ...noFlags, ...over }), want);
});

test('decidingHit: the hit of the reason, not a Pass nor the isolation under an admitting rule', () => {
  const cases: [string, Partial<FlowRecord>, string][] = [
    ['isolation', {}, 'np shop/default-deny'],
    [
      'two isolating policies',
      { policies: [np('default-deny', 'deny'), np('db-only', 'deny')] },
      'np shop/default-deny +1',
    ],
    [
      'admitted under isolation',
      {
        verdict: 'allowed',
        reason: 'rule-matched',
        policies: [np('default-deny', 'deny'), np('allow-web', 'allow', 0), np('allow-all', 'allow', 2)],
      },
      'np shop/allow-web [ingress 0] +1',
    ],
    [
      'egress rule',
      { direction: 'egress', verdict: 'allowed', reason: 'rule-matched', policies: [np('out', 'allow', 3)] },
      'np shop/out [egress 3]',
    ],
    [
      'admin Pass, then the NetworkPolicy',
      {
        verdict: 'allowed',
        reason: 'rule-matched',
        policies: [anp('tenants', 'pass', 'p'), np('a', 'allow', 0)],
      },
      'np shop/a [ingress 0]',
    ],
    ['admin rule by name', { reason: 'admin-deny', policies: [anp('x', 'deny', 'r1')] }, 'anp x rule "r1"'],
    [
      'admin rule without a name',
      { reason: 'admin-deny', policies: [anp('x', 'deny')] },
      'anp x [ingress 0]',
    ],
    [
      'baseline',
      {
        reason: 'baseline-deny',
        policies: [
          { kind: 'BaselineAdminNetworkPolicy', name: 'default', tier: 'Baseline', rule: 1, action: 'deny' },
        ],
      },
      'banp default [ingress 1]',
    ],
    [
      'cluster network policy',
      {
        verdict: 'allowed',
        reason: 'admin-accept',
        policies: [
          {
            kind: 'ClusterNetworkPolicy',
            name: 'c',
            tier: 'Admin',
            rule: 0,
            ruleName: 'dns',
            action: 'allow',
          },
        ],
      },
      'cnp c rule "dns"',
    ],
    ['not isolated', { verdict: 'allowed', reason: 'not-isolated', policies: [] }, '-'],
    [
      'not isolated after a Pass',
      { verdict: 'allowed', reason: 'not-isolated', policies: [anp('t', 'pass', 'p')] },
      '-',
    ],
    ['own node', { verdict: 'allowed', reason: 'own-node', policies: [] }, '-'],
    [
      'a reason this version does not know',
      { reason: 'later' as FlowRecord['reason'], policies: [anp('t', 'pass'), np('z', 'deny')] },
      'np shop/z',
    ],
  ];
  for (const [name, over, want] of cases) assert.equal(decidingHit({ ...denied, ...over }), want, name);
  assert.equal(formatHit(anp('x', 'allow', 'a "q"'), 'egress'), 'anp x rule "a \\"q\\""');
});

test('formatTable: aligned columns, no trailing spaces, in the order given', () => {
  assert.equal(
    formatTable([denied, dns, ping]),
    [
      'TIME                      NODE    SRC             DST              PROTO                VERDICT  DIR      POLICY                         REASON',
      '2026-12-03T05:31:12.345Z  node-a  shop/web:41234  shop/db:5432     TCP SYN              denied   ingress  np shop/default-deny           no-rule-matched',
      '2026-12-03T05:31:10.001Z  node-b  shop/web:40001  8.8.8.8:53       UDP                  denied   egress   anp no-external-dns rule "r1"  admin-deny',
      '2026-12-03T05:32:00.000Z  node-a  fd00::5         monitoring/prom  ICMPv6 echo-request  allowed  ingress  -                              not-isolated',
      '',
    ].join('\n'),
  );
  assert.equal(formatTable([]), 'TIME  NODE  SRC  DST  PROTO  VERDICT  DIR  POLICY  REASON\n');
});

test('formatJson: one line, keys in the record type order whatever the input order, new keys kept', () => {
  assert.equal(
    formatJson(denied),
    '{"time":"2026-12-03T05:31:12.345Z","node":"node-a","verdict":"denied","direction":"ingress","protocol":"TCP","family":"ipv4",' +
      '"src":{"ip":"10.244.1.7","port":41234,"namespace":"shop","pod":"web","labels":{"app":"web"}},' +
      '"dst":{"ip":"10.244.2.9","port":5432,"namespace":"shop","pod":"db"},"tcpFlags":"SYN",' +
      '"policies":[{"kind":"NetworkPolicy","namespace":"shop","name":"default-deny","tier":"NetworkPolicy","action":"deny"}],' +
      '"reason":"no-rule-matched","summary":"isolated by shop/default-deny; no rule matched"}',
  );
  const shuffled = JSON.parse(
    '{"summary":"s","future":1,"reason":"not-isolated","policies":[{"action":"pass","name":"t","kind":"AdminNetworkPolicy","tier":"Admin","x":true}],' +
      '"icmp":{"code":0,"type":8},"dst":{"pod":"b","namespace":"n","ip":"10.0.0.2"},"src":{"node":"n1","ip":"10.0.0.1"},' +
      '"family":"ipv4","protocol":"ICMP","direction":"ingress","verdict":"allowed","node":"n2","time":"t"}',
  ) as FlowRecord;
  assert.equal(
    formatJson(shuffled),
    '{"time":"t","node":"n2","verdict":"allowed","direction":"ingress","protocol":"ICMP","family":"ipv4",' +
      '"src":{"ip":"10.0.0.1","node":"n1"},"dst":{"ip":"10.0.0.2","namespace":"n","pod":"b"},"icmp":{"type":8,"code":0},' +
      '"policies":[{"kind":"AdminNetworkPolicy","name":"t","tier":"Admin","action":"pass","x":true}],' +
      '"reason":"not-isolated","summary":"s","future":1}',
  );
  assert.doesNotMatch(formatJson(denied), /\n/);
});
