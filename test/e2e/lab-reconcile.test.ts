// The agent's reconcile loop with a file source, enforcing a lab: editing the manifests changes
// what the kernel lets through, verified with traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSource } from '../../src/agent/file-source.js';
import { Reconciler, type Applied } from '../../src/agent/reconcile.js';
import { LabAgents, labApplier, labSnapshot, staticSource } from '../../src/lab/enforce.js';
import { run } from '../../src/lab/exec.js';
import { Lab } from '../../src/lab/lab.js';
import { loadPaths } from '../../src/model/load.js';
import type { Snapshot } from '../../src/model/types.js';
import { needsRoot, uniquePrefix } from './lab-util.js';

const PODS = `
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop, labels: { app: web } }
spec:
  containers:
    - name: c
      image: x
      ports: [{ containerPort: 80 }, { containerPort: 80, protocol: UDP }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, labels: { app: client } }
spec: { containers: [{ name: c, image: x }] }
`;

const DENY_WEB = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
`;

const ALLOW_CLIENT_TCP = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress:
    - from: [{ podSelector: { matchLabels: { app: client } } }]
      ports: [{ port: 80 }]
`;

const NEW_POD = `
apiVersion: v1
kind: Pod
metadata: { name: late, namespace: shop, labels: { app: late } }
spec: { containers: [{ name: c, image: x, ports: [{ containerPort: 80 }] }] }
`;

async function put(dir: string, name: string, text: string): Promise<void> {
  await writeFile(join(dir, `.${name}.tmp`), text);
  await rename(join(dir, `.${name}.tmp`), join(dir, name));
}

test(
  'lab + reconcile loop: policy edits are applied and change the traffic',
  { skip: needsRoot },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'moat-lab-e2e-'));
    let lab: Lab | undefined;
    const synced: Snapshot[] = [];
    const errors: string[] = [];
    let agents: LabAgents | undefined;
    try {
      await put(dir, 'pods.yaml', PODS);
      const first = await loadPaths([dir]);
      assert.deepEqual(first.problems, []);
      lab = await Lab.create(first.snapshot, { prefix: uniquePrefix(), probeTimeoutMs: 700 });
      const l = lab;
      agents = new LabAgents(l, {
        coalesceMs: 100,
        onSynced: (s) => {
          synced.push(s);
        },
        onError: (_n, e) => errors.push(String(e)),
      });
      const source = new FileSource([dir], { pollMs: 200 });
      await agents.start(source);
      // Every manifest change is built, published and enforced once.
      const waitFor = async (n: number): Promise<void> => {
        for (let i = 0; i < 100 && synced.length < n; i++) await new Promise((r) => setTimeout(r, 50));
        await agents!.idle();
        assert.equal(synced.length, n, `change ${n} enforced (errors: ${errors.join('; ')})`);
      };
      const reach = async (protocol: 'TCP' | 'UDP') =>
        (await l.probe('shop/client', 'shop/web', 80, protocol)).allowed;

      await waitFor(1);
      assert.equal(await reach('TCP'), true, 'no policy yet');

      await put(dir, 'policy.yaml', DENY_WEB);
      await waitFor(2);
      assert.equal(await reach('TCP'), false, 'deny-all applied');
      assert.equal(await reach('UDP'), false);

      await put(dir, 'policy.yaml', ALLOW_CLIENT_TCP);
      await waitFor(3);
      assert.equal(await reach('TCP'), true, 'allow client -> web:80/TCP');
      assert.equal(await reach('UDP'), false, 'UDP still denied');

      await rm(join(dir, 'policy.yaml'));
      await waitFor(4);
      assert.equal(await reach('UDP'), true, 'policy removed: open again');

      // A pod appears in the manifests: the lab gives it a namespace and the agent enforces it.
      await put(dir, 'policy.yaml', `${DENY_WEB}---${NEW_POD}`);
      await waitFor(5);
      assert.equal(
        (await l.probe('shop/late', 'shop/client', 80, 'TCP')).allowed,
        true,
        'new pod reaches client',
      );
      assert.equal((await l.probe('shop/late', 'shop/web', 80, 'TCP')).allowed, false, 'and web denies it');
      await rm(join(dir, 'policy.yaml'));
      await waitFor(6);
      assert.equal(l.podNetns('shop/late'), undefined, 'its namespace went with it');
      assert.deepEqual(errors, []);
    } finally {
      await agents?.stop();
      await lab?.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test('lab + reconcile loop: a burst of snapshots is applied once', { skip: needsRoot }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'moat-lab-e2e-'));
  let lab: Lab | undefined;
  let rec: Reconciler | undefined;
  const applied: Applied[] = [];
  try {
    await put(dir, 'pods.yaml', PODS);
    lab = await Lab.create((await loadPaths([dir])).snapshot, {
      prefix: uniquePrefix(),
      probeTimeoutMs: 700,
    });
    rec = new Reconciler({
      applier: labApplier(lab),
      coalesceMs: 100,
      driftIntervalMs: 0,
      onApplied: (a) => {
        applied.push(a);
      },
    });
    await rec.start(staticSource(labSnapshot(lab)));
    await rec.idle();
    assert.equal(applied.length, 1);
    // Three snapshots within the window: one apply, with the last one.
    await put(dir, 'policy.yaml', DENY_WEB);
    const denied = (await lab.update((await loadPaths([dir])).snapshot)).snapshot;
    rec.submit(labSnapshot(lab));
    rec.submit(labSnapshot(lab));
    rec.submit({ ...denied, attachments: lab.attachments() });
    await rec.idle();
    assert.equal(applied.length, 2);
    assert.equal(applied[1]?.coalesced, 3);
    assert.equal((await lab.probe('shop/client', 'shop/web', 80, 'TCP')).allowed, false);
  } finally {
    await rec?.stop();
    await lab?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

test('lab + reconcile loop: the drift check repairs a tampered table', { skip: needsRoot }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'moat-lab-e2e-'));
  let lab: Lab | undefined;
  let agents: LabAgents | undefined;
  const drifts: string[] = [];
  try {
    await put(dir, 'pods.yaml', `${PODS}---${DENY_WEB}`);
    const snap = (await loadPaths([dir])).snapshot;
    lab = await Lab.create(snap, { prefix: uniquePrefix(), probeTimeoutMs: 700 });
    agents = new LabAgents(lab, {
      coalesceMs: 10,
      onDrift: (_n, d) => drifts.push(...d.differences),
    });
    await agents.start(staticSource(snap));
    await agents.idle();
    const reach = async () => (await lab!.probe('shop/client', 'shop/web', 80, 'TCP')).allowed;
    assert.equal(await reach(), false);
    // Someone flushes moat's table in the node: the policy stops being enforced...
    await run(['ip', 'netns', 'exec', lab.nodeNetns, 'nft', 'flush', 'table', 'inet', 'moat']);
    assert.equal(await reach(), true);
    // ...until the drift check notices and repairs it.
    await agents.checkDrift();
    await agents.idle();
    assert.ok(drifts.length > 0);
    assert.equal(await reach(), false);
  } finally {
    await agents?.stop();
    await lab?.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});
