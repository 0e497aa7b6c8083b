import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
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
import { parseIP } from '../model/cidr.js';
import type {
  AdminAction,
  AdminKind,
  AdminPeer,
  AdminPolicy,
  AdminPort,
  Labels,
  NetworkPolicy,
  Peer,
  Pod,
  PolicyPort,
  Protocol,
  Snapshot,
} from '../model/types.js';
import { evaluate, type Endpoint } from '../policy/evaluate.js';
import { compile, IncrementalCompiler } from './compile.js';
import { conntrackTargets, diffRulesets } from './diff.js';
import { renderNft } from './render.js';
import { simulate } from './simulate.js';
import type { Ruleset } from './model.js';
import { counterIndex, decide, type Decision } from '../flowlog/attribute.js';

const N1 = node('n1', ['192.168.0.1', 'fd00::1']);
const N2 = node('n2', ['192.168.0.2']);

function base(over: Partial<Snapshot> = {}): Snapshot {
  return snapshot({
    namespaces: [ns('a', { team: 'x' }), ns('b', { team: 'y' })],
    nodes: [N1, N2],
    pods: [
      pod('a', 'web', {
        labels: { app: 'web' },
        ips: ['10.0.0.1', 'fd00:10::1'],
        nodeName: 'n1',
        ports: [cport(8080, 'TCP', 'http'), cport(5353, 'UDP', 'http')],
      }),
      pod('a', 'db', {
        labels: { app: 'db' },
        ips: ['10.0.0.2'],
        nodeName: 'n1',
        ports: [cport(5432, 'TCP', 'pg')],
      }),
      pod('b', 'cli', { labels: { app: 'cli' }, ips: ['10.0.1.1', 'fd00:11::1'], nodeName: 'n2' }),
      pod('b', 'host', { hostNetwork: true, ips: ['192.168.0.2'], nodeName: 'n2' }),
    ],
    ...over,
  });
}

const cache = new WeakMap<Snapshot, Map<boolean, ReturnType<typeof compile>>>();
function compiled(snap: Snapshot, police: boolean) {
  let m = cache.get(snap);
  if (!m) cache.set(snap, (m = new Map<boolean, ReturnType<typeof compile>>()));
  let rs = m.get(police);
  if (!rs) m.set(police, (rs = compile(snap, { table: 'moat', policeNodeEgress: police })));
  return rs;
}

/** The kernel's answer for a flow, by simulating both hooks the packet could traverse. */
function kernelAllows(
  snap: Snapshot,
  src: Endpoint,
  dst: Endpoint,
  proto: Protocol,
  port: number,
  fam: 4 | 6,
  police: boolean,
) {
  const r = kernelSim(compiled(snap, police), snap, src, dst, proto, port, fam);
  return r === undefined ? undefined : r.verdict === 'accept';
}

function kernelSim(
  rs: Ruleset,
  snap: Snapshot,
  src: Endpoint,
  dst: Endpoint,
  proto: Protocol,
  port: number,
  fam: 4 | 6,
) {
  const addr = (e: Endpoint) => {
    const list = e.kind === 'ip' ? [e.ip] : e.pod.ips;
    return list.find((x) => parseIP(x)?.family === fam);
  };
  const s = addr(src);
  const d = addr(dst);
  if (s === undefined || d === undefined) return undefined;
  // A packet to one of the sender's own node addresses is delivered locally (input hook).
  const srcNode = src.kind === 'pod' ? src.pod.nodeName : undefined;
  const ownNodeAddrs = new Set([
    ...(snap.nodes.find((n) => n.name === srcNode)?.addresses ?? []),
    ...snap.pods.filter((p) => p.hostNetwork && p.nodeName === srcNode).flatMap((p) => p.ips),
  ]);
  const hook = src.kind === 'pod' && !src.pod.hostNetwork && ownNodeAddrs.has(d) ? 'input' : 'postrouting';
  // The destination's node judges ingress: `fib saddr type local` holds for its own addresses.
  const dstNode = dst.kind === 'pod' ? dst.pod.nodeName : undefined;
  const dstNodeAddrs = new Set([
    ...(snap.nodes.find((n) => n.name === dstNode)?.addresses ?? []),
    ...snap.pods.filter((p) => p.hostNetwork && p.nodeName === dstNode).flatMap((p) => p.ips),
  ]);
  return simulate(rs, {
    family: fam,
    saddr: s,
    daddr: d,
    l4proto: proto.toLowerCase() as 'tcp',
    dport: port,
    hook,
    saddrLocal: dstNode !== undefined && dstNodeAddrs.has(s),
  });
}

