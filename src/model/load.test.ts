import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { globMatcher, loadPaths, loadText } from './load.js';
import { repoRoot } from '../../test/support/cli.js';

const fixtures = join(repoRoot(), 'test', 'fixtures', 'validate');

const ns = (name: string, extra = ''): string =>
  `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n${extra}`;

test('multi-document stream: every object loaded, with its line', () => {
  const res = loadText(`${ns('a')}---\n${ns('b')}---\n`, 'm.yaml');
  assert.deepEqual(res.problems, []);
  assert.deepEqual(
    res.snapshot.namespaces.map((n) => [n.name, n.origin?.line]),
    [
      ['a', 1],
      ['b', 6],
    ],
  );
});

test('kind: List items are loaded, and typed lists give items their kind', () => {
  const list = `apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: x}\n`;
  const typed = `apiVersion: v1\nkind: NamespaceList\nitems:\n- metadata: {name: y}\n`;
  const res = loadText(`${list}---\n${typed}`, 'l.yaml');
  assert.deepEqual(res.problems, []);
  assert.deepEqual(
    res.snapshot.namespaces.map((n) => [n.name, n.origin?.line]),
    [
      ['x', 4],
      ['y', 11],
    ],
  );
});

test('JSON input is read (as YAML 1.2) with line numbers', () => {
  const text =
    '{\n  "apiVersion": "v1",\n  "kind": "Namespace",\n  "metadata": {\n    "name": "BAD"\n  }\n}\n';
  const res = loadText(text, 'n.json');
  assert.equal(res.problems.length, 1);
  assert.deepEqual([res.problems[0]?.line, res.problems[0]?.field], [5, 'metadata.name']);
});

test('field lines point at the offending field', () => {
  const text = [
    'apiVersion: networking.k8s.io/v1', // 1
    'kind: NetworkPolicy',
    'metadata:',
    '  name: p',
    'spec:', // 5
    '  ingress:',
    '  - from:',
    '    - ipBlock:',
    '        cidr: 10.0.0.0/8',
    '        except:', // 10
    '        - 10.1.0.0/16',
    '        - 12.0.0.0/16',
    '',
  ].join('\n');
  const [p, ...rest] = loadText(text, 'p.yaml').problems;
  assert.deepEqual(rest, []);
  assert.deepEqual(p, {
    file: 'p.yaml',
    line: 12,
    kind: 'NetworkPolicy',
    object: 'default/p',
    field: 'spec.ingress[0].from[0].ipBlock.except[1]',
    message: 'Invalid value: "12.0.0.0/16": must be a strict subset of `cidr`',
  });
});

test('a YAML syntax error is a problem naming file and line; other documents still load', () => {
  const res = loadText(`${ns('ok')}---\nkind: [\n`, 's.yaml');
  assert.equal(res.problems.length, 1);
  assert.deepEqual([res.problems[0]?.kind, res.problems[0]?.object, res.problems[0]?.line], ['YAML', '-', 6]);
  assert.deepEqual(
    res.snapshot.namespaces.map((n) => n.name),
    ['ok'],
  );
});

test('other kinds are skipped with one note and stay out of the snapshot', () => {
  const other = (kind: string): string => `apiVersion: v1\nkind: ${kind}\nmetadata: {name: x}\n`;
  const res = loadText(
    [other('ConfigMap'), other('Secret'), other('ConfigMap'), ns('a')].join('---\n'),
    'k.yaml',
  );
  assert.deepEqual(res.problems, []);
  assert.deepEqual(res.notes, ['skipped 3 objects of kinds ConfigMap, Secret (not used by moat)']);
  assert.equal(res.snapshot.namespaces.length, 1);
});

test('missing kind or apiVersion, and old API versions, are problems', () => {
  const res = loadText(
    'metadata: {name: x}\n---\napiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: n}\n',
    'v.yaml',
  );
  assert.deepEqual(
    res.problems.map((p) => [p.line, p.field, p.message]),
    [
      [1, 'kind', 'Required value: kind not set'],
      [1, 'apiVersion', 'Required value: apiVersion not set'],
      [3, 'apiVersion', 'Unsupported value: "extensions/v1beta1": supported values: "networking.k8s.io/v1"'],
    ],
  );
});

