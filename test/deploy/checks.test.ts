import { test } from 'node:test';
import assert from 'node:assert/strict';
import { at, checkRender, checkSame, checkSameContainer, EXPECTED_RESOURCES, type Obj } from './checks.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { RESOURCES, resourceAt, WATCHABLE } from '../../src/agent/k8s-decode.js';
import { kindSchemas } from './k8s-schemas.js';

// A minimal rendering that has every property; each case below breaks one.
function agentRender(): Obj[] {
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'moat', namespace: 'ns' } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'moat' },
      rules: [
        { apiGroups: [''], resources: ['pods', 'namespaces', 'nodes'], verbs: ['list', 'watch'] },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['watch', 'list'] },
        {
          apiGroups: ['policy.networking.k8s.io'],
          resources: ['adminnetworkpolicies', 'baselineadminnetworkpolicies', 'clusternetworkpolicies'],
          verbs: ['list', 'watch'],
        },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'moat' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'moat' },
      subjects: [{ kind: 'ServiceAccount', name: 'moat', namespace: 'ns' }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'moat', namespace: 'ns', labels: { a: 'b' } },
      spec: {
        selector: { matchLabels: { a: 'b' } },
        template: {
          metadata: { labels: { a: 'b' } },
          spec: {
            serviceAccountName: 'moat',
            hostNetwork: true,
            dnsPolicy: 'ClusterFirstWithHostNet',
            priorityClassName: 'system-node-critical',
            tolerations: [{ operator: 'Exists' }],
            containers: [
              {
                name: 'moat',
                image: 'moat:0.1.0',
                args: [
                  'agent',
                  '--node-name=$(NODE_NAME)',
                  '--on-exit=keep',
                  '--metrics-addr=:9808',
                  '--health-addr=:9809',
                ],
                env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
                ports: [
                  { name: 'metrics', containerPort: 9808 },
                  { name: 'health', containerPort: 9809 },
                ],
                livenessProbe: { httpGet: { path: '/healthz', port: 'health' } },
                readinessProbe: { httpGet: { path: '/readyz', port: 9809 } },
                resources: {
                  requests: { cpu: '50m', memory: '64Mi' },
                  limits: { cpu: '1', memory: '256Mi' },
                },
                securityContext: {
                  privileged: false,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  runAsUser: 0,
                  capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
                },
              },
            ],
            volumes: [{ name: 'tmp', emptyDir: {} }],
          },
        },
      },
    },
  ];
}

function kind(objects: Obj[], k: string): Obj {
  const o = objects.find((x) => x['kind'] === k);
  assert.ok(o, k);
  return o;
}

function container(objects: Obj[]): Obj {
  const list = at(kind(objects, 'DaemonSet'), 'spec', 'template', 'spec', 'containers');
  assert.ok(Array.isArray(list));
  return list[0] as Obj;
}

function pod(objects: Obj[]): Obj {
  return at(kind(objects, 'DaemonSet'), 'spec', 'template', 'spec') as Obj;
}

function failures(objects: Obj[]): string[] {
  return checkRender('t', 'agent', objects)
    .filter((r) => !r.ok)
    .map((r) => r.check);
}

test('a rendering with every property passes every check', () => {
  assert.deepEqual(failures(agentRender()), []);
});

