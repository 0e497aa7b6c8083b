import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cport, ipPeer, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
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
    ['x/a', 'nope', '80', 'TCP', /--to "nope" is neither NAMESPACE\/POD nor an IP address/],
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