test('duplicated objects are a problem at the second definition', () => {
  const res = loadText(`${ns('a')}---\n${ns('a')}`, 'd.yaml');
  assert.deepEqual(
    res.problems.map((p) => [p.line, p.field, p.message]),
    [[9, 'metadata.name', 'Duplicate value: "a": Namespace a is already defined at d.yaml:1']],
  );
  assert.equal(res.snapshot.namespaces.length, 1);
});

test('the same name in different namespaces is not a duplicate', () => {
  const pol = (n: string): string =>
    `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ${n}}\n`;
  assert.deepEqual(loadText(`${pol('a')}---\n${pol('b')}`, 'x.yaml').problems, []);
});

test('namespaces: name label added, user label of the same key overridden, DNS label names', () => {
  const res = loadText(ns('a', '  labels: {kubernetes.io/metadata.name: other, t: x}\n'), 'n.yaml');
  assert.deepEqual(res.snapshot.namespaces[0]?.labels, { 'kubernetes.io/metadata.name': 'a', t: 'x' });
  assert.equal(
    loadText(ns('a.b'), 'n.yaml').problems[0]?.message,
    'Invalid value: "a.b": must not contain dots',
  );
});

const pod = (name: string, body: string): string =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: web}\n${body}`;

test('pods: IPs, ports of containers and sidecars, synthesized namespace', () => {
  const res = loadText(
    pod(
      'p',
      [
        'spec:',
        '  initContainers:',
        '  - {name: init, ports: [{containerPort: 1}]}',
        '  - {name: side, restartPolicy: Always, ports: [{containerPort: 9090, name: metrics}]}',
        '  containers:',
        '  - {name: c, ports: [{containerPort: 80, name: http}, {containerPort: 53, protocol: UDP}]}',
        'status:',
        '  podIP: 10.0.0.9',
        '  podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]',
        '',
      ].join('\n'),
    ),
    'p.yaml',
  );
  assert.deepEqual(res.problems, []);
  const p = res.snapshot.pods[0];
  assert.deepEqual(p?.ips, ['10.0.0.1', 'fd00::1']);
  assert.deepEqual(p?.ports, [
    { containerPort: 80, protocol: 'TCP', name: 'http' },
    { containerPort: 53, protocol: 'UDP' },
    { containerPort: 9090, protocol: 'TCP', name: 'metrics' },
  ]);
  assert.deepEqual(res.snapshot.namespaces, [
    { name: 'web', labels: { 'kubernetes.io/metadata.name': 'web' } },
  ]);
});

test('pods: podIP when podIPs is absent; invalid container ports are problems', () => {
  const ok = loadText(pod('p', 'spec: {containers: [{name: c}]}\nstatus: {podIP: 10.0.0.9}\n'), 'p.yaml');
  assert.deepEqual(ok.snapshot.pods[0]?.ips, ['10.0.0.9']);
  const bad = loadText(
    pod(
      'p',
      'spec:\n  containers:\n  - name: c\n    ports: [{containerPort: 0}, {containerPort: 80, name: HTTP}]\n',
    ),
    'p.yaml',
  );
  assert.deepEqual(
    bad.problems.map((x) => x.field),
    [
      'spec.containers[0].ports[0].containerPort',
      'spec.containers[0].ports[1].name',
      'spec.containers[0].ports[1].name',
    ],
  );
});

test('hostNetwork pods take their node addresses when the node is loaded, else their status', () => {
  const node =
    'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDRs: [10.244.0.0/24]}\n' +
    'status:\n  addresses:\n  - {type: Hostname, address: n1}\n  - {type: InternalIP, address: 172.18.0.3}\n' +
    '  - {type: ExternalIP, address: 203.0.113.7}\n';
  const hostPod = (name: string, nodeName: string): string =>
    pod(
      name,
      `spec: {nodeName: ${nodeName}, hostNetwork: true, containers: [{name: c}]}\nstatus: {podIP: 192.0.2.1, hostIP: 192.0.2.1}\n`,
    );
  const res = loadText(
    [node, hostPod('on-known', 'n1'), hostPod('on-unknown', 'n2')].join('---\n'),
    'h.yaml',
  );
  assert.deepEqual(res.problems, []);
  // ExternalIP is not on the node (clouds NAT it): only InternalIP is "the node".
  assert.deepEqual(res.snapshot.nodes[0]?.addresses, ['172.18.0.3']);
  assert.deepEqual(res.snapshot.nodes[0]?.externalAddresses, ['203.0.113.7']);
  assert.deepEqual(res.snapshot.nodes[0]?.podCIDRs, ['10.244.0.0/24']);
  assert.deepEqual(
    res.snapshot.pods.map((p) => [p.name, p.hostNetwork, p.ips]),
    [
      ['on-known', true, ['172.18.0.3']],
      ['on-unknown', true, ['192.0.2.1']],
    ],
  );
});

test('structural nonsense gives problems, never a crash', () => {
  const inputs = [
    'apiVersion: v1\nkind: Pod\nmetadata: 7\nspec: [1]\nstatus: x\n',
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: [a]}\nspec: {containers: x, hostNetwork: yes}\n',
    'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{from: x, ports: 1}], policyTypes: {a: 1}}\n',
    'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {egress: [[], 3, {to: [[]]}]}\n',
    'apiVersion: v1\nkind: Node\nmetadata: {name: n}\nspec: {podCIDRs: bad}\nstatus: {addresses: [{type: InternalIP, address: 1.2.3}]}\n',
    'kind: 3\napiVersion: [v1]\n',
    'apiVersion: v1\nkind: List\nitems: nope\n',
  ];
  for (const text of inputs) {
    const res = loadText(text, 'x.yaml');
    assert.ok(res.problems.length > 0, text);
    for (const p of res.problems) assert.ok(p.line >= 1 && p.message !== '', JSON.stringify(p));
  }
});

test('directories are read recursively (*.yaml, *.yml, *.json only)', async () => {
  const res = await loadPaths([join(fixtures, 'valid')]);
  assert.deepEqual(res.problems, []);
  const v = join(fixtures, 'valid');
  assert.deepEqual(res.notes, [
    `skipped ${v}/chart/templates/policy.yaml: a Helm template ({{ ... }}); run \`helm template\` first and pass its output`,
    `skipped ${v}/nested/report.json: not a Kubernetes manifest (no document has apiVersion or kind)`,
    'skipped 1 object of kind Kustomization (not used by moat)',
    'namespace kube-system is not declared in the input: assumed with only the label kubernetes.io/metadata.name (namespaceSelectors on other labels do not match it)',
  ]);
  const s = res.snapshot;
  assert.deepEqual(
    s.services?.map((x) => [x.namespace, x.name, x.selector, x.ports]),
    [['prod', 'web', { app: 'web' }, [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]]],
  );
  assert.deepEqual(
    s.namespaces.map((n) => n.name),
    ['prod', 'dev', 'kube-system'],
  );
  assert.deepEqual(
    s.pods.map((p) => p.name),
    ['web-1', 'agent'],
  );
  assert.deepEqual(
    s.policies.map((p) => p.name),
    ['default-deny', 'web-from-lb'],
  );
  assert.deepEqual(
    s.nodes.map((n) => n.name),
    ['node-a'],
  );
});

