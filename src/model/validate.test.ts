// One case per API-server rule, valid and invalid, through loadText (the YAML a user would write).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadText } from './load.js';
import type { NetworkPolicy } from './types.js';

function indent(text: string, n: number): string {
  const pad = ' '.repeat(n);
  return text
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n');
}

/** A NetworkPolicy ns/p with the given spec body (YAML, unindented). */
function np(spec: string, meta = 'name: p\nnamespace: ns'): string {
  return `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n${indent(meta, 2)}\nspec:\n${indent(spec, 2)}\n`;
}

/** [field, message] of every problem, for exact comparison. */
function problems(text: string): [string, string][] {
  return loadText(text, 'f.yaml').problems.map((p) => [p.field, p.message]);
}

function onePolicy(text: string): NetworkPolicy {
  const res = loadText(text, 'f.yaml');
  assert.deepEqual(res.problems, []);
  const p = res.snapshot.policies[0];
  assert.ok(p);
  return p;
}

const SUBSET = 'must be a strict subset of `cidr`';
const CIDR_MSG = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

interface Case {
  readonly name: string;
  readonly spec: string;
  readonly meta?: string;
  /** Expected [field, message] pairs; [] means valid. */
  readonly want: [string, string][];
}

const cases: Case[] = [
  { name: 'empty spec is valid (podSelector is optional)', spec: '{}', want: [] },
  { name: 'podSelector {} is valid', spec: 'podSelector: {}', want: [] },
  {
    name: 'matchLabels key with prefix is valid',
    spec: 'podSelector:\n  matchLabels:\n    example.com/app: web-1.x_y',
    want: [],
  },
  {
    name: 'matchLabels key name part too long',
    spec: `podSelector:\n  matchLabels:\n    ${'a'.repeat(64)}: x`,
    want: [
      [
        'spec.podSelector.matchLabels',
        `Invalid value: "${'a'.repeat(64)}": name part must be no more than 63 bytes`,
      ],
    ],
  },
  {
    name: 'matchLabels key with empty prefix',
    spec: 'podSelector:\n  matchLabels:\n    /app: x',
    want: [['spec.podSelector.matchLabels', 'Invalid value: "/app": prefix part must be non-empty']],
  },
  {
    name: 'matchLabels value with a bad start',
    spec: 'podSelector:\n  matchLabels:\n    app: -web',
    want: [
      [
        'spec.podSelector.matchLabels',
        `Invalid value: "-web": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
      ],
    ],
  },
  {
    name: 'matchLabels value too long',
    spec: `podSelector:\n  matchLabels:\n    app: ${'v'.repeat(64)}`,
    want: [
      ['spec.podSelector.matchLabels', `Invalid value: "${'v'.repeat(64)}": must be no more than 63 bytes`],
    ],
  },
  {
    name: 'matchLabels value of the wrong type',
    spec: 'podSelector:\n  matchLabels:\n    app: 1',
    want: [['spec.podSelector.matchLabels.app', 'Invalid type: expected a string, got a number']],
  },
  {
    name: 'In with values is valid',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [a, b]}',
    want: [],
  },
  {
    name: 'In without values',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: In}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].values',
        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
      ],
    ],
  },
  {
    name: 'NotIn with empty values',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: NotIn, values: []}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].values',
        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
      ],
    ],
  },
  {
    name: 'Exists without values is valid',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: Exists}',
    want: [],
  },
  {
    name: 'DoesNotExist with values',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: DoesNotExist, values: [x]}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].values',
        "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
      ],
    ],
  },
  {
    name: 'unknown operator',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: Equals, values: [x]}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].operator',
        'Invalid value: "Equals": not a valid selector operator',
      ],
    ],
  },
  {
    name: 'expression value invalid',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: ["a b"]}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].values[0]',
        `Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
      ],
    ],
  },
  {
    name: 'expression key with too many slashes',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: a/b/c, operator: Exists}',
    want: [
      [
        'spec.podSelector.matchExpressions[0].key',
        `Invalid value: "a/b/c": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
      ],
    ],
  },
  {
    name: 'ipBlock with except inside is valid',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4/32]}',
    want: [],
  },
  {
    name: 'ipBlock cidr invalid prefix',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/33}',
    want: [['spec.ingress[0].from[0].ipBlock.cidr', `Invalid value: "10.0.0.0/33": ${CIDR_MSG}`]],
  },
  {
    name: 'ipBlock cidr not a CIDR',
    spec: 'egress:\n- to:\n  - ipBlock: {cidr: 10.0.0.1}',
    want: [['spec.egress[0].to[0].ipBlock.cidr', `Invalid value: "10.0.0.1": ${CIDR_MSG}`]],
  },
  {
    name: 'ipBlock cidr missing',
    spec: 'ingress:\n- from:\n  - ipBlock: {except: [10.0.0.0/8]}',
    want: [['spec.ingress[0].from[0].ipBlock.cidr', 'Required value']],
  },
  {
    name: 'except equal to cidr',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8]}',
    want: [['spec.ingress[0].from[0].ipBlock.except[0]', `Invalid value: "10.0.0.0/8": ${SUBSET}`]],
  },
  // Found against kube-apiserver v1.33 (test/k8s/validate-compare.test.ts): ValidateIPBlock
  // compares the mask lengths as written, in the written family's bits.
  {
    name: 'mapped cidr /104 may not except an IPv4 /16 (104 >= 16)',
    spec: "ingress:\n- from:\n  - ipBlock: {cidr: '::ffff:10.0.0.0/104', except: [10.1.0.0/16]}",
    want: [['spec.ingress[0].from[0].ipBlock.except[0]', `Invalid value: "10.1.0.0/16": ${SUBSET}`]],
  },
  {
    name: 'IPv4 cidr /8 may except the same network written as mapped /104',
    spec: "ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: ['::ffff:10.0.0.0/104']}",
    want: [],
  },
  {
    name: 'a null In value is the value ""; a null requirement is key "" and operator ""',
    spec: 'podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [null]}\n  - null',
    want: [
      ['spec.podSelector.matchExpressions[1].operator', 'Invalid value: "": not a valid selector operator'],
      ['spec.podSelector.matchExpressions[1].key', `Invalid value: "": name part must be non-empty`],
      [
        'spec.podSelector.matchExpressions[1].key',
        `Invalid value: "": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
      ],
    ],
  },
  {
    name: 'except outside cidr',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}',
    want: [['spec.ingress[0].from[0].ipBlock.except[0]', `Invalid value: "11.0.0.0/16": ${SUBSET}`]],
  },
  {
    name: 'except of the other family',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: ["fd00::/64"]}',
    want: [['spec.ingress[0].from[0].ipBlock.except[0]', `Invalid value: "fd00::/64": ${SUBSET}`]],
  },
  {
    name: 'except not a CIDR',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8, except: [banana]}',
    want: [['spec.ingress[0].from[0].ipBlock.except[0]', `Invalid value: "banana": ${CIDR_MSG}`]],
  },
  {
    name: 'non-canonical cidr is accepted (StrictIPCIDRValidation is off upstream)',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.1.2.3/8}',
    want: [],
  },
  {
    name: 'empty peer',
    spec: 'ingress:\n- from:\n  - {}',
    want: [['spec.ingress[0].from[0]', 'Required value: must specify a peer']],
  },
  {
    name: 'ipBlock with a selector',
    spec: 'ingress:\n- from:\n  - ipBlock: {cidr: 10.0.0.0/8}\n    namespaceSelector: {}',
    want: [['spec.ingress[0].from[0]', 'Forbidden: may not specify both ipBlock and another peer']],
  },
  {
    name: 'pod and namespace selectors together are valid',
    spec: 'ingress:\n- from:\n  - podSelector: {}\n    namespaceSelector: {}',
    want: [],
  },
  { name: 'numeric port is valid', spec: 'ingress:\n- ports:\n  - port: 443', want: [] },
  { name: 'named port is valid', spec: 'ingress:\n- ports:\n  - port: https-alt', want: [] },
  {
    name: 'port 0',
    spec: 'ingress:\n- ports:\n  - port: 0',
    want: [['spec.ingress[0].ports[0].port', 'Invalid value: 0: must be between 1 and 65535, inclusive']],
  },
  {
    name: 'port 65536',
    spec: 'ingress:\n- ports:\n  - port: 65536',
    want: [['spec.ingress[0].ports[0].port', 'Invalid value: 65536: must be between 1 and 65535, inclusive']],
  },
  {
    name: 'quoted number is a port name without letters',
    spec: 'ingress:\n- ports:\n  - port: "80"',
    want: [['spec.ingress[0].ports[0].port', 'Invalid value: "80": must contain at least one letter (a-z)']],
  },
  {
    name: 'port name too long',
    spec: 'ingress:\n- ports:\n  - port: abcdefghijklmnop',
    want: [
      ['spec.ingress[0].ports[0].port', 'Invalid value: "abcdefghijklmnop": must be no more than 15 bytes'],
    ],
  },
  {
    name: 'port name with upper case',
    spec: 'ingress:\n- ports:\n  - port: HTTP',
    want: [
      [
        'spec.ingress[0].ports[0].port',
        'Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)',
      ],
      ['spec.ingress[0].ports[0].port', 'Invalid value: "HTTP": must contain at least one letter (a-z)'],
    ],
  },
  {
    name: 'port name with double hyphen',
    spec: 'ingress:\n- ports:\n  - port: a--b',
    want: [['spec.ingress[0].ports[0].port', 'Invalid value: "a--b": must not contain consecutive hyphens']],
  },
  {
    name: 'port name with leading hyphen',
    spec: 'ingress:\n- ports:\n  - port: -ab',
    want: [['spec.ingress[0].ports[0].port', 'Invalid value: "-ab": must not begin or end with a hyphen']],
  },
  {
    name: 'endPort with numeric port is valid',
    spec: 'ingress:\n- ports:\n  - {port: 80, endPort: 90}',
    want: [],
  },
  {
    name: 'endPort below port',
    spec: 'ingress:\n- ports:\n  - {port: 80, endPort: 79}',
    want: [
      ['spec.ingress[0].ports[0].endPort', 'Invalid value: 79: must be greater than or equal to `port`'],
    ],
  },
  {
    name: 'endPort above 65535',
    spec: 'ingress:\n- ports:\n  - {port: 80, endPort: 70000}',
    want: [
      ['spec.ingress[0].ports[0].endPort', 'Invalid value: 70000: must be between 1 and 65535, inclusive'],
    ],
  },
  {
    name: 'endPort with named port',
    spec: 'ingress:\n- ports:\n  - {port: http, endPort: 90}',
    want: [
      [
        'spec.ingress[0].ports[0].endPort',
        'Invalid value: 90: may not be specified when `port` is non-numeric',
      ],
    ],
  },
  {
    name: 'endPort without port',
    spec: 'ingress:\n- ports:\n  - {endPort: 90}',
    want: [
      [
        'spec.ingress[0].ports[0].endPort',
        'Invalid value: 90: may not be specified when `port` is not specified',
      ],
    ],
  },
  { name: 'protocol SCTP is valid', spec: 'egress:\n- ports:\n  - {protocol: SCTP}', want: [] },
  {
    name: 'protocol in lower case',
    spec: 'egress:\n- ports:\n  - {protocol: tcp, port: 53}',
    want: [
      [
        'spec.egress[0].ports[0].protocol',
        'Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP"',
      ],
    ],
  },
  { name: 'policyTypes Egress only is valid', spec: 'policyTypes: [Egress]', want: [] },
  {
    name: 'policyTypes unknown value',
    spec: 'policyTypes: [Ingress, ingress]',
    want: [['spec.policyTypes[1]', 'Unsupported value: "ingress": supported values: "Ingress", "Egress"']],
  },
  {
    name: 'policyTypes more than two',
    spec: 'policyTypes: [Ingress, Egress, Ingress]',
    want: [
      [
        'spec.policyTypes',
        'Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes',
      ],
    ],
  },
  {
    name: 'metadata.name not a DNS subdomain',
    spec: '{}',
    meta: 'name: My_Policy',
    want: [
      [
        'metadata.name',
        `Invalid value: "My_Policy": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      ],
    ],
  },
  { name: 'metadata.name with dots is valid', spec: '{}', meta: 'name: allow.web', want: [] },
  {
    name: 'metadata.name missing',
    spec: '{}',
    meta: 'namespace: ns',
    want: [['metadata.name', 'Required value: name or generateName is required']],
  },
  {
    name: 'metadata.namespace not a DNS label',
    spec: '{}',
    meta: 'name: p\nnamespace: a.b',
    want: [['metadata.namespace', 'Invalid value: "a.b": must not contain dots']],
  },
  {
    name: 'unknown spec field (a typo that would silently deny everything)',
    spec: 'ingres:\n- {}',
    want: [['spec.ingres', 'field not declared in schema']],
  },
  {
    name: 'a string where a list is expected',
    spec: 'ingress: everything',
    want: [['spec.ingress', 'Invalid type: expected a list, got a string']],
  },
  {
    name: 'a list where an object is expected',
    spec: 'podSelector: [app]',
    want: [['spec.podSelector', 'Invalid type: expected an object, got a list']],
  },
  {
    name: 'a fractional port',
    spec: 'ingress:\n- ports:\n  - port: 80.5',
    want: [['spec.ingress[0].ports[0].port', 'Invalid type: expected an integer, got a number']],
  },
];

for (const c of cases) {
  test(`validation: ${c.name}`, () => {
    assert.deepEqual(problems(np(c.spec, c.meta)), c.want);
  });
}

test('problems are all collected, and the invalid policy is left out', () => {
  const res = loadText(np('ingress:\n- from:\n  - {}\n  ports:\n  - port: 0\npolicyTypes: [Nope]'), 'f.yaml');
  assert.equal(res.problems.length, 3);
  assert.deepEqual(res.snapshot.policies, []);
});

const defaults: { name: string; spec: string; types: string[] }[] = [
  { name: 'no rules', spec: '{}', types: ['Ingress'] },
  { name: 'ingress rules only', spec: 'ingress:\n- {}', types: ['Ingress'] },
  { name: 'egress rules present', spec: 'egress:\n- {}', types: ['Ingress', 'Egress'] },
  { name: 'egress: [] is not present', spec: 'egress: []', types: ['Ingress'] },
  { name: 'explicit types are kept', spec: 'policyTypes: [Egress]\ningress:\n- {}', types: ['Egress'] },
  { name: 'a repeated type counts once', spec: 'policyTypes: [Egress, Egress]', types: ['Egress'] },
  {
    name: 'explicit empty list is defaulted',
    spec: 'policyTypes: []\negress:\n- {}',
    types: ['Ingress', 'Egress'],
  },
];

for (const d of defaults) {
  test(`defaulting policyTypes: ${d.name}`, () => {
    assert.deepEqual(onePolicy(np(d.spec)).policyTypes, d.types);
  });
}

test('defaulting: port protocol TCP, empty from/ports mean "all", CIDRs canonical', () => {
  const p = onePolicy(
    np(
      'ingress:\n- ports:\n  - port: 80\n  - {protocol: UDP, port: dns}\n  from: []\n' +
        'egress:\n- to:\n  - ipBlock: {cidr: 10.1.2.3/8, except: [10.9.9.9/16]}\n  ports: []',
    ),
  );
  assert.deepEqual(p.ingress, [
    {
      ports: [
        { protocol: 'TCP', port: 80 },
        { protocol: 'UDP', port: 'dns' },
      ],
    },
  ]);
  assert.deepEqual(p.egress, [
    { peers: [{ kind: 'ipBlock', ipBlock: { cidr: '10.0.0.0/8', except: ['10.9.0.0/16'] } }] },
  ]);
  assert.equal(p.namespace, 'ns');
});

test('a policy without metadata.namespace lands in "default"', () => {
  const p = onePolicy(np('{}', 'name: p'));
  assert.equal(p.namespace, 'default');
});

test('non-canonical CIDRs produce an upstream-style warning note', () => {
  const res = loadText(np('ingress:\n- from:\n  - ipBlock: {cidr: 010.1.2.0/24}'), 'f.yaml');
  assert.deepEqual(res.problems, []);
  assert.equal(res.snapshot.policies[0]?.ingress[0]?.peers?.[0]?.kind, 'ipBlock');
  assert.ok(
    res.notes.some(
      (n) => n.includes('non-standard CIDR value "010.1.2.0/24"') && n.startsWith('warning: f.yaml:9:'),
    ),
  );
});

test('a null In value decodes to "" (as the API server stores it)', () => {
  const p = onePolicy(
    np('podSelector:\n  matchExpressions:\n  - {key: app, operator: In, values: [null, b]}'),
  );
  assert.deepEqual(p.podSelector.matchExpressions, [{ key: 'app', operator: 'In', values: ['', 'b'] }]);
});
