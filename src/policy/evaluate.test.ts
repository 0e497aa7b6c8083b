import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  adminRule,
  aport,
  cnp,
  cport,
  ipPeer,
  netpol,
  networksPeer,
  node,
  nodesPeer,
  ns,
  nsSubject,
  pod,
  podPeer,
  podSubject,
  pport,
  rule,
  sel,
  snapshot,
} from '../model/build.js';
import { evaluate, evaluateTraced, type Endpoint, type Flow } from './evaluate.js';
import type { Pod, Protocol, Snapshot } from '../model/types.js';

const a = pod('x', 'a', {
  labels: { pod: 'a' },
  ips: ['10.0.0.1'],
  ports: [cport(80, 'TCP', 'http')],
  nodeName: 'n1',
});
const b = pod('x', 'b', { labels: { pod: 'b' }, ips: ['10.0.0.2'], ports: [cport(81)], nodeName: 'n1' });
const c = pod('y', 'c', { labels: { pod: 'c' }, ips: ['10.0.1.3'], ports: [cport(80)], nodeName: 'n1' });
const hn = pod('kube-system', 'hn', { ips: ['192.168.0.10'], hostNetwork: true, nodeName: 'n1' });
const base = {
  namespaces: [ns('x'), ns('y', { team: 'web' })],
  pods: [a, b, c, hn],
  nodes: [node('n1', ['192.168.0.10'])],
};
const P = (p: Pod): Endpoint => ({ kind: 'pod', pod: p });
const IP = (ip: string): Endpoint => ({ kind: 'ip', ip });
const flow = (src: Endpoint, dst: Endpoint, port = 80, protocol: Protocol = 'TCP'): Flow => ({
  src,
  dst,
  port,
  protocol,
});

