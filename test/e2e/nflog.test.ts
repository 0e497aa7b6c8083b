// NFLOG with a real kernel: nft `log group` rules in a network namespace of our own, read by
// NetnsNflogReader (a child under `ip netns exec`), with packets sent from inside it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run, tryRun } from '../../src/lab/exec.js';
import { NetnsNflogReader } from '../../src/flowlog/nflog-netns.js';
import type { LoggedPacket, NflogSource } from '../../src/flowlog/nflog-reader.js';
import { needsRoot } from './lab-util.js';

const NS = `moat-nflog-t${process.pid}`;
const TABLE = 'moat_nflog_t';
const GROUP = 7;
const CHILD = fileURLToPath(new URL('../../src/flowlog/nflog-child.js', import.meta.url));

const RULES = `
table inet ${TABLE} {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr 127.0.0.1 udp dport 9999 log prefix "moat:t:udp4" group ${GROUP}
    ip6 daddr ::1 udp dport 9999 log prefix "moat:t:udp6" group ${GROUP}
    tcp dport 9998 tcp flags syn / syn,ack log prefix "moat:t:syn" group ${GROUP}
    icmp type echo-request log prefix "moat:t:icmp" group ${GROUP}
    icmpv6 type echo-request log prefix "moat:t:icmp6" group ${GROUP}
    udp dport 9995 log prefix "moat:t:flood" group ${GROUP}
  }
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 9997 log prefix "moat:t:in" group ${GROUP}
  }
}
`;

// Sends from inside the namespace, from a fixed source port: udp HOST PORT SPORT [COUNT] | tcp HOST PORT SPORT.
const SENDER = `
const [kind, host, port, sport, count = '1'] = process.argv.slice(1);
if (kind === 'udp') {
  const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  s.bind(Number(sport), () => {
    let left = Number(count);
    const next = () => (left-- > 0 ? s.send('x', Number(port), host, next) : s.close());
    next();
  });
} else {
  const c = require('node:net').connect({ host, port: Number(port), localPort: Number(sport) });
  c.on('error', () => c.destroy());
  c.on('connect', () => c.destroy());
}
`;

function send(...args: (string | number)[]): Promise<unknown> {
  return run(['ip', 'netns', 'exec', NS, process.execPath, '-e', SENDER, ...args.map(String)]);
}

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function collect(r: NflogSource): LoggedPacket[] {
  const got: LoggedPacket[] = [];
  r.on('packet', (p) => got.push(p));
  return got;
}

async function teardown(): Promise<void> {
  await tryRun(['ip', 'netns', 'exec', NS, 'nft', 'delete', 'table', 'inet', TABLE]);
  await tryRun(['ip', 'netns', 'del', NS]);
}