const breakages: [string, (o: Obj[]) => void, RegExp][] = [
  ['privileged', (o) => ((container(o)['securityContext'] as Obj)['privileged'] = true), /is not privileged/],
  [
    'NET_RAW added',
    (o) => ((at(container(o), 'securityContext', 'capabilities') as Obj)['add'] = ['NET_ADMIN', 'NET_RAW']),
    /adds no capability but NET_ADMIN/,
  ],
  [
    'NET_ADMIN missing',
    (o) => ((at(container(o), 'securityContext', 'capabilities') as Obj)['add'] = []),
    /adds NET_ADMIN/,
  ],
  [
    'ALL not dropped',
    (o) => ((at(container(o), 'securityContext', 'capabilities') as Obj)['drop'] = []),
    /drops ALL/,
  ],
  [
    'writable root fs',
    (o) => ((container(o)['securityContext'] as Obj)['readOnlyRootFilesystem'] = false),
    /read-only root/,
  ],
  [
    'extra verb',
    (o) => ((kind(o, 'ClusterRole')['rules'] as Obj[])[0]!['verbs'] = ['get', 'list', 'watch']),
    /verbs are exactly/,
  ],
  [
    'extra resource',
    (o) =>
      ((kind(o, 'ClusterRole')['rules'] as Obj[])[0]!['resources'] = [
        'pods',
        'namespaces',
        'nodes',
        'secrets',
      ]),
    /covers exactly/,
  ],
  ['missing admin tier', (o) => (kind(o, 'ClusterRole')['rules'] as Obj[]).pop(), /covers exactly/],
  [
    'toleration with effect',
    (o) => (pod(o)['tolerations'] = [{ operator: 'Exists', effect: 'NoSchedule' }]),
    /tolerates every taint/,
  ],
  ['no priority class', (o) => delete pod(o)['priorityClassName'], /system-node-critical/],
  ['no host network', (o) => (pod(o)['hostNetwork'] = false), /host network/],
  ['default dnsPolicy', (o) => delete pod(o)['dnsPolicy'], /ClusterFirstWithHostNet/],
  ['no liveness probe', (o) => delete container(o)['livenessProbe'], /livenessProbe GETs \/healthz/],
  [
    'readiness on the metrics port',
    (o) => ((at(container(o), 'readinessProbe', 'httpGet') as Obj)['port'] = 'metrics'),
    /readinessProbe targets the health port/,
  ],
  ['no limits', (o) => delete (container(o)['resources'] as Obj)['limits'], /resources\.limits\.cpu/],
  [
    'NODE_NAME from metadata.name',
    (o) => (container(o)['env'] = [{ name: 'NODE_NAME', value: 'x' }]),
    /downward API/,
  ],
  [
    'host root mounted',
    (o) => (pod(o)['volumes'] = [{ name: 'root', hostPath: { path: '/' } }]),
    /no host path/,
  ],
  [
    'binding to another account',
    (o) =>
      (kind(o, 'ClusterRoleBinding')['subjects'] = [
        { kind: 'ServiceAccount', name: 'default', namespace: 'ns' },
      ]),
    /subject is the DaemonSet ServiceAccount/,
  ],
  ['bad on-exit', (o) => (container(o)['args'] as string[]).splice(2, 1, '--on-exit=maybe'), /--on-exit/],
];

for (const [what, mutate, expected] of breakages) {
  test(`a rendering with ${what} fails the matching check`, () => {
    const objects = agentRender();
    mutate(objects);
    const failed = failures(objects);
    assert.ok(
      failed.some((f) => expected.test(f)),
      `expected a failure matching ${String(expected)}, got ${JSON.stringify(failed)}`,
    );
  });
}

test('same rendering modulo labels compares equal; a changed limit does not', () => {
  const a = agentRender();
  const b = agentRender();
  (kind(b, 'DaemonSet')['metadata'] as Obj)['labels'] = { other: 'x' };
  (at(kind(b, 'DaemonSet'), 'spec', 'template', 'metadata') as Obj)['labels'] = { other: 'x' };
  assert.ok(checkSame('a', a, 'b', b).every((r) => r.ok));
  ((container(b)['resources'] as Obj)['limits'] as Obj)['memory'] = '1Gi';
  const failed = checkSame('a', a, 'b', b).filter((r) => !r.ok);
  assert.equal(failed.length, 1);
  assert.match(failed[0]?.detail ?? '', /limits\.memory/);
});

test('same container ignores port names but not arguments', () => {
  const a = agentRender();
  const b = agentRender();
  for (const p of container(b)['ports'] as Obj[]) p['name'] = `moat-${String(p['name'])}`;
  (at(container(b), 'livenessProbe', 'httpGet') as Obj)['port'] = 'moat-health';
  assert.ok(checkSameContainer('a', a, 'b', b).every((r) => r.ok));
  (container(b)['args'] as string[]).push('--log-level=debug');
  assert.ok(checkSameContainer('a', a, 'b', b).some((r) => !r.ok));
});

