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
import type { Protocol } from '../model/types.js';
import { UsageError } from '../errors.js';
import { evaluate, type Endpoint, type Flow } from '../policy/evaluate.js';
import { explain, formatExplanation, resolveFlow, type Explanation } from './explain.js';

const a = pod('x', 'a', {
  labels: { pod: 'a' },
  ips: ['10.0.0.1'],
  ports: [cport(80, 'TCP', 'http')],
  nodeName: 'n1',
});
const b = pod('y', 'b', {
  labels: { pod: 'b' },
  ips: ['10.1.2.3'],
  ports: [cport(81, 'TCP', 'web')],
  nodeName: 'n1',
});
const c = pod('x', 'c', { labels: { pod: 'c' }, ips: ['10.0.0.3'], nodeName: 'n2' });
const hn = pod('kube-system', 'hn', { ips: ['192.168.0.10'], hostNetwork: true, nodeName: 'n1' });
const s = snapshot({
  namespaces: [ns('x'), ns('y')],
  pods: [a, b, c, hn],
  nodes: [node('n1', ['192.168.0.10']), node('n2', ['192.168.0.11'])],
  policies: [
    netpol('x', 'allow-a', {
      podSelector: sel({ pod: 'a' }),
      ingress: [
        rule(
          [podPeer(sel({ pod: 'c' }), sel({ team: 'web' })), ipPeer('10.0.0.0/8', ['10.1.0.0/16'])],
          [pport(80)],
        ),
        rule([podPeer(sel({ pod: 'c' }))], [pport(80)]),
      ],
    }),
    netpol('x', 'only-c', { podSelector: sel({ pod: 'z' }) }),
    netpol('y', 'egress-443', {
      policyTypes: ['Egress'],
      egress: [rule(undefined, [pport(443)]), rule([ipPeer('10.0.0.0/24')], [pport(80)])],
    }),
  ],
});
const P = (p: typeof a): Endpoint => ({ kind: 'pod', pod: p });
const IP = (ip: string): Endpoint => ({ kind: 'ip', ip });
const flow = (src: Endpoint, dst: Endpoint, port = 80, protocol: Protocol = 'TCP'): Flow => ({
  src,
  dst,
  port,
  protocol,
});

