// Runs every conformance case against the reference evaluator: all 81 pairs per probe and family.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cases } from './cases.js';
import { buildSnapshot, caseMatrices, diffMatrices, evaluateMatrix } from './model.js';

for (const c of cases) {
  describe(`conformance: ${c.name}`, () => {
    const snap = buildSnapshot(c.policies);
    for (const run of caseMatrices(c)) {
      test(run.label, () => {
        const actual = evaluateMatrix(snap, run.port, run.protocol, run.family);
        const diff = diffMatrices(run.expected, actual);
        if (diff !== undefined) {
          assert.fail(
            `${c.name} (${run.label}): evaluator disagrees with the truth table\n${c.description}\n${diff}`,
          );
        }
      });
    }
  });
}

// Single-stack clusters: a case's truth must not depend on the other family being present.
describe('conformance: single-stack snapshots', () => {
  for (const c of cases) {
    for (const run of caseMatrices(c)) {
      test(`${c.name} ${run.label}`, () => {
        const actual = evaluateMatrix(
          buildSnapshot(c.policies, [run.family]),
          run.port,
          run.protocol,
          run.family,
        );
        const diff = diffMatrices(run.expected, actual);
        if (diff !== undefined) assert.fail(`${c.name} (${run.label}, single-stack):\n${diff}`);
      });
    }
  }
});
