// Runs the built CLI as a user would, on test/fixtures/analysis; needs `tsc` output in dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MatrixJson } from '../../analysis/matrix.js';
import { moat } from '../../../test/support/cli.js';

const F = 'test/fixtures/analysis';

test('moat matrix: a truth table per declared port, pods without an IP included', () => {
  const r = moat(['matrix', '-f', `${F}/cluster`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    r.stdout.split('\n').filter((l) => /^[A-Z]+\/\d+$/.test(l)),
    ['UDP/53', 'TCP/80', 'TCP/81'],
  );
  // x/a admits TCP/80 from x/b (podSelector) and from 10.0.0.0/8 except 10.1.0.0/16 (y/c is excluded);
  // y/pending has no address, so the ipBlock cannot admit it ("ipBlock rules apply to addresses").
  const tcp80 = r.stdout.split('\n\n').find((t) => t.startsWith('TCP/80\n'))!;
  assert.equal(
    tcp80,
    [
      'TCP/80',
      'from\\to    x/a  x/b  y/c  y/pending',
      'x/a        .    .    .    .',
      'x/b        .    .    .    .',
      'y/c        X    .    .    .',
      'y/pending  X    .    .    .',
    ].join('\n'),
  );
});

test('moat matrix -o json --port: the stable schema, --protocol defaults to TCP', () => {
  const r = moat(['matrix', '-f', `${F}/cluster`, '--port', '80', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as MatrixJson;
  assert.deepEqual(Object.keys(j), ['pods', 'probes']);
  assert.deepEqual(j.pods, ['x/a', 'x/b', 'y/c', 'y/pending']);
  assert.equal(j.probes.length, 1);
  const p = j.probes[0]!;
  assert.deepEqual(Object.keys(p), ['port', 'protocol', 'allowed']);
  assert.deepEqual([p.port, p.protocol], [80, 'TCP']);
  assert.deepEqual(p.allowed['y/c'], { 'x/a': false, 'x/b': true, 'y/c': true, 'y/pending': true });
  for (const f of j.pods) assert.deepEqual(Object.keys(p.allowed[f]!), j.pods);
});

test('moat matrix: --protocol alone filters the declared ports', () => {
  const r = moat(['matrix', '-f', `${F}/cluster`, '--protocol', 'udp', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as MatrixJson;
  assert.deepEqual(
    j.probes.map((p) => `${p.protocol}/${p.port}`),
    ['UDP/53'],
  );
});

test('moat matrix: usage and input errors', () => {
  const cases: [string[], number, RegExp][] = [
    [['matrix', '-f', `${F}/cluster`, '--port', 'http'], 2, /--port http: must be a port number/],
    [['matrix', '-f', `${F}/cluster`, '--port', '70000'], 2, /--port 70000/],
    [
      ['matrix', '-f', `${F}/cluster`, '--protocol', 'ICMP'],
      2,
      /--protocol ICMP: must be one of TCP, UDP, SCTP/,
    ],
    [['matrix'], 2, /at least one -f PATH/],
    [
      ['matrix', '-f', `${F}/invalid`],
      1,
      /policy\.yaml:10: NetworkPolicy x\/broken: spec\.ingress\[0\]\.ports\[0\]\.port/,
    ],
  ];
  for (const [args, code, re] of cases) {
    const r = moat(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('moat matrix on examples/tenants: admin tiers, NetworkPolicies and the baseline together', () => {
  const r = moat(['matrix', '-f', 'examples/tenants', '--port', '9090', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const allowed = (JSON.parse(r.stdout) as MatrixJson).probes[0]!.allowed;
  const from = (p: string) => allowed[p]!;
  // The AdminNetworkPolicy admits Prometheus to the pods that name a port metrics.
  assert.equal(from('monitoring/prometheus')['tenant-b/api'], true);
  // Tenant a's web pod has no such port: tenant a's default-deny decides (after the admin tier).
  assert.equal(from('monitoring/prometheus')['tenant-a/web'], false);
  // Another tenant: the admin Deny; the same tenant without NetworkPolicies: the baseline deny.
  assert.equal(from('tenant-a/web')['tenant-b/api'], false);
  assert.equal(from('tenant-b/web')['tenant-b/api'], false);
  assert.equal(from('tenant-b/web')['kube-system/coredns'], true);
});

test('moat matrix: workloads from git (no Pods, no IPs) are rows, named after the workload', () => {
  const r = moat(['matrix', '-f', 'test/fixtures/workloads', '--port', '5432']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'TCP/5432',
      'from\\to              shop/cronjob/backup  shop/deploy/web  shop/sts/db-0  shop/sts/db-1',
      'shop/cronjob/backup  .                    X                .              .',
      'shop/deploy/web      .                    X                .              .',
      'shop/sts/db-0        .                    X                .              .',
      'shop/sts/db-1        X                    X                .              .',
      '',
    ].join('\n'),
  );
});

test('moat matrix: --namespace, --from, --to filter rows and columns; -o csv and md', () => {
  const W = 'test/fixtures/workloads';
  const run = (...args: string[]): string => {
    const r = moat(['matrix', '-f', W, '--port', '5432', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  assert.equal(
    run('--from', 'shop/sts/*', '--to', 'shop/deploy/web', '--to', 'shop/sts/*'),
    [
      'TCP/5432',
      'from\\to        shop/deploy/web  shop/sts/db-0  shop/sts/db-1',
      'shop/sts/db-0  X                .              .',
      'shop/sts/db-1  X                .              .',
      '',
    ].join('\n'),
  );
  assert.equal(run('-n', 'other'), 'TCP/5432\nfrom\\to\n');
  assert.equal(
    run('-o', 'csv', '--from', 'shop/deploy/web', '--to', 'shop/sts/db-*'),
    'from,to,protocol,port,allowed\nshop/deploy/web,shop/sts/db-0,TCP,5432,true\nshop/deploy/web,shop/sts/db-1,TCP,5432,true\n',
  );
  assert.equal(
    run('-o', 'md', '-n', 'shop', '--from', 'shop/sts/db-1', '--to', 'shop/cronjob/backup'),
    '### TCP/5432\n\n| from \\ to | `shop/cronjob/backup` |\n| --- | :-: |\n| `shop/sts/db-1` | ✗ |\n',
  );
  // JSON keeps its schema: a square matrix over the union of the rows and columns.
  const j = JSON.parse(run('-o', 'json', '--from', 'shop/deploy/web', '--to', 'shop/sts/db-0')) as MatrixJson;
  assert.deepEqual(j.pods, ['shop/deploy/web', 'shop/sts/db-0']);
  assert.deepEqual(Object.keys(j.probes[0]!.allowed['shop/deploy/web']!), j.pods);
});

test('moat matrix -o dot: a cluster per namespace, an edge per allowed pair with its ports', () => {
  const r = moat(['matrix', '-f', `${F}/cluster`, '-o', 'dot']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^digraph moat \{\n/);
  assert.match(r.stdout, /subgraph "cluster_x" \{\n {4}label="x";\n {4}"x\/a" \[label="a"\];/);
  // x/a admits only TCP/80 from x/b; y/c is denied TCP/80 to x/a, and allowed nowhere else there.
  assert.match(r.stdout, /^ {2}"x\/b" -> "x\/a" \[label="TCP\/80"\];$/m);
  assert.doesNotMatch(r.stdout, /"y\/c" -> "x\/a"/);
  assert.match(r.stdout, /^ {2}"x\/a" -> "x\/b" \[label="all probed ports"\];$/m);
  assert.doesNotMatch(r.stdout, /"x\/a" -> "x\/a"/, 'no edge from a pod to itself');
  assert.ok(r.stdout.endsWith('}\n'));
});

test("moat matrix --to NS/svc/NAME: the pods behind the Service, at its targetPorts; --port is the Service's", () => {
  const W = 'test/fixtures/workloads';
  const table = [
    'TCP/8080',
    'from\\to              shop/deploy/web',
    'shop/cronjob/backup  .',
    'shop/deploy/web      .',
    'shop/sts/db-0        .',
    'shop/sts/db-1        X',
  ].join('\n');
  // Service port 80 (named http) sends to targetPort http, the pods' 8080; db-1 may reach db-0 only.
  for (const extra of [[], ['--port', '80'], ['--port', 'http']]) {
    const r = moat(['matrix', '-f', W, '--to', 'shop/svc/web', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trimEnd(), table, extra.join(' '));
  }
  // Two Services: --port applies to the one that has it; a port none has is an error naming it.
  const both = moat([
    'matrix',
    '-f',
    W,
    '--to',
    'shop/svc/db',
    '--to',
    'shop/svc/web',
    '--port',
    '5432',
    '-o',
    'json',
  ]);
  assert.equal(both.code, 0, both.stderr);
  const j = JSON.parse(both.stdout) as MatrixJson;
  assert.deepEqual(
    j.probes.map((p) => `${p.protocol}/${p.port}`),
    ['TCP/5432'],
  );
  const none = moat(['matrix', '-f', W, '--to', 'shop/svc/db', '--to', 'shop/svc/web', '--port', '9']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--port 9: Service shop\/db has no port 9/);
});

test('moat matrix --width: a table wider than that is cut into column groups, rows repeated', () => {
  const W = 'test/fixtures/workloads';
  const whole = moat(['matrix', '-f', W, '--port', '5432']);
  const cut = moat(['matrix', '-f', W, '--port', '5432', '--width', '60']);
  assert.equal(cut.code, 0, cut.stderr);
  assert.doesNotMatch(whole.stdout, /\(columns/, 'not a terminal and no --width: whole rows');
  const groups = [...cut.stdout.matchAll(/^\(columns (\d+)-(\d+) of 4\)$/gm)].map((m) => [
    Number(m[1]),
    Number(m[2]),
  ]);
  assert.deepEqual(groups, [
    [1, 2],
    [3, 4],
  ]);
  for (const line of cut.stdout.split('\n')) assert.ok(line.length <= 60, line);
  // The same cells: each row's cells across the groups are the whole row's.
  const rows = (text: string) => {
    const m = new Map<string, string>();
    for (const l of text.split('\n').filter((x) => x.startsWith('shop/')))
      m.set(l.split(/\s+/)[0]!, `${m.get(l.split(/\s+/)[0]!) ?? ''}${l.split(/\s+/).slice(1).join('')}`);
    return m;
  };
  assert.deepEqual(rows(cut.stdout), rows(whole.stdout));
  assert.equal(moat(['matrix', '-f', W, '--width', '5']).code, 2);
});
