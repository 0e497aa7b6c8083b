// Runs the built CLI as a user would, on test/fixtures/flows; needs `tsc` output in dist/. The
// --agent and --follow tests run it asynchronously, against a server / a file this test feeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moat, repoRoot } from '../../../test/support/cli.js';
import type { FlowRecord } from '../../flowlog/record.js';

const F = 'test/fixtures/flows';
const LOG = `${F}/node-logs.ndjson`;

const records = (): FlowRecord[] =>
  readFileSync(join(repoRoot(), LOG), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as FlowRecord);

test('moat flows -f: compact lines, in file order, blank lines skipped', () => {
  const r = moat(['flows', '-f', LOG]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, 8);
  assert.equal(
    lines[0],
    '2026-12-03T05:31:12.345Z node-b  shop/web:41234 -> shop/db:5432 TCP SYN  denied  ingress  isolated by shop/default-deny; no rule matched',
  );
  assert.equal(
    lines[4],
    '2026-12-03T05:34:00.000Z node-c  fd00::5 -> monitoring/prom ICMPv6 echo-request  allowed  ingress  no policy selects monitoring/prom for ingress',
  );
});

test('moat flows: filters as flags, repeatable and comma lists', () => {
  const times = (...args: string[]): string[] => {
    const r = moat(['flows', '-f', LOG, '-o', 'json', ...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as FlowRecord).time.slice(11, 19));
  };
  assert.deepEqual(times('--verdict', 'denied'), ['05:31:12', '05:33:10']);
  assert.deepEqual(times('--verdict', 'denied,audit', '--direction', 'ingress'), ['05:31:12', '05:35:00']);
  assert.deepEqual(times('--verdict', 'denied', '--verdict', 'audit', '-n', 'tenant-a'), ['05:35:00']);
  assert.deepEqual(times('--pod', 'shop/web*', '--to', 'shop/db'), ['05:31:12', '05:31:12', '05:32:00']);
  assert.deepEqual(times('--from', 'fd00::/16', '--protocol', 'ICMPv6'), ['05:34:00']);
  assert.deepEqual(times('--to', '8.8.8.8/32', '--port', '53'), ['05:33:10']);
  assert.deepEqual(times('--policy', 'AdminNetworkPolicy/tenants'), ['05:36:00']);
  assert.deepEqual(times('--policy', 'shop/allow-web-2,banp/default'), ['05:32:00', '05:35:00']);
  assert.deepEqual(times('--node', 'node-a', '--since', '2026-12-03T05:32:00Z'), ['05:33:10', '05:37:00']);
  assert.deepEqual(times('--from', '10.0.0.0/8', '--protocol', 'udp'), ['05:33:10']);
  assert.deepEqual(times('--since', '2100-01-01T00:00:00Z'), []);
});

test('moat flows -o json: the records as read, one per line', () => {
  const r = moat(['flows', '-f', LOG, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const want = readFileSync(join(repoRoot(), LOG), 'utf8').replace(/^\n/gm, '');
  assert.equal(r.stdout, want);
  assert.deepEqual(
    r.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as FlowRecord),
    records(),
  );
});

test('moat flows -o table: aligned, in time order, the deciding policy named', () => {
  const r = moat(['flows', '-f', LOG, '-o', 'table', '-n', 'shop']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      'TIME                      NODE    SRC               DST            PROTO    VERDICT  DIR      POLICY                            REASON',
      '2026-12-03T05:31:12.340Z  node-a  shop/web:41234    shop/db:5432   TCP SYN  allowed  egress   np shop/web-egress [egress 0]     rule-matched',
      '2026-12-03T05:31:12.345Z  node-b  shop/web:41234    shop/db:5432   TCP SYN  denied   ingress  np shop/default-deny              no-rule-matched',
      '2026-12-03T05:32:00.001Z  node-b  shop/web-2:50000  shop/db:5432   TCP SYN  allowed  ingress  np shop/allow-web [ingress 0] +1  rule-matched',
      '2026-12-03T05:33:10.500Z  node-a  shop/web:40001    8.8.8.8:53     UDP      denied   egress   anp no-external-dns rule "r1"     admin-deny',
      '2026-12-03T05:37:00.000Z  node-a  10.0.0.1:52000    shop/web:8080  TCP SYN  allowed  ingress  -                                 own-node',
      '',
    ].join('\n'),
  );
});

test('moat flows -f - and several files: stdin, then the files in order', () => {
  const text = readFileSync(join(repoRoot(), LOG), 'utf8');
  const r = moat(
    ['flows', '-f', '-', '-f', LOG, '--verdict', 'audit'],
    `\n\r\n${text.replace(/\n/g, '\r\n')}`,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.split('\n').length - 1, 2);
  // The last line of a file needs no newline.
  const last = moat(['flows', '-f', '-', '--node', 'node-a'], text.trimEnd());
  assert.equal(last.stdout.split('\n').length - 1, 3, last.stderr);
});

