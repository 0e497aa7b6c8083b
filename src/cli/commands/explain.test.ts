import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Explanation } from '../../analysis/explain.js';
import { moat } from '../../../test/support/cli.js';

const F = 'test/fixtures/analysis';

test('moat explain: denied, in words, with the reason of each rule', () => {
  const r = moat(['explain', '-f', `${F}/cluster`, '--from', 'y/c', '--to', 'x/a', '--port', 'http']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.equal(lines[0], 'y/c -> x/a TCP/80 (IPv4): DENIED');
  assert.ok(lines.includes('Egress of source y/c: allowed (not-isolated)'));
  assert.ok(lines.includes('Ingress of destination x/a: DENIED (no-rule-matched)'));
  assert.match(
    r.stdout,
    /from\[1\] ipBlock 10\.0\.0\.0\/8 except 10\.1\.0\.0\/16: no: ipBlock 10\.0\.0\.0\/8 except 10\.1\.0\.0\/16 excludes 10\.1\.2\.3/,
  );
  assert.match(r.stdout, /peer requires namespace label team=db, namespace y has team=web/);
  assert.match(r.stdout, /closest rule: x\/allow-a ingress\[0\]/);
});

test('moat explain -o json: the verdict and the per-rule analysis', () => {
  const r = moat([
    'explain',
    '-f',
    `${F}/cluster`,
    '--from',
    '10.0.0.2',
    '--to',
    'x/a',
    '--port',
    '80',
    '-o',
    'json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(r.stdout) as Explanation;
  // 10.0.0.2 is pod x/b's IP.
  assert.equal(e.flow.src, 'x/b');
  assert.equal(e.verdict.allowed, true);
  assert.deepEqual(e.verdict.ingress.matches[0], {
    policy: { namespace: 'x', name: 'allow-a' },
    direction: 'ingress',
    rule: 0,
    peer: 0,
    port: 0,
  });
  assert.equal(e.ingress.policies[0]!.rules[0]!.matched, true);
});

test('moat explain: usage errors name the culprit', () => {
  const base = ['explain', '-f', `${F}/cluster`];
  const cases: [string[], RegExp][] = [
    [[...base, '--from', 'x/nope', '--to', 'x/a', '--port', '80'], /--from: unknown pod x\/nope/],
    [
      [...base, '--from', 'x/a', '--to', 'x/b', '--port', 'http'],
      /pod x\/b has no TCP containerPort named http/,
    ],
    [[...base, '--to', 'x/b'], /--from is required/],
    [[...base, '--from', 'x/a', '--to', 'x/b', '--port', '80', '--protocol', 'icmp'], /--protocol icmp/],
  ];
  for (const [args, re] of cases) {
    const r = moat(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
});

test('moat explain on examples/tenants: the tiers in order, text and JSON', () => {
  const base = ['explain', '-f', 'examples/tenants'];
  const deny = moat([...base, '--from', 'tenant-b/web', '--to', 'tenant-a/web', '--port', '80']);
  assert.equal(deny.code, 0, deny.stderr);
  assert.ok(
    deny.stdout
      .split('\n')
      .includes(
        '  [Admin] ClusterNetworkPolicy tenant-a rule deny-other-tenants (ingress[1]): Deny → DENIED',
      ),
    deny.stdout,
  );
  const pass = moat([...base, '--from', 'tenant-a/db', '--to', 'tenant-a/web', '--port', '80', '-o', 'json']);
  assert.equal(pass.code, 0, pass.stderr);
  const e = JSON.parse(pass.stdout) as Explanation;
  assert.equal(
    e.ingress.summary,
    '[Admin] ClusterNetworkPolicy tenant-a rule same-tenant (ingress[0]): Pass (to the NetworkPolicy tier) → [NetworkPolicy] isolated by tenant-a/default-deny, no rule matched → DENIED',
  );
  assert.deepEqual(
    e.ingress.tiers!.map((t) => [
      t.tier,
      t.answer,
      t.decision?.kind,
      t.decision?.name,
      t.decision?.rule,
      t.decision?.ruleName,
    ]),
    [
      ['Admin', 'Pass', 'ClusterNetworkPolicy', 'tenant-a', 0, 'same-tenant'],
      ['NetworkPolicy', 'Deny', undefined, undefined, undefined, undefined],
    ],
  );
  const baseline = moat([...base, '--from', 'tenant-b/web', '--to', 'tenant-b/api', '--port', 'http-api']);
  assert.match(
    baseline.stdout,
    / → \[Baseline\] ClusterNetworkPolicy tenant-default-deny rule default-deny \(ingress\[0\]\): Deny → DENIED\n/,
  );
});

test('moat explain: workload endpoints (NS/KIND/NAME, kubectl words), named ports from the template', () => {
  const W = 'test/fixtures/workloads';
  const cases: [string, string, string, string][] = [
    ['shop/deploy/web', 'shop/sts/db-1', 'pg', 'shop/deploy/web -> shop/sts/db-1 TCP/5432 (IPv4): ALLOWED'],
    [
      'shop/deployment/web',
      'shop/statefulset/db',
      '5432',
      'shop/deploy/web -> shop/sts/db-0 TCP/5432 (IPv4): ALLOWED',
    ],
    ['shop/sts/db-1', 'shop/cj/backup', '80', 'shop/sts/db-1 -> shop/cronjob/backup TCP/80 (IPv4): DENIED'],
  ];
  for (const [from, to, port, first] of cases) {
    const r = moat(['explain', '-f', W, '--from', from, '--to', to, '--port', port]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[0], first);
  }
  const bad = moat([
    'explain',
    '-f',
    W,
    '--from',
    'shop/deploy/nope',
    '--to',
    'shop/sts/db-0',
    '--port',
    '1',
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown workload shop\/deploy\/nope/);
});

test('moat explain --exit-code: 1 when denied; without --port: every declared port of the destination', () => {
  const W = 'test/fixtures/workloads';
  const cases: [string[], number, string][] = [
    [['--from', 'shop/sts/db-1', '--to', 'shop/deploy/web', '--port', '8080', '--exit-code'], 1, 'DENIED'],
    [['--from', 'shop/sts/db-1', '--to', 'shop/deploy/web', '--port', '8080'], 0, 'DENIED'],
    [['--from', 'shop/deploy/web', '--to', 'shop/sts/db-0', '--port', 'pg', '--exit-code'], 0, 'ALLOWED'],
    [
      ['--from', 'shop/deploy/web', '--to', 'shop/sts/db-0', '--exit-code'],
      0,
      "shop/deploy/web -> shop/sts/db-0: the destination's declared ports\n  TCP/5432   pg              open\n",
    ],
    [
      ['--from', 'shop/sts/db-1', '--to', 'shop/deploy/web', '--exit-code'],
      1,
      '  TCP/8080   http            denied\n',
    ],
    [
      ['--from', 'shop/deploy/web', '--to', 'shop/cronjob/backup', '--exit-code'],
      1,
      'declares no containerPort; use --port',
    ],
    [
      ['--from', 'shop/deploy/web', '--to', 'shop/sts/db-0', '--protocol', 'UDP'],
      0,
      'declares no UDP containerPort',
    ],
  ];
  for (const [args, code, text] of cases) {
    const r = moat(['explain', '-f', W, ...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stdout.includes(text), `${args.join(' ')}: ${r.stdout}`);
  }
  const j = moat(['explain', '-f', W, '--from', 'shop/sts/db-1', '--to', 'shop/deploy/web', '-o', 'json']);
  assert.deepEqual(JSON.parse(j.stdout), {
    from: 'shop/sts/db-1',
    to: 'shop/deploy/web',
    ports: [{ port: 8080, protocol: 'TCP', name: 'http', allowed: false }],
  });
});

test('moat explain --to a Service: every pod behind it, at the targetPort the Service sends there', () => {
  const W = 'test/fixtures/workloads';
  // Without --port: each Service port, translated per endpoint (targetPort http -> 8080).
  const list = moat(['explain', '-f', W, '--from', 'shop/cronjob/backup', '--to', 'shop/svc/db']);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(list.stdout.split('\n').slice(0, 3), [
    'Service shop/svc/db port TCP/5432 -> targetPort pg: 2 of 2 endpoint(s) reachable',
    '  shop/sts/db-0 TCP/5432: open',
    '  shop/sts/db-1 TCP/5432: open',
  ]);
  // --port names the Service's port (80, or its name): the policy sees the pod's 8080.
  for (const port of ['80', 'http']) {
    const r = moat([
      'explain',
      '-f',
      W,
      '--from',
      'shop/cronjob/backup',
      '--to',
      'svc/web',
      '--port',
      port,
      '--exit-code',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^Service shop\/svc\/web port http TCP\/80 -> targetPort http: 1 of 1 endpoint\(s\) reachable\n {2}shop\/deploy\/web TCP\/8080: open\n/,
    );
    assert.match(r.stdout, /^shop\/cronjob\/backup -> shop\/deploy\/web TCP\/8080 \(IPv4\): ALLOWED$/m);
  }
  // db-1 may only reach db-0: denied, exit 1 with --exit-code; JSON per endpoint.
  const dbToWeb = ['explain', '-f', W, '--from', 'shop/sts/db-1', '--to', 'shop/svc/web', '--port', '80'];
  const denied = moat([...dbToWeb, '--exit-code']);
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stdout, /0 of 1 endpoint\(s\) reachable\n {2}shop\/deploy\/web TCP\/8080: denied/);
  const json = moat([...dbToWeb, '-o', 'json']);
  const j = JSON.parse(json.stdout) as {
    ports: {
      targetPort: string;
      endpoints: { pod: string; port: number; allowed: boolean; explanation: Explanation }[];
    }[];
  };
  assert.equal(j.ports[0]!.targetPort, 'http');
  assert.deepEqual(
    j.ports[0]!.endpoints.map((e) => [e.pod, e.port, e.allowed, e.explanation.verdict.allowed]),
    [['shop/deploy/web', 8080, false, false]],
  );
  // Errors name the Service and what it has.
  const cases: [string[], RegExp][] = [
    [['--to', 'shop/svc/nope'], /--to: unknown Service shop\/svc\/nope/],
    [
      ['--to', 'shop/svc/web', '--port', '8080'],
      /--port 8080: Service shop\/web has no port 8080 \(it has: http TCP\/80\)/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = moat(['explain', '-f', W, '--from', 'shop/sts/db-1', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
});
