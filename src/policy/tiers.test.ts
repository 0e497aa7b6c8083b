// The tier chain of evaluate(): which tier decides, what Pass skips, what each tier sees, and that
// egress and ingress are chains of their own. Scripted tiers stand in for the admin and baseline
// tiers, around the real NetworkPolicy tier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cport, netpol, node, ns, pod, snapshot } from '../model/build.js';
import {
  evaluate,
  networkPolicyTier,
  type Direction,
  type Endpoint,
  type Flow,
  type SideContext,
  type Tier,
  type TierAnswer,
} from './evaluate.js';
import type { Snapshot } from '../model/types.js';

const a = pod('x', 'a', { labels: { pod: 'a' }, ips: ['10.0.0.1'], ports: [cport(80)], nodeName: 'n1' });
const b = pod('x', 'b', { labels: { pod: 'b' }, ips: ['10.0.0.2'], ports: [cport(80)], nodeName: 'n1' });
const base = { namespaces: [ns('x')], pods: [a, b], nodes: [node('n1', ['192.168.0.10'])] };
const open = snapshot(base);
/** x/deny isolates every pod of x for ingress with no rule: the NetworkPolicy tier answers Deny. */
const denied = snapshot({ ...base, policies: [netpol('x', 'deny', {})] });
/** x/allow-all admits everything: the NetworkPolicy tier answers Allow. */
const allowed = snapshot({ ...base, policies: [netpol('x', 'allow', { ingress: [{}] })] });
const P = (p: typeof a): Endpoint => ({ kind: 'pod', pod: p });
const b2a: Flow = { src: P(b), dst: P(a), protocol: 'TCP', port: 80 };

/** A tier that answers the same for every flow of one direction (None for the other), and logs. */
function scripted(
  name: string,
  stage: Tier['stage'],
  answer: TierAnswer,
  only: Direction = 'ingress',
  seen: SideContext[] = [],
): Tier {
  return {
    name,
    stage,
    decide(ctx) {
      seen.push(ctx);
      return ctx.direction === only
        ? { answer, detail: `${name} says ${answer}` }
        : { answer: 'None', detail: '' };
    },
  };
}

const cases: {
  name: string;
  s: Snapshot;
  chain: Tier[];
  allowed: boolean;
  reason: string;
  /** Tiers consulted on the ingress side, in order. */
  consulted: string[];
}[] = [
  {
    name: 'admin Allow decides before a NetworkPolicy that denies',
    s: denied,
    chain: [scripted('A1', 'admin', 'Allow'), networkPolicyTier],
    allowed: true,
    reason: 'admin-allow',
    consulted: ['A1'],
  },
  {
    name: 'admin Deny decides before a NetworkPolicy that allows',
    s: allowed,
    chain: [scripted('A1', 'admin', 'Deny'), networkPolicyTier],
    allowed: false,
    reason: 'admin-deny',
    consulted: ['A1'],
  },
  {
    name: 'admin None: the next admin tier decides',
    s: open,
    chain: [scripted('A1', 'admin', 'None'), scripted('A2', 'admin', 'Deny'), networkPolicyTier],
    allowed: false,
    reason: 'admin-deny',
    consulted: ['A1', 'A2'],
  },
  {
    name: 'admin Pass skips the other admin tiers, and the NetworkPolicy tier decides',
    s: denied,
    chain: [scripted('A1', 'admin', 'Pass'), scripted('A2', 'admin', 'Allow'), networkPolicyTier],
    allowed: false,
    reason: 'no-rule-matched',
    consulted: ['A1', 'NetworkPolicy'],
  },
  {
    name: 'admin Pass, pod not isolated: the baseline tier decides',
    s: open,
    chain: [scripted('A1', 'admin', 'Pass'), networkPolicyTier, scripted('B1', 'baseline', 'Deny')],
    allowed: false,
    reason: 'baseline-deny',
    consulted: ['A1', 'NetworkPolicy', 'B1'],
  },
  {
    name: 'a NetworkPolicy Deny is final: the baseline is not consulted',
    s: denied,
    chain: [networkPolicyTier, scripted('B1', 'baseline', 'Allow')],
    allowed: false,
    reason: 'no-rule-matched',
    consulted: ['NetworkPolicy'],
  },
  {
    name: 'a NetworkPolicy Allow is final: the baseline is not consulted',
    s: allowed,
    chain: [networkPolicyTier, scripted('B1', 'baseline', 'Deny')],
    allowed: true,
    reason: 'allowed-by-rule',
    consulted: ['NetworkPolicy'],
  },
  {
    name: 'not isolated: the baseline Allow decides',
    s: open,
    chain: [networkPolicyTier, scripted('B1', 'baseline', 'Allow')],
    allowed: true,
    reason: 'baseline-allow',
    consulted: ['NetworkPolicy', 'B1'],
  },
  {
    name: 'no tier decides: allowed, every tier listed',
    s: open,
    chain: [scripted('A1', 'admin', 'None'), networkPolicyTier, scripted('B1', 'baseline', 'None')],
    allowed: true,
    reason: 'not-isolated',
    consulted: ['A1', 'NetworkPolicy', 'B1'],
  },
  {
    name: 'an empty chain allows',
    s: denied,
    chain: [],
    allowed: true,
    reason: 'not-isolated',
    consulted: [],
  },
];