test('moat flows: a bad line is an error with FILE:LINE after the lines before it; usage errors', () => {
  const cases: [string[], number, RegExp, string?][] = [
    [
      ['flows', '-f', `${F}/bad-record.ndjson`],
      1,
      /^moat: test\/fixtures\/flows\/bad-record\.ndjson:3: not a flow record: src: must be an object\n$/,
    ],
    [
      ['flows', '-f', `${F}/bad-json.ndjson`],
      1,
      /^moat: test\/fixtures\/flows\/bad-json\.ndjson:3: not JSON: /,
    ],
    [
      ['flows', '-f', '-'],
      1,
      /^moat: <stdin>:2: not JSON: /,
      `${readFileSync(join(repoRoot(), LOG), 'utf8').split('\n')[0]}\nnope\n`,
    ],
    [
      ['flows', '-f', `${F}/none.ndjson`],
      1,
      /^moat: cannot read test\/fixtures\/flows\/none\.ndjson: ENOENT/,
    ],
    [['flows', '-f', F], 1, /^moat: cannot read test\/fixtures\/flows: a directory/],
    [['flows'], 2, /^moat: flows: give -f FILE \(- for stdin\) or --agent URL\n$/],
    [
      ['flows', '-f', LOG, '--agent', 'http://127.0.0.1:1'],
      2,
      /^moat: flows: give -f FILE or --agent URL, not both/,
    ],
    [
      ['flows', '-f', LOG, '--verdict', 'deny'],
      2,
      /^moat: --verdict "deny": must be one of allowed, denied, audit\n$/,
    ],
    [
      ['flows', '-f', LOG, '--from', 'shop'],
      2,
      /^moat: --from "shop": .*; for the namespace shop write shop\/\n$/,
    ],
    [['flows', '-f', LOG, '--since', 'yesterday'], 2, /^moat: --since "yesterday": expected a duration/],
    [['flows', '-f', LOG, '--port', '0'], 2, /^moat: --port "0": must be a port number/],
    [['flows', '-f', LOG, '--follow', '-o', 'table'], 2, /-o table prints when the input ends/],
    [
      ['flows', '--agent', '10.0.0.5:9809'],
      2,
      /^moat: --agent "10\.0\.0\.5:9809": expected an http:\/\/ or https:\/\/ URL, e\.g\. http:\/\/10\.0\.0\.5:9809/,
    ],
    [['flows', '--agent', 'http://x:1/?verdict=denied'], 2, /give the agent's address only/],
    [['flows', '-f', LOG, '-o', 'yaml'], 1, /argument 'yaml' is invalid/],
  ];
  for (const [args, code, re, input] of cases) {
    const r = moat(args, input);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  // The good lines before the bad one are printed.
  assert.equal(moat(['flows', '-f', `${F}/bad-record.ndjson`]).stdout.split('\n').length - 1, 2);
});

// ---------------------------------------------------------------------------------------------

interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

function start(args: readonly string[]): Running {
  const child = spawn(process.execPath, [join(repoRoot(), 'dist/src/cli/bin.js'), ...args], {
    cwd: repoRoot(),
  });
  const r: Running = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('close', (code) => resolve(code))),
  };
  child.stdout.setEncoding('utf8').on('data', (s: string) => (r.stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (r.stderr += s));
  child.stdin.end();
  return r;
}

async function until(what: string, ok: () => boolean, r?: Running): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  assert.ok(
    ok(),
    `timed out waiting for ${what}${r !== undefined ? `; stdout: ${r.stdout}; stderr: ${r.stderr}` : ''}`,
  );
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const close = (s: Server): Promise<void> =>
  new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });

test('moat flows --agent: GET URL/flows?FILTERS, the stream printed as it arrives and filtered here too', async () => {
  const text = readFileSync(join(repoRoot(), LOG), 'utf8');
  const urls: string[] = [];
  const { server, url } = await listen((req, res) => {
    urls.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    // The whole log, ignoring the filters, in chunks that split lines and a multi-byte character.
    const body = Buffer.from(text.replace('"summary":"isolated by', '"summary":"→ isolated by'));
    let at = 0;
    const step = (): void => {
      if (at >= body.length) return void res.end();
      res.write(body.subarray(at, at + 37));
      at += 37;
      setImmediate(step);
    };
    step();
  });
  try {
    const r = start([
      'flows',
      '--agent',
      `${url}/`,
      '--verdict',
      'denied',
      '-n',
      'shop',
      '--since',
      '2026-12-03T05:00:00+00:00',
    ]);
    assert.equal(await r.exited, 0, r.stderr);
    assert.deepEqual(urls, ['/flows?verdict=denied&namespace=shop&since=2026-12-03T05%3A00%3A00.000Z']);
    assert.equal(
      r.stdout,
      '2026-12-03T05:31:12.345Z node-b  shop/web:41234 -> shop/db:5432 TCP SYN  denied  ingress  → isolated by shop/default-deny; no rule matched\n' +
        '2026-12-03T05:33:10.500Z node-a  shop/web:40001 -> 8.8.8.8:53 UDP  denied  egress  denied by AdminNetworkPolicy no-external-dns rule "r1"\n',
    );
    // -o table waits for the end of the response.
    const t = start(['flows', '--agent', url, '-o', 'table', '--protocol', 'udp']);
    assert.equal(await t.exited, 0, t.stderr);
    assert.equal(t.stdout.split('\n').length - 1, 2);
    assert.equal(urls.at(-1), '/flows?protocol=udp');
  } finally {
    await close(server);
  }
});

