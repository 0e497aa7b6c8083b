// The admin tiers' fail-closed stand-in: what an invalid stored object is enforced as, and that it
// never admits a flow that some reading of the stored object denies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  adminRule,
  aport,
  cnp,
  netpol,
  ns,
  nsSubject,
  pod,
  podSubject,
  sel,
  snapshot,
} from '../model/build.js';
import { KINDS, type KindName } from '../model/load.js';
import { parseText, type MapTree } from '../model/parseYaml.js';
import { stringify } from 'yaml';
import type { AdminPolicy, AdminRule, Pod } from '../model/types.js';
import { checkFields, decodeMeta, Reporter } from '../model/validate.js';
import { evaluate } from './evaluate.js';

const G = 'policy.networking.k8s.io';
const VERSION: Record<string, string> = {
  ClusterNetworkPolicy: `${G}/v1beta1`,
  AdminNetworkPolicy: `${G}/v1alpha1`,
  BaselineAdminNetworkPolicy: `${G}/v1alpha1`,
};

/** Decodes an object as the agent does and returns what it would enforce (the stand-in or undefined). */
function standIn(kind: KindName, name: string, spec: unknown): AdminPolicy[] | undefined {
  const obj = { apiVersion: VERSION[kind], kind, metadata: { name }, spec };
  const root = parseText(stringify(obj)).docs[0]!.root as MapTree;
  const k = KINDS[kind];
  const r = new Reporter('t.yaml', kind, name);
  checkFields(r, '', root, k.topFields);
  const meta = decodeMeta(r, root, k.namespaced, k.validateName);
  const decoded = k.decode(r, root, meta, 't.yaml');
  assert.ok(r.problems.length > 0, `${kind} ${name}: expected problems`);
  return k.failClosed?.(decoded.object, spec, r.problems)?.object as AdminPolicy[] | undefined;
}

const pods: Pod[] = [
  pod('x', 'a', { labels: { app: 'a' }, ips: ['10.0.0.1'] }),
  pod('x', 'b', { labels: { app: 'b' }, ips: ['10.0.0.2'] }),
  pod('y', 'c', { labels: { app: 'c' }, ips: ['10.0.0.3'] }),
];
const namespaces = [ns('x', { team: 'x' }), ns('y')];
const all = nsSubject();
const appA = podSubject(sel({ app: 'a' }));
const appB = podSubject(sel({ app: 'b' }));
const appC = podSubject(sel({ app: 'c' }));
const teamX = nsSubject(sel({ team: 'x' }));
/** A selector moat cannot read (the CRD does not check operators; the API server stores it). */
const BAD = { matchExpressions: [{ key: 'team', operator: 'Near', values: ['x'] }] };
const none = podSubject(sel({ app: 'nobody' }));

/** Other policies the stand-in must not be wider than the stored object beside. */
const backgrounds: { name: string; admin: AdminPolicy[]; np?: boolean }[] = [
  { name: 'alone', admin: [] },
  {
    name: 'an earlier Admin Pass for everyone',
    admin: [
      cnp('aaa', { priority: 0, ingress: [adminRule('Pass', [all])], egress: [adminRule('Pass', [all])] }),
    ],
  },
  {
    name: 'a later Admin Accept',
    admin: [cnp('zzz', { priority: 900, ingress: [adminRule('Accept', [all])] })],
  },
  { name: 'a NetworkPolicy isolating x/a', admin: [], np: true },
];

interface Case {
  name: string;
  kind: KindName;
  spec: Record<string, unknown>;
  /** Per stand-in policy: tier, priority, whole-cluster subject, ingress and egress rules ("Deny*": Deny all). */
  want: string[];
  /** Possible meanings of the stored object: none may deny what the stand-in admits. */
  readings: AdminPolicy[][];
}

const rules = (rs: readonly AdminRule[]) =>
  rs.map((r) => `${r.action}${r.peers.some((p) => p.kind === 'unknown') ? '*' : ''}`).join(',');
const summary = (p: AdminPolicy) =>
  `${p.tier} ${p.priority} ${p.subject.kind === 'namespaces' && Object.keys(p.subject.namespaceSelector.matchLabels).length === 0 && p.subject.namespaceSelector.matchExpressions.length === 0 ? 'all' : 'own'} [${rules(p.ingress)}] [${rules(p.egress)}]`;

