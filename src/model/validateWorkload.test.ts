import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadText } from './load.js';

const API: Record<string, string> = {
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  ReplicaSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
  ReplicationController: 'v1',
};

const TEMPLATE =
  '    metadata: {labels: {app: w}}\n' +
  '    spec:\n      hostNetwork: HOST\n      containers: [{name: c, ports: [{containerPort: 80, name: http}]}]\n';

/** A workload of `kind` named w in namespace n; `spec` replaces the default selector and template. */
function wl(kind: string, spec?: string, meta = ''): string {
  const selector =
    kind === 'ReplicationController' ? '  selector: {app: w}\n' : '  selector: {matchLabels: {app: w}}\n';
  const body =
    spec ??
    (kind === 'CronJob'
      ? `  schedule: "* * * * *"\n  jobTemplate:\n    spec:\n      template:\n${TEMPLATE.replace(/^/gm, '    ')}`
      : `${kind === 'Job' ? '' : selector}  template:\n${TEMPLATE}`);
  return `apiVersion: ${API[kind]}\nkind: ${kind}\nmetadata: {name: w, namespace: n${meta}}\nspec:\n${body.replace(/HOST/g, 'false')}`;
}

/** [kind, pod names, extra labels of the first pod] */
const kinds: [string, string[], Record<string, string>][] = [
  ['Deployment', ['deploy/w'], {}],
  [
    'StatefulSet',
    ['sts/w-0'],
    { 'statefulset.kubernetes.io/pod-name': 'w-0', 'apps.kubernetes.io/pod-index': '0' },
  ],
  ['DaemonSet', ['ds/w'], {}],
  ['ReplicaSet', ['rs/w'], {}],
  ['Job', ['job/w'], { 'batch.kubernetes.io/job-name': 'w', 'job-name': 'w' }],
  ['CronJob', ['cronjob/w'], {}],
  ['ReplicationController', ['rc/w'], {}],
];

for (const [kind, names, extra] of kinds) {
  test(`workloads: a ${kind}'s pod template is a pod named after it`, () => {
    const res = loadText(wl(kind), 'w.yaml');
    assert.deepEqual(res.problems, []);
    const pods = res.snapshot.pods;
    assert.deepEqual(
      pods.map((p) => p.name),
      names,
    );
    const p = pods[0]!;
    assert.deepEqual(p.workload, { kind, name: 'w' });
    assert.deepEqual(p.labels, { app: 'w', ...extra });
    assert.deepEqual([p.namespace, p.ips, p.hostNetwork], ['n', [], false]);
    assert.deepEqual(p.ports, [{ containerPort: 80, protocol: 'TCP', name: 'http' }]);
    assert.deepEqual(p.origin, { file: 'w.yaml', line: 1 });
  });
}

test('workloads: hostNetwork from the template; a StatefulSet expands to its replicas from ordinals.start', () => {
  const host = loadText(wl('DaemonSet').replace('hostNetwork: false', 'hostNetwork: true'), 'w.yaml');
  assert.equal(host.snapshot.pods[0]?.hostNetwork, true);
  const sts = loadText(
    wl('StatefulSet').replace(
      'spec:\n  selector',
      'spec:\n  replicas: 3\n  ordinals: {start: 5}\n  selector',
    ),
    'w.yaml',
  );
  assert.deepEqual(sts.problems, []);
  assert.deepEqual(
    sts.snapshot.pods.map((p) => [p.name, p.labels['statefulset.kubernetes.io/pod-name']]),
    [
      ['sts/w-5', 'w-5'],
      ['sts/w-6', 'w-6'],
      ['sts/w-7', 'w-7'],
    ],
  );
});

