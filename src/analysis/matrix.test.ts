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
import type { Pod, Snapshot } from '../model/types.js';
import { evaluate } from '../policy/evaluate.js';
import {
  computeMatrix,
  computeMatrixNaive,
  declaredProbes,
  formatMatrixTable,
  matrixJsonChunks,
  matrixTableChunks,
  isAllowed,
  matrixPods,
  matrixToJson,
  replicaOf,
  type MatrixResult,
} from './matrix.js';

/** Every cell must equal evaluate() of the same flow (the oracle). */
function assertAgrees(s: Snapshot, r: MatrixResult): void {
  const pods = matrixPods(s);
  r.probes.forEach((probe, k) => {
    pods.forEach((from, i) => {
      pods.forEach((to, j) => {
        // A workload pod's diagonal is two of its replicas (a StatefulSet's pods are replicas).
        const replicas = i === j && from.workload !== undefined && from.workload.kind !== 'StatefulSet';
        const want = evaluate(s, {
          src: { kind: 'pod', pod: from },
          dst: { kind: 'pod', pod: replicas ? replicaOf(to) : to },
          port: probe.port,
          protocol: probe.protocol,
        }).allowed;
        assert.equal(
          isAllowed(r, k, i, j),
          want,
          `${probe.protocol}/${probe.port} ${r.pods[i]} -> ${r.pods[j]}`,
        );
      });
    });
  });
}

// Twins share everything the evaluator reads except their names.
const twin = (name: string, ip: string, nodeName = 'n1'): Pod =>
  pod('x', name, { labels: { app: 'w' }, ips: [ip], ports: [cport(80, 'TCP', 'http')], nodeName });
const hostAgent = (name: string, ip: string, nodeName: string): Pod =>
  pod('kube-system', name, { ips: [ip], hostNetwork: true, nodeName, ports: [cport(9100)] });
const nodes = [node('n1', ['192.168.0.1']), node('n2', ['192.168.0.2'])];
const namespaces = [ns('x'), ns('y', { team: 'web' }), ns('kube-system')];

const wpod = (kind: 'Deployment' | 'StatefulSet', name: string, labels: Record<string, string>): Pod => ({
  ...pod('x', `${kind === 'Deployment' ? 'deploy' : 'sts'}/${name}`, {
    labels,
    ports: [cport(80, 'TCP', 'http')],
  }),
  workload: { kind, name: name.replace(/-\d+$/, '') },
});

