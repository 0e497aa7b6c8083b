// Properties of the analyses against the reference evaluator, on small random clusters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  computeMatrix,
  declaredProbes,
  isAllowed,
  matrixPods,
  sortProbes,
  type Probe,
} from '../../src/analysis/matrix.js';
import { explain } from '../../src/analysis/explain.js';
import { evaluate, type Flow } from '../../src/policy/evaluate.js';
import type { Pod, Snapshot } from '../../src/model/types.js';
import { flowArb, labelsArb, policyArb, snapshotArb } from './arbitraries.js';

const RUNS = 150;

const podFlow = (src: Pod, dst: Pod, p: Probe): Flow => ({
  src: { kind: 'pod', pod: src },
  dst: { kind: 'pod', pod: dst },
  port: p.port,
  protocol: p.protocol,
});

/** The declared probes plus one that no pod declares. */
function probesOf(s: Snapshot): Probe[] {
  return sortProbes([...declaredProbes(matrixPods(s)), { port: 81, protocol: 'TCP' }]);
}

/** evaluate() on every pod pair and probe, in matrix order. */
function oracle(s: Snapshot, probes: readonly Probe[]): boolean[][][] {
  const pods = matrixPods(s);
  return probes.map((p) => pods.map((f) => pods.map((t) => evaluate(s, podFlow(f, t, p)).allowed)));
}

function matrixCells(s: Snapshot, probes: readonly Probe[]): boolean[][][] {
  const r = computeMatrix(s, { ports: probes });
  return r.probes.map((_, k) => r.pods.map((_f, i) => r.pods.map((_t, j) => isAllowed(r, k, i, j))));
}

test('property: the matrix agrees with evaluate() cell by cell', () => {
  fc.assert(
    fc.property(snapshotArb({ maxPods: 9 }), (s) => {
      const probes = probesOf(s);
      assert.deepEqual(matrixCells(s, probes), oracle(s, probes));
    }),
    { numRuns: RUNS },
  );
});

test('property: the matrix agrees with evaluate() on IPv6-heavy clusters with ipBlocks', () => {
  const shape = { maxPods: 9, stacks: ['v4', 'dual', 'v6first', 'v6first'], ipBlocksOnly: true } as const;
  fc.assert(
    fc.property(snapshotArb(shape), (s) => {
      const probes = probesOf(s);
      assert.deepEqual(matrixCells(s, probes), oracle(s, probes));
    }),
    { numRuns: RUNS },
  );
});

test("property: explain's verdict is evaluate()'s, and its rule analysis agrees with the matches", () => {
  fc.assert(
    fc.property(
      snapshotArb().chain((s) => fc.tuple(fc.constant(s), flowArb(s))),
      ([s, f]) => {
        const e = explain(s, f);
        assert.deepEqual(e.verdict, evaluate(s, f));
        for (const dir of ['egress', 'ingress'] as const) {
          const matched = e[dir].policies.flatMap((p) =>
            p.rules
              .filter((r) => r.matched)
              .map((r) => [p.policy.name, r.rule, r.matchedPeer, r.matchedPort]),
          );
          const want = e.verdict[dir].matches.map((m) => [m.policy.name, m.rule, m.peer, m.port]);
          assert.deepEqual(matched, want);
          // A denied side always names the closest rule when some isolating policy has rules.
          const hasRules = e[dir].policies.some((p) => p.rules.length > 0);
          if (e[dir].reason === 'no-rule-matched') assert.equal(e[dir].closest !== undefined, hasRules);
        }
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

test('property: adding a policy never removes a flow whose ends were already isolated', () => {
  fc.assert(
    fc.property(snapshotArb(), policyArb('added'), (s, extra) => {
      const after: Snapshot = { ...s, policies: [...s.policies, extra] };
      const pods = matrixPods(s);
      for (const p of probesOf(s)) {
        for (const f of pods) {
          for (const t of pods) {
            const before = evaluate(s, podFlow(f, t, p));
            // Union: once isolated, a new policy only adds rules that may allow.
            if (
              !before.allowed ||
              before.ingress.reason === 'not-isolated' ||
              before.egress.reason === 'not-isolated'
            ) {
              continue;
            }
            assert.equal(evaluate(after, podFlow(f, t, p)).allowed, true, `${f.name} -> ${t.name} ${p.port}`);
          }
        }
      }
    }),
    { numRuns: RUNS },
  );
});

test('property: relabelling a pod changes exactly the cells the evaluator says it changes', () => {
  fc.assert(
    fc.property(
      snapshotArb().chain((s) => fc.tuple(fc.constant(s), fc.nat({ max: s.pods.length - 1 }), labelsArb)),
      ([s, i, labels]) => {
        const pods = s.pods.map((p, k) => (k === i ? { ...p, labels } : p));
        const relabelled: Snapshot = { ...s, pods };
        const probes = probesOf(s);
        const before = matrixCells(s, probes);
        const after = matrixCells(relabelled, probes);
        const want = oracle(relabelled, probes);
        assert.deepEqual(after, want);
        const was = oracle(s, probes);
        probes.forEach((_, k) =>
          want[k]!.forEach((row, a) =>
            row.forEach((cell, b) =>
              assert.equal(before[k]![a]![b] !== after[k]![a]![b], was[k]![a]![b] !== cell),
            ),
          ),
        );
      },
    ),
    { numRuns: RUNS },
  );
});
