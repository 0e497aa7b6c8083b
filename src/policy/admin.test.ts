// The admin tiers' semantics, table-driven: which flows each tier allows or denies, and which
// policy and rule decided.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  adminRule,
  aport,
  cnp,
  cport,
  netpol,
  networksPeer,
  node,
  nodesPeer,
  ns,
  nsSubject,
  pod,
  podSubject,
  sel,
  snapshot,
} from '../model/build.js';
import type { AdminPolicy, NetworkPolicy, Node } from '../model/types.js';
import { compareAdminPolicies } from './admin.js';
import { evaluate, evaluateTraced, type Endpoint, type Flow } from './evaluate.js';

const a = pod('x', 'a', {
  labels: { app: 'a' },
  ips: ['10.0.0.1'],
  ports: [cport(80, 'TCP', 'http')],
  nodeName: 'n1',
});
const b = pod('y', 'b', {
  labels: { app: 'b' },
  ips: ['10.0.0.2'],
  ports: [cport(53, 'UDP', 'dns')],
  nodeName: 'n2',
});
const h = pod('y', 'h', { ips: ['192.168.0.20'], hostNetwork: true, nodeName: 'n2' });
const n2: Node = {
  ...node('n2', ['192.168.0.20']),
  labels: { role: 'w' },
  externalAddresses: ['203.0.113.2'],
};
const nodes = [node('n1', ['192.168.0.10']), n2];
const namespaces = [ns('x', { t: 'x' }), ns('y', { t: 'y' })];
const P = (p: typeof a): Endpoint => ({ kind: 'pod', pod: p });
const I = (ip: string): Endpoint => ({ kind: 'ip', ip });
const f = (src: Endpoint, dst: Endpoint, port = 80, protocol: Flow['protocol'] = 'TCP'): Flow => ({
  src,
  dst,
  port,
  protocol,
});
const toA = sel({ app: 'a' });
const anyPod = podSubject();
const isoA = netpol('x', 'iso', { podSelector: toA }); // isolates x/a for ingress, no rule
const allowA = netpol('x', 'open', { podSelector: toA, ingress: [{}] });

