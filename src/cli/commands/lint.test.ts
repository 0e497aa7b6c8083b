// Runs the built CLI as a user would; needs `tsc` output in dist/ (the test itself lives there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moat } from '../../../test/support/cli.js';

test('lint: findings at or above --fail-on exit 1, one line each with file and line', () => {
  const r = moat(['lint', '-f', 'examples/tenants']);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.at(-1), '3 findings');
  for (const l of lines.filter((x) => / warning /.test(x))) {
    assert.match(
      l,
      /^examples\/tenants\/policies\.yaml:\d+: warning admin-priority-tie: AdminNetworkPolicy monitoring: spec\.priority: /,
    );
  }
  assert.equal(moat(['lint', '-f', 'examples/tenants', '--fail-on', 'error']).code, 0);
});

test('lint: -o json prints the documented record', () => {
  const r = moat(['lint', '-f', 'examples/tenants', '-o', 'json']);
  const out = JSON.parse(r.stdout) as { findings: Record<string, unknown>[] };
  assert.equal(out.findings.length, 3);
  assert.deepEqual(Object.keys(out.findings[0]!), [
    'check',
    'severity',
    'object',
    'related',
    'field',
    'message',
    'fix',
  ]);
  assert.deepEqual(out.findings[0]!.object, { kind: 'AdminNetworkPolicy', name: 'monitoring' });
});

test('lint: examples/shop keeps its DNS trap; a clean input says so and exits 0; bad flags are usage errors', () => {
  const shop = moat(['lint', '-f', 'examples/shop']);
  assert.equal(shop.code, 1, shop.stderr);
  assert.match(shop.stdout, /^examples\/shop\/pods\.yaml:\d+: error dns-blocked: Pod data\/db: /m);
  assert.equal(moat(['lint', '-f', 'examples/shop', '--fail-on', 'info']).code, 1);
  const r = moat(['lint', '-f', 'examples/admin']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'no findings\n');
  assert.equal(moat(['lint']).code, 2);
  const bad = moat(['lint', '-f', 'examples/shop', '--fail-on', 'never']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--fail-on <severity>' argument 'never' is invalid/);
});

test('lint: -o sarif locates each result at its manifest', () => {
  const r = moat(['lint', '-f', 'examples/shop', '-o', 'sarif', '--fail-on', 'error']);
  assert.equal(r.code, 1, r.stderr);
  const log = JSON.parse(r.stdout) as {
    version: string;
    runs: {
      results: { ruleId: string; locations: { physicalLocation: { artifactLocation: { uri: string } } }[] }[];
    }[];
  };
  assert.equal(log.version, '2.1.0');
  const dns = log.runs[0]!.results.find((x) => x.ruleId === 'dns-blocked');
  assert.equal(dns?.locations[0]?.physicalLocation.artifactLocation.uri, 'examples/shop/pods.yaml');
});