const flows: { name: string; f: Flow; check?: (e: Explanation) => void }[] = [
  {
    name: 'denied ingress: every rule says why; closest rule',
    f: flow(P(b), P(a)),
    check: (e) => {
      const pol = e.ingress.policies.find((p) => p.policy.name === 'allow-a')!;
      const [r0, r1] = pol.rules;
      assert.deepEqual(
        r0!.peers!.map((p) => p.reason),
        [
          'peer requires namespace label team=web, namespace y has none; peer podSelector pod=c does not match labels pod=b',
          'ipBlock 10.0.0.0/8 except 10.1.0.0/16 excludes 10.1.2.3',
        ],
      );
      assert.equal(r0!.ports![0]!.matched, true);
      assert.equal(
        r1!.peers![0]!.reason,
        'peer without namespaceSelector selects pods in namespace x only, y/b is in namespace y; peer podSelector pod=c does not match labels pod=b',
      );
      // Ports fit in both, no peer fits even half: the first rule is the closest.
      assert.equal(e.ingress.closest?.rule, 0);
      assert.match(
        e.ingress.summary,
        /x\/a is isolated for ingress by x\/allow-a; no rule admits the flow; closest/,
      );
      // Egress of y/b: to an address in 10.0.0.0/24 on port 80 is admitted by egress[1].
      assert.equal(e.egress.reason, 'allowed-by-rule');
      assert.match(e.egress.summary, /allowed by y\/egress-443 egress\[1\], to\[0\], ports\[0\]/);
    },
  },
  {
    name: 'allowed: the admitting rule is named',
    f: flow(P(c), P(a)),
    check: (e) => {
      const rules = e.ingress.policies[0]!.rules;
      assert.deepEqual(
        rules.map((r) => [r.matched, r.matchedPeer, r.matchedPort]),
        [
          [true, 1, 0],
          [true, 0, 0],
        ],
      );
      assert.match(
        e.ingress.summary,
        /allowed by x\/allow-a ingress\[0\], from\[1\], ports\[0\]; x\/allow-a ingress\[1\]/,
      );
    },
  },
  {
    name: 'wrong port: "allows port 80 only"',
    f: flow(P(c), P(a), 8080),
    check: (e) => {
      assert.deepEqual(e.ingress.closest?.reasons, ['ports[0]: allows port 80 only']);
    },
  },
  {
    name: 'egress denied with port reasons and ipBlock miss',
    f: flow(P(b), P(c), 81),
    check: (e) => {
      assert.equal(e.egress.allowed, false);
      const rules = e.egress.policies[0]!.rules;
      assert.deepEqual(rules[0]!.reasons, ['ports[0]: allows port 443 only']);
      assert.deepEqual(rules[1]!.reasons, ['ports[0]: allows port 80 only']);
      assert.equal(rules[1]!.peers![0]!.matched, true);
    },
  },
  {
    name: 'not isolated, and policies that do not apply say why',
    f: flow(P(a), P(c)),
    check: (e) => {
      assert.equal(e.ingress.reason, 'not-isolated');
      assert.deepEqual(
        e.ingress.notSelecting.map((n) => n.reason),
        ['podSelector pod=a does not match labels pod=c', 'podSelector pod=z does not match labels pod=c'],
      );
      assert.deepEqual(
        e.egress.notSelecting.map((n) => n.reason),
        ['policyTypes [Ingress] does not include Egress', 'podSelector pod=z does not match labels pod=a'],
      );
    },
  },
  { name: 'self', f: flow(P(a), P(a)), check: (e) => assert.match(e.egress.summary, /itself/) },
  {
    name: 'own node by IP',
    f: flow(IP('192.168.0.10'), P(a)),
    check: (e) => assert.match(e.ingress.summary, /own node/),
  },
  {
    name: 'hostNetwork pod on own node',
    f: flow(P(hn), P(a)),
    check: (e) => assert.match(e.egress.summary, /host network/),
  },
  { name: 'hostNetwork pod on another node', f: flow(P(hn), P(c), 80) },
  {
    name: 'IP source',
    f: flow(IP('10.9.9.9'), P(a)),
    check: (e) => {
      assert.match(e.egress.summary, /not a pod/);
      assert.equal(e.ingress.allowed, true);
    },
  },
  {
    name: 'selector peer against an IP',
    f: flow(IP('10.1.0.1'), P(a)),
    check: (e) => assert.match(e.ingress.policies[0]!.rules[1]!.peers![0]!.reason!, /is not a pod/),
  },
  {
    name: 'IPv6 flow: ipBlock cannot match a pod without an IPv6 address',
    f: { ...flow(P(c), P(a)), family: 6 },
    check: (e) =>
      assert.match(e.ingress.policies[0]!.rules[0]!.peers![1]!.reason!, /x\/c: it has no IPv6 address/),
  },
  {
    name: 'IPv6 source outside an IPv4 block',
    f: { ...flow(IP('fd00::1'), P(a)), family: 6 },
    check: (e) =>
      assert.match(e.ingress.policies[0]!.rules[0]!.peers![1]!.reason!, /does not contain fd00::1/),
  },
  { name: 'UDP flow', f: flow(P(c), P(a), 80, 'UDP') },
];

for (const t of flows) {
  test(`explain: ${t.name}`, () => {
    const e = explain(s, t.f);
    assert.deepEqual(e.verdict, evaluate(s, t.f));
    for (const dir of ['egress', 'ingress'] as const) {
      assert.equal(e[dir].allowed, e.verdict[dir].allowed);
      assert.equal(e[dir].reason, e.verdict[dir].reason);
      // Rule analysis agrees with the evaluator's matches.
      const matched = e[dir].policies.flatMap((p) =>
        p.rules
          .filter((r) => r.matched)
          .map((r) => `${p.policy.name}/${r.rule}/${r.matchedPeer}/${r.matchedPort}`),
      );
      assert.deepEqual(
        matched,
        e.verdict[dir].matches.map((m) => `${m.policy.name}/${m.rule}/${m.peer}/${m.port}`),
      );
      if (!e[dir].allowed) assert.ok(e[dir].summary.length > 0);
    }
    const text = formatExplanation(e);
    assert.match(text, new RegExp(`: ${e.verdict.allowed ? 'ALLOWED' : 'DENIED'}\\n`));
    t.check?.(e);
  });
}

test('explain: deny-all without rules has no closest rule', () => {
  const s2 = snapshot({ pods: [a, c], policies: [netpol('x', 'deny')] });
  const e = explain(s2, flow(P(c), P(a)));
  assert.equal(e.ingress.closest, undefined);
  assert.match(e.ingress.summary, /none of them has ingress rules/);
  assert.match(formatExplanation(e), /no ingress rules: isolates only/);
});