/** [case, yaml, expected problem fields] */
const invalid: [string, string, string[]][] = [
  [
    'selector does not match the template',
    wl('Deployment').replace('matchLabels: {app: w}', 'matchLabels: {app: v}'),
    ['spec.template.metadata.labels'],
  ],
  [
    'apps/v1 requires a selector',
    wl('Deployment').replace('  selector: {matchLabels: {app: w}}\n', ''),
    ['spec.selector'],
  ],
  [
    'an empty selector is invalid',
    wl('StatefulSet').replace('{matchLabels: {app: w}}', '{}'),
    ['spec.selector'],
  ],
  [
    'RC selector must match',
    wl('ReplicationController').replace('selector: {app: w}', 'selector: {app: v}'),
    ['spec.template.metadata.labels'],
  ],
  ['template required', wl('Deployment', '  selector: {matchLabels: {app: w}}\n'), ['spec.template']],
  [
    'containers required',
    wl(
      'DaemonSet',
      '  selector: {matchLabels: {app: w}}\n  template:\n    metadata: {labels: {app: w}}\n    spec: {}\n',
    ),
    ['spec.template.spec.containers'],
  ],
  ['bad template label', wl('Job').replace('{app: w}', '{app: "-w"}'), ['spec.template.metadata.labels']],
  [
    'bad containerPort',
    wl('CronJob').replace('containerPort: 80', 'containerPort: 0'),
    ['spec.jobTemplate.spec.template.spec.containers[0].ports[0].containerPort'],
  ],
  [
    'negative replicas',
    wl('Deployment').replace('spec:\n  selector', 'spec:\n  replicas: -1\n  selector'),
    ['spec.replicas'],
  ],
  [
    'too many StatefulSet replicas',
    wl('StatefulSet').replace('spec:\n  selector', 'spec:\n  replicas: 100000\n  selector'),
    ['spec.replicas'],
  ],
];

for (const [name, yaml, fields] of invalid) {
  test(`workloads: ${name}`, () => {
    const res = loadText(yaml, 'w.yaml');
    assert.deepEqual(
      res.problems.map((p) => p.field),
      fields,
      JSON.stringify(res.problems),
    );
    assert.equal(res.snapshot.pods.length, 0);
  });
}

test('workloads: scaled to 0 has no pods (a note); an RC without template has none either', () => {
  const res = loadText(
    wl('Deployment').replace('spec:\n  selector', 'spec:\n  replicas: 0\n  selector'),
    'w.yaml',
  );
  assert.deepEqual(res.problems, []);
  assert.deepEqual(res.snapshot.pods, []);
  assert.deepEqual(res.notes, ['no pods for n/w: scaled to 0 replicas']);
  const rc = loadText(wl('ReplicationController', '  selector: {app: w}\n'), 'w.yaml');
  assert.deepEqual([rc.problems, rc.snapshot.pods], [[], []]);
});

const owned = (kind: string, ownerKind: string, owner: string): string =>
  `, ownerReferences: [{apiVersion: apps/v1, kind: ${ownerKind}, name: ${owner}, uid: u, controller: true}]`;
const pod = (name: string, ownerKind: string, owner: string, phase = 'Running'): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: n${owned('Pod', ownerKind, owner)}}\n` +
  `spec: {containers: [{name: c}]}\nstatus: {phase: ${phase}, podIP: 10.0.0.9}\n`;

test('a dump (kubectl get all): owned workloads and workloads with live pods are left to them', () => {
  const deploy = wl('Deployment');
  const rs = wl('ReplicaSet')
    .replace('name: w,', 'name: w-abc,')
    .replace('namespace: n', `namespace: n${owned('ReplicaSet', 'Deployment', 'w')}`);
  const cases: [string, string[], string[], string[]][] = [
    ['Deployment alone', [deploy], ['deploy/w'], []],
    [
      'Deployment and its ReplicaSet',
      [deploy, rs],
      ['deploy/w'],
      ['left out 1 workload whose controller is in the input (it stands for them)'],
    ],
    [
      'Deployment, ReplicaSet and a pod',
      [deploy, rs, pod('w-abc-1', 'ReplicaSet', 'w-abc')],
      ['w-abc-1'],
      [
        'left out 1 workload whose controller is in the input (it stands for them)',
        'left out 1 workload whose pods are in the input (the pods stand for them)',
      ],
    ],
    [
      'only finished pods: the workload stands',
      [deploy, rs, pod('w-abc-1', 'ReplicaSet', 'w-abc', 'Failed')],
      ['deploy/w'],
      [
        'left out 1 workload whose controller is in the input (it stands for them)',
        'left out 1 pod in phase Succeeded or Failed (not live: no policy applies to it)',
      ],
    ],
    ['a pod of another workload', [deploy, pod('x-1', 'ReplicaSet', 'x-abc')], ['deploy/w', 'x-1'], []],
  ];
  for (const [name, docs, pods, notes] of cases) {
    const res = loadText(docs.join('---\n'), 'd.yaml');
    assert.deepEqual(res.problems, [], name);
    assert.deepEqual(res.snapshot.pods.map((p) => p.name).sort(), pods, name);
    assert.deepEqual(res.notes, notes, name);
  }
});
