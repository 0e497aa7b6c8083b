import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminRule, cnp, node, nodesPeer, pod, snapshot } from '../model/build.js';
import { InputError, UsageError } from '../errors.js';
import { mustCidr } from '../model/cidr.js';
import {
  checkPrefix,
  labNodeName,
  labNodeNames,
  MAX_NODES,
  nodeLink,
  nodeNetns,
  nodeSlices,
  planLab,
} from './plan.js';

const parse = mustCidr;

test('planLab allocates addresses, skipping the node address and manifest addresses', () => {
  const s = snapshot({
    pods: [pod('a', 'x'), pod('a', 'y', { ips: ['10.244.0.2'] }), pod('b', 'z', { nodeName: 'elsewhere' })],
  });
  const plan = planLab(s, {});
  assert.deepEqual(plan.node.addresses, ['10.244.0.1']);
  const ips = Object.fromEntries(plan.pods.map((p) => [p.key, p.pod.ips]));
  assert.deepEqual(ips, { 'a/x': ['10.244.0.3'], 'a/y': ['10.244.0.2'], 'b/z': ['10.244.0.4'] });
  // Every lab pod is on the lab node, so it is a local subject.
  assert.ok(plan.snapshot.pods.every((p) => p.nodeName === 'moat-lab'));
  assert.equal(plan.snapshot.nodes[0]?.name, 'moat-lab');
});

test('planLab: dual stack, custom node name', () => {
  const s = snapshot({ pods: [pod('a', 'x')] });
  const plan = planLab(s, { nodeName: 'n1', podCidrs: ['10.9.0.0/24', 'fd00:9::/64'] });
  assert.deepEqual(plan.node.addresses, ['10.9.0.1', 'fd00:9::1']);
  assert.deepEqual(
    plan.pods.map((p) => p.pod.ips),
    [['10.9.0.2', 'fd00:9::2']],
  );
  assert.deepEqual(plan.notes, []);
  assert.equal(plan.snapshot.pods[0]?.nodeName, 'n1');
});

test("planLab: hostNetwork pods have their node's addresses, whatever the manifest says", () => {
  const s = snapshot({
    pods: [
      pod('a', 'x'),
      pod('kube-system', 'agent', { hostNetwork: true, nodeName: 'moat-lab-2', ips: ['192.168.0.7'] }),
      pod('kube-system', 'rr', { hostNetwork: true }),
    ],
  });
  const plan = planLab(s, { nodes: 2, podCidrs: ['10.9.0.0/16', 'fd00:9::/64'] });
  const where = Object.fromEntries(plan.pods.map((p) => [p.key, [p.node, p.pod.ips]]));
  assert.deepEqual(where, {
    'a/x': [0, ['10.9.0.2', 'fd00:9::2']],
    // "status.podIPs = the node's InternalIP addresses"; pinned by spec.nodeName.
    'kube-system/agent': [1, ['10.9.1.1', 'fd00:9::1:1']],
    // Round robin counts it like any pod: node 1 has one pod, node 2 one.
    'kube-system/rr': [0, ['10.9.0.1', 'fd00:9::1']],
  });
  assert.ok(plan.snapshot.pods.find((p) => p.name === 'agent')?.hostNetwork);
  // No address of theirs is allocated to another pod, and none counts as a duplicate.
  const again = planLab(
    snapshot({
      pods: [...s.pods, pod('kube-system', 'twin', { hostNetwork: true, nodeName: 'moat-lab-2' })],
    }),
    { nodes: 2 },
  );
  assert.deepEqual(again.pods.find((p) => p.key === 'kube-system/twin')?.pod.ips, ['10.244.1.1']);
});