const cnpSpec = (o: Record<string, unknown>) => ({
  tier: 'Admin',
  priority: 10,
  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } } },
  ...o,
});
const from = (peer: Record<string, unknown>, action: string, name?: string) => ({
  ...(name ? { name } : {}),
  action,
  from: [peer],
});
const P = (o: Record<string, unknown>) => cnp('p', { priority: 10, subject: appA, ...o });

const cases: Case[] = [
  {
    name: 'a Deny rule with an unreadable peer: Deny all from there on',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({
      ingress: [
        from({ pods: { podSelector: { matchLabels: { app: 'b' } } } }, 'Accept'),
        from({ namespaces: BAD }, 'Deny', 'bad'),
        from({ namespaces: {} }, 'Accept'),
      ],
      egress: [{ action: 'Accept', to: [{ namespaces: {} }] }],
    }),
    want: ['Admin 10 own [Accept,Deny*] [Accept]'],
    readings: [teamX, all, none].map((peer) => [
      P({
        ingress: [adminRule('Accept', [appB]), adminRule('Deny', [peer]), adminRule('Accept', [all])],
        egress: [adminRule('Accept', [all])],
      }),
    ]),
  },
  {
    name: 'the only broken rule is an Accept: it matches nothing, the rules after it stay',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({
      ingress: [
        from({ pods: { podSelector: { matchLabels: { app: 'c' } } } }, 'Deny'),
        from({ namespaces: BAD }, 'Accept'),
        from({ namespaces: {} }, 'Deny'),
      ],
    }),
    want: ['Admin 10 own [Deny,Deny] []'],
    readings: [teamX, all, none].map((peer) => [
      P({ ingress: [adminRule('Deny', [appC]), adminRule('Accept', [peer]), adminRule('Deny', [all])] }),
    ]),
  },
  {
    name: 'two broken rules, the first an Accept: Deny all from the first',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({
      ingress: [from({ namespaces: BAD }, 'Accept'), from({ namespaces: BAD }, 'Deny')],
    }),
    want: ['Admin 10 own [Deny*] []'],
    readings: [teamX, all].map((peer) => [
      P({ ingress: [adminRule('Accept', [peer]), adminRule('Deny', [peer])] }),
    ]),
  },
  {
    name: 'an unreadable subject: every pod, Deny all in the directions it has',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({
      subject: { namespaces: BAD },
      ingress: [from({ namespaces: {} }, 'Accept'), from({ namespaces: {} }, 'Deny')],
    }),
    want: ['Admin 10 all [Deny*] []'],
    readings: [teamX, nsSubject(sel({ team: 'y' })), all].map((subject) => [
      P({ subject, ingress: [adminRule('Accept', [all]), adminRule('Deny', [all])] }),
    ]),
  },
  {
    name: 'a pods subject whose namespaceSelector is unreadable: every pod, not just app=a',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({
      subject: { pods: { namespaceSelector: BAD, podSelector: { matchLabels: { app: 'a' } } } },
      egress: [{ action: 'Deny', to: [{ namespaces: {} }] }],
    }),
    want: ['Admin 10 all [] [Deny*]'],
    readings: [teamX, nsSubject(sel({ team: 'y' }))].map((n) => [
      P({ subject: podSubject(sel({ app: 'a' }), n.namespaceSelector), egress: [adminRule('Deny', [all])] }),
    ]),
  },
  {
    name: 'an unreadable tier: Deny all in both tiers, at priority 0',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({ tier: 'Middle', ingress: [from({ namespaces: {} }, 'Deny')] }),
    want: ['Admin 10 own [Deny*] []', 'Baseline 10 own [Deny*] []'],
    readings: (['Admin', 'Baseline'] as const).map((tier) => [
      P({ tier, ingress: [adminRule('Deny', [all])] }),
    ]),
  },
  {
    name: 'an unreadable priority: priority 0',
    kind: 'AdminNetworkPolicy',
    spec: {
      priority: 'high',
      subject: { namespaces: {} },
      egress: [{ action: 'Deny', to: [{ namespaces: { matchLabels: { team: 'x' } } }] }],
    },
    want: ['Admin 0 all [] [Deny*]'],
    readings: [5, 950].map((priority) => [
      cnp('p', { kind: 'AdminNetworkPolicy', priority, egress: [adminRule('Deny', [teamX])] }),
    ]),
  },
  {
    name: 'an ANP port moat cannot read (protocol ICMP): Deny all',
    kind: 'AdminNetworkPolicy',
    spec: {
      priority: 3,
      subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'a' } } } },
      egress: [
        { action: 'Deny', to: [{ namespaces: {} }], ports: [{ portNumber: { protocol: 'ICMP', port: 80 } }] },
      ],
    },
    want: ['Admin 3 own [] [Deny*]'],
    readings: [[aport(80)], [aport(53)], undefined].map((ports) => [
      cnp('p', {
        kind: 'AdminNetworkPolicy',
        priority: 3,
        subject: appA,
        egress: [adminRule('Deny', [all], ports)],
      }),
    ]),
  },
  {
    name: 'a BaselineAdminNetworkPolicy with a broken Allow: dropped, the Deny after it stays',
    kind: 'BaselineAdminNetworkPolicy',
    spec: {
      subject: { namespaces: {} },
      ingress: [
        { action: 'Allow', from: [{ namespaces: BAD }] },
        { action: 'Deny', from: [{ namespaces: {} }] },
      ],
    },
    want: ['Baseline 0 all [Deny] []'],
    readings: [teamX, all].map((peer) => [
      cnp('default', {
        kind: 'BaselineAdminNetworkPolicy',
        ingress: [adminRule('Accept', [peer]), adminRule('Deny', [all])],
      }),
    ]),
  },
  {
    name: 'a spec field moat does not know: Deny all in both directions, subject kept',
    kind: 'ClusterNetworkPolicy',
    spec: cnpSpec({ ingress: [from({ namespaces: {} }, 'Accept')], newField: true }),
    want: ['Admin 10 own [Deny*] [Deny*]'],
    readings: [
      [P({ ingress: [adminRule('Accept', [all])] })],
      [P({ ingress: [adminRule('Deny', [all])], egress: [adminRule('Deny', [all])] })],
    ],
  },
];