test('"-" reads stdin through the injected reader', async () => {
  const res = await loadPaths(['-'], { readStdin: () => Promise.resolve(ns('from-stdin')) });
  assert.deepEqual(
    res.snapshot.namespaces.map((n) => [n.name, n.origin?.file]),
    [['from-stdin', '<stdin>']],
  );
});

test('a missing path is an InputError naming it', async () => {
  const missing = join(fixtures, 'does-not-exist.yaml');
  await assert.rejects(loadPaths([missing]), (err: unknown) => {
    assert.ok(err instanceof InputError);
    assert.equal(err.message, `cannot read ${missing}: no such file or directory`);
    return true;
  });
});

test('live pods only: finished pods are left out, a terminating pod yields a reused address', () => {
  const p = (name: string, ip: string, extra = '', meta = ''): string =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: x${meta}}\n` +
    `spec: {containers: [{name: c}]}\nstatus: {podIP: ${ip}${extra}}\n`;
  const res = loadText(
    [
      p('done', '10.0.0.1', ', phase: Succeeded'),
      p('crashed', '10.0.0.2', ', phase: Failed'),
      p('new', '10.0.0.1', ', phase: Running'),
      p('old', '10.0.0.3', ', phase: Running', ', deletionTimestamp: "2026-12-01T10:00:00Z"'),
      p('reuser', '10.0.0.3', ', phase: Pending'),
      p('leaving', '10.0.0.4', '', ', deletionTimestamp: "2026-12-01T10:00:00Z"'),
    ].join('---\n'),
    'live.yaml',
  );
  assert.deepEqual(res.problems, []);
  assert.deepEqual(res.notes, [
    'left out 2 pods in phase Succeeded or Failed (not live: no policy applies to them)',
  ]);
  assert.deepEqual(
    res.snapshot.pods.map((x) => [x.name, x.ips]),
    [
      ['new', ['10.0.0.1']],
      ['old', []],
      ['reuser', ['10.0.0.3']],
      ['leaving', ['10.0.0.4']],
    ],
  );
});

test('two live pods with one address are an error on each', () => {
  const p = (name: string, ip: string): string =>
    `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: x}\n` +
    `spec: {containers: [{name: c}]}\nstatus: {podIPs: [{ip: ${ip}}]}\n`;
  const res = loadText(
    [p('a', '10.0.0.1'), p('b', '10.0.0.1'), p('c', 'fd00::1'), p('d', 'fd00:0::1')].join('---\n'),
    'dup.yaml',
  );
  assert.deepEqual(
    res.problems.map((x) => `${x.line} ${x.object} ${x.field}: ${x.message.split(';')[0]!}`),
    [
      '1 x/a status.podIPs: Duplicate value: "10.0.0.1": also the address of live pod x/b',
      '7 x/b status.podIPs: Duplicate value: "10.0.0.1": also the address of live pod x/a',
      '13 x/c status.podIPs: Duplicate value: "fd00::1": also the address of live pod x/d',
      '19 x/d status.podIPs: Duplicate value: "fd00::1": also the address of live pod x/c',
    ],
  );
});

test('implicit: the defaulted policyTypes and port protocols are recorded for lint, the written ones not', () => {
  const np = (spec: string): string =>
    `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: a\nspec:\n${spec}`;
  const cases: { spec: string; want: unknown }[] = [
    {
      spec: '  podSelector: {}\n  policyTypes: [Ingress]\n  ingress:\n  - ports:\n    - {protocol: UDP, port: 53}\n',
      want: undefined,
    },
    {
      spec: '  podSelector: {}\n  egress:\n  - ports:\n    - {protocol: UDP, port: 53}\n    - port: 53\n  ingress:\n  - ports:\n    - {}\n',
      want: { policyTypes: true, protocols: ['spec.ingress[0].ports[0]', 'spec.egress[0].ports[1]'] },
    },
  ];
  for (const c of cases) {
    const res = loadText(np(c.spec), 'p.yaml');
    assert.deepEqual(res.problems, []);
    assert.deepEqual(res.snapshot.policies[0]?.implicit, c.want);
  }
});

test('non-Kubernetes input is skipped with one note per file, never a problem', () => {
  const cases: [string, string, string[]][] = [
    [
      'a JSON report',
      '{"findings": [], "version": 1}\n',
      ['skipped f: not a Kubernetes manifest (no document has apiVersion or kind)'],
    ],
    [
      'a JSON list',
      '[1, 2]\n',
      ['skipped f: not a Kubernetes manifest (no document has apiVersion or kind)'],
    ],
    [
      'a kustomization without apiVersion/kind',
      'resources: [a.yaml]\n',
      ['skipped f: not a Kubernetes manifest (no document has apiVersion or kind)'],
    ],
    [
      'a values file of several documents',
      'a: 1\n---\nb: 2\n',
      ['skipped f: not a Kubernetes manifest (no document has apiVersion or kind)'],
    ],
    [
      'a Helm template',
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Values.ns }}\n',
      ['skipped f: a Helm template ({{ ... }}); run `helm template` first and pass its output'],
    ],
    [
      'a Helm control action',
      '{{- if .Values.on }}\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n{{- end }}\n',
      ['skipped f: a Helm template ({{ ... }}); run `helm template` first and pass its output'],
    ],
    ['an empty file', '', []],
  ];
  for (const [name, text, notes] of cases) {
    const res = loadText(text, 'f');
    assert.deepEqual(res.problems, [], name);
    assert.deepEqual(res.notes, notes, name);
  }
});

test('template braces in a valid manifest (an annotation) are not a Helm template', () => {
  const res = loadText(ns('a', '  annotations: {msg: "{{ $labels.instance }} down"}\n'), 'f');
  assert.deepEqual([res.problems, res.notes, res.snapshot.namespaces.length], [[], [], 1]);
});

test('a document with one of apiVersion and kind is still a manifest with a problem', () => {
  const res = loadText('kind: Namespace\nmetadata: {name: a}\n', 'f');
  assert.deepEqual(
    res.problems.map((p) => p.field),
    ['apiVersion'],
  );
});

test('generateName objects get a unique name, as the API server makes one', () => {
  const gen = (prefix: string): string =>
    `apiVersion: v1\nkind: Pod\nmetadata: {generateName: ${prefix}, namespace: x}\nspec: {containers: [{name: c}]}\n`;
  const res = loadText([gen('web-'), gen('web-')].join('---\n'), 'g.yaml');
  assert.deepEqual(res.problems, []);
  const names = res.snapshot.pods.map((p) => p.name);
  assert.equal(new Set(names).size, 2);
  for (const n of names) assert.match(n, /^web-[0-9a-z]{5}$/);
  const bad = loadText(gen('Web-'), 'g.yaml');
  assert.deepEqual(
    bad.problems.map((p) => p.field),
    ['metadata.generateName'],
  );
  const long = loadText(gen(`${'a'.repeat(70)}`), 'g.yaml');
  assert.deepEqual(long.problems, []);
  assert.equal(long.snapshot.pods[0]?.name.length, 63);
});

test('an undeclared namespace is noted once, when the input declares namespaces', () => {
  const pol = (n: string): string =>
    `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ${n}}\n`;
  const note = (names: string): string => names;
  const cases: [string, string[], string[]][] = [
    ['none declared: no note', [pol('a'), pol('b')], []],
    ['all declared', [ns('a'), pol('a')], []],
    [
      'two undeclared',
      [ns('a'), pol('b'), pol('c'), pol('b').replace('name: p', 'name: q')],
      [
        note(
          'namespaces b, c are not declared in the input: assumed with only the label kubernetes.io/metadata.name (namespaceSelectors on other labels do not match them)',
        ),
      ],
    ],
  ];
  for (const [name, docs, notes] of cases)
    assert.deepEqual(loadText(docs.join('---\n'), 'n.yaml').notes, notes, name);
});

test('globMatcher: *, ?, ** and bare names', () => {
  const cases: [string, string, boolean][] = [
    ['kustomization.yaml', 'deploy/base/kustomization.yaml', true],
    ['kustomization.yaml', 'deploy/base/kustomization.yml', false],
    ['*.json', 'reports/a.json', true],
    ['charts', 'repo/charts/x/templates/a.yaml', true],
    ['charts', 'repo/charts-old/a.yaml', false],
    ['repo/*.yaml', 'repo/a.yaml', true],
    ['repo/*.yaml', 'repo/sub/a.yaml', false],
    ['repo/**/a.yaml', 'repo/sub/deeper/a.yaml', true],
    ['repo/**/a.yaml', 'repo/a.yaml', true],
    ['a?.yaml', 'x/ab.yaml', true],
    ['a?.yaml', 'x/a/b.yaml', false],
    ['[x].yaml', '[x].yaml', true],
  ];
  for (const [glob, path, want] of cases) assert.equal(globMatcher([glob])(path), want, `${glob} ${path}`);
  assert.equal(globMatcher([])('a.yaml'), false);
});

// Documents are decoded as they are parsed (streamText); when the fast way gives up part way,
// what it loaded is undone and the precise way reads the text. Loaded twice, the first objects
// would be reported as duplicates.
test('streamed loading: a fast path giving up part way loads each object once', () => {
  const nsJson = (name: string, extra = '') =>
    `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "${name}"${extra}}}`;
  const cases: { name: string; file: string; text: string; namespaces: string[]; problems: string[] }[] = [
    {
      name: 'YAML: a tag in the third document',
      file: 'y.yaml',
      text: `${ns('a')}---\n${ns('b')}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: !!str c\n`,
      namespaces: ['a', 'b', 'c'],
      problems: [],
    },
    {
      name: 'YAML: a syntax error in the third document',
      file: 'y.yaml',
      text: `${ns('a')}---\n${ns('b')}---\nkind: [\n`,
      namespaces: ['a', 'b'],
      problems: ['YAML 11'],
    },
    {
      name: 'JSON List: a duplicate key in the third item',
      file: 'l.json',
      text: `{"apiVersion": "v1", "items": [\n${nsJson('a')},\n${nsJson('b')},\n${nsJson('c', ', "name": "d"')}\n], "kind": "List"}\n`,
      namespaces: [],
      problems: ['YAML 4'],
    },
    {
      name: 'JSON List: a syntax error between items',
      file: 'l.json',
      text: `{"apiVersion": "v1", "items": [\n${nsJson('a')} x,\n${nsJson('b')}\n], "kind": "List"}\n`,
      namespaces: [],
      problems: ['YAML 2'],
    },
    {
      name: 'YAML flow mappings that start like JSON',
      file: 'f.yaml',
      text: '{apiVersion: v1, kind: Namespace, metadata: {name: a}}\n---\n{apiVersion: v1, kind: Namespace, metadata: {name: b}}\n',
      namespaces: ['a', 'b'],
      problems: [],
    },
    {
      name: 'JSON typed List, items read one at a time',
      file: 'l.json',
      text: `{"apiVersion": "v1", "items": [\n{"metadata": {"name": "a"}},\n{"metadata": {"name": "b"}}\n], "kind": "NamespaceList"}\n`,
      namespaces: ['a@2', 'b@3'],
      problems: [],
    },
  ];
  for (const c of cases) {
    const res = loadText(c.text, c.file);
    assert.deepEqual(
      res.snapshot.namespaces
        .filter((n) => n.origin !== undefined)
        .map((n) => (c.namespaces.some((x) => x.includes('@')) ? `${n.name}@${n.origin?.line}` : n.name)),
      c.namespaces,
      c.name,
    );
    assert.deepEqual(
      res.problems.map((p) => `${p.kind} ${p.line}`),
      c.problems,
      c.name,
    );
  }
});

test('JSON object that is not a List keeps its items field', () => {
  const res = loadText(
    '{"apiVersion": "v1", "kind": "Namespace",\n "items": [1,\n 2], "metadata": {"name": "a"}}\n',
    'n.json',
  );
  assert.deepEqual(
    res.problems.map((p) => `${p.line} ${p.field}: ${p.message}`),
    ['2 items: field not declared in schema'],
  );
});

test('a streamed file with no object in it is skipped whole, with no problems', () => {
  for (const text of ['name: x\nvalues: [1, 2]\n---\nother: 1\n', '{"report": {"items": [1]}}\n']) {
    const res = loadText(text, 'r.yaml');
    assert.deepEqual(res.problems, [], text);
    assert.ok(
      res.notes.some((n) => n.includes('not a Kubernetes manifest')),
      text,
    );
  }
});