test('moat flows --agent: HTTP errors, bad lines, a refused connection', async () => {
  const { server, url } = await listen((req, res) => {
    if (req.url?.startsWith('/flows?node=bad') === true) {
      res.writeHead(200);
      res.end('{"time":"t"}\n');
      return;
    }
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end('verdict "x": must be one of allowed, denied, audit\nmore\n');
  });
  try {
    const e = start(['flows', '--agent', url]);
    assert.equal(await e.exited, 1);
    assert.equal(
      e.stderr,
      `moat: --agent: ${url}/flows: HTTP 400: verdict "x": must be one of allowed, denied, audit\n`,
    );
    const b = start(['flows', '--agent', url, '--node', 'bad']);
    assert.equal(await b.exited, 1);
    assert.equal(b.stderr, `moat: ${url}/flows:1: not a flow record: node: must be a string\n`);
  } finally {
    await close(server);
  }
  const refused = start(['flows', '--agent', url]);
  assert.equal(await refused.exited, 1);
  assert.match(refused.stderr, new RegExp(`^moat: --agent: cannot get ${url}/flows: connect ECONNREFUSED`));
});

test('moat flows --agent --follow: follow=1 is asked for and records print as they come', async () => {
  const [first, second] = readFileSync(join(repoRoot(), LOG), 'utf8').split('\n');
  let res: ServerResponse | undefined;
  let asked = '';
  const { server, url } = await listen((req, r) => {
    asked = req.url ?? '';
    r.writeHead(200, { 'content-type': 'application/x-ndjson' });
    r.write(`${first}\n`);
    res = r;
  });
  try {
    const r = start(['flows', '--agent', url, '--follow', '-o', 'json']);
    await until('the first record', () => r.stdout.split('\n').length === 2, r);
    assert.equal(asked, '/flows?follow=1');
    res?.write(`${second}\n`);
    await until('the second record', () => r.stdout.split('\n').length === 3, r);
    // The agent ends the stream (it shuts down): the command ends.
    res?.end();
    assert.equal(await r.exited, 0, r.stderr);
  } finally {
    await close(server);
  }
});

test('moat flows -f --follow: appended lines print once complete; truncation restarts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-flows-'));
  const [first = '', second = '', third = ''] = readFileSync(join(repoRoot(), LOG), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const file = join(dir, 'flows.ndjson');
  writeFileSync(file, `${first}\n`);
  const r = start(['flows', '-f', file, '--follow', '-o', 'json']);
  try {
    await until('the first record', () => r.stdout === `${first}\n`, r);
    appendFileSync(file, `\n${second.slice(0, 40)}`);
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(r.stdout, `${first}\n`, 'half a line is not read yet');
    appendFileSync(file, `${second.slice(40)}\n`);
    await until('the second record', () => r.stdout === `${first}\n${second}\n`, r);
    truncateSync(file, 0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    appendFileSync(file, `${third}\n`);
    await until('the record after the truncation', () => r.stdout === `${first}\n${second}\n${third}\n`, r);
    assert.match(r.stderr, /flows\.ndjson: truncated; reading it from the start\n/);
    // A bad line while following is an error too.
    appendFileSync(file, 'oops\n');
    assert.equal(await r.exited, 1);
    assert.match(r.stderr, /flows\.ndjson:2: not JSON: /);
  } finally {
    r.child.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moat flows | head: a closed pipe ends the command quietly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moat-flows-'));
  try {
    const line = readFileSync(join(repoRoot(), LOG), 'utf8').split('\n')[0] ?? '';
    const file = join(dir, 'big.ndjson');
    writeFileSync(file, `${line}\n`.repeat(50_000));
    const r = start(['flows', '-f', file]);
    await until('some output', () => r.stdout.length > 0, r);
    r.child.stdout.destroy();
    assert.equal(await r.exited, 0, r.stderr);
    assert.equal(r.stderr, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