test('planLab: Nodes of the manifest lend the lab nodes their labels; nodeNames names them', () => {
  const s = snapshot({
    nodes: [
      { ...node('node-b', ['192.168.0.2']), labels: { role: 'infra' } },
      node('elsewhere', ['192.168.0.9']),
    ],
    pods: [pod('a', 'x', { nodeName: 'node-b' })],
  });
  const plan = planLab(s, { nodeNames: ['node-a', 'node-b'] });
  assert.deepEqual(
    plan.nodes.map((n) => [n.name, n.labels, n.addresses]),
    [
      ['node-a', { 'kubernetes.io/hostname': 'node-a' }, ['10.244.0.1']],
      ['node-b', { 'kubernetes.io/hostname': 'node-b', role: 'infra' }, ['10.244.1.1']],
    ],
  );
  assert.equal(plan.pods[0]?.node, 1);
  // A Node that is not a lab node stays in the snapshot as the manifest has it.
  assert.deepEqual(
    plan.snapshot.nodes.map((n) => [n.name, n.addresses]),
    [
      ['node-a', ['10.244.0.1']],
      ['node-b', ['10.244.1.1']],
      ['elsewhere', ['192.168.0.9']],
    ],
  );
  assert.deepEqual(plan.notes, [
    "node node-b: the lab's addresses 10.244.1.1 replace the manifest's 192.168.0.2",
  ]);
  for (const bad of [
    [],
    ['a', 'a'],
    ['Not_A_Name'],
    Array.from({ length: MAX_NODES + 1 }, (_, i) => `n${i}`),
  ]) {
    assert.throws(() => labNodeNames({ nodeNames: bad }), UsageError, bad.join(','));
  }
  assert.deepEqual(labNodeNames({ nodes: 2, nodeName: 'w' }), ['w', 'w-2']);
});

test('planLab passes the admin policies on to the agents and the evaluator', () => {
  const admin = [cnp('deny-all', { ingress: [adminRule('Deny', [nodesPeer()])] })];
  assert.equal(planLab(snapshot({ adminPolicies: admin })).snapshot.adminPolicies, admin);
  assert.equal(planLab(snapshot({})).snapshot.adminPolicies, undefined);
});

test('planLab keeps earlier allocations across reloads', () => {
  const first = planLab(snapshot({ pods: [pod('a', 'x'), pod('a', 'y')] }));
  const prev = new Map(first.pods.map((p) => [p.key, p.pod.ips]));
  // x is gone: y must keep its address, and the new pod must not take x's (it is still in prev).
  const second = planLab(snapshot({ pods: [pod('a', 'y'), pod('a', 'w')] }), {}, prev);
  const ips = Object.fromEntries(second.pods.map((p) => [p.key, p.pod.ips[0]]));
  assert.equal(ips['a/y'], prev.get('a/y')?.[0]);
  assert.notEqual(ips['a/w'], prev.get('a/x')?.[0]);
});

test('planLab refuses duplicate pod addresses and bad CIDRs', () => {
  const dup = snapshot({
    pods: [pod('a', 'x', { ips: ['10.0.0.5'] }), pod('a', 'y', { ips: ['10.0.0.5'] })],
  });
  assert.throws(
    () => planLab(dup),
    (e: unknown) => e instanceof InputError && /a\/x/.test(e.message),
  );
  assert.throws(() => planLab(snapshot({}), { podCidrs: ['nope'] }), UsageError);
});

test('names', () => {
  assert.equal(checkPrefix('moat-lab'), undefined);
  assert.match(checkPrefix('lab') ?? '', /must match/);
  assert.match(checkPrefix('moat-lab-much-too-long-prefix') ?? '', /must match/);
  assert.ok(nodeLink(99999).length <= 15);
});

