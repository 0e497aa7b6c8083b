import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cport, ipPeer, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
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
    }
  });
}
