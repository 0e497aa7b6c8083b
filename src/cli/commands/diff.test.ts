// Runs the built CLI as a user would; needs `tsc` output in dist/ (the test itself lives there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moat } from '../../../test/support/cli.js';

test('diff: an opening change exits 1 and names the rule; the reverse change closes and exits 0', () => {
  const open = moat(['diff', '--old', 'examples/shop', '--new', 'test/fixtures/diff/shop-dns']);
  assert.equal(open.code, 1, open.stderr);
  assert.match(
    open.stdout,
    /^opened: 2 ports in 1 pod pair\n {2}data\/db -> kube-system\/coredns {2}TCP\/53, UDP\/53\n {4}egress: allowed by NetworkPolicy data\/allow-dns egress rule 0/,
  );
  const close = moat([
    'diff',
    '--old',
    'test/fixtures/diff/shop-dns',
    '--new',
    'examples/shop',
    '-o',
    'json',
  ]);
  assert.equal(close.code, 0, close.stderr);
  const d = JSON.parse(close.stdout) as { opened: unknown[]; closed: { rules: { name: string }[] }[] };
  assert.deepEqual(d.opened, []);
  assert.equal(d.closed.length, 2);
  assert.deepEqual(d.closed[0]!.rules, [{ kind: 'NetworkPolicy', namespace: 'data', name: 'default-deny' }]);
  const same = moat(['diff', '--old', 'examples/shop', '--new', 'examples/shop', '-o', 'md']);
  assert.equal(same.code, 0);
  assert.match(same.stdout, /^No connectivity change/);
  assert.equal(moat(['diff', '--old', 'examples/shop']).code, 2);
});