const cases: {
  name: string;
  admin: AdminPolicy[];
  policies?: NetworkPolicy[];
  flow: Flow;
  allowed: boolean;
  /** The side and the policy/rule that decided, or the reason. */
  side?: 'egress' | 'ingress';
  by?: string;
  reason?: string;
}[] = [
  {
    name: 'Admin Accept beats an isolating NetworkPolicy',
    admin: [cnp('acc', { ingress: [adminRule('Accept', [anyPod])] })],
    policies: [isoA],
    flow: f(P(b), P(a)),
    allowed: true,
    side: 'ingress',
    by: 'acc/0',
    reason: 'admin-allow',
  },
  {
    name: 'Admin Deny beats an allowing NetworkPolicy',
    admin: [
      cnp('deny', { subject: podSubject(toA), ingress: [adminRule('Deny', [nsSubject()], undefined, 'd')] }),
    ],
    policies: [allowA],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    by: 'deny/0',
    reason: 'admin-deny',
  },
  {
    name: 'Admin Pass then NetworkPolicy isolation denies',
    admin: [
      cnp('pass', { ingress: [adminRule('Pass', [anyPod])] }),
      cnp('z', { priority: 5, ingress: [adminRule('Accept', [anyPod])] }),
    ],
    policies: [isoA],
    flow: f(P(b), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  {
    name: 'Admin Pass then NetworkPolicy allows',
    admin: [cnp('pass', { ingress: [adminRule('Pass', [anyPod])] })],
    policies: [allowA],
    flow: f(P(b), P(a)),
    allowed: true,
    reason: 'allowed-by-rule',
  },
  {
    name: 'Admin Pass with no NetworkPolicy: baseline decides',
    admin: [
      cnp('pass', { ingress: [adminRule('Pass', [anyPod])] }),
      cnp('base', { tier: 'Baseline', ingress: [adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    by: 'base/0',
    reason: 'baseline-deny',
  },
  {
    name: 'Baseline Accept for a non-isolated pod',
    admin: [cnp('base', { kind: 'BaselineAdminNetworkPolicy', egress: [adminRule('Accept', [anyPod])] })],
    flow: f(P(b), P(a)),
    allowed: true,
    side: 'egress',
    by: 'base/0',
    reason: 'baseline-allow',
  },
  {
    name: 'Baseline Accept is not reached for an isolated pod',
    admin: [cnp('base', { tier: 'Baseline', ingress: [adminRule('Accept', [anyPod])] })],
    policies: [isoA],
    flow: f(P(b), P(a)),
    allowed: false,
    reason: 'no-rule-matched',
  },
  {
    name: 'Baseline Pass skips the later Baseline Deny: default allow',
    admin: [
      cnp('p', { tier: 'Baseline', ingress: [adminRule('Pass', [anyPod])] }),
      cnp('q', { tier: 'Baseline', priority: 1, ingress: [adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(b), P(a)),
    allowed: true,
    reason: 'not-isolated',
  },
  {
    name: 'priority: lower number first',
    admin: [
      cnp('late', { priority: 2, ingress: [adminRule('Accept', [anyPod])] }),
      cnp('early', { priority: 1, ingress: [adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    by: 'early/0',
  },
  {
    name: 'tie: ClusterNetworkPolicy before AdminNetworkPolicy',
    admin: [
      cnp('a-anp', { kind: 'AdminNetworkPolicy', priority: 3, ingress: [adminRule('Accept', [anyPod])] }),
      cnp('z-cnp', { priority: 3, ingress: [adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    by: 'z-cnp/0',
  },
  {
    name: 'rule order within a policy',
    admin: [
      cnp('o', { ingress: [adminRule('Accept', [nsSubject(sel({ t: 'y' }))]), adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(b), P(a)),
    allowed: true,
    side: 'ingress',
    by: 'o/0',
  },
  {
    name: 'an egress Accept does not admit ingress at the destination',
    admin: [cnp('e', { egress: [adminRule('Accept', [anyPod])] })],
    policies: [isoA],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    reason: 'no-rule-matched',
  },
  {
    name: 'subject pods: a pod the podSelector leaves out is not subject',
    admin: [cnp('s', { subject: podSubject(sel({ app: 'nope' })), ingress: [adminRule('Deny', [anyPod])] })],
    flow: f(P(b), P(a)),
    allowed: true,
    reason: 'not-isolated',
  },
  {
    name: 'subject namespaces selects by namespace labels',
    admin: [cnp('s', { subject: nsSubject(sel({ t: 'x' })), ingress: [adminRule('Deny', [anyPod])] })],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'ingress',
    by: 's/0',
  },
  {
    name: 'a hostNetwork pod is not matched by a pods/namespaces peer',
    admin: [cnp('d', { ingress: [adminRule('Deny', [anyPod, nsSubject()])] })],
    flow: f(P(h), P(a)),
    allowed: true,
    reason: 'not-isolated',
  },
  {
    name: 'nodes peer: InternalIP',
    admin: [cnp('n', { egress: [adminRule('Deny', [nodesPeer(sel({ role: 'w' }))])] })],
    flow: f(P(a), I('192.168.0.20')),
    allowed: false,
    side: 'egress',
    by: 'n/0',
  },
  {
    name: 'nodes peer: ExternalIP',
    admin: [cnp('n', { egress: [adminRule('Deny', [nodesPeer(sel({ role: 'w' }))])] })],
    flow: f(P(a), I('203.0.113.2')),
    allowed: false,
    side: 'egress',
    by: 'n/0',
  },
  {
    name: 'nodes peer: a hostNetwork pod on the node',
    admin: [cnp('n', { egress: [adminRule('Deny', [nodesPeer(sel({ role: 'w' }))])] })],
    flow: f(P(a), P(h)),
    allowed: false,
    side: 'egress',
    by: 'n/0',
  },
  {
    name: 'nodes peer: an unselected node does not match',
    admin: [cnp('n', { egress: [adminRule('Deny', [nodesPeer(sel({ role: 'w' }))])] })],
    flow: f(P(b), I('192.168.0.10')),
    allowed: true,
    reason: 'not-isolated',
  },
  {
    name: 'networks peer matches a pod address',
    admin: [cnp('w', { egress: [adminRule('Deny', [networksPeer('10.0.0.0/31')])] })],
    flow: f(P(b), P(a)),
    allowed: false,
    side: 'egress',
    by: 'w/0',
  },
  {
    name: 'domainNames matches nothing: Accept admits nothing',
    admin: [
      cnp('dn', { egress: [adminRule('Accept', [{ kind: 'domainNames', domainNames: ['*.example.com'] }])] }),
      cnp('base', { tier: 'Baseline', egress: [adminRule('Deny', [networksPeer('0.0.0.0/0')])] }),
    ],
    flow: f(P(a), I('198.51.100.1')),
    allowed: false,
    side: 'egress',
    by: 'base/0',
  },
  {
    name: 'unknown peer in Accept matches nothing',
    admin: [
      cnp('u', { egress: [adminRule('Accept', [{ kind: 'unknown', fields: ['future'] }, anyPod])] }),
      cnp('base', { tier: 'Baseline', egress: [adminRule('Deny', [anyPod])] }),
    ],
    flow: f(P(a), P(b), 53, 'UDP'),
    allowed: false,
    side: 'egress',
    by: 'base/0',
  },
  {
    name: 'unknown peer in Pass makes the rule Deny all',
    admin: [cnp('u', { egress: [adminRule('Pass', [{ kind: 'unknown', fields: ['future'] }], [aport(1)])] })],
    flow: f(P(a), I('198.51.100.1')),
    allowed: false,
    side: 'egress',
    by: 'u/0',
    reason: 'admin-deny',
  },
  {
    name: 'ports: number matches protocol and port',
    admin: [cnp('p', { ingress: [adminRule('Deny', [anyPod], [aport(80, 'UDP'), aport(81)])] })],
    flow: f(P(b), P(a), 80),
    allowed: true,
  },
  {
    name: 'ports: range inclusive',
    admin: [cnp('p', { ingress: [adminRule('Deny', [anyPod], [aport(70, 'TCP', 80)])] })],
    flow: f(P(b), P(a), 80),
    allowed: false,
    side: 'ingress',
    by: 'p/0',
  },
  {
    name: 'ports: named TCP port of the destination pod',
    admin: [cnp('p', { ingress: [adminRule('Deny', [anyPod], [{ kind: 'named', name: 'http' }])] })],
    flow: f(P(b), P(a), 80),
    allowed: false,
    side: 'ingress',
    by: 'p/0',
  },
  {
    name: 'ports: named port with the wrong protocol (UDP) does not match',
    admin: [cnp('p', { ingress: [adminRule('Deny', [anyPod], [{ kind: 'named', name: 'http' }])] })],
    flow: f(P(b), P(a), 80, 'UDP'),
    allowed: true,
  },
  {
    name: 'ports: named UDP port on egress resolves against the peer',
    admin: [cnp('p', { egress: [adminRule('Deny', [anyPod], [{ kind: 'named', name: 'dns' }])] })],
    flow: f(P(a), P(b), 53, 'UDP'),
    allowed: false,
    side: 'egress',
    by: 'p/0',
  },
];

for (const c of cases) {
  test(`admin tiers: ${c.name}`, () => {
    const s = snapshot({
      namespaces,
      nodes,
      pods: [a, b, h],
      policies: c.policies ?? [],
      adminPolicies: c.admin,
    });
    const v = evaluate(s, c.flow);
    assert.equal(v.allowed, c.allowed);
    // The traced evaluation (explain) decides alike, and its matched rule is the deciding one.
    const t = evaluateTraced(s, c.flow);
    assert.deepEqual(t.verdict, v);
    for (const dir of ['egress', 'ingress'] as const) {
      for (const tier of t.trace[dir].tiers) {
        if (tier.adminTrace === undefined) continue;
        const by = v[dir].tiers.find((o) => o.tier === tier.tier)?.admin;
        const hit = tier.adminTrace.policies.flatMap((p) =>
          p.rules.filter((r) => r.matched).map((r) => `${p.name}/${r.rule}/${r.applied}`),
        );
        assert.deepEqual(hit, by ? [`${by.name}/${by.rule}/${by.action}`] : [], `${dir} ${tier.tier}`);
      }
    }
    if (c.side !== undefined) {
      const side = v[c.side];
      const last = side.tiers[side.tiers.length - 1];
      if (c.by !== undefined) {
        assert.equal(`${last?.admin?.name}/${last?.admin?.rule}`, c.by);
      }
      if (c.reason !== undefined) assert.equal(side.reason, c.reason);
    } else if (c.reason !== undefined) {
      const reasons = [v.egress.reason, v.ingress.reason];
      assert.ok(reasons.includes(c.reason as never), `${reasons.join(',')}`);
    }
  });
}

test('admin tiers: detail and admin record of the deciding rule', () => {
  const s = snapshot({
    namespaces,
    pods: [a, b],
    adminPolicies: [
      cnp('tenant-isolation', {
        priority: 7,
        ingress: [adminRule('Deny', [anyPod], undefined, 'deny-other-tenants')],
      }),
    ],
  });
  const t = evaluate(s, f(P(b), P(a))).ingress.tiers;
  assert.deepEqual(
    t.map((o) => o.tier),
    ['Admin'],
  );
  assert.equal(t[0]!.detail, 'ClusterNetworkPolicy tenant-isolation rule 0 (deny-other-tenants): Deny');
  assert.deepEqual(t[0]!.admin, {
    kind: 'ClusterNetworkPolicy',
    name: 'tenant-isolation',
    priority: 7,
    tier: 'Admin',
    rule: 0,
    ruleName: 'deny-other-tenants',
    action: 'Deny',
  });
});

test('admin tiers: no admin policies leave the tiers list as the NetworkPolicy tier alone', () => {
  const v = evaluate(snapshot({ namespaces, pods: [a, b] }), f(P(b), P(a)));
  assert.deepEqual(
    v.ingress.tiers.map((o) => o.tier),
    ['NetworkPolicy'],
  );
});

test('compareAdminPolicies: priority, then CNP before ANP, then name', () => {
  const ps = [
    cnp('b', { kind: 'AdminNetworkPolicy', priority: 1 }),
    cnp('z', { priority: 1 }),
    cnp('a', { priority: 1 }),
    cnp('c', { priority: 0, kind: 'AdminNetworkPolicy' }),
  ];
  assert.deepEqual(
    [...ps].sort(compareAdminPolicies).map((p) => p.name),
    ['c', 'a', 'z', 'b'],
  );
});