test('k8s-schemas: one strict, self-contained schema per kind, int-or-string and quantity widened', () => {
  const swagger = {
    definitions: {
      'io.k8s.api.apps.v1.Thing': {
        type: 'object',
        'x-kubernetes-group-version-kind': [{ group: 'apps', version: 'v1', kind: 'Thing' }],
        properties: {
          metadata: { $ref: '#/definitions/io.k8s.Meta' },
          port: { $ref: '#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString' },
          cpu: { $ref: '#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity' },
          labels: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
      'io.k8s.api.core.v1.Pod': {
        type: 'object',
        'x-kubernetes-group-version-kind': [{ group: '', version: 'v1', kind: 'Pod' }],
        properties: { metadata: { $ref: '#/definitions/io.k8s.Meta' } },
      },
      'io.k8s.Meta': {
        type: 'object',
        properties: { name: { type: 'string' }, owner: { $ref: '#/definitions/io.k8s.Meta' } },
      },
      'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { type: 'string', format: 'int-or-string' },
      'io.k8s.apimachinery.pkg.api.resource.Quantity': { type: 'string' },
      'io.k8s.Unused': { type: 'object', properties: { a: { type: 'string' } } },
    },
  };
  const out = kindSchemas(swagger);
  assert.deepEqual(out.map((s) => s.path).sort(), ['apps/v1/thing.json', 'v1/v1/pod.json']);
  const thing = out.find((s) => s.path === 'apps/v1/thing.json')?.schema;
  assert.equal(thing?.['additionalProperties'], false);
  assert.ok(!('x-kubernetes-group-version-kind' in (thing ?? {})));
  const defs = thing?.['definitions'] as Obj;
  assert.deepEqual(Object.keys(defs).sort(), [
    'io.k8s.Meta',
    'io.k8s.apimachinery.pkg.api.resource.Quantity',
    'io.k8s.apimachinery.pkg.util.intstr.IntOrString',
  ]);
  assert.deepEqual(defs['io.k8s.apimachinery.pkg.util.intstr.IntOrString'], {
    anyOf: [{ type: 'string' }, { type: 'integer' }],
  });
  assert.deepEqual(defs['io.k8s.apimachinery.pkg.api.resource.Quantity'], {
    anyOf: [{ type: 'string' }, { type: 'number' }],
  });
  assert.equal((defs['io.k8s.Meta'] as Obj)['additionalProperties'], false);
  // A map keeps its value schema: strictness applies to objects with named properties only.
  assert.deepEqual(at(thing, 'properties', 'labels', 'additionalProperties'), { type: 'string' });
});

test('the ClusterRole the checks expect is exactly what the agent can watch (the kinds registry)', () => {
  const watched = new Set(
    [
      ...RESOURCES.map((r) => r.path),
      ...WATCHABLE.flatMap((w) => w.apiVersions.map((v) => resourceAt(w.kind, v).path)),
    ].map((path) => {
      // /api/v1/pods -> "/pods"; /apis/GROUP/VERSION/RESOURCE -> "GROUP/RESOURCE"
      const parts = path.split('/');
      return parts[1] === 'api' ? `/${parts[3]}` : `${parts[2]}/${parts[4]}`;
    }),
  );
  assert.ok(watched.size >= 7, `watched: ${[...watched].join(', ')}`);
  assert.deepEqual([...EXPECTED_RESOURCES].sort(), [...watched].sort());
});

test('deploy/base and the Helm chart grant exactly what the agent can watch, list and watch only', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const base = parse(readFileSync(join(root, 'deploy/base/clusterrole/clusterrole.yaml'), 'utf8')) as Obj;
  // The chart's template has Go templating in its metadata only; its rules are plain YAML.
  const tpl = readFileSync(join(root, 'deploy/helm/moat/templates/clusterrole.yaml'), 'utf8');
  const chart = {
    kind: 'ClusterRole',
    metadata: { name: 'moat' },
    ...(parse(tpl.slice(tpl.indexOf('rules:'))) as Obj),
  };
  for (const [what, role] of [
    ['deploy/base', base],
    ['helm', chart],
  ] as const) {
    const failed = checkRender(what, 'rbac', [role]).filter(
      (r) => !r.ok && r.check.startsWith('ClusterRole '),
    );
    assert.deepEqual(failed, [], what);
  }
});