test('planLab with nodes: slices, node addresses, and each placement rule', () => {
  const s = snapshot({
    pods: [
      pod('a', 'pinned', { nodeName: 'moat-lab-2' }),
      pod('a', 'byip', { ips: ['10.244.1.7'] }),
      pod('a', 'stray', { ips: ['10.99.0.1'] }),
      pod('a', 'rr1'),
      pod('a', 'rr2', { nodeName: 'not-a-lab-node' }),
    ],
  });
  const plan = planLab(s, { nodes: 2 });
  assert.deepEqual(
    plan.nodes.map((n) => [n.name, n.podCIDRs, n.addresses]),
    [
      ['moat-lab', ['10.244.0.0/24'], ['10.244.0.1']],
      ['moat-lab-2', ['10.244.1.0/24'], ['10.244.1.1']],
    ],
  );
  assert.equal(plan.node, plan.nodes[0]);
  const where = Object.fromEntries(plan.pods.map((p) => [p.key, [p.pod.nodeName, p.node, p.pod.ips]]));
  assert.deepEqual(where, {
    // pinned (spec.nodeName) and byip (podIP in node 2's slice) on node 2; then the emptier node:
    // stray (its address is in no slice), rr1, and rr2 (its nodeName names no lab node).
    'a/pinned': ['moat-lab-2', 1, ['10.244.1.2']],
    'a/byip': ['moat-lab-2', 1, ['10.244.1.7']],
    'a/stray': ['moat-lab', 0, ['10.99.0.1']],
    'a/rr1': ['moat-lab', 0, ['10.244.0.2']],
    'a/rr2': ['moat-lab', 0, ['10.244.0.3']],
  });
  assert.deepEqual(
    plan.snapshot.nodes.map((n) => n.name),
    ['moat-lab', 'moat-lab-2'],
  );
});

test('planLab with nodes: a pod stays on its node across reloads; spec.nodeName moves it', () => {
  const first = planLab(snapshot({ pods: [pod('a', 'x'), pod('a', 'y'), pod('a', 'z')] }), { nodes: 3 });
  assert.deepEqual(
    first.pods.map((p) => p.node),
    [0, 1, 2],
  );
  const prevIPs = new Map(first.pods.map((p) => [p.key, p.pod.ips]));
  const prevNodes = new Map(first.pods.map((p) => [p.key, p.pod.nodeName!]));
  // x is gone: round robin alone would move y and z; they stay, and the newcomer fills node 1.
  const second = planLab(
    snapshot({ pods: [pod('a', 'y'), pod('a', 'z'), pod('a', 'w')] }),
    { nodes: 3 },
    prevIPs,
    prevNodes,
  );
  assert.deepEqual(
    second.pods.map((p) => [p.key, p.node, p.pod.ips[0] === prevIPs.get(p.key)?.[0]]),
    [
      ['a/y', 1, true],
      ['a/z', 2, true],
      ['a/w', 0, false],
    ],
  );
  const moved = planLab(
    snapshot({ pods: [pod('a', 'y', { nodeName: 'moat-lab-3' })] }),
    { nodes: 3 },
    prevIPs,
    prevNodes,
  );
  assert.equal(moved.pods[0]?.node, 2);
  assert.match(moved.pods[0]?.pod.ips[0] ?? '', /^10\.244\.2\./, 'readdressed from its new slice');
});

test('nodeSlices: IPv4 /24 and IPv6 /112 slices, or finer when the CIDR is small', () => {
  const texts = (c: string, n: number) => nodeSlices(parse(c), n).map((x) => x.text);
  assert.deepEqual(texts('10.244.0.0/16', 1), ['10.244.0.0/16']);
  assert.deepEqual(texts('10.244.0.0/16', 3), ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24']);
  assert.deepEqual(texts('10.9.0.0/24', 2), ['10.9.0.0/25', '10.9.0.128/25']);
  assert.deepEqual(texts('fd00:9::/64', 2), ['fd00:9::/112', 'fd00:9::1:0/112']);
  assert.throws(() => nodeSlices(parse('10.9.0.0/29'), 4), /too small to split across 4 nodes/);
});

test('planLab with nodes: dual stack and bad node counts', () => {
  const plan = planLab(snapshot({ pods: [pod('a', 'x'), pod('a', 'y')] }), {
    nodes: 2,
    podCidrs: ['10.9.0.0/16', 'fd00:9::/64'],
  });
  assert.deepEqual(
    plan.pods.map((p) => p.pod.ips),
    [
      ['10.9.0.2', 'fd00:9::2'],
      ['10.9.1.2', 'fd00:9::1:2'],
    ],
  );
  for (const n of [0, 1.5, MAX_NODES + 1]) {
    assert.throws(() => planLab(snapshot({}), { nodes: n }), UsageError);
  }
  assert.equal(nodeNetns('moat-x'), 'moat-x-node');
  assert.equal(nodeNetns('moat-x', 1), 'moat-x-node2');
  assert.equal(labNodeName('n', 2), 'n-3');
});