describe('NFLOG from a real kernel, read in a network namespace', { skip: needsRoot }, () => {
  before(async () => {
    await teardown();
    await run(['ip', 'netns', 'add', NS]);
    await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
    await run(['ip', 'netns', 'exec', NS, 'nft', '-f', '-'], RULES);
  });
  after(teardown);

  test('UDP, TCP SYN and ICMP over IPv4 and IPv6: decoded, counted; a second bind fails clearly', async () => {
    const r = await NetnsNflogReader.open({ netns: NS, group: GROUP });
    try {
      r.on('error', (e) => assert.fail(e));
      const got = collect(r);
      assert.ok(r.recvBuffer > 0);

      await assert.rejects(
        NetnsNflogReader.open({ netns: NS, group: GROUP }),
        (e: Error) =>
          e.name === 'NflogError' && /^NFLOG group 7 is already bound by another process/.test(e.message),
      );

      await send('udp', '127.0.0.1', 9999, 40001);
      await send('udp', '::1', 9999, 40002);
      await send('tcp', '127.0.0.1', 9998, 40003);
      await send('tcp', '::1', 9998, 40004);
      await run(['ip', 'netns', 'exec', NS, 'ping', '-c', '1', '-W', '1', '127.0.0.1']);
      await run(['ip', 'netns', 'exec', NS, 'ping', '-6', '-c', '1', '-W', '1', '::1']);
      await send('udp', '127.0.0.1', 9997, 40005);
      await waitFor('7 packets', () => (got.length >= 7 ? true : undefined));

      const by = (prefix: string): LoggedPacket => {
        const p = got.find((x) => x.prefix === prefix);
        assert.ok(p, `a packet with prefix ${prefix}: got ${got.map((x) => x.prefix).join(', ')}`);
        return p;
      };
      const udp4 = by('moat:t:udp4');
      assert.deepEqual(udp4.ip, {
        family: 'ipv4',
        src: '127.0.0.1',
        dst: '127.0.0.1',
        protocol: 17,
        protocolName: 'UDP',
        srcPort: 40001,
        dstPort: 9999,
      });
      assert.equal(udp4.group, GROUP);
      assert.equal(udp4.hook, 3, 'output');
      assert.equal(udp4.outdev, 1, 'lo');
      assert.equal(udp4.hwProtocol, 0x0800);
      assert.equal(udp4.timestamp, undefined, 'the kernel stamps prerouting/input/forward only');
      assert.equal(udp4.payload.length, 29, 'IPv4 + UDP + "x"');
      assert.deepEqual(by('moat:t:udp6').ip, {
        family: 'ipv6',
        src: '::1',
        dst: '::1',
        protocol: 17,
        protocolName: 'UDP',
        srcPort: 40002,
        dstPort: 9999,
      });
      for (const [prefix, family, sport] of [
        ['moat:t:syn', 'ipv4', 40003],
        ['moat:t:syn', 'ipv6', 40004],
      ] as const) {
        const p = got.find((x) => x.prefix === prefix && x.ip?.family === family);
        assert.ok(p, `${prefix} ${family}`);
        assert.equal(p.ip?.protocolName, 'TCP');
        assert.equal(p.ip?.srcPort, sport);
        assert.equal(p.ip?.dstPort, 9998);
        assert.equal(p.ip?.tcpFlags, 'SYN');
      }
      assert.deepEqual(by('moat:t:icmp').ip?.icmp, { type: 8, code: 0 });
      assert.equal(by('moat:t:icmp').ip?.protocolName, 'ICMP');
      assert.deepEqual(by('moat:t:icmp6').ip?.icmp, { type: 128, code: 0 });
      assert.equal(by('moat:t:icmp6').ip?.protocolName, 'ICMPv6');
      const input = by('moat:t:in');
      assert.equal(input.hook, 1, 'input');
      assert.equal(input.indev, 1, 'lo');
      assert.ok(input.timestamp instanceof Date);
      assert.ok(
        Math.abs(input.timestamp.getTime() - Date.now()) < 60_000,
        `timestamp ${input.timestamp.toISOString()}`,
      );

      assert.deepEqual(
        got.map((p) => p.seq),
        got.map((_, i) => i),
        'numbered from 0, none missing',
      );
      assert.deepEqual(r.stats(), {
        received: got.length,
        decoded: got.length,
        undecodable: 0,
        lost: 0,
        lostRecords: 0,
        malformed: 0,
      });
    } finally {
      await r.close();
    }
    assert.equal(r.stats().received, 7, 'the last stats line agrees');
  });

  test('1000 packets in a burst: every one, in order, nothing lost', async (t) => {
    const r = await NetnsNflogReader.open({ netns: NS, group: GROUP });
    try {
      const got = collect(r);
      const t0 = Date.now();
      await send('udp', '127.0.0.1', 9995, 40010, 1000);
      await waitFor('1000 packets', () => (got.length >= 1000 ? true : undefined), 10_000);
      const ms = Date.now() - t0;
      assert.equal(got.length, 1000);
      assert.ok(got.every((p, i) => p.seq === i && p.ip?.srcPort === 40010));
      const s = r.stats();
      assert.equal(s.lost + s.lostRecords, 0);
      assert.equal(s.decoded, 1000);
      t.diagnostic(`1000 packets sent and read through the child in ${ms} ms`);
    } finally {
      await r.close();
    }
  });

  test('a reader that dies is an error event; the group is free again after it', async () => {
    const r = await NetnsNflogReader.open({ netns: NS, group: GROUP });
    const error = once(r, 'error');
    // Not once(r, 'close'): that rejects on the 'error' event before it.
    const closed = new Promise((res) => r.once('close', () => res(undefined)));
    process.kill(r.pid!, 'SIGKILL');
    const [e] = (await error) as [Error];
    await closed;
    assert.match(e.message, /^NFLOG group 7 in netns moat-nflog-t\d+: the reader died \(signal SIGKILL\)/);
    const again = await NetnsNflogReader.open({ netns: NS, group: GROUP });
    await again.close();
  });

  test('a receive-buffer overrun is reported, and the group can be bound again', async () => {
    // A stopped reader with a small buffer: the kernel must drop batches of the burst.
    const r = await NetnsNflogReader.open({ netns: NS, group: GROUP, recvBuffer: 4096 });
    const got = collect(r);
    const errors: (Error & { code?: string })[] = [];
    r.on('error', (e) => errors.push(e));
    process.kill(r.pid!, 'SIGSTOP');
    try {
      await send('udp', '127.0.0.1', 9995, 40020, 3000);
    } finally {
      process.kill(r.pid!, 'SIGCONT');
    }
    await new Promise((res) => setTimeout(res, 1500));
    const s = r.stats();
    if (errors.length > 0) {
      // netlink@0.3.0 aborts on the overrun: the reader dies, and says why.
      assert.equal(errors[0]!.code, 'ENOBUFS');
      assert.match(errors[0]!.message, /the reader died \(signal SIGABRT\): a receive-buffer overrun/);
      assert.equal(s.lost, 1);
    } else {
      // A netlink that survives the overrun counts it, and the records lost exactly.
      assert.ok(s.lost >= 1, `lost ${s.lost}`);
      assert.equal(got.length + s.lostRecords, 3000);
    }
    await r.close();
    const again = await NetnsNflogReader.open({ netns: NS, group: GROUP });
    await again.close();
  });

  test('the child: exits when its stdin ends (its parent is gone), with a last stats line', async () => {
    const child = spawn('ip', ['netns', 'exec', NS, process.execPath, CHILD, '--group', String(GROUP)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines: { type: string }[] = [];
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (l) => lines.push(JSON.parse(l) as { type: string }));
    await waitFor('ready', () => (lines.some((l) => l.type === 'ready') ? true : undefined));
    const exited = once(child, 'close');
    child.stdin.end();
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    assert.equal(lines.at(-1)?.type, 'stats');
  });

  test('the child: bad arguments are a fatal line and exit 2', async () => {
    const child = spawn(process.execPath, [CHILD, '--group', 'seven'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 2);
    assert.deepEqual(JSON.parse(out), {
      type: 'fatal',
      message: 'nflog-child: --group: "seven" is not a non-negative integer',
    });
  });
});