const cases: { name: string; s: Snapshot; classes?: number }[] = [
  { name: 'no policies', s: snapshot({ namespaces, pods: [twin('a', '10.0.0.1'), twin('b', '10.0.0.2')] }) },
  {
    name: 'deny-all both ways: twins are not "self"',
    s: snapshot({
      namespaces,
      pods: [twin('a', '10.0.0.1'), twin('b', '10.0.0.2'), twin('c', '10.0.0.3')],
      policies: [netpol('x', 'deny', { policyTypes: ['Ingress', 'Egress'] })],
    }),
    classes: 1,
  },
  {
    name: 'hostNetwork pods: own node always allowed, other nodes policed',
    s: snapshot({
      namespaces,
      nodes,
      pods: [
        twin('a', '10.0.0.1', 'n1'),
        twin('b', '10.0.1.1', 'n2'),
        hostAgent('agent-1', '192.168.0.1', 'n1'),
        hostAgent('agent-2', '192.168.0.2', 'n2'),
      ],
      policies: [netpol('x', 'deny', { policyTypes: ['Ingress', 'Egress'] })],
    }),
  },
  {
    name: 'ipBlock with except splits pods by address',
    s: snapshot({
      namespaces,
      pods: [
        twin('a', '10.0.0.1'),
        twin('b', '10.1.0.1'),
        pod('y', 'c', { ips: ['10.1.0.9'], ports: [cport(53, 'UDP')] }),
      ],
      policies: [
        netpol('x', 'from-block', {
          ingress: [rule([ipPeer('10.0.0.0/8', ['10.1.0.0/16'])], [pport('http')])],
        }),
      ],
    }),
  },
  {
    name: 'namespace and pod selectors, named ports, egress',
    s: snapshot({
      namespaces,
      pods: [
        twin('a', '10.0.0.1'),
        pod('x', 'b', { labels: { app: 'db' }, ips: ['10.0.0.2'], ports: [cport(5432, 'TCP', 'pg')] }),
        pod('y', 'c', { labels: { app: 'w' }, ips: ['10.0.2.1'], ports: [cport(80, 'TCP', 'web')] }),
        pod('y', 'd', { labels: { app: 'w' }, ips: ['fd00::1', '10.0.2.2'] }),
      ],
      policies: [
        netpol('x', 'db', {
          podSelector: sel({ app: 'db' }),
          ingress: [rule([podPeer(sel({ app: 'w' }))], [pport('pg')])],
        }),
        netpol('y', 'out', {
          egress: [rule([podPeer(undefined, sel({ 'kubernetes.io/metadata.name': 'x' }))], [pport(80)])],
        }),
        netpol('x', 'web', {
          podSelector: sel({ app: 'w' }),
          ingress: [rule([podPeer(sel({ app: 'w' }), sel({ team: 'web' }))], [pport('http')])],
        }),
      ],
    }),
  },
  {
    name: 'twins, one at an address another live pod shares: its class is its own (fail-closed)',
    s: snapshot({
      namespaces,
      pods: [
        twin('a', '10.0.0.1'),
        twin('b', '10.0.0.2'),
        twin('c', '10.0.0.3'),
        pod('y', 'd', { labels: { app: 'w' }, ips: ['10.0.0.3'], ports: [cport(80, 'TCP', 'web')] }),
      ],
      policies: [netpol('x', 'web', { ingress: [rule([podPeer(sel({ app: 'w' }))], [pport('http')])] })],
    }),
    classes: 3,
  },
  // The admin tiers: a class may only hold pods that every tier treats alike.
  {
    name: 'admin policies that treat twins alike keep them in one class',
    s: snapshot({
      namespaces,
      pods: [twin('a', '10.0.0.1'), twin('b', '10.0.0.2', 'n2'), twin('c', '10.0.0.3')],
      adminPolicies: [
        cnp('deny', { egress: [adminRule('Deny', [networksPeer('10.0.0.0/24')], [aport(80)])] }),
        cnp('base', { tier: 'Baseline', ingress: [adminRule('Deny', [nsSubject()])] }),
      ],
    }),
    classes: 1,
  },
  {
    name: 'a networks peer splits twins by address',
    s: snapshot({
      namespaces,
      pods: [twin('a', '10.0.0.1'), twin('b', '10.0.1.2'), twin('c', '10.0.0.3')],
      adminPolicies: [cnp('deny', { egress: [adminRule('Deny', [networksPeer('10.0.1.0/24')])] })],
    }),
    classes: 2,
  },
  {
    name: 'a nodes peer splits hostNetwork pods by node',
    s: snapshot({
      namespaces,
      nodes: [{ ...nodes[0]!, labels: { pool: 'infra' } }, nodes[1]!],
      pods: [
        twin('a', '10.0.0.1'),
        hostAgent('agent-1', '192.168.0.1', 'n1'),
        hostAgent('agent-2', '192.168.0.2', 'n2'),
      ],
      adminPolicies: [
        cnp('infra', { egress: [adminRule('Deny', [nodesPeer(sel({ pool: 'infra' }))], [aport(9100)])] }),
      ],
    }),
    classes: 3,
  },
  {
    name: "an admin subject splits pods no NetworkPolicy tells apart (by their namespace's labels)",
    s: snapshot({
      namespaces,
      pods: [
        twin('a', '10.0.0.1'),
        pod('y', 'b', { labels: { app: 'w' }, ips: ['10.0.0.2'], ports: [cport(80, 'TCP', 'http')] }),
      ],
      adminPolicies: [
        cnp('web', {
          subject: nsSubject(sel({ team: 'web' })),
          ingress: [adminRule('Deny', [podSubject(sel({ app: 'w' }))], [{ kind: 'named', name: 'http' }])],
        }),
      ],
    }),
    classes: 2,
  },
  {
    name: 'workload pods without addresses: ipBlocks match addresses only, replicas are policed',
    s: snapshot({
      namespaces,
      pods: [
        wpod('Deployment', 'web', { app: 'w' }),
        wpod('StatefulSet', 'db-0', { app: 'db' }),
        wpod('StatefulSet', 'db-1', { app: 'db' }),
        twin('a', '10.0.0.1'),
      ],
      policies: [
        netpol('x', 'deny', { policyTypes: ['Ingress'] }),
        netpol('x', 'from-net', { ingress: [rule([ipPeer('10.0.0.0/8')])] }),
      ],
    }),
  },
];

for (const c of cases) {
  test(`computeMatrix agrees with evaluate(): ${c.name}`, () => {
    const r = computeMatrix(c.s);
    assertAgrees(c.s, r);
    assert.deepEqual(r.probes, computeMatrixNaive(c.s).probes);
    if (c.classes !== undefined) assert.equal(r.classes, c.classes);
  });
}

test('computeMatrix: deny-all leaves only the diagonal', () => {
  const s = cases[1]!.s;
  const r = computeMatrix(s);
  assert.equal(r.probes.length, 1);
  const n = r.pods.length;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.equal(isAllowed(r, 0, i, j), i === j);
});

