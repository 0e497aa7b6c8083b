import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pod, snapshot } from '../model/build.js';
import { InputError, UsageError } from '../errors.js';
import { checkPrefix, nodeLink, planLab } from './plan.js';

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

test('planLab: dual stack, custom node name, hostNetwork pods left out', () => {
  const s = snapshot({ pods: [pod('a', 'x'), pod('a', 'h', { hostNetwork: true })] });
  const plan = planLab(s, { nodeName: 'n1', podCidrs: ['10.9.0.0/24', 'fd00:9::/64'] });
  assert.deepEqual(plan.node.addresses, ['10.9.0.1', 'fd00:9::1']);
  assert.deepEqual(
    plan.pods.map((p) => p.pod.ips),
    [['10.9.0.2', 'fd00:9::2']],
  );
  assert.equal(plan.notes.length, 1);
  assert.equal(plan.snapshot.pods[0]?.nodeName, 'n1');
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
