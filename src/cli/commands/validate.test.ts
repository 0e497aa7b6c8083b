// Runs the built CLI as a user would; needs `tsc` output in dist/ (the test itself lives there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { moat } from '../../../test/support/cli.js';

const F = 'test/fixtures/validate';

test('validate: a valid directory tree prints the object count and exits 0', () => {
  const r = moat(['validate', '-f', `${F}/valid`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '8 objects valid\n');
  assert.equal(
    r.stderr,
    `moat: skipped ${F}/valid/chart/templates/policy.yaml: a Helm template ({{ ... }}); run \`helm template\` first and pass its output\n` +
      `moat: skipped ${F}/valid/nested/report.json: not a Kubernetes manifest (no document has apiVersion or kind)\n` +
      'moat: skipped 1 object of kind Kustomization (not used by moat)\n' +
      'moat: namespace kube-system is not declared in the input: assumed with only the label kubernetes.io/metadata.name (namespaceSelectors on other labels do not match it)\n',
  );
});

test('validate: -f is repeatable and stdin is "-"', () => {
  const ns = 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: piped\n';
  const r = moat(['validate', '-f', `${F}/valid/node.yaml`, '-f', '-'], ns);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '2 objects valid\n');
});

test('validate: invalid input prints one line per problem and exits 1', () => {
  const r = moat(['validate', '-f', `${F}/invalid/policy.yaml`, '-f', `${F}/invalid/syntax-error.txt`]);
  assert.equal(r.code, 1);
  const p = `${F}/invalid/policy.yaml`;
  const NS = 'NetworkPolicy prod/broken';
  assert.deepEqual(r.stdout.split('\n'), [
    `${p}:13: ${NS}: spec.ingress[0].from[0].ipBlock.cidr: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)`,
    `${p}:17: ${NS}: spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of \`cidr\``,
    `${p}:19: ${NS}: spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive`,
    `${p}:20: ${NS}: spec.ingress[0].ports[1].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"`,
    `${p}:21: ${NS}: spec.policyTypes[1]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"`,
    `${p}:26: NetworkPolicy default/Not_A_Name: metadata.name: Invalid value: "Not_A_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
    `${p}:28: NetworkPolicy default/Not_A_Name: spec.egress: Invalid type: expected a list, got an object`,
    `${F}/invalid/syntax-error.txt:6: YAML -: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    '',
  ]);
  assert.equal(r.stderr, 'moat: 8 problems found\n');
});

test('validate: a missing file is a clear error naming the path', () => {
  const r = moat(['validate', '-f', `${F}/nope.yaml`]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `moat: cannot read ${F}/nope.yaml: no such file or directory\n`);
});

test('validate: no -f is a usage error', () => {
  const r = moat(['validate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /at least one -f PATH \(use -f - for stdin\) or --kubeconfig PATH is required/);
});

test('validate --ignore GLOB: names match any path segment, globs with / the whole path', () => {
  const cases: [string[], string][] = [
    [
      ['--ignore', 'invalid', '--ignore', 'chart', '--ignore', '**/*.json', '--ignore', 'kustomization.yaml'],
      '6 objects valid\n',
    ],
    [['--ignore', 'invalid', '--ignore', `${F}/valid/chart/**`, '--ignore', 'nested'], '3 objects valid\n'],
  ];
  for (const [args, out] of cases) {
    const r = moat(['validate', '-f', F, ...args]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, out);
    assert.doesNotMatch(r.stderr, /Helm/);
  }
});