test('explain: named port reasons', () => {
  const s2 = snapshot({
    pods: [a, b, c],
    policies: [netpol('x', 'named', { ingress: [rule(undefined, [pport('http'), pport('metrics')])] })],
  });
  const e = explain(s2, flow(P(c), P(a), 81));
  assert.deepEqual(e.ingress.policies[0]!.rules[0]!.reasons, [
    "ports[0]: named port http is x/a's TCP/80, flow is to 81",
    'ports[1]: named port metrics: x/a has no TCP containerPort named metrics',
  ]);
});

test('resolveFlow: names, IPs, named ports and mistakes', () => {
  const f = resolveFlow(s, { from: 'y/b', to: 'x/a', port: 'http', protocol: 'TCP' });
  assert.equal(f.port, 80);
  assert.deepEqual([f.src, f.dst], [P(b), P(a)]);
  // An IP that is exactly one pod's is that pod; a hostNetwork pod's (node) IP stays an IP.
  assert.deepEqual(resolveFlow(s, { from: '10.0.0.3', to: 'x/a', port: '80', protocol: 'TCP' }).src, P(c));
  const ipFlow = resolveFlow(s, { from: '192.168.0.10', to: 'x/a', port: '80', protocol: 'TCP' });
  assert.deepEqual(ipFlow.src, IP('192.168.0.10'));
  assert.equal(ipFlow.family, 4);
  const bad: [string, string, string, Protocol, RegExp][] = [
    ['x/nope', 'x/a', '80', 'TCP', /--from: unknown pod x\/nope/],
    [
      'x/a',
      'nope',
      '80',
      'TCP',
      /--to "nope" is neither NAMESPACE\/POD, NAMESPACE\/KIND\/NAME .* nor an IP address/,
    ],
    ['x/a', 'y/b', 'http', 'TCP', /pod y\/b has no TCP containerPort named http/],
    ['x/a', 'y/b', 'web', 'UDP', /pod y\/b has no UDP containerPort named web/],
    ['x/a', '10.9.9.9', 'http', 'TCP', /needs a destination pod/],
    ['x/a', 'y/b', '0', 'TCP', /between 1 and 65535/],
    ['10.9.9.9', 'fd00::1', '80', 'TCP', /different address families/],
  ];
  for (const [from, to, port, protocol, re] of bad) {
    assert.throws(
      () => resolveFlow(s, { from, to, port, protocol }),
      (err: unknown) => {
        assert.ok(err instanceof UsageError);
        assert.match(err.message, re);
        return true;
      },
    );
  }
});

// ---------------------------------------------------------------------------------------------
// The admin tiers: explain walks Admin, NetworkPolicy and Baseline in order.

const ta = pod('ta', 'web', {
  labels: { app: 'web' },
  ips: ['10.2.0.1', 'fd00::1'],
  ports: [cport(80, 'TCP', 'http')],
  nodeName: 'n1',
});
const ta2 = pod('ta', 'db', { labels: { app: 'db' }, ips: ['10.2.0.2'], nodeName: 'n1' });
const tb = pod('tb', 'web', { labels: { app: 'web' }, ips: ['10.3.0.1'], nodeName: 'n1' });
const dns = pod('kube-system', 'dns', { ips: ['10.4.0.1'], nodeName: 'n1' });
const agent = pod('kube-system', 'agent', { ips: ['192.168.0.11'], hostNetwork: true, nodeName: 'n2' });
const tenants = snapshot({
  namespaces: [ns('ta', { tenant: 'a' }), ns('tb', { tenant: 'b' }), ns('kube-system')],
  nodes: [node('n1', ['192.168.0.10']), { ...node('n2', ['192.168.0.11']), labels: { pool: 'infra' } }],
  pods: [ta, ta2, tb, dns, agent],
  policies: [netpol('ta', 'default-deny')],
  adminPolicies: [
    cnp('tenant-isolation', {
      priority: 10,
      subject: nsSubject(sel({}, [{ key: 'tenant', operator: 'Exists', values: [] }])),
      ingress: [
        adminRule('Pass', [nsSubject(sel({ tenant: 'a' }))], undefined, 'same-tenant'),
        adminRule(
          'Deny',
          [nsSubject(sel({}, [{ key: 'tenant', operator: 'Exists', values: [] }]))],
          undefined,
          'deny-other-tenants',
        ),
      ],
      egress: [
        adminRule('Accept', [nodesPeer(sel({ pool: 'infra' }))], [aport(10250)], 'kubelet'),
        adminRule(
          'Deny',
          [networksPeer('10.3.0.0/16')],
          [{ kind: 'named', name: 'http' }, aport(8000, 'TCP', 8080)],
          'no-b',
        ),
      ],
    }),
    // Same priority as tenant-isolation: consulted after it (ClusterNetworkPolicy first).
    cnp('a-first-by-name', {
      kind: 'AdminNetworkPolicy',
      priority: 10,
      subject: podSubject(sel({ app: 'db' })),
      ingress: [adminRule('Accept', [nsSubject()])],
    }),
    cnp('default', {
      kind: 'BaselineAdminNetworkPolicy',
      subject: nsSubject(sel({ tenant: 'b' })),
      ingress: [adminRule('Deny', [nsSubject()], undefined, 'default-deny')],
    }),
  ],
});

