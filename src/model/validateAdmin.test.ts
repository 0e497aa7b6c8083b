import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadText } from './load.js';

const head = (kind: string, name = 'p'): string => {
  const av =
    kind === 'ClusterNetworkPolicy'
      ? 'policy.networking.k8s.io/v1beta1'
      : 'policy.networking.k8s.io/v1alpha1';
  return `apiVersion: ${av}\nkind: ${kind}\nmetadata:\n  name: ${name}\n`;
};
const cnp = (spec: string): string => `${head('ClusterNetworkPolicy')}spec:\n${spec}`;
const base = '  tier: Admin\n  priority: 5\n  subject:\n    namespaces: {}\n';

/** [case, yaml, expected problem fields ([] = valid)] */
const cases: [string, string, string[]][] = [
  ['minimal CNP', cnp(base), []],
  ['v1alpha2 is served too', cnp(base).replace('v1beta1', 'v1alpha2'), []],
  ['tier required', cnp('  priority: 1\n  subject:\n    namespaces: {}\n'), ['spec.tier']],
  ['priority above 1000', cnp(base.replace('5', '1001')), ['spec.priority']],
  ['priority below 0', cnp(base.replace('5', '-1')), ['spec.priority']],
  ['subject with two fields', cnp(base + '    pods: { podSelector: {} }\n'), ['spec.subject']],
  ['subject empty', cnp('  tier: Admin\n  priority: 5\n  subject: {}\n'), ['spec.subject']],
  [
    'ingress peer nodes not allowed',
    cnp(base + '  ingress:\n    - action: Deny\n      from: [{ nodes: {} }]\n'),
    // Unknown, and (pruned, as the API server does before the schema) an empty peer.
    ['spec.ingress[0].from[0].nodes', 'spec.ingress[0].from[0]'],
  ],
  [
    'an unknown field beside a peer is not a second peer field',
    cnp(base + '  ingress:\n    - action: Deny\n      from: [{ namespaces: {}, bar: 1 }]\n'),
    ['spec.ingress[0].from[0].bar'],
  ],
  [
    'range start < end is checked beside the bounds',
    cnp(
      base +
        '  egress:\n    - action: Deny\n      to: [{ namespaces: {} }]\n      protocols: [{ tcp: { destinationPort: { range: { start: 70000, end: 5 } } } }]\n',
    ),
    [
      'spec.egress[0].protocols[0].tcp.destinationPort.range.start',
      'spec.egress[0].protocols[0].tcp.destinationPort.range',
    ],
  ],
  [
    'the named-port rule sees a named port in an invalid protocol entry',
    cnp(
      base +
        '  egress:\n    - action: Deny\n      to: [{ networks: [10.0.0.0/8] }]\n      protocols: [{ destinationNamedPort: http, udp: {} }]\n',
    ),
    ['spec.egress[0]', 'spec.egress[0].protocols[0]'],
  ],
  ['egress nodes ok', cnp(base + '  egress:\n    - action: Deny\n      to: [{ nodes: {} }]\n'), []],
  ['from required', cnp(base + '  ingress:\n    - action: Deny\n'), ['spec.ingress[0].from']],
  ['from empty', cnp(base + '  ingress:\n    - action: Deny\n      from: []\n'), ['spec.ingress[0].from']],
  [
    'ANP action in a CNP',
    cnp(base + '  ingress:\n    - action: Allow\n      from: [{ namespaces: {} }]\n'),
    ['spec.ingress[0].action'],
  ],
  [
    'non-canonical network',
    cnp(base + '  egress:\n    - action: Deny\n      to: [{ networks: [10.1.0.0/8] }]\n'),
    ['spec.egress[0].to[0].networks[0]'],
  ],
  [
    'duplicate network',
    cnp(base + '  egress:\n    - action: Deny\n      to: [{ networks: [10.0.0.0/8, 10.0.0.0/8] }]\n'),
    ['spec.egress[0].to[0].networks[1]'],
  ],
  [
    'range start == end',
    cnp(
      base +
        '  egress:\n    - action: Deny\n      to: [{ namespaces: {} }]\n      protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 80 } } } }]\n',
    ),
    ['spec.egress[0].protocols[0].tcp.destinationPort.range'],
  ],
  [
    'named port with networks',
    cnp(
      base +
        '  egress:\n    - action: Deny\n      to: [{ networks: [10.0.0.0/8] }]\n      protocols: [{ destinationNamedPort: http }]\n',
    ),
    ['spec.egress[0]'],
  ],
  [
    'named port with pods ok',
    cnp(
      base +
        '  egress:\n    - action: Accept\n      to: [{ pods: { podSelector: {} } }]\n      protocols: [{ destinationNamedPort: http }]\n',
    ),
    [],
  ],
  [
    'domain wildcard only as prefix',
    cnp(base + '  egress:\n    - action: Accept\n      to: [{ domainNames: ["a.*.example.com"] }]\n'),
    ['spec.egress[0].to[0].domainNames[0]'],
  ],
  [
    '26 ingress rules',
    cnp(base + '  ingress:\n' + '    - { action: Deny, from: [{ namespaces: {} }] }\n'.repeat(26)),
    ['spec.ingress'],
  ],
  [
    'rule name over 100',
    cnp(base + `  ingress:\n    - { name: ${'x'.repeat(101)}, action: Deny, from: [{ namespaces: {} }] }\n`),
    ['spec.ingress[0].name'],
  ],
  ['ANP minimal', `${head('AdminNetworkPolicy')}spec:\n  priority: 3\n  subject:\n    namespaces: {}\n`, []],
  [
    'ANP Accept is not an action',
    `${head('AdminNetworkPolicy')}spec:\n  priority: 3\n  subject:\n    namespaces: {}\n  ingress:\n    - { action: Accept, from: [{ namespaces: {} }] }\n`,
    ['spec.ingress[0].action'],
  ],
  [
    'ANP port range protocol defaults to TCP',
    `${head('AdminNetworkPolicy')}spec:\n  priority: 3\n  subject:\n    namespaces: {}\n  ingress:\n    - { action: Allow, from: [{ namespaces: {} }], ports: [{ portRange: { start: 1, end: 9 } }] }\n`,
    [],
  ],
  [
    'ANP tier is not a field',
    `${head('AdminNetworkPolicy')}spec:\n  tier: Admin\n  priority: 3\n  subject:\n    namespaces: {}\n`,
    ['spec.tier'],
  ],
  [
    'BANP must be named default',
    `${head('BaselineAdminNetworkPolicy', 'x')}spec:\n  subject:\n    namespaces: {}\n`,
    ['metadata.name'],
  ],
  [
    'BANP default',
    `${head('BaselineAdminNetworkPolicy', 'default')}spec:\n  subject:\n    namespaces: {}\n`,
    [],
  ],
  [
    'BANP has no priority',
    `${head('BaselineAdminNetworkPolicy', 'default')}spec:\n  priority: 1\n  subject:\n    namespaces: {}\n`,
    ['spec.priority'],
  ],
];