for (const c of cases) {
  test(`tier chain: ${c.name}`, () => {
    const v = evaluate(c.s, b2a, {}, c.chain);
    assert.equal(v.ingress.reason, c.reason);
    assert.equal(v.ingress.allowed, c.allowed);
    assert.equal(v.allowed, c.allowed, 'egress is not decided by ingress tiers');
    assert.deepEqual(
      v.ingress.tiers.map((t) => t.tier),
      c.consulted,
    );
    // The decisive tier's own words are kept for explain.
    const last = v.ingress.tiers.at(-1);
    if (last !== undefined && last.tier !== 'NetworkPolicy' && last.answer !== 'None') {
      assert.equal(last.detail, `${last.tier} says ${last.answer}`);
    }
  });
}

test('tier chain: each direction runs the chain on its own', () => {
  // A1 denies egress only: b's egress is denied, a's ingress goes on to the NetworkPolicy tier.
  const v = evaluate(allowed, b2a, {}, [scripted('A1', 'admin', 'Deny', 'egress'), networkPolicyTier]);
  assert.equal(v.egress.reason, 'admin-deny');
  assert.equal(v.egress.subject, 'x/b');
  assert.equal(v.ingress.reason, 'allowed-by-rule');
  assert.equal(v.ingress.subject, 'x/a');
  assert.equal(v.allowed, false);
});

test('tier chain: a Pass on one side skips admin tiers on that side only', () => {
  const chain = [
    scripted('A1', 'admin', 'Pass', 'egress'),
    scripted('A2', 'admin', 'Deny', 'ingress'),
    networkPolicyTier,
  ];
  const v = evaluate(open, b2a, {}, chain);
  assert.equal(v.egress.reason, 'not-isolated');
  assert.deepEqual(
    v.egress.tiers.map((t) => t.tier),
    ['A1', 'NetworkPolicy'],
  );
  assert.equal(v.ingress.reason, 'admin-deny');
});

test('tier chain: a tier sees its subject, the peer and its address, and the flow', () => {
  const seen: SideContext[] = [];
  evaluate(open, b2a, {}, [scripted('A1', 'admin', 'None', 'ingress', seen)]);
  const byDir = new Map(seen.map((s) => [s.direction, s]));
  const ing = byDir.get('ingress');
  const eg = byDir.get('egress');
  assert.ok(ing && eg, 'consulted for both directions');
  assert.equal(ing.subject.name, 'a');
  assert.deepEqual(ing.peer, P(b));
  assert.equal(ing.peerAddress?.family, 4);
  assert.equal(eg.subject.name, 'b');
  assert.deepEqual(eg.peer, P(a));
  assert.equal(ing.flow.port, 80);
  assert.equal(ing.flow.protocol, 'TCP');
});

test('tier chain: no tier is consulted for a side without a subject pod, for a pod reaching itself, or its own node', () => {
  const seen: SideContext[] = [];
  const chain = [scripted('A1', 'admin', 'Deny', 'ingress', seen)];
  const fromIP = evaluate(
    open,
    { src: { kind: 'ip', ip: '10.9.9.9' }, dst: P(a), protocol: 'TCP', port: 80 },
    {},
    chain,
  );
  assert.equal(fromIP.egress.reason, 'not-a-subject');
  assert.deepEqual(fromIP.egress.tiers, []);
  assert.equal(fromIP.ingress.reason, 'admin-deny', 'the pod side is still judged');
  const self = evaluate(open, { src: P(a), dst: P(a), protocol: 'TCP', port: 80 }, {}, chain);
  assert.equal(self.ingress.reason, 'self');
  const fromNode = evaluate(
    open,
    { src: { kind: 'ip', ip: '192.168.0.10' }, dst: P(a), protocol: 'TCP', port: 80 },
    {},
    chain,
  );
  assert.equal(fromNode.ingress.reason, 'node');
  assert.ok(
    seen.every((s) => s.peer.kind !== 'ip' || s.peer.ip !== '192.168.0.10'),
    'the chain never saw the node flow',
  );
});