const adminFlows: { name: string; f: Flow; check: (e: Explanation, text: string) => void }[] = [
  {
    name: 'an admin Deny: the deciding rule by tier, kind, name, index and rule name',
    f: flow(P(tb), P(ta)),
    check: (e, text) => {
      assert.equal(e.ingress.reason, 'admin-deny');
      assert.equal(
        e.ingress.summary,
        '[Admin] ClusterNetworkPolicy tenant-isolation rule deny-other-tenants (ingress[1]): Deny → DENIED',
      );
      const step = e.ingress.tiers![0]!;
      assert.deepEqual(step.decision, {
        kind: 'ClusterNetworkPolicy',
        name: 'tenant-isolation',
        priority: 10,
        tier: 'Admin',
        rule: 1,
        ruleName: 'deny-other-tenants',
        action: 'Deny',
      });
      assert.deepEqual(
        step.policies!.map((p) => [p.kind, p.name, p.status]),
        [
          ['ClusterNetworkPolicy', 'tenant-isolation', 'checked'],
          ['AdminNetworkPolicy', 'a-first-by-name', 'not-consulted'],
        ],
      );
      assert.equal(
        step.policies![0]!.rules[0]!.peers[0]!.reason,
        'namespace tb fails tenant=a, it has tenant=b',
      );
      assert.match(
        text,
        /\[Admin\] 2 policies \(lower priority first; at equal priority ClusterNetworkPolicy before AdminNetworkPolicy, then by name\):/,
      );
      assert.match(text, / {6}deny-other-tenants \(ingress\[1\]\) Deny: matches → Deny\n/);
      assert.match(
        text,
        /AdminNetworkPolicy a-first-by-name \(priority 10\): not consulted: ClusterNetworkPolicy tenant-isolation ingress rule 1 decided first \(Deny\)/,
      );
    },
  },
  {
    name: 'Pass → NetworkPolicy isolation denies',
    f: flow(P(ta2), P(ta)),
    check: (e, text) => {
      assert.equal(e.ingress.reason, 'no-rule-matched');
      assert.equal(
        e.ingress.summary,
        '[Admin] ClusterNetworkPolicy tenant-isolation rule same-tenant (ingress[0]): Pass (to the NetworkPolicy tier) → [NetworkPolicy] isolated by ta/default-deny, no rule matched → DENIED',
      );
      assert.deepEqual(
        e.ingress.tiers!.map((t) => [t.tier, t.answer]),
        [
          ['Admin', 'Pass'],
          ['NetworkPolicy', 'Deny'],
        ],
      );
      assert.equal(e.ingress.policies[0]!.policy.name, 'default-deny');
      assert.match(
        text,
        / {2}\[NetworkPolicy\] isolated by ta\/default-deny, no rule matched:\n {2}NetworkPolicy ta\/default-deny:\n {4}no ingress rules: isolates only/,
      );
      assert.match(text, /passed the flow to the NetworkPolicy tier/);
    },
  },
  {
    name: 'a baseline decision after the other tiers said nothing',
    f: flow(P(dns), P(tb)),
    check: (e, text) => {
      assert.equal(e.ingress.reason, 'baseline-deny');
      assert.equal(
        e.ingress.summary,
        '[Admin] no rule matched (1 policy checked) → [NetworkPolicy] not isolated (no NetworkPolicy with policyTypes Ingress selects tb/web) → [Baseline] BaselineAdminNetworkPolicy default rule default-deny (ingress[0]): Deny → DENIED',
      );
      assert.deepEqual(e.ingress.tiers![2]!.decision?.tier, 'Baseline');
      assert.match(
        text,
        /\[Baseline\] 1 policy \(lower priority first; at equal priority ClusterNetworkPolicy before BaselineAdminNetworkPolicy, then by name\):/,
      );
    },
  },
  {
    name: 'a hostNetwork pod is no subject, and no namespaces peer matches it',
    f: flow(P(agent), P(tb)),
    check: (e) => {
      assert.equal(e.ingress.reason, 'not-isolated');
      assert.match(e.ingress.summary, /→ allowed \(no tier decided\)$/);
      assert.match(
        e.ingress.tiers![2]!.policies![0]!.rules[0]!.peers[0]!.reason!,
        /kube-system\/agent uses the host network: "host-networked pods are not included"/,
      );
      assert.match(e.egress.summary, /"host-networked pods are not included"/);
    },
  },
  {
    name: 'nodes and networks peers, number, range and named ports: matched or why not',
    f: flow(P(ta), P(tb), 8081),
    check: (e) => {
      const rules = e.egress.tiers![0]!.policies![0]!.rules;
      assert.deepEqual(rules[0]!.peers[0], {
        index: 0,
        peer: 'nodes pool=infra',
        matched: false,
        reason: 'selects node n2; tb/web is neither one of their addresses nor a hostNetwork pod on them',
      });
      assert.equal(rules[0]!.ports![0]!.reason, 'allows port 10250 only');
      assert.equal(rules[1]!.peers[0]!.matched, true);
      assert.deepEqual(
        rules[1]!.ports!.map((p) => [p.port, p.reason]),
        [
          ['named port http', 'tb/web has no TCP containerPort named http'],
          ['TCP/8000-8080', 'allows ports 8000-8080 only'],
        ],
      );
      assert.equal(e.egress.summary.endsWith('→ allowed (no tier decided)'), true);
    },
  },
  {
    name: 'a nodes peer matches a hostNetwork pod on the node; networks want an address of the family',
    f: { ...flow(P(ta), P(agent), 10250), family: 4 },
    check: (e) => {
      assert.equal(e.egress.reason, 'admin-allow');
      assert.match(e.egress.summary, /tenant-isolation rule kubelet \(egress\[0\]\): Accept → allowed$/);
    },
  },
  {
    name: 'IPv6: a networks peer cannot match without an IPv6 address',
    f: { ...flow(P(ta), IP('fd00::9'), 80), family: 6 },
    check: (e) => {
      const r = e.egress.tiers![0]!.policies![0]!.rules[1]!;
      assert.equal(r.peers[0]!.reason, 'does not contain fd00::9');
    },
  },
];