for (const [name, yaml, fields] of cases) {
  test(`admin validation: ${name}`, () => {
    const res = loadText(yaml, 'f.yaml');
    assert.deepEqual(
      res.problems.map((p) => p.field),
      fields,
      res.problems.map((p) => p.message).join('\n'),
    );
    assert.equal(res.snapshot.adminPolicies?.length ?? 0, fields.length === 0 ? 1 : 0);
  });
}

test('admin decoding: the projection', () => {
  const res = loadText(
    cnp(
      base.replace('Admin', 'Baseline') +
        '  egress:\n    - name: web\n      action: Accept\n      to: [{ networks: ["fd00::/8"] }, { pods: { podSelector: { matchLabels: { a: b } } } }]\n      protocols: [{ udp: { destinationPort: { number: 53 } } }, { tcp: { destinationPort: { range: { start: 8000, end: 8080 } } } }]\n',
    ),
    'f.yaml',
  );
  assert.deepEqual(res.problems, []);
  const p = res.snapshot.adminPolicies?.[0];
  assert.equal(p?.tier, 'Baseline');
  assert.equal(p?.priority, 5);
  assert.deepEqual(p?.egress[0], {
    name: 'web',
    action: 'Accept',
    peers: [
      { kind: 'networks', networks: ['fd00::/8'] },
      {
        kind: 'pods',
        namespaceSelector: { matchLabels: {}, matchExpressions: [] },
        podSelector: { matchLabels: { a: 'b' }, matchExpressions: [] },
      },
    ],
    ports: [
      { kind: 'number', protocol: 'UDP', port: 53 },
      { kind: 'range', protocol: 'TCP', start: 8000, end: 8080 },
    ],
  });
});

test('admin decoding: ANP Allow is Accept', () => {
  const res = loadText(
    `${head('AdminNetworkPolicy')}spec:\n  priority: 3\n  subject:\n    namespaces: {}\n  ingress:\n    - { action: Allow, from: [{ namespaces: {} }] }\n`,
    'f.yaml',
  );
  assert.equal(res.snapshot.adminPolicies?.[0]?.ingress[0]?.action, 'Accept');
});
