// The lab with real traffic: what the kernel lets through must be what the evaluator says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeMatrix, matrixToJson } from '../../src/analysis/matrix.js';
import { compareMatrices } from '../../src/lab/compare.js';
import { labApplier } from '../../src/lab/enforce.js';
import { cleanupLabs, Lab, listLabNetns } from '../../src/lab/lab.js';
import { netpol, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import type { Snapshot } from '../../src/model/types.js';
import { census, needsRoot, threePods, uniquePrefix } from './lab-util.js';

async function enforcedMatrix(s: Snapshot) {
  const lab = await Lab.create(s, { prefix: uniquePrefix(), probeTimeoutMs: 700 });
  try {
    await labApplier(lab).apply(lab.snapshot);
    const observed = await lab.probeMatrix();
    const expected = matrixToJson(computeMatrix(lab.snapshot));
    return { observed, expected, cmp: compareMatrices(observed.json, expected) };
  } finally {
    await lab.destroy();
  }
}

test('lab: no policy: every pod reaches every pod, TCP and UDP', { skip: needsRoot }, async () => {
  const { observed, cmp } = await enforcedMatrix(threePods());
  assert.equal(observed.json.pods.length, 3);
  assert.deepEqual(
    observed.json.probes.map((p) => `${p.protocol}/${p.port}`),
    ['TCP/80', 'UDP/80'],
  );
  assert.deepEqual(census(observed.json), { allowed: 12, denied: 0 });
  assert.deepEqual(cmp.disagreements, []);
});

test('lab: deny-all ingress in namespace a: a is unreachable, b is not', { skip: needsRoot }, async () => {
  const base = threePods();
  const s = snapshot({ ...base, policies: [netpol('a', 'deny-all', { podSelector: sel() })] });
  const { observed, cmp } = await enforcedMatrix(s);
  // Into a/web and a/db nothing passes (4 sources x 2 protocols); into b/client everything does.
  assert.deepEqual(census(observed.json), { allowed: 4, denied: 8 });
  for (const p of observed.json.probes) {
    assert.equal(p.allowed['a/web']?.['b/client'], true);
    assert.equal(p.allowed['b/client']?.['a/web'], false);
  }
  assert.deepEqual(cmp.disagreements, []);
});

test('lab: an allow rule on one port and protocol', { skip: needsRoot }, async () => {
  const base = threePods();
  const s = snapshot({
    ...base,
    policies: [
      netpol('a', 'db', {
        podSelector: sel({ app: 'db' }),
        ingress: [rule([podPeer(sel({ app: 'web' }))], [pport('http')])],
      }),
    ],
  });
  const { observed, cmp } = await enforcedMatrix(s);
  const tcp = observed.json.probes.find((p) => p.protocol === 'TCP')!;
  const udp = observed.json.probes.find((p) => p.protocol === 'UDP')!;
  assert.equal(tcp.allowed['a/web']?.['a/db'], true);
  assert.equal(udp.allowed['a/web']?.['a/db'], false);
  assert.equal(tcp.allowed['b/client']?.['a/db'], false);
  assert.deepEqual(cmp.disagreements, []);
});

test('lab: destroy and `lab down` leave no namespace or process behind', { skip: needsRoot }, async () => {
  const prefix = uniquePrefix();
  const lab = await Lab.create(threePods(), { prefix });
  const pids = lab.pids();
  assert.equal(pids.length, 3);
  assert.equal((await listLabNetns(prefix)).length, 4);
  // A crashed lab: nobody calls destroy(); `moat lab down` must clean up.
  const r = await cleanupLabs(prefix);
  try {
    assert.equal(r.netns.length, 4);
    assert.deepEqual(await listLabNetns(prefix), []);
    await new Promise((res) => setTimeout(res, 200));
    for (const pid of pids)
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `pod process ${pid} still alive`);
  } finally {
    await lab.destroy();
  }
});