describe('compile', () => {
  it('never emits a queue statement and is deterministic under input order', () => {
    const snap = base({
      policies: [
        netpol('a', 'deny'),
        netpol('a', 'web', {
          podSelector: sel({ app: 'web' }),
          ingress: [
            rule([podPeer(undefined, sel({ team: 'y' }))], [pport('http'), pport(9000, 'TCP', 9100)]),
          ],
        }),
      ],
    });
    const a = renderNft(compile(snap, { table: 'moat' }));
    const shuffled = { ...snap, pods: [...snap.pods].reverse(), policies: [...snap.policies].reverse() };
    assert.equal(renderNft(compile(shuffled, { table: 'moat' })), a);
    assert.doesNotMatch(a, /\bqueue\b/);
  });

  it('keeps rules flat when pods grow 10x under the same policies', () => {
    const policies = [
      netpol('a', 'deny'),
      netpol('a', 'web', {
        podSelector: sel({ app: 'web' }),
        ingress: [rule([podPeer(sel({ app: 'db' }))], [pport('http'), pport(443)])],
        egress: [rule([ipPeer('10.0.0.0/8', ['10.1.0.0/16'])])],
      }),
    ];
    const gen = (n: number) => {
      const pods: Pod[] = [];
      for (let i = 0; i < n; i++) {
        pods.push(
          pod('a', `p${i}`, {
            labels: { app: i % 2 === 0 ? 'web' : 'db' },
            ips: [`10.0.${i >> 8}.${i & 255}`],
            nodeName: 'n1',
            ports: [cport(8080, 'TCP', 'http')],
          }),
        );
      }
      return compile(base({ pods, policies }), { table: 'moat', nodeName: 'n1' });
    };
    const small = gen(20);
    const big = gen(200);
    const rules = (rs: ReturnType<typeof compile>) => rs.chains.reduce((n, c) => n + c.rules.length, 0);
    assert.equal(rules(big), rules(small));
    assert.equal(big.chains.length, small.chains.length);
    assert.equal(big.sets.length, small.sets.length);
    assert.ok(
      big.sets.reduce((n, s) => n + s.elements.length, 0) >
        small.sets.reduce((n, s) => n + s.elements.length, 0),
    );
  });

  it('dispatches only local, isolated, non-hostNetwork pods', () => {
    const snap = base({ policies: [netpol('a', 'deny'), netpol('b', 'deny')] });
    const keys = (name: string) =>
      compile(snap, { table: 'moat', nodeName: 'n2' })
        .sets.find((s) => s.name === name)
        ?.elements.map((e) => e.key);
    assert.deepEqual(keys('ingress_v4'), ['10.0.1.1']);
    assert.deepEqual(keys('egress_v4'), []);
    const all = compile(snap, { table: 'moat' })
      .sets.find((s) => s.name === 'ingress_v4')!
      .elements.map((e) => e.key);
    assert.deepEqual(all, ['10.0.0.1', '10.0.0.2', '10.0.1.1']);
  });

  it('shares one peer set between policies with the same selector', () => {
    const allowDb = (name: string) =>
      netpol('a', name, { podSelector: sel({ app: name }), ingress: [rule([podPeer(sel({ app: 'db' }))])] });
    const rs = compile(base({ policies: [allowDb('web'), allowDb('db'), allowDb('other')] }), {
      table: 'moat',
    });
    assert.equal(rs.sets.filter((s) => s.name.startsWith('peer_')).length, 2); // v4 and v6
  });

  it('police-node-egress adds an input-hook chain and stops exempting pod -> node egress', () => {
    const snap = base({
      policies: [
        netpol('a', 'eg', { egress: [rule(undefined, [pport(53, 'UDP')])], policyTypes: ['Egress'] }),
      ],
    });
    const off = compile(snap, { table: 'moat' });
    const on = compile(snap, { table: 'moat', policeNodeEgress: true });
    assert.equal(
      off.chains.some((c) => c.base?.hook === 'input'),
      false,
    );
    assert.equal(on.chains.find((c) => c.base?.hook === 'input')?.name, 'egress_node');
    const web = base().pods[0]!;
    const toNode: Endpoint = { kind: 'ip', ip: '192.168.0.1' };
    assert.equal(kernelAllows(snap, { kind: 'pod', pod: web }, toNode, 'TCP', 22, 4, false), true);
    assert.equal(kernelAllows(snap, { kind: 'pod', pod: web }, toNode, 'TCP', 22, 4, true), false);
    assert.equal(kernelAllows(snap, { kind: 'pod', pod: web }, toNode, 'UDP', 53, 4, true), true);
  });

  const cases: {
    name: string;
    policies: NetworkPolicy[];
    flows: [string, string, Protocol, number, 4 | 6, boolean][];
  }[] = [
    {
      name: 'named port resolves per destination pod and protocol',
      policies: [netpol('a', 'web', { podSelector: sel(), ingress: [rule(undefined, [pport('http')])] })],
      flows: [
        ['b/cli', 'a/web', 'TCP', 8080, 4, true],
        ['b/cli', 'a/web', 'UDP', 5353, 4, false], // policy says TCP
        ['b/cli', 'a/db', 'TCP', 8080, 4, false],
        ['b/cli', 'a/web', 'TCP', 8080, 6, true],
      ],
    },
    {
      name: 'ipBlock with except, endPort, SCTP',
      policies: [
        netpol('a', 'ipb', {
          podSelector: sel({ app: 'web' }),
          ingress: [
            rule([ipPeer('10.0.0.0/8', ['10.0.1.0/24'])], [pport(9000, 'TCP', 9100)]),
            rule([ipPeer('fd00::/16')], [pport(7, 'SCTP')]),
          ],
        }),
      ],
      flows: [
        ['a/db', 'a/web', 'TCP', 9050, 4, true],
        ['a/db', 'a/web', 'TCP', 9101, 4, false],
        ['b/cli', 'a/web', 'TCP', 9050, 4, false], // excepted
        ['b/cli', 'a/web', 'SCTP', 7, 6, true],
        ['b/cli', 'a/web', 'SCTP', 7, 4, false],
      ],
    },
    {
      name: 'hostNetwork peers match only ipBlocks; own node always allowed',
      policies: [
        netpol('b', 'deny'),
        netpol('a', 'from-b', { ingress: [rule([podPeer(undefined, sel({ team: 'y' }))])] }),
      ],
      flows: [
        ['b/host', 'a/web', 'TCP', 80, 4, false],
        ['b/host', 'b/cli', 'TCP', 80, 4, true],
        ['b/cli', 'a/web', 'TCP', 80, 4, true],
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const snap = base({ policies: c.policies });
      const byKey = new Map(snap.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
      for (const [s, d, proto, port, fam, want] of c.flows) {
        const src: Endpoint = { kind: 'pod', pod: byKey.get(s)! };
        const dst: Endpoint = { kind: 'pod', pod: byKey.get(d)! };
        const oracle = evaluate(snap, { src, dst, protocol: proto, port, family: fam }).allowed;
        assert.equal(oracle, want, `oracle ${s} -> ${d} ${proto}/${port} v${fam}`);
        assert.equal(
          kernelAllows(snap, src, dst, proto, port, fam, false),
          want,
          `kernel ${s} -> ${d} ${proto}/${port} v${fam}`,
        );
      }
    });
  }
});

describe('compile: the admin tiers', () => {
  const chain = (rs: ReturnType<typeof compile>, name: string) => rs.chains.find((c) => c.name === name);
  const tenant = cnp('tenants', {
    priority: 10,
    subject: nsSubject(sel({ team: 'x' })),
    ingress: [
      adminRule('Pass', [nsSubject(sel({ team: 'x' }))], undefined, 'same-team'),
      adminRule('Deny', [nsSubject()], [aport(8080), { kind: 'named', name: 'pg' }], 'others'),
    ],
    egress: [adminRule('Accept', [nodesPeer()], [aport(10250, 'TCP', 10259)])],
  });
  const baseline = cnp('default', {
    kind: 'BaselineAdminNetworkPolicy',
    ingress: [adminRule('Deny', [nsSubject()])],
  });

  it('leaves the layout of a cluster without admin policies unchanged', () => {
    const rs = compile(base({ policies: [netpol('a', 'deny')] }), { table: 'moat' });
    assert.equal(chain(rs, 'ingress_np'), undefined);
    assert.ok(!rs.sets.some((s) => s.name.includes('admin') || s.name.includes('baseline')));
  });

  it('dispatches Admin, then NetworkPolicy, then Baseline, every Admin path ending in a verdict', () => {
    const rs = compile(base({ adminPolicies: [baseline, tenant] }), { table: 'moat' });
    const pods = chain(rs, 'ingress_pods')!.rules;
    assert.deepEqual(pods.slice(-3), [
      'ip daddr vmap @ingress_admin_v4',
      'ip6 daddr vmap @ingress_admin_v6',
      'goto ingress_np',
    ]);
    assert.deepEqual(chain(rs, 'ingress_np')!.rules, [
      'ip daddr vmap @ingress_v4',
      'ip6 daddr vmap @ingress_v6',
      'ip daddr vmap @ingress_baseline_v4',
      'ip6 daddr vmap @ingress_baseline_v6',
      'accept',
    ]);
    // a/web and a/db (team x) are the tenant's subjects; b/cli only the baseline's.
    const admin = rs.sets.find((s) => s.name === 'ingress_admin_v4')!;
    assert.deepEqual(
      admin.elements.map((e) => e.key),
      ['10.0.0.1', '10.0.0.2'],
    );
    const sig = chain(rs, admin.elements[0]!.value!.replace('goto ', ''))!;
    assert.equal(sig.rules.at(-1), 'goto ingress_np');
    const pol = chain(rs, sig.rules[0]!.replace('jump ', ''))!;
    const v4 = pol.rules.filter((r) => r.startsWith('ip '));
    // Pass goes on to the NetworkPolicy tier; Deny drops, per port form; rules keep their order.
    assert.match(v4[0]!, /^ip saddr @peer_\w+_v4 counter name r_\w+_i0 goto ingress_np$/);
    assert.match(v4[1]!, /^ip saddr @peer_\w+_v4 tcp dport 8080 counter name r_\w+_i1 drop$/);
    assert.match(
      v4[2]!,
      /^ip saddr @peer_\w+_v4 ip daddr \. meta l4proto \. th dport @nport_pg_v4 counter name r_\w+_i1 drop$/,
    );
    const bsig = rs.sets.find((s) => s.name === 'ingress_baseline_v4')!;
    assert.equal(bsig.elements.length, 3);
    // The Baseline chain is jumped to and returns: ingress_np's last rule is its default allow.
    assert.match(bsig.elements[0]!.value!, /^jump bin_\w+$/);
    const bchain = chain(rs, bsig.elements[0]!.value!.replace('jump ', ''))!;
    assert.ok(
      bchain.rules.every((r) => r.startsWith('jump ')),
      bchain.rules.join('\n'),
    );
    // Egress: the nodes peer is a set of node addresses (InternalIP, ExternalIP, hostNetwork pods).
    const out = rs.chains.find((c) => c.name.startsWith('ae_'))!;
    assert.match(out.rules[0]!, /^ip daddr @node_\w+_v4 tcp dport 10250-10259 counter name r_\w+_e0 accept$/);
    const nodes = rs.sets.find((s) => s.name.startsWith('node_') && s.name.endsWith('_v4'))!;
    assert.deepEqual(
      nodes.elements.map((e) => e.key),
      ['192.168.0.1', '192.168.0.2'],
    );
    const meta = rs.counters.find((c) => c.meta.admin?.rule === 1 && c.meta.direction === 'ingress')!.meta;
    assert.deepEqual(meta.admin, {
      kind: 'ClusterNetworkPolicy',
      name: 'tenants',
      tier: 'Admin',
      rule: 1,
      ruleName: 'others',
      action: 'Deny',
    });
    assert.equal(meta.kind, 'drop');
  });

  it('fails closed on an unknown peer, and admits nothing for domain names', () => {
    const cases: { action: AdminAction; peer: AdminPeer; want: string[] }[] = [
      { action: 'Deny', peer: { kind: 'unknown', fields: ['x'] }, want: ['counter name r_H_e0 drop'] },
      { action: 'Pass', peer: { kind: 'unknown', fields: ['x'] }, want: ['counter name r_H_e0 drop'] },
      { action: 'Accept', peer: { kind: 'unknown', fields: ['x'] }, want: [] },
      { action: 'Accept', peer: { kind: 'domainNames', domainNames: ['example.com'] }, want: [] },
    ];
    for (const c of cases) {
      const p = cnp('c', { egress: [adminRule(c.action, [c.peer])] });
      const rs = compile(base({ adminPolicies: [p] }), { table: 'moat' });
      const ch = rs.chains.find((x) => x.name.startsWith('ae_'));
      assert.deepEqual(
        (ch?.rules ?? []).map((r) => r.replace(/r_\w+_e0/, 'r_H_e0')),
        c.want,
        `${c.action} ${c.peer.kind}`,
      );
      // A policy with no rules left is no chain, and no pod is dispatched to it.
      if (c.want.length === 0)
        assert.equal(rs.sets.find((s) => s.name === 'egress_admin_v4')!.elements.length, 0);
    }
  });

  it('cuts the flows of an address that joins a Deny peer, not of one that joins an allow peer', () => {
    const denyDb = cnp('no-db', {
      subject: podSubject(sel({ app: 'cli' })),
      egress: [adminRule('Deny', [podSubject(sel({ app: 'db' }))])],
    });
    const allowDb = netpol('b', 'to-db', {
      podSelector: sel({ app: 'cli' }),
      policyTypes: ['Egress'],
      egress: [rule([podPeer(sel({ app: 'db' }), sel())])],
    });
    const before = base();
    const relabel = (s0: Snapshot): Snapshot => ({
      ...s0,
      pods: s0.pods.map((p) => (p.name === 'web' ? { ...p, labels: { app: 'db' } } : p)),
    });
    for (const [what, over, want] of [
      ['admin Deny', { adminPolicies: [denyDb] }, true],
      ['NetworkPolicy allow', { policies: [allowDb] }, false],
    ] as const) {
      const a = compile({ ...before, ...over }, { table: 'moat' });
      const b = compile(relabel({ ...before, ...over }), { table: 'moat' });
      const targets = conntrackTargets(a, b).map((t) => `${t.field} ${t.address}`);
      assert.equal(targets.includes('src 10.0.0.1') && targets.includes('reply-src 10.0.0.1'), want, what);
    }
  });

  it('never makes hostNetwork pods subjects', () => {
    const rs = compile(
      base({ adminPolicies: [cnp('all', { ingress: [adminRule('Deny', [nsSubject()])] })] }),
      {
        table: 'moat',
      },
    );
    const keys = rs.sets.find((s) => s.name === 'ingress_admin_v4')!.elements.map((e) => e.key);
    assert.ok(!keys.includes('192.168.0.2'));
    assert.equal(keys.length, 3);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: the compiled ruleset and the reference evaluator agree on every flow.

const LABELS: Labels[] = [{ app: 'a' }, { app: 'b' }, { app: 'a', tier: 'x' }, {}];
const PORTS = [80, 443, 8080];

const arbSelector = fc.oneof(
  fc.constant(sel()),
  fc.constantFrom(...LABELS.filter((l) => Object.keys(l).length > 0)).map((l) => sel(l)),
  fc.constant(sel({}, [{ key: 'tier', operator: 'DoesNotExist', values: [] }])),
);
const arbNsSelector = fc.constantFrom(sel(), sel({ team: 'x' }), sel({ team: 'y' }));
const arbPeer: fc.Arbitrary<Peer> = fc.oneof(
  fc
    .record({
      p: fc.option(arbSelector, { nil: undefined }),
      n: fc.option(arbNsSelector, { nil: undefined }),
    })
    .map(({ p, n }) => (p === undefined && n === undefined ? podPeer(sel()) : podPeer(p, n))),
  fc.constantFrom(
    ipPeer('10.0.0.0/16', ['10.0.1.0/24']),
    ipPeer('10.0.0.0/8'),
    ipPeer('0.0.0.0/0'),
    ipPeer('192.168.0.0/24'),
    ipPeer('fd00::/16', ['fd00:11::/32']),
    ipPeer('10.0.0.3/32'),
  ),
);
const arbPort: fc.Arbitrary<PolicyPort> = fc.oneof(
  fc.constantFrom(...PORTS).map((p) => pport(p)),
  fc.constant(pport(80, 'TCP', 443)),
  fc.constant(pport('http')),
  fc.constant(pport('dns', 'UDP')),
  fc.constant(pport(undefined, 'UDP')),
);
const arbRule = fc
  .record({
    peers: fc.option(fc.array(arbPeer, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    ports: fc.option(fc.array(arbPort, { minLength: 1, maxLength: 2 }), { nil: undefined }),
  })
  .map(({ peers, ports }) => rule(peers, ports));
const arbPolicy = (i: number) =>
  fc
    .record({
      ns: fc.constantFrom('a', 'b'),
      podSelector: arbSelector,
      ingress: fc.array(arbRule, { maxLength: 2 }),
      egress: fc.array(arbRule, { maxLength: 2 }),
      types: fc.constantFrom<('Ingress' | 'Egress')[][]>(['Ingress'], ['Egress'], ['Ingress', 'Egress']),
    })
    .map((r) =>
      netpol(r.ns, `p${i}`, {
        podSelector: r.podSelector,
        ingress: r.ingress,
        egress: r.egress,
        policyTypes: r.types,
      }),
    );

// Admin tiers: every kind, tier, action, peer type and port form.
const arbAdminPeer: fc.Arbitrary<AdminPeer> = fc.oneof(
  arbNsSelector.map((n) => nsSubject(n)),
  fc.tuple(arbSelector, arbNsSelector).map(([p, n]) => podSubject(p, n)),
  fc.constantFrom(
    nodesPeer(),
    nodesPeer(sel({ zone: 'a' })),
    networksPeer('10.0.0.0/16'),
    networksPeer('192.168.0.0/24', 'fd00::/16'),
    networksPeer('0.0.0.0/0'),
    networksPeer('10.0.1.9/32'),
    { kind: 'domainNames', domainNames: ['example.com'] },
    { kind: 'unknown', fields: ['future'] },
  ),
);
const arbAdminPort: fc.Arbitrary<AdminPort> = fc.constantFrom(
  aport(80),
  aport(80, 'TCP', 443),
  aport(53, 'UDP'),
  aport(8080),
  { kind: 'named', name: 'http' },
  { kind: 'named', name: 'dns' },
);
const arbAdminRule = fc
  .record({
    action: fc.constantFrom<AdminAction>('Accept', 'Deny', 'Pass'),
    peers: fc.array(arbAdminPeer, { minLength: 1, maxLength: 2 }),
    ports: fc.option(fc.array(arbAdminPort, { minLength: 1, maxLength: 2 }), { nil: undefined }),
  })
  .map((r) => adminRule(r.action, r.peers, r.ports));
const arbAdminPolicy = (i: number): fc.Arbitrary<AdminPolicy> =>
  fc
    .record({
      kind: fc.constantFrom<[AdminKind, 'Admin' | 'Baseline']>(
        ['ClusterNetworkPolicy', 'Admin'],
        ['AdminNetworkPolicy', 'Admin'],
        ['ClusterNetworkPolicy', 'Baseline'],
        ['BaselineAdminNetworkPolicy', 'Baseline'],
      ),
      priority: fc.constantFrom(0, 1, 5),
      subject: fc.oneof(
        arbNsSelector.map((n) => nsSubject(n)),
        fc.tuple(arbSelector, arbNsSelector).map(([p, n]) => podSubject(p, n)),
      ),
      ingress: fc.array(arbAdminRule, { maxLength: 2 }),
      egress: fc.array(arbAdminRule, { maxLength: 2 }),
    })
    .map((r) =>
      cnp(r.kind[0] === 'BaselineAdminNetworkPolicy' ? 'default' : `c${i}`, {
        kind: r.kind[0],
        tier: r.kind[1],
        priority: r.priority,
        subject: r.subject,
        ingress: r.ingress,
        egress: r.egress,
      }),
    );

const arbSnapshot = fc
  .record({
    labels: fc.array(fc.constantFrom(...LABELS), { minLength: 5, maxLength: 5 }),
    nss: fc.array(fc.constantFrom('a', 'b'), { minLength: 5, maxLength: 5 }),
    nodes: fc.array(fc.constantFrom('n1', 'n2'), { minLength: 5, maxLength: 5 }),
    policies: fc.tuple(arbPolicy(0), arbPolicy(1), arbPolicy(2)).chain((ps) => fc.subarray(ps)),
    // Sometimes two live pods share an address (a stale pod and its successor): fail-closed.
    dupe: fc.option(fc.tuple(fc.nat(4), fc.nat(4)), { freq: 4, nil: undefined }),
    admin: fc.option(
      fc.tuple(arbAdminPolicy(0), arbAdminPolicy(1), arbAdminPolicy(2)).chain((ps) => fc.subarray(ps)),
      { freq: 3, nil: undefined },
    ),
  })
  .map(({ labels, nss, nodes, policies, dupe, admin }) => {
    const pods: Pod[] = labels.map((l, i) =>
      pod(nss[i]!, `pod${i}`, {
        labels: l,
        ips:
          i % 2 === 0 ? [`10.0.${i % 3}.${i + 1}`, `fd00:1${i % 3}::${i + 1}`] : [`10.0.${i % 3}.${i + 1}`],
        nodeName: nodes[i]!,
        ports:
          i % 2 === 0 ? [cport(8080, 'TCP', 'http'), cport(53, 'UDP', 'dns')] : [cport(80, 'TCP', 'http')],
      }),
    );
    // No named ports on the hostNetwork pod: the kernel cannot tell it from the node address
    // 192.168.0.2, which the evaluator (an IP endpoint) never resolves named ports against.
    pods.push(pod('b', 'hostpod', { hostNetwork: true, ips: ['192.168.0.2'], nodeName: 'n2' }));
    if (dupe !== undefined && dupe[0] !== dupe[1]) {
      const [j, k] = dupe;
      pods[j] = { ...pods[j]!, ips: [pods[k]!.ips[0]!] };
    }
    // At most one BaselineAdminNetworkPolicy (it is named "default").
    const adminPolicies = admin?.filter(
      (p, i, all) => p.kind !== 'BaselineAdminNetworkPolicy' || all.findIndex((q) => q.kind === p.kind) === i,
    );
    return base({
      pods,
      policies,
      // n1 is in zone a; n2 has an ExternalIP (a nodes peer matches it, the own-node rule does not).
      nodes: [
        { ...N1, labels: { zone: 'a' } },
        { ...N2, externalAddresses: ['203.0.113.2'] },
      ],
      ...(adminPolicies !== undefined ? { adminPolicies } : {}),
    });
  });

describe('compile agrees with the reference evaluator', () => {
  it('on random snapshots and flows (both police-node-egress settings)', () => {
    fc.assert(
      fc.property(arbSnapshot, fc.boolean(), (snap, police) => {
        const endpoints: Endpoint[] = [
          ...snap.pods.map((p): Endpoint => ({ kind: 'pod', pod: p })),
          ...[
            '192.168.0.1',
            '192.168.0.2',
            '10.0.1.9',
            '8.8.8.8',
            'fd00::1',
            'fd00:11::9',
            '203.0.113.2',
          ].map((ip): Endpoint => ({ kind: 'ip', ip })),
        ];
        for (const src of endpoints) {
          for (const dst of endpoints) {
            if (src.kind === 'ip' && dst.kind === 'ip') continue;
            for (const [proto, port] of [
              ['TCP', 80],
              ['TCP', 8080],
              ['UDP', 53],
              ['TCP', 443],
            ] as const) {
              for (const fam of [4, 6] as const) {
                const k = kernelAllows(snap, src, dst, proto, port, fam, police);
                if (k === undefined) continue;
                // Two pods at one address cannot send to each other: no packet to judge.
                const sa = src.kind === 'pod' ? src.pod.ips.find((x) => parseIP(x)?.family === fam) : src.ip;
                const da = dst.kind === 'pod' ? dst.pod.ips.find((x) => parseIP(x)?.family === fam) : dst.ip;
                if (sa === da && !(src.kind === 'pod' && dst.kind === 'pod' && src.pod === dst.pod)) continue;
                const v = evaluate(
                  snap,
                  { src, dst, protocol: proto, port, family: fam },
                  { policeNodeEgress: police },
                );
                if (k !== v.allowed) {
                  const name = (e: Endpoint) =>
                    e.kind === 'pod' ? `${e.pod.namespace}/${e.pod.name}` : e.ip;
                  assert.fail(
                    `${name(src)} -> ${name(dst)} ${proto}/${port} v${fam} police=${police}: kernel ${k}, evaluator ${v.allowed} (${v.egress.reason}/${v.ingress.reason})`,
                  );
                }
              }
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('IncrementalCompiler', () => {
  const arbStep = fc.record({
    snap: arbSnapshot,
    keep: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
    keepPolicies: fc.boolean(),
    teamA: fc.constantFrom('x', 'y'),
    drop: fc.nat(8),
  });
  it('gives exactly what compile() gives, and the same diffs, over random snapshot sequences', () => {
    fc.assert(
      fc.property(
        fc.array(arbStep, { minLength: 2, maxLength: 5 }),
        fc.boolean(),
        fc.boolean(),
        (steps, police, oneNode) => {
          const opts = { table: 'moat', policeNodeEgress: police, ...(oneNode ? { nodeName: 'n1' } : {}) };
          const inc = new IncrementalCompiler(opts);
          let prev: Snapshot | undefined;
          let incPrev: ReturnType<typeof compile> | undefined;
          for (const st of steps) {
            // Reuse some pod objects of the previous step (what a watch cache does), drop one pod,
            // keep or replace the policies, flip a namespace label.
            const pods = st.snap.pods
              .map((p, j) => (st.keep[j] === true && prev?.pods[j] !== undefined ? prev.pods[j] : p))
              .filter((_, j) => j !== st.drop);
            const snap: Snapshot = {
              ...st.snap,
              namespaces: [ns('a', { team: st.teamA }), ns('b', { team: 'y' })],
              pods,
              policies: st.keepPolicies && prev !== undefined ? prev.policies : st.snap.policies,
              ...((st.keepPolicies && prev !== undefined ? prev : st.snap).adminPolicies !== undefined
                ? { adminPolicies: (st.keepPolicies && prev !== undefined ? prev : st.snap).adminPolicies! }
                : {}),
            };
            const got = inc.compile(snap);
            const want = compile(snap, opts);
            assert.deepEqual(got, want);
            if (prev !== undefined && incPrev !== undefined) {
              const freshPrev = compile(prev, opts);
              assert.equal(diffRulesets(incPrev, got).script, diffRulesets(freshPrev, want).script);
              assert.deepEqual(conntrackTargets(incPrev, got), conntrackTargets(freshPrev, want));
            }
            prev = snap;
            incPrev = got;
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('moat touches only traffic of local pods', () => {
  const snap = base({
    policies: [netpol('a', 'deny', { policyTypes: ['Ingress', 'Egress'] })],
  });
  const rs = compile(snap, { table: 'moat', nodeName: 'n1' });
  const pkt = (saddr: string, daddr: string, ctState: 'new' | 'established' | 'invalid') =>
    simulate(rs, {
      family: saddr.includes(':') ? 6 : 4,
      saddr,
      daddr,
      l4proto: 'tcp',
      dport: 80,
      hook: 'postrouting',
      ctState,
    });
  for (const [what, saddr, daddr] of [
    ['node to the internet', '192.168.0.1', '8.8.8.8'],
    ['remote pod to remote pod', '10.0.1.1', '10.0.1.2'],
    ['remote pod to a non-pod address', 'fd00:11::1', 'fd00::9'],
  ] as const) {
    it(`${what}: accepted in every conntrack state, no counter`, () => {
      for (const ct of ['new', 'established', 'invalid'] as const) {
        assert.deepEqual(pkt(saddr, daddr, ct), { verdict: 'accept', counters: [], logs: [] }, ct);
      }
    });
  }
  for (const [what, saddr, daddr] of [
    ['from a local pod', '10.0.0.1', '8.8.8.8'],
    ['to a local pod', '10.0.1.1', '10.0.0.2'],
    ['to a local pod (IPv6)', 'fd00:11::1', 'fd00:10::1'],
  ] as const) {
    it(`${what}: invalid dropped, new judged by policy, established accepted`, () => {
      assert.equal(pkt(saddr, daddr, 'invalid').verdict, 'drop');
      assert.equal(pkt(saddr, daddr, 'new').verdict, 'drop'); // isolated by a-deny
      assert.equal(pkt(saddr, daddr, 'established').verdict, 'accept');
    });
  }
});

describe('the bridge table', () => {
  it('exists only when the attachments are known (a CNI result cache was read)', () => {
    const snap = base();
    assert.equal(compile(snap, { table: 'moat', nodeName: 'n1' }).bridge, undefined);
    const known = compile(
      {
        ...snap,
        attachments: [{ interfaces: ['cni0', 'veth1'], ips: ['10.0.0.1'], mac: '02:00:00:00:00:01' }],
      },
      { table: 'moat', nodeName: 'n1' },
    ).bridge;
    assert.ok(known);
    assert.deepEqual(
      known.sets.map((s) => [s.name, s.elements.map((e) => e.key)]),
      [
        ['bind_mac', ['"cni0" . 02:00:00:00:00:01', '"veth1" . 02:00:00:00:00:01']],
        ['bind_v4', ['"cni0" . 10.0.0.1', '"veth1" . 10.0.0.1']],
        ['bind_v6', []],
        ['mac_ports', ['"cni0"', '"veth1"']],
      ],
    );
    assert.equal(
      compile({ ...snap, attachments: [] }, { table: 'moat', podInterfaces: [] }).bridge,
      undefined,
    );
  });
});

describe('flow log attribution agrees with the evaluator trace', () => {
  // Every logged decision, mapped back through the counters (the agent's own mapping), names what
  // the evaluator says decided each side: the rule, the isolating policies, the admin rule.
  it('on random snapshots and flows, mode all (and policy: the same decisions but node/open)', () => {
    fc.assert(
      fc.property(arbSnapshot, fc.boolean(), fc.constantFrom('all', 'policy'), (snap, police, mode) => {
        const rs = compile(snap, {
          table: 'moat',
          policeNodeEgress: police,
          flowLog: { mode, group: 1, rate: 10, burst: 5 },
        });
        const gens = [counterIndex(rs)];
        const plain = compiled(snap, police);
        const endpoints: Endpoint[] = [
          ...snap.pods.map((p): Endpoint => ({ kind: 'pod', pod: p })),
          ...['192.168.0.1', '192.168.0.2', '8.8.8.8', 'fd00::1'].map((ip): Endpoint => ({ kind: 'ip', ip })),
        ];
        const name = (e: Endpoint) => (e.kind === 'pod' ? `${e.pod.namespace}/${e.pod.name}` : e.ip);
        for (const src of endpoints) {
          for (const dst of endpoints) {
            if (src.kind === 'ip' && dst.kind === 'ip') continue;
            for (const [proto, port] of [
              ['TCP', 80],
              ['UDP', 53],
            ] as const) {
              for (const fam of [4, 6] as const) {
                const sim = kernelSim(rs, snap, src, dst, proto, port, fam);
                if (sim === undefined) continue;
                const sa = src.kind === 'pod' ? src.pod.ips.find((x) => parseIP(x)?.family === fam) : src.ip;
                const da = dst.kind === 'pod' ? dst.pod.ips.find((x) => parseIP(x)?.family === fam) : dst.ip;
                if (sa === da && !(src.kind === 'pod' && dst.kind === 'pod' && src.pod === dst.pod)) continue;
                const what = `${name(src)} -> ${name(dst)} ${proto}/${port} v${fam} police=${police} mode=${mode}`;
                // Logging never changes a verdict.
                assert.equal(sim.verdict, kernelSim(plain, snap, src, dst, proto, port, fam)!.verdict, what);
                const decisions = sim.logs.map((l) => {
                  const d = decide(l, gens);
                  assert.ok(d, `${what}: prefix ${l} maps to no decision`);
                  return d;
                });
                const v = evaluate(
                  snap,
                  { src, dst, protocol: proto, port, family: fam },
                  { policeNodeEgress: police },
                );
                const sides: ('egress' | 'ingress')[] =
                  v.egress.allowed || sim.verdict === 'drop' ? ['egress', 'ingress'] : ['egress'];
                for (const dir of sides) {
                  if (dir === 'ingress' && !v.egress.allowed) break; // the kernel dropped at egress
                  const side = v[dir];
                  const mine = decisions.filter((d) => d.direction === dir);
                  checkSide(`${what} ${dir}`, side, mine, mode);
                }
              }
            }
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});

function checkSide(
  what: string,
  side: ReturnType<typeof evaluate>['egress'],
  mine: readonly Decision[],
  mode: 'all' | 'policy',
): void {
  const last = mine[mine.length - 1];
  const passes = mine.filter((d) => d.reason === undefined);
  const msg = `${what}: evaluator ${side.reason}, log ${JSON.stringify(mine)}`;
  switch (side.reason) {
    case 'not-a-subject':
    case 'self':
    case 'address-conflict':
      assert.equal(mine.length, 0, msg);
      return;
    case 'node':
      // Egress to the own node is never in postrouting; ingress from it is, and logs in mode all.
      if (mine.length > 0)
        assert.deepEqual(
          mine.map((d) => d.reason),
          ['own-node'],
          msg,
        );
      if (mode === 'policy') assert.equal(mine.length, 0, msg);
      return;
    case 'not-isolated':
      // Admin passes, then (mode all, or after a logged Pass in mode policy) the default allow:
      // a Pass is never the last thing logged.
      assert.ok(
        mine.slice(0, -1).every((d) => d.reason === undefined),
        msg,
      );
      if (mode === 'all' || mine.length > 0) assert.equal(last?.reason, 'not-isolated', msg);
      assert.ok(passes.length < mine.length || mine.length === 0, msg);
      return;
    case 'allowed-by-rule': {
      assert.equal(last?.reason, 'rule-matched', msg);
      const h = last.hits[0]!;
      assert.ok(
        side.matches.some(
          (m) => m.policy.namespace === h.namespace && m.policy.name === h.name && m.rule === h.rule,
        ),
        msg,
      );
      assert.equal(last.cls, 'A', msg);
      return;
    }
    case 'no-rule-matched':
      assert.equal(last?.reason, 'no-rule-matched', msg);
      assert.deepEqual(
        last.hits.map((h) => `${h.namespace}/${h.name}`).sort(),
        side.isolatedBy.map((p) => `${p.namespace}/${p.name}`).sort(),
        msg,
      );
      assert.equal(last.cls, 'D', msg);
      return;
    case 'admin-allow':
    case 'admin-deny':
    case 'baseline-allow':
    case 'baseline-deny': {
      const want = side.reason.replace('allow', 'accept');
      assert.equal(last?.reason, want, msg);
      const a = side.tiers.find(
        (t) => t.admin !== undefined && t.answer !== 'Pass' && t.answer !== 'None',
      )?.admin;
      const h = last.hits[0]!;
      assert.ok(a !== undefined && a.kind === h.kind && a.name === h.name && a.rule === h.rule, msg);
      return;
    }
  }
}
