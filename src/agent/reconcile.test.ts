import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApplyResult, DriftResult } from '../dataplane/index.js';
import { pod, snapshot } from '../model/build.js';
import type { Snapshot } from '../model/types.js';
import { Reconciler, type Applier, type SnapshotSource, type SourceSink } from './reconcile.js';

class FakeApplier implements Applier {
  applied: Snapshot[] = [];
  failNext = 0;
  drift: DriftResult = { drifted: false, differences: [], repaired: false };
  driftChecks = 0;
  apply(s: Snapshot): Promise<ApplyResult> {
    if (this.failNext > 0) {
      this.failNext--;
      return Promise.reject(new Error('nft failed'));
    }
    this.applied.push(s);
    // Only `mode` matters to the loop; the rest of the result is the dataplane's business.
    return Promise.resolve({ mode: 'full', commands: 1 } as unknown as ApplyResult);
  }
  checkDrift(): Promise<DriftResult> {
    this.driftChecks++;
    return Promise.resolve(this.drift);
  }
}

const snap = (n: number): Snapshot => snapshot({ pods: [pod('a', `p${n}`)] });

test('a burst of submissions is applied once, with the newest snapshot', async () => {
  const applier = new FakeApplier();
  const r = new Reconciler({ applier, coalesceMs: 30, driftIntervalMs: 0 });
  for (let i = 0; i < 5; i++) r.submit(snap(i));
  await r.idle();
  assert.equal(applier.applied.length, 1);
  assert.equal(applier.applied[0]?.pods[0]?.name, 'p4');
  await r.stop();
});

test('submissions further apart than the window are each applied, in order', async () => {
  const applier = new FakeApplier();
  const r = new Reconciler({ applier, coalesceMs: 5, driftIntervalMs: 0 });
  r.submit(snap(1));
  await r.idle();
  r.submit(snap(2));
  await r.idle();
  assert.deepEqual(
    applier.applied.map((s) => s.pods[0]?.name),
    ['p1', 'p2'],
  );
  assert.equal(r.generation, 2);
  await r.stop();
});

test('onDequeue sees the snapshot an apply takes, before it runs; onApplied reports it', async () => {
  const applier = new FakeApplier();
  const events: string[] = [];
  const r = new Reconciler({
    applier,
    coalesceMs: 5,
    driftIntervalMs: 0,
    onDequeue: (s) => events.push(`dequeue ${s.pods[0]!.name} (applied ${applier.applied.length})`),
    onApplied: (a) => {
      events.push(`applied ${a.snapshot.pods[0]!.name}`);
    },
  });
  r.submit(snap(1));
  r.submit(snap(2));
  await r.idle();
  assert.deepEqual(events, ['dequeue p2 (applied 0)', 'applied p2']);
  await r.stop();
});

test('a failed apply is retried', async () => {
  const applier = new FakeApplier();
  applier.failNext = 1;
  const errors: string[] = [];
  const r = new Reconciler({
    applier,
    coalesceMs: 5,
    retryMs: 10,
    driftIntervalMs: 0,
    onError: (_e, phase) => errors.push(phase),
  });
  r.submit(snap(1));
  await r.idle();
  assert.deepEqual(errors, ['apply']);
  assert.equal(applier.applied.length, 1);
  await r.stop();
});

test('drift that the applier did not repair makes the loop apply the last snapshot again', async () => {
  const applier = new FakeApplier();
  const drifts: DriftResult[] = [];
  const r = new Reconciler({ applier, coalesceMs: 5, driftIntervalMs: 0, onDrift: (d) => drifts.push(d) });
  assert.equal(await r.checkDrift(), undefined, 'nothing applied yet: no drift check');
  r.submit(snap(1));
  await r.idle();
  applier.drift = { drifted: true, differences: ['chain x'], repaired: false };
  await r.checkDrift();
  await r.idle();
  assert.equal(drifts.length, 1);
  assert.equal(applier.applied.length, 2);
  applier.drift = { drifted: true, differences: ['chain x'], repaired: true };
  await r.checkDrift();
  await r.idle();
  assert.equal(applier.applied.length, 2, 'repaired by the applier: no re-apply');
  await r.stop();
});

test('start wires a source; stop stops it and later submissions are ignored', async () => {
  const applier = new FakeApplier();
  let sink: SourceSink | undefined;
  let stopped = false;
  const source: SnapshotSource = {
    start: (s) => {
      sink = s;
      s.snapshot(snap(7));
      return Promise.resolve();
    },
    stop: () => {
      stopped = true;
      return Promise.resolve();
    },
  };
  const r = new Reconciler({ applier, coalesceMs: 5, driftIntervalMs: 0 });
  await r.start(source);
  await r.idle();
  assert.equal(applier.applied[0]?.pods[0]?.name, 'p7');
  await r.stop();
  assert.ok(stopped);
  sink?.snapshot(snap(8));
  await sleep(20);
  assert.equal(applier.applied.length, 1);
});