const cases: { name: string; s: Snapshot; f: Flow; allowed: boolean; reason?: string }[] = [
  {
    name: 'no policies: allowed',
    s: snapshot(base),
    f: flow(P(b), P(a)),
    allowed: true,
    reason: 'not-isolated',
  },
  {
    name: 'deny-all ingress isolates',
    s: snapshot({ ...base, policies: [netpol('x', 'deny', {})] }),
    f: flow(P(b), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  {
    name: 'self always allowed',
    s: snapshot({ ...base, policies: [netpol('x', 'deny', { policyTypes: ['Ingress', 'Egress'] })] }),
    f: flow(P(a), P(a)),
    allowed: true,
    reason: 'self',
  },
  {
    name: 'own node (IP) always allowed',
    s: snapshot({ ...base, policies: [netpol('x', 'deny', {})] }),
    f: flow(IP('192.168.0.10'), P(a)),
    allowed: true,
    reason: 'node',
  },
  {
    name: 'hostNetwork pod on own node allowed',
    s: snapshot({ ...base, policies: [netpol('x', 'deny', {})] }),
    f: flow(P(hn), P(a)),
    allowed: true,
    reason: 'node',
  },
  {
    name: 'podSelector peer is namespace-local',
    s: snapshot({ ...base, policies: [netpol('x', 'p', { ingress: [rule([podPeer(sel({ pod: 'c' }))])] })] }),
    f: flow(P(c), P(a)),
    allowed: false,
  },
  {
    name: 'namespaceSelector AND podSelector',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'p', { ingress: [rule([podPeer(sel({ pod: 'c' }), sel({ team: 'web' }))])] })],
    }),
    f: flow(P(c), P(a)),
    allowed: true,
    reason: 'allowed-by-rule',
  },
  {
    name: 'named port matches by name and protocol',
    s: snapshot({ ...base, policies: [netpol('x', 'p', { ingress: [rule(undefined, [pport('http')])] })] }),
    f: flow(P(b), P(a), 80),
    allowed: true,
  },
  {
    name: 'named port with other protocol does not match',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'p', { ingress: [rule(undefined, [pport('http', 'UDP')])] })],
    }),
    f: flow(P(b), P(a), 80, 'UDP'),
    allowed: false,
  },
  {
    name: 'endPort range',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'p', { ingress: [rule(undefined, [pport(80, 'TCP', 85)])] })],
    }),
    f: flow(P(b), P(a), 84),
    allowed: true,
  },
  {
    name: 'ipBlock matches pod IPs, except carves out',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'p', { ingress: [rule([ipPeer('10.0.0.0/16', ['10.0.1.0/24'])])] })],
    }),
    f: flow(P(c), P(a)),
    allowed: false,
  },
  {
    name: 'empty from/ports lists mean all, like missing ones',
    s: snapshot({ ...base, policies: [netpol('x', 'p', { ingress: [{ peers: [], ports: [] }] })] }),
    f: flow(P(c), P(a), 9999),
    allowed: true,
    reason: 'allowed-by-rule',
  },
  {
    name: 'egress isolation of source',
    s: snapshot({ ...base, policies: [netpol('x', 'e', { policyTypes: ['Egress'] })] }),
    f: flow(P(a), P(c)),
    allowed: false,
  },
  // Two live pods with one address: the kernel cannot tell them apart (fail-closed).
  {
    name: 'a subject whose address another live pod shares: denied, whatever the policies',
    s: snapshot({ ...base, pods: [a, b, { ...c, ips: ['10.0.0.1'] }, hn] }),
    f: flow(P(b), P(a)),
    allowed: false,
    reason: 'address-conflict',
  },
  {
    name: "a shared address is still its own node's",
    s: snapshot({ ...base, pods: [a, b, { ...c, ips: ['10.0.0.1'] }, hn] }),
    f: flow(IP('192.168.0.10'), P(a)),
    allowed: true,
    reason: 'node',
  },
  {
    name: 'a pod peer at a shared address is no pod to selectors',
    s: snapshot({
      ...base,
      pods: [a, b, { ...c, ips: ['10.0.0.2'] }, hn],
      policies: [
        netpol('x', 'a', { podSelector: sel({ pod: 'a' }), ingress: [rule([podPeer(sel({ pod: 'b' }))])] }),
      ],
    }),
    f: flow(P(b), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  {
    name: 'but an ipBlock matches it as an address',
    s: snapshot({
      ...base,
      pods: [a, { ...b, nodeName: 'n2' }, { ...c, ips: ['10.0.0.2'], nodeName: 'n2' }, hn],
      policies: [
        netpol('x', 'a', { podSelector: sel({ pod: 'a' }), ingress: [rule([ipPeer('10.0.0.2/32')])] }),
      ],
    }),
    f: flow(IP('10.0.0.2'), P(a)),
    allowed: true,
    reason: 'allowed-by-rule',
  },
  {
    name: 'and a selector does not, even for the ingress side of a shared peer',
    s: snapshot({
      ...base,
      pods: [a, b, { ...c, ips: ['10.0.0.2'] }, hn],
      policies: [
        netpol('x', 'a', { podSelector: sel({ pod: 'a' }), ingress: [rule([podPeer(sel({ pod: 'b' }))])] }),
      ],
    }),
    f: flow(IP('10.0.0.2'), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  // The admin tiers: the traced verdict must be the same, and the trace must name the same rule.
  {
    name: 'admin Deny before an allowing NetworkPolicy',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'open', { podSelector: sel({ pod: 'a' }), ingress: [rule()] })],
      adminPolicies: [
        cnp('other', {
          priority: 1,
          subject: podSubject(sel({ pod: 'z' })),
          ingress: [adminRule('Accept', [nsSubject()])],
        }),
        cnp('iso', {
          priority: 2,
          ingress: [
            adminRule('Accept', [networksPeer('10.9.0.0/16')]),
            adminRule('Deny', [nsSubject()], undefined, 'deny'),
          ],
        }),
      ],
    }),
    f: flow(P(c), P(a)),
    allowed: false,
    reason: 'admin-deny',
  },
  {
    name: 'admin Pass, then NetworkPolicy isolation denies',
    s: snapshot({
      ...base,
      policies: [netpol('x', 'deny', {})],
      adminPolicies: [
        cnp('pass', { ingress: [adminRule('Pass', [nsSubject(sel({ team: 'web' }))], [aport(80)])] }),
        cnp('later', { priority: 3, ingress: [adminRule('Accept', [nsSubject()])] }),
      ],
    }),
    f: flow(P(c), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  {
    name: 'baseline Deny for a pod no NetworkPolicy isolates',
    s: snapshot({
      ...base,
      adminPolicies: [
        cnp('pass', { egress: [adminRule('Pass', [podSubject(sel({ pod: 'q' }))])] }),
        cnp('default', {
          kind: 'BaselineAdminNetworkPolicy',
          egress: [
            adminRule('Deny', [nodesPeer()], [{ kind: 'named', name: 'http' }]),
            adminRule('Deny', [networksPeer('10.0.0.0/8')]),
          ],
        }),
      ],
    }),
    f: flow(P(b), IP('10.0.5.5')),
    allowed: false,
    reason: 'baseline-deny',
  },
  {
    name: 'an unknown peer makes a Deny rule Deny all; an Accept with one matches nothing',
    s: snapshot({
      ...base,
      adminPolicies: [
        cnp('acc', { egress: [adminRule('Accept', [{ kind: 'unknown', fields: ['future'] }])] }),
        cnp('deny', { priority: 1, egress: [adminRule('Deny', [{ kind: 'unknown', fields: ['future'] }])] }),
      ],
    }),
    f: flow(P(b), IP('10.9.9.9')),
    allowed: false,
    reason: 'admin-deny',
  },
];

for (const tc of cases) {
  test(tc.name, () => {
    const v = evaluate(tc.s, tc.f);
    assert.equal(v.allowed, tc.allowed);
    if (tc.reason) {
      const side = tc.f.dst.kind === 'pod' && v.ingress.reason !== 'not-a-subject' ? v.ingress : v.egress;
      assert.equal(side.reason, tc.reason);
    }
    // The trace is of the same decision: the same verdict, and its matched rules are the matches.
    const t = evaluateTraced(tc.s, tc.f);
    assert.deepEqual(t.verdict, v);
    for (const dir of ['egress', 'ingress'] as const) {
      const np = t.trace[dir].tiers.find((x) => x.stage === 'networkpolicy')?.trace;
      const matched = (np?.policies ?? []).flatMap((p) =>
        p.rules
          .filter((r) => r.matched)
          .map((r) => `${p.policy.name}/${r.rule}/${r.matchedPeer}/${r.matchedPort}`),
      );
      assert.deepEqual(
        matched,
        v[dir].matches.map((m) => `${m.policy.name}/${m.rule}/${m.peer}/${m.port}`),
        `${dir}: traced matches`,
      );
      assert.deepEqual(
        (np?.policies ?? []).map((p) => p.policy),
        v[dir].isolatedBy,
        `${dir}: traced policies are the isolating ones`,
      );
      // Admin tiers: the one rule the trace shows as matched is the rule that decided.
      for (const tier of t.trace[dir].tiers) {
        if (tier.stage === 'networkpolicy') continue;
        const outcome = v[dir].tiers.find((o) => o.tier === tier.tier);
        const hit = (tier.adminTrace?.policies ?? []).flatMap((p) =>
          p.status !== 'checked'
            ? []
            : p.rules.filter((r) => r.matched).map((r) => `${p.name}/${r.rule}/${r.applied}`),
        );
        const by = outcome?.admin;
        assert.deepEqual(
          hit,
          by ? [`${by.name}/${by.rule}/${by.action}`] : [],
          `${dir} ${tier.tier}: traced rule`,
        );
      }
    }
  });
}
