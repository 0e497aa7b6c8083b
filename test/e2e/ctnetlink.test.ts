// ctnetlink with a real kernel: entries inserted with `conntrack -I` in a network namespace of our
// own, listed and deleted by exact tuple through NetlinkConntrack (a child under `ip netns exec`),
// checked against `conntrack -L`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { run, tryRun } from '../../src/lab/exec.js';
import {
  parseAddressList,
  parseConntrackList,
  parseIpAddrJson,
  type CtEntry,
} from '../../src/dataplane/conntrack.js';
import { NetlinkConntrack } from '../../src/dataplane/ct-client.js';
import { needsRoot } from './lab-util.js';

const NS = `moat-ct-t${process.pid}`;

const INSERTS: string[][] = [
  ['-p', 'tcp', '-s', '10.9.0.1', '-d', '10.9.0.2', '--sport', '40000', '--dport', '80'],
  ['-p', 'tcp', '-s', '10.9.0.1', '-d', '10.9.0.2', '--sport', '40001', '--dport', '80'],
  // DNAT: to a service address, answered by the backend.
  [
    '-p',
    'tcp',
    '-s',
    '10.9.0.3',
    '-d',
    '10.96.0.10',
    '--sport',
    '40002',
    '--dport',
    '80',
    '-r',
    '10.9.0.2',
    '-q',
    '10.9.0.3',
    '--reply-port-src',
    '8080',
    '--reply-port-dst',
    '40002',
  ],
  ['-p', 'udp', '-s', 'fd00::1', '-d', 'fd00::2:0:0:2', '--sport', '5353', '--dport', '53'],
  [
    '-p',
    'icmp',
    '-s',
    '10.9.0.1',
    '-d',
    '10.9.0.2',
    '--icmp-type',
    '8',
    '--icmp-code',
    '0',
    '--icmp-id',
    '77',
  ],
  // The same tuple as the first, in zone 7: another entry.
  ['-p', 'tcp', '-s', '10.9.0.1', '-d', '10.9.0.2', '--sport', '40000', '--dport', '80', '-w', '7'],
];

const ctl = async (...args: string[]): Promise<string> =>
  (await run(['ip', 'netns', 'exec', NS, 'conntrack', ...args])).stdout;

/** What `conntrack -L` shows of an entry (it prints no ICMP fields or ids; zone only when set). */
function shown(e: CtEntry): string {
  const t = (x: CtEntry['orig']) =>
    `${x.src} ${x.dst}${x.sport !== undefined ? ` ${x.sport} ${x.dport}` : ''}`;
  return `${e.proto} ${e.protonum} ${t(e.orig)} | ${t(e.reply)}`;
}

async function listed(): Promise<string[]> {
  return parseConntrackList(await ctl('-L'))
    .map(shown)
    .sort();
}

async function teardown(): Promise<void> {
  await tryRun(['ip', 'netns', 'del', NS]);
}

describe('ctnetlink from a real kernel, in a network namespace', { skip: needsRoot }, () => {
  const client = new NetlinkConntrack({ netns: NS });
  before(async () => {
    await teardown();
    await run(['ip', 'netns', 'add', NS]);
    await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', NS, 'link', 'add', 'moat0', 'type', 'veth', 'peer', 'name', 'moat1']);
    await run(['ip', '-n', NS, 'address', 'add', '10.9.0.2/24', 'dev', 'moat0']);
    await run(['ip', '-n', NS, 'address', 'add', '10.9.1.1', 'peer', '10.9.1.2', 'dev', 'moat0']);
    await run(['ip', '-n', NS, 'address', 'add', 'fd00::2:0:0:2/64', 'dev', 'moat0', 'nodad']);
    for (const a of INSERTS) {
      const tcp = a[1] === 'tcp' ? ['--state', 'ESTABLISHED', '-u', 'ASSURED'] : [];
      await run(['ip', 'netns', 'exec', NS, 'conntrack', '-I', ...a, ...tcp, '-t', '600']);
    }
  });
  after(async () => {
    await client.close();
    await teardown();
  });

  test('lists every entry, both families, as conntrack -L shows them, with zone, ICMP id and ids', async () => {
    const got = await client.list();
    assert.equal(got.length, INSERTS.length);
    assert.deepEqual(got.map(shown).sort(), await listed());
    const zoned = got.filter((e) => e.zone !== undefined);
    assert.deepEqual(
      zoned.map((e) => [e.zone, e.orig.sport]),
      [[7, 40000]],
    );
    const icmp = got.find((e) => e.proto === 'icmp');
    assert.deepEqual(icmp?.orig.icmp, { type: 8, code: 0, id: 77 });
    assert.deepEqual(icmp?.reply.icmp, { type: 0, code: 0, id: 77 });
    assert.ok(got.every((e) => typeof e.id === 'number'));
    assert.deepEqual(got.find((e) => e.orig.dst === '10.96.0.10')?.reply, {
      src: '10.9.0.2',
      dst: '10.9.0.3',
      sport: 8080,
      dport: 40002,
    });
  });

  test('deletes exactly the tuples asked for; a gone or superseded entry is ENOENT', async () => {
    const before = await client.list();
    const pick = (f: (e: CtEntry) => boolean): CtEntry => {
      const e = before.find(f);
      assert.ok(e);
      return e;
    };
    const doomed = [
      pick((e) => e.orig.sport === 40000 && e.zone === undefined), // not its zone-7 twin
      pick((e) => e.family === 6),
      pick((e) => e.proto === 'icmp'),
      pick((e) => e.orig.dst === '10.96.0.10'), // by its original (pre-DNAT) tuple
    ];
    // The same tuple as a kept entry, with another id: a flow that took the tuple since the listing.
    const stale = { ...pick((e) => e.orig.sport === 40001), id: 1 };
    const left = before
      .filter((e) => !doomed.includes(e))
      .map(shown)
      .sort();

    assert.deepEqual(await client.delete([...doomed, stale]), [0, 0, 0, 0, 2]);
    assert.deepEqual(await listed(), left);
    // Deleted already: every one is "gone", and nothing else is touched.
    assert.deepEqual(await client.delete(doomed), [2, 2, 2, 2]);
    assert.deepEqual(await listed(), left);
  });

  test('lists the addresses as `ip -j address` does (rtnetlink, in the same child)', async () => {
    const ip = parseIpAddrJson((await run(['ip', '-n', NS, '-j', 'address', 'show'])).stdout);
    const got = parseAddressList(await client.addresses());
    assert.deepEqual([...got].sort(), [...(ip ?? [])].sort());
    for (const a of ['127.0.0.1', '::1', '10.9.0.2', '10.9.1.1', 'fd00::2:0:0:2']) assert.ok(got.has(a), a);
    assert.ok(!got.has('10.9.1.2'), 'a point-to-point peer is not local');
  });

  test('a child that died is started again on the next request', async () => {
    const pid = client.pid;
    assert.ok(pid !== undefined);
    const starts = client.starts;
    process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    const got = await client.list();
    assert.equal(got.length, 2);
    assert.equal(client.starts, starts + 1);
  });
});