function allowedFlows(admin: AdminPolicy[], np: boolean): Set<string> {
  const policies = np
    ? [
        netpol('x', 'iso', {
          podSelector: sel({ app: 'a' }),
          ingress: [{ peers: [{ kind: 'selector', podSelector: sel({ app: 'b' }) }] }],
        }),
      ]
    : [];
  const s = snapshot({ namespaces, pods, policies, adminPolicies: admin });
  const out = new Set<string>();
  for (const src of pods) {
    for (const dst of pods) {
      if (src === dst) continue;
      for (const port of [80, 53]) {
        const v = evaluate(s, {
          src: { kind: 'pod', pod: src },
          dst: { kind: 'pod', pod: dst },
          protocol: 'TCP',
          port,
        });
        if (v.allowed) out.add(`${src.name}->${dst.name}:${port}`);
      }
    }
  }
  return out;
}

for (const c of cases) {
  test(`admin stand-in: ${c.name}`, () => {
    const got = standIn(c.kind, c.kind === 'BaselineAdminNetworkPolicy' ? 'default' : 'p', c.spec);
    assert.ok(got, 'a stand-in');
    assert.deepEqual(got.map(summary), c.want);
    for (const b of backgrounds) {
      const mine = allowedFlows([...b.admin, ...got], b.np === true);
      for (const [i, reading] of c.readings.entries()) {
        const theirs = allowedFlows([...b.admin, ...reading], b.np === true);
        const wider = [...mine].filter((f) => !theirs.has(f));
        assert.deepEqual(wider, [], `${b.name}, reading ${i}: the stand-in admits what the object denies`);
      }
    }
  });
}

test('admin stand-in: problems only in metadata keep the object as decoded', () => {
  assert.equal(standIn('BaselineAdminNetworkPolicy', 'other', { subject: { namespaces: {} } }), undefined);
});

test('admin stand-in: the agent would not be fail-open if the subject selector is all that broke', () => {
  // Dropping the object (the alternative) would admit what its Deny denies; the stand-in does not.
  const got = standIn(
    'ClusterNetworkPolicy',
    'p',
    cnpSpec({ subject: { namespaces: BAD }, ingress: [from({ namespaces: {} }, 'Deny')] }),
  )!;
  assert.deepEqual(allowedFlows(got, false), new Set());
  assert.ok(allowedFlows([], false).size > 0, 'without it everything is open');
});
