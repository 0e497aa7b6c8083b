import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MatrixJson } from '../analysis/matrix.js';
import { compareMatrices } from './compare.js';

function m(cells: Record<string, Record<string, Record<string, boolean>>>): MatrixJson {
  const pods = ['a/x', 'b/y'];
  return {
    pods,
    probes: Object.entries(cells).map(([k, allowed]) => {
      const [protocol, port] = k.split('/');
      return { port: Number(port), protocol: protocol as 'TCP' | 'UDP', allowed };
    }),
  };
}

const allTrue = { 'a/x': { 'a/x': true, 'b/y': true }, 'b/y': { 'a/x': true, 'b/y': true } };
const oneDenied = { 'a/x': { 'a/x': true, 'b/y': false }, 'b/y': { 'a/x': true, 'b/y': true } };

test('compareMatrices', async (t) => {
  const cases = [
    { name: 'equal', obs: { 'TCP/80': allTrue }, exp: { 'TCP/80': allTrue }, agree: 4, bad: 0, missing: 0 },
    {
      name: 'one cell differs',
      obs: { 'TCP/80': allTrue },
      exp: { 'TCP/80': oneDenied },
      agree: 3,
      bad: 1,
      missing: 0,
    },
    {
      name: 'skipped probe is missing, not a disagreement',
      obs: { 'TCP/80': allTrue },
      exp: { 'TCP/80': allTrue, 'SCTP/80': oneDenied },
      agree: 4,
      bad: 0,
      missing: 1,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const r = compareMatrices(m(c.obs), m(c.exp));
      assert.equal(r.agree, c.agree);
      assert.equal(r.disagreements.length, c.bad);
      assert.equal(r.missing.length, c.missing);
    });
  }
  const r = compareMatrices(m({ 'TCP/80': allTrue }), m({ 'TCP/80': oneDenied }));
  assert.deepEqual(r.disagreements[0], {
    port: 80,
    protocol: 'TCP',
    from: 'a/x',
    to: 'b/y',
    expected: false,
    observed: true,
  });
});
