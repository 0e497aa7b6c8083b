import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadText } from './load.js';
import { WATCHABLE } from '../agent/k8s-decode.js';

const svc = (spec: string, name = 'web'): string =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: prod}\nspec:\n${spec}`;

/** [case, yaml, expected problem fields ([] = valid)] */
const problems: [string, string, string[]][] = [
  ['one unnamed port', svc('  selector: {app: web}\n  ports: [{port: 80}]\n'), []],
  ['ports required', svc('  selector: {app: web}\n'), ['spec.ports']],
  ['headless without ports', svc('  clusterIP: None\n  selector: {app: web}\n'), []],
  ['ExternalName without ports', svc('  type: ExternalName\n  externalName: db.example.com\n'), []],
  ['two ports need names', svc('  ports: [{port: 80, name: http}, {port: 81}]\n'), ['spec.ports[1].name']],
  ['duplicate names', svc('  ports: [{port: 80, name: a}, {port: 81, name: a}]\n'), ['spec.ports[1].name']],
  [
    'duplicate port and protocol',
    svc('  ports: [{port: 80, name: a}, {port: 80, name: b}]\n'),
    ['spec.ports[1]'],
  ],
  [
    'same port, other protocol',
    svc('  ports: [{port: 53, name: a}, {port: 53, name: b, protocol: UDP}]\n'),
    [],
  ],
  ['port out of range', svc('  ports: [{port: 0}]\n'), ['spec.ports[0].port']],
  ['port missing', svc('  ports: [{targetPort: 8080}]\n'), ['spec.ports[0].port']],
  ['bad protocol', svc('  ports: [{port: 80, protocol: ICMP}]\n'), ['spec.ports[0].protocol']],
  ['bad targetPort number', svc('  ports: [{port: 80, targetPort: 70000}]\n'), ['spec.ports[0].targetPort']],
  [
    'bad targetPort name',
    svc('  ports: [{port: 80, targetPort: HTTP}]\n'),
    ['spec.ports[0].targetPort', 'spec.ports[0].targetPort'],
  ],
  ['bad selector value', svc('  selector: {app: "a b"}\n  ports: [{port: 80}]\n'), ['spec.selector']],
  ['unknown spec field', svc('  ports: [{port: 80}]\n  portz: 1\n'), ['spec.portz']],
  ['unknown port field', svc('  ports: [{port: 80, target: 1}]\n'), ['spec.ports[0].target']],
  ['bad type', svc('  type: Internal\n  ports: [{port: 80}]\n'), ['spec.type']],
  ['bad name', svc('  ports: [{port: 80}]\n', 'Web'), ['metadata.name']],
];

for (const [name, yaml, fields] of problems) {
  test(`Service validation: ${name}`, () => {
    const res = loadText(yaml, 's.yaml');
    assert.deepEqual(
      res.problems.map((p) => p.field),
      fields,
      JSON.stringify(res.problems),
    );
    assert.equal(res.snapshot.services?.length ?? 0, fields.length === 0 ? 1 : 0, 'kept only when valid');
  });
}

/** [case, spec, expected selector, expected ports] */
const decoded: [string, string, Record<string, string> | undefined, unknown[]][] = [
  [
    'targetPort defaults to port, protocol to TCP',
    '  selector: {app: web}\n  ports: [{port: 80}]\n',
    { app: 'web' },
    [{ port: 80, targetPort: 80, protocol: 'TCP' }],
  ],
  [
    'targetPort 0 and "" are defaulted too',
    '  selector: {app: web}\n  ports: [{port: 80, name: a, targetPort: 0}, {port: 81, name: b, targetPort: ""}]\n',
    { app: 'web' },
    [
      { name: 'a', port: 80, targetPort: 80, protocol: 'TCP' },
      { name: 'b', port: 81, targetPort: 81, protocol: 'TCP' },
    ],
  ],
  [
    'named and numeric targetPorts',
    '  selector: {app: web}\n  ports: [{port: 80, name: http, targetPort: http}, {port: 53, name: dns, targetPort: 5353, protocol: UDP}]\n',
    { app: 'web' },
    [
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
      { name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP' },
    ],
  ],
  ['no selector', '  ports: [{port: 80}]\n', undefined, [{ port: 80, targetPort: 80, protocol: 'TCP' }]],
  [
    'empty selector is no selector',
    '  selector: {}\n  ports: [{port: 80}]\n',
    undefined,
    [{ port: 80, targetPort: 80, protocol: 'TCP' }],
  ],
  [
    'ExternalName has no endpoints',
    '  type: ExternalName\n  externalName: x.example\n  selector: {app: web}\n',
    undefined,
    [],
  ],
];

for (const [name, spec, selector, ports] of decoded) {
  test(`Service decoding: ${name}`, () => {
    const res = loadText(svc(spec), 's.yaml');
    assert.deepEqual(res.problems, []);
    const s = res.snapshot.services?.[0];
    assert.deepEqual([s?.namespace, s?.name, s?.selector, s?.ports], ['prod', 'web', selector, ports]);
    assert.deepEqual(s?.origin, { file: 's.yaml', line: 1 });
  });
}

test('Services are for analysis only: the agent does not watch them', () => {
  assert.ok(!WATCHABLE.some((w) => w.kind === 'Service'));
});
