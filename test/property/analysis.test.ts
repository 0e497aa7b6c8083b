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
import {
  demoteConflicted,
  endpointAddress,
  evaluate,
  flowFamily,
  indexOf,
  type Direction,
  type Flow,
} from '../../src/policy/evaluate.js';
import { adminRuleAction, compareAdminPolicies, subjectSelects } from '../../src/policy/admin.js';
import { conflictedAddresses } from '../../src/model/conflicts.js';
import type { Pod, Snapshot } from '../../src/model/types.js';
import { flowArb, labelsArb, policyArb, snapshotArb, type SnapshotShape } from './arbitraries.js';

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

// Clusters with admin policies: ClusterNetworkPolicy (Admin, Baseline), AdminNetworkPolicy and the
// BaselineAdminNetworkPolicy, every action, peer type and port form, beside NetworkPolicies.
const ADMIN: SnapshotShape = { maxPods: 9, maxAdminPolicies: 4 };

test('property: the matrix agrees with evaluate() cell by cell, with admin policies', () => {
  fc.assert(
    fc.property(snapshotArb(ADMIN), (s) => {
      const probes = probesOf(s);
      assert.deepEqual(matrixCells(s, probes), oracle(s, probes));
    }),
    { numRuns: RUNS },
  );
});

// Pods alike but for their addresses, nodes and hostNetwork, few NetworkPolicies (whose ipBlocks
// would split the classes anyway), admin egress peers that match by address (networks, nodes).
for (const [what, stacks] of [
  ['IPv4', ['v4', 'v4', 'dual']],
  ['IPv6-heavy', ['v4', 'dual', 'v6first', 'v6first']],
] as const) {
  test(`property: the matrix agrees with evaluate() with admin address peers on ${what} pods alike`, () => {
    const shape = { ...ADMIN, maxPolicies: 1, alikePods: true, ipBlocksOnly: true, stacks };
    fc.assert(
      fc.property(snapshotArb(shape), (s) => {
        const probes = probesOf(s);
        assert.deepEqual(matrixCells(s, probes), oracle(s, probes));
      }),
      { numRuns: RUNS },
    );
  });
}

/** The other end of a side as the evaluator sees it (an address when its address is shared). */
function sideEnds(s: Snapshot, f: Flow, dir: Direction) {
  const family = flowFamily(f);
  const other = dir === 'egress' ? f.dst : f.src;
  const peer = demoteConflicted(other, family, conflictedAddresses(s));
  const flow = peer === other ? f : dir === 'egress' ? { ...f, dst: peer } : { ...f, src: peer };
  return { peer, address: endpointAddress(peer, family), flow };
}

test('property: explain walks the admin tiers as evaluate() decides, rule by rule', () => {
  fc.assert(
    fc.property(
      snapshotArb(ADMIN).chain((s) => fc.tuple(fc.constant(s), flowArb(s))),
      ([s, f]) => {
        const e = explain(s, f);
        const v = evaluate(s, f);
        assert.deepEqual(e.verdict, v);
        const index = indexOf(s);
        const admin = s.adminPolicies ?? [];
        for (const dir of ['egress', 'ingress'] as const) {
          const side = e[dir];
          if (admin.length === 0 || v[dir].tiers.length === 0) {
            assert.equal(side.tiers, undefined);
            continue;
          }
          assert.deepEqual(
            side.tiers?.map((t) => [t.tier, t.answer]),
            v[dir].tiers.map((t) => [t.tier, t.answer]),
          );
          assert.match(side.summary, side.allowed ? / → allowed/ : / → DENIED$/);
          const subject = (dir === 'egress' ? f.src : f.dst) as { kind: 'pod'; pod: Pod };
          const ends = sideEnds(s, f, dir);
          for (const [k, step] of (side.tiers ?? []).entries()) {
            if (step.policies === undefined) continue;
            assert.deepEqual(step.decision, v[dir].tiers[k]!.admin);
            // Every policy of the tier, in the documented order.
            const want = admin.filter((p) => p.tier === step.tier).sort(compareAdminPolicies);
            assert.deepEqual(
              step.policies.map((p) => `${p.kind}/${p.name}`),
              want.map((p) => `${p.kind}/${p.name}`),
            );
            let decided = false;
            step.policies.forEach((pt, i) => {
              const pol = want[i]!;
              if (decided) return assert.equal(pt.status, 'not-consulted');
              const selects = subjectSelects(index, pol.subject, subject.pod);
              assert.equal(pt.status === 'checked' || pt.status === 'no-rules', selects);
              const rules = dir === 'ingress' ? pol.ingress : pol.egress;
              for (const rt of pt.rules) {
                const m = adminRuleAction(index, rules[rt.rule]!, ends.peer, ends.address, ends.flow);
                assert.equal(rt.matched, m !== undefined);
                if (m !== undefined) assert.equal(rt.applied, m.action);
                decided ||= rt.matched;
              }
              // Rules are checked in order up to the first that matches, all of them if none does.
              if (pt.status === 'checked') {
                assert.deepEqual(
                  pt.rules.map((r) => r.rule),
                  rules.slice(0, pt.rules.length).map((_, r) => r),
                );
                if (!pt.rules.some((r) => r.matched)) assert.equal(pt.rules.length, rules.length);
              }
            });
          }
        }
      },
    ),
    { numRuns: RUNS * 2 },
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

for (const [what, shape] of [
  ['', {}],
  [', with admin policies', ADMIN],
] as const) {
  test(`property: relabelling a pod changes exactly the cells the evaluator says it changes${what}`, () => {
    fc.assert(
      fc.property(
        snapshotArb(shape).chain((s) =>
          fc.tuple(fc.constant(s), fc.nat({ max: s.pods.length - 1 }), labelsArb),
        ),
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
}