for (const t of adminFlows) {
  test(`explain, admin tiers: ${t.name}`, () => {
    const e = explain(tenants, t.f);
    assert.deepEqual(e.verdict, evaluate(tenants, t.f));
    for (const dir of ['egress', 'ingress'] as const) {
      if (e.verdict[dir].tiers.length === 0) continue;
      assert.deepEqual(
        e[dir].tiers!.map((x) => x.tier),
        e.verdict[dir].tiers.map((x) => x.tier),
      );
    }
    t.check(e, formatExplanation(e));
  });
}

test('explain: an unknown peer makes a Deny rule Deny all, and an Accept rule inert', () => {
  const unknown = { kind: 'unknown', fields: ['future'] } as const;
  const s2 = snapshot({
    namespaces: [ns('ta', { tenant: 'a' })],
    pods: [ta, ta2],
    adminPolicies: [
      cnp('acc', { ingress: [adminRule('Accept', [nsSubject(), unknown])] }),
      cnp('deny', { priority: 1, ingress: [adminRule('Deny', [unknown])] }),
    ],
  });
  const e = explain(s2, flow(P(ta2), P(ta)));
  const [acc, deny] = e.ingress.tiers![0]!.policies!;
  assert.equal(acc!.rules[0]!.matched, false);
  assert.deepEqual(acc!.rules[0]!.reasons, [
    'from[1] is a peer moat does not know: an Accept rule with it matches no traffic',
  ]);
  assert.deepEqual(
    [deny!.rules[0]!.matched, deny!.rules[0]!.applied, deny!.rules[0]!.denyAll],
    [true, 'Deny', true],
  );
  assert.match(
    e.ingress.summary,
    /rule ingress\[0\]: Deny \(an unknown peer makes the rule Deny all\) → DENIED/,
  );
  const text = formatExplanation(e);
  assert.match(text, / {8}from\[1\] is a peer moat does not know/);
  assert.match(text, /ingress\[0\] Deny: matches → Deny \(Deny all: an unknown peer\)/);
});

test('explain: without admin policies no side has tiers, and the text has no tier lines', () => {
  for (const f of [flow(P(b), P(a)), flow(P(c), P(a)), flow(P(a), P(c))]) {
    const e = explain(s, f);
    assert.equal('tiers' in e.egress || 'tiers' in e.ingress, false);
    assert.doesNotMatch(formatExplanation(e), /\[(Admin|NetworkPolicy|Baseline)\]/);
  }
});