test('computeMatrix: a Deployment does not reach itself under deny-all, a StatefulSet replica does', () => {
  const s = cases.find((c) => c.name.startsWith('workload pods'))!.s;
  const r = computeMatrix(s);
  const at = (from: string, to: string): boolean => isAllowed(r, 0, r.pods.indexOf(from), r.pods.indexOf(to));
  assert.deepEqual(r.pods, ['x/a', 'x/deploy/web', 'x/sts/db-0', 'x/sts/db-1']);
  assert.equal(at('x/deploy/web', 'x/deploy/web'), false, 'two replicas of web');
  assert.equal(at('x/sts/db-0', 'x/sts/db-0'), true, 'one pod to itself');
  assert.equal(at('x/sts/db-0', 'x/sts/db-1'), false);
  // from-net admits 10.0.0.0/8: x/a (10.0.0.1) gets in; pods without an address do not.
  assert.equal(at('x/a', 'x/deploy/web'), true);
  assert.equal(at('x/sts/db-0', 'x/a'), false);
});

test('computeMatrix: same-node hostNetwork pairs differ from the class answer', () => {
  const r = computeMatrix(cases[2]!.s, { ports: [{ port: 80, protocol: 'TCP' }] });
  const at = (f: string, t: string): boolean => isAllowed(r, 0, r.pods.indexOf(f), r.pods.indexOf(t));
  assert.equal(at('x/a', 'kube-system/agent-1'), true);
  assert.equal(at('x/a', 'kube-system/agent-2'), false);
  assert.equal(at('kube-system/agent-2', 'x/b'), true);
  assert.equal(at('kube-system/agent-1', 'x/b'), false);
});

test('matrix pods: all live pods, with or without an IP, sorted by ns/name; probes: declared, sorted', () => {
  const s = snapshot({
    pods: [
      pod('z', 'a', { ips: ['10.0.0.1'], ports: [cport(80), cport(53, 'UDP'), cport(53, 'TCP')] }),
      pod('a', 'z', { ips: ['10.0.0.2'], ports: [cport(80), cport(53, 'SCTP')] }),
      pod('a', 'pending', { ports: [cport(7)] }),
    ],
  });
  assert.deepEqual(
    matrixPods(s).map((p) => `${p.namespace}/${p.name}`),
    ['a/pending', 'a/z', 'z/a'],
  );
  assert.deepEqual(declaredProbes(matrixPods(s)), [
    { port: 7, protocol: 'TCP' },
    { port: 53, protocol: 'TCP' },
    { port: 53, protocol: 'UDP' },
    { port: 53, protocol: 'SCTP' },
    { port: 80, protocol: 'TCP' },
  ]);
  const r = computeMatrix(s, { ports: [{ port: 9, protocol: 'UDP' }] });
  assert.deepEqual(
    r.probes.map((p) => `${p.protocol}/${p.port}`),
    ['UDP/9'],
  );
});

test('matrixToJson: the stable schema, every pair present', () => {
  const s = snapshot({
    pods: [twin('a', '10.0.0.1'), twin('b', '10.0.0.2')],
    policies: [netpol('x', 'deny')],
  });
  const json = matrixToJson(computeMatrix(s));
  assert.equal(
    JSON.stringify(json),
    '{"pods":["x/a","x/b"],"probes":[{"port":80,"protocol":"TCP","allowed":' +
      '{"x/a":{"x/a":true,"x/b":false},"x/b":{"x/a":false,"x/b":true}}}]}',
  );
  // The streamed text is the same, byte for byte.
  assert.equal([...matrixJsonChunks(computeMatrix(s))].join(''), JSON.stringify(json));
});

test('formatMatrixTable: header per probe, aligned columns; the JSON form prints the same', () => {
  const s = snapshot({
    pods: [
      twin('a', '10.0.0.1'),
      pod('long-namespace', 'b', { ips: ['10.0.0.2'], ports: [cport(53, 'UDP')] }),
    ],
    policies: [netpol('x', 'deny')],
  });
  const r = computeMatrix(s);
  const want = [
    'UDP/53',
    'from\\to           long-namespace/b  x/a',
    'long-namespace/b  .                 X',
    'x/a               .                 .',
    '',
    'TCP/80',
    'from\\to           long-namespace/b  x/a',
    'long-namespace/b  .                 X',
    'x/a               .                 .',
    '',
  ].join('\n');
  assert.equal(formatMatrixTable(r), want);
  assert.equal(formatMatrixTable(matrixToJson(r)), want);
  assert.equal([...matrixTableChunks(r)].join(''), want);
});
