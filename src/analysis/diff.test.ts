import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  adminRule,
  cnp,
  cport,
  netpol,
  ns,
  pod,
  podPeer,
  podSubject,
  pport,
  rule,
  sel,
  snapshot,
} from '../model/build.js';
import type { AdminPolicy, NetworkPolicy, Pod, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import { evaluate } from '../policy/evaluate.js';
import { diffSnapshots, formatDiffMarkdown, formatDiffText } from './diff.js';

const web = pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'], ports: [cport(80)] });
const api = pod('b', 'api', { labels: { app: 'api' }, ips: ['10.0.0.2'], ports: [cport(8080), cport(9090)] });
const db = pod('b', 'db', { labels: { app: 'db' }, ips: ['10.0.0.3'], ports: [cport(5432)] });
const pods = [web, api, db];
const denyB = netpol('b', 'deny');
const fromWeb = netpol('b', 'api', {
  podSelector: sel({ app: 'api' }),
  ingress: [rule([podPeer(sel({ app: 'web' }), sel({ 'kubernetes.io/metadata.name': 'a' }))], [pport(8080)])],
});
const S = (policies: NetworkPolicy[], p: Pod[] = pods, adminPolicies?: AdminPolicy[]): Snapshot =>
  snapshot({
    namespaces: [ns('a'), ns('b')],
    pods: p,
    policies,
    ...(adminPolicies ? { adminPolicies } : {}),
  });
const key = (c: { from: string; to: string; protocol: string; port: number }) =>
  `${c.from}>${c.to} ${c.protocol}/${c.port}`;

describe('diff', () => {
  it('no change: nothing opens or closes, over the union of the declared ports', () => {
    const d = diffSnapshots(S([denyB]), S([denyB]));
    assert.deepEqual([d.opened, d.closed], [[], []]);
    assert.deepEqual(
      d.probes.map((p) => p.port),
      [80, 5432, 8080, 9090],
    );
    assert.match(formatDiffText(d), /^no connectivity change \(4 ports probed\)/);
  });

  it('an allow rule opens exactly its port, caused by that rule', () => {
    const d = diffSnapshots(S([denyB]), S([denyB, fromWeb]));
    assert.deepEqual(d.opened.map(key), ['a/web>b/api TCP/8080']);
    assert.deepEqual(d.closed, []);
    const c = d.opened[0]!;
    assert.deepEqual(c.sides, ['ingress']);
    assert.deepEqual(c.rules, [
      { kind: 'NetworkPolicy', namespace: 'b', name: 'api', direction: 'ingress', rule: 0 },
    ]);
    assert.match(
      c.cause,
      /^ingress: allowed by NetworkPolicy b\/api ingress rule 0 \(was: b\/api is isolated for ingress by b\/deny/,
    );
  });

  it('a new default deny closes every port into the namespace but its own pods, caused by the isolating policy', () => {
    const d = diffSnapshots(S([]), S([denyB]));
    assert.deepEqual(d.opened, []);
    const into = (p: Pod) => pods.filter((q) => q !== p).map(podKey);
    const want = [api, db].flatMap((dst) =>
      into(dst).flatMap((src) => [80, 5432, 8080, 9090].map((port) => `${src}>${podKey(dst)} TCP/${port}`)),
    );
    assert.deepEqual(d.closed.map(key).sort(), want.sort());
    for (const c of d.closed)
      assert.deepEqual(c.rules, [{ kind: 'NetworkPolicy', namespace: 'b', name: 'deny' }]);
  });

  it('an admin Deny closes, caused by the admin rule', () => {
    const deny = cnp('no-web', {
      priority: 5,
      subject: podSubject(sel({ app: 'api' })),
      ingress: [adminRule('Deny', [podSubject(sel({ app: 'web' }))], undefined, 'web')],
    });
    const d = diffSnapshots(S([]), S([], pods, [deny]));
    assert.deepEqual(d.closed.map(key), [
      'a/web>b/api TCP/80',
      'a/web>b/api TCP/5432',
      'a/web>b/api TCP/8080',
      'a/web>b/api TCP/9090',
    ]);
    assert.deepEqual(d.closed[0]!.rules, [
      { kind: 'ClusterNetworkPolicy', name: 'no-web', direction: 'ingress', rule: 0 },
    ]);
    assert.match(d.closed[0]!.cause, /Deny by ClusterNetworkPolicy no-web ingress rule 0 \(web\)/);
  });

  it('pods in one snapshot only are listed, not compared', () => {
    const d = diffSnapshots(S([denyB], [web, api]), S([denyB], [web, db]));
    assert.deepEqual([d.added, d.removed, d.opened, d.closed], [['b/db'], ['b/api'], [], []]);
    assert.match(formatDiffText(d), /pods only in --new \(not compared\): b\/db/);
  });

  it('every changed cell is a flip of evaluate() between the snapshots, and every flip is reported', () => {
    const relabelled = pods.map((p) => (p === web ? { ...web, labels: { app: 'other' } } : p));
    const before = S([denyB, fromWeb]);
    const after = S(
      [
        fromWeb,
        netpol('a', 'deny-egress', { policyTypes: ['Egress'], egress: [rule(undefined, [pport(9090)])] }),
      ],
      relabelled,
    );
    const d = diffSnapshots(before, after);
    const want = { opened: [] as string[], closed: [] as string[] };
    const byKey = (s: Snapshot) => new Map(s.pods.map((p) => [podKey(p), p]));
    for (const probe of d.probes) {
      for (const f of pods.map(podKey)) {
        for (const t of pods.map(podKey)) {
          if (f === t) continue;
          const v = (s: Snapshot) =>
            evaluate(s, {
              src: { kind: 'pod', pod: byKey(s).get(f)! },
              dst: { kind: 'pod', pod: byKey(s).get(t)! },
              ...probe,
            }).allowed;
          const [was, now] = [v(before), v(after)];
          if (was !== now) want[now ? 'opened' : 'closed'].push(key({ from: f, to: t, ...probe }));
        }
      }
    }
    assert.ok(want.opened.length > 0 && want.closed.length > 0, 'the case must open and close something');
    assert.deepEqual(d.opened.map(key).sort(), want.opened.sort());
    assert.deepEqual(d.closed.map(key).sort(), want.closed.sort());
  });

  it('markdown: one table per direction, ports of a pod pair and cause together', () => {
    const md = formatDiffMarkdown(diffSnapshots(S([denyB]), S([denyB, fromWeb])));
    assert.match(
      md,
      /^### Opened \(1\)\n\n\| from \| to \| ports \| cause \|\n\| --- \| --- \| --- \| --- \|\n\| a\/web \| b\/api \| TCP\/8080 \| ingress: allowed by/,
    );
    assert.doesNotMatch(md, /Closed/);
  });
});
