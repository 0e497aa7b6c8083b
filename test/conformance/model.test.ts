// Checks of the conformance model and truth helpers themselves, and of the case data's shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROTOCOLS } from '../../src/model/types.js';
import { cases } from './cases.js';
import {
  PODS,
  allow,
  buildSnapshot,
  caseMatrices,
  deny,
  diffMatrices,
  expandPattern,
  formatMatrix,
  grid,
  podAddress,
  truth,
} from './model.js';

test('model: nine pods, distinct addresses per family, upstream port names', () => {
  const snap = buildSnapshot([]);
  assert.equal(snap.pods.length, 9);
  assert.deepEqual(
    snap.pods.map((p) => `${p.namespace}/${p.name}`),
    PODS,
  );
  for (const f of [4, 6] as const) assert.equal(new Set(PODS.map((p) => podAddress(p, f))).size, 9);
  assert.equal(podAddress('x/a', 4), '10.244.1.1');
  assert.equal(podAddress('z/c', 6), 'fd00:10:244::3:3');
  const ya = snap.pods.find((p) => p.namespace === 'y' && p.name === 'a');
  assert.deepEqual(ya?.labels, { pod: 'a' });
  assert.deepEqual(ya?.ips, ['10.244.2.1', 'fd00:10:244::2:1']);
  assert.equal(ya?.ports.length, 2 * PROTOCOLS.length);
  assert.ok(
    ya?.ports.some((p) => p.name === 'serve-81-udp' && p.containerPort === 81 && p.protocol === 'UDP'),
  );
  assert.deepEqual(snap.namespaces.find((n) => n.name === 'z')?.labels, {
    'kubernetes.io/metadata.name': 'z',
    ns: 'z',
  });
  assert.deepEqual(buildSnapshot([], [6]).pods[0]?.ips, ['fd00:10:244::1:1']);
  assert.deepEqual(buildSnapshot([], [6]).nodes[0]?.addresses, ['fd00:10:244::1']);
});

test('patterns expand to model pods and reject unknown ones', () => {
  assert.deepEqual(expandPattern('x/*'), ['x/a', 'x/b', 'x/c']);
  assert.deepEqual(expandPattern('*/b'), ['x/b', 'y/b', 'z/b']);
  assert.equal(expandPattern('*').length, 9);
  assert.deepEqual(expandPattern(['y/c', 'x/a', 'y/c']), ['y/c', 'x/a']);
  assert.throws(() => expandPattern('w/a'), /matches no model pod/);
  assert.throws(() => expandPattern('xa'), /bad pod pattern/);
});

test('truth edits apply in order and keep the diagonal allowed', () => {
  const t = truth(deny('*', 'x/a'), allow('x/b', 'x/a'));
  assert.equal(t['x/a']?.['x/a'], true);
  assert.equal(t['x/b']?.['x/a'], true);
  assert.equal(t['x/c']?.['x/a'], false);
  assert.equal(t['y/a']?.['x/b'], true);
  assert.equal(truth(deny('*', '*'))['z/c']?.['z/c'], true);
});

test('grid reads what formatMatrix writes, and equals the same truth written as edits', () => {
  const t = truth(deny('*', 'x/a'), allow('y/*', 'x/a'), deny('z/c', '*'));
  assert.deepEqual(grid(formatMatrix(t)), t);
  const g = grid(`
         x/a x/b x/c y/a y/b y/c z/a z/b z/c
    x/a   .   .   .   .   .   .   .   .   .
    x/b   X   .   .   .   .   .   .   .   .
    x/c   X   .   .   .   .   .   .   .   .
    y/a   .   .   .   .   .   .   .   .   .
    y/b   .   .   .   .   .   .   .   .   .
    y/c   .   .   .   .   .   .   .   .   .
    z/a   X   .   .   .   .   .   .   .   .
    z/b   X   .   .   .   .   .   .   .   .
    z/c   X   X   X   X   X   X   X   X   .
  `);
  assert.deepEqual(g, t);
});

test('grid rejects malformed tables', () => {
  const head = 'x/a x/b x/c y/a y/b y/c z/a z/b z/c';
  const row = (from: string, cells = '. . . . . . . . .') => `${from} ${cells}`;
  const all = (f = (p: string) => row(p)) => [head, ...PODS.map(f)].join('\n');
  assert.doesNotThrow(() => grid(all()));
  assert.throws(() => grid(all().replace('z/c ', 'z/d ')), /unknown or repeated/);
  assert.throws(() => grid([head, ...PODS.slice(1).map((p) => row(p))].join('\n')), /8 rows/);
  assert.throws(() => grid(all((p) => row(p, p === 'y/b' ? '. . . . . . . .' : undefined))), /want 9 cells/);
  assert.throws(
    () => grid(all((p) => row(p, p === 'y/b' ? '. . . . . . . . o' : undefined))),
    /not '.' or 'X'/,
  );
  assert.throws(() => grid(all((p) => row(p, p === 'x/a' ? 'X . . . . . . . .' : undefined))), /diagonal/);
  assert.throws(() => grid(all().replace(head, 'x/a x/b')), /header/);
});

test('diffMatrices: undefined when equal, both grids and the pairs when not', () => {
  const e = truth(deny('*', 'x/a'));
  assert.equal(diffMatrices(e, truth(deny('*', 'x/a'))), undefined);
  const d = diffMatrices(e, truth(deny('*', 'x/a'), allow('y/b', 'x/a')));
  assert.ok(d !== undefined);
  assert.match(d, /^1 of 81 pairs differ/);
  assert.match(d, /y\/b -> x\/a: expected denied, got allowed/);
  assert.match(d, /expected:\n/);
  assert.match(d, /actual:\n/);
  assert.match(d, /X!/);
});

test('case data: unique names, quoted rules, probes on served ports, families set', () => {
  assert.ok(cases.length >= 35, `only ${cases.length} cases`);
  const names = new Set<string>();
  for (const c of cases) {
    assert.ok(!names.has(c.name), `duplicate case ${c.name}`);
    names.add(c.name);
    assert.ok(c.description.includes('"'), `${c.name}: description should quote the rule`);
    assert.ok(c.probes.length > 0 && c.families.length > 0, c.name);
    for (const p of c.probes) assert.ok(p.port === 80 || p.port === 81, `${c.name}: port ${p.port}`);
    for (const pol of c.policies) assert.ok(['x', 'y', 'z'].includes(pol.namespace), c.name);
    const runs = caseMatrices(c);
    assert.equal(runs.length, c.probes.length * c.families.length);
    // Each probe of a case is distinct.
    assert.equal(new Set(runs.map((r) => r.label)).size, runs.length, c.name);
  }
});
