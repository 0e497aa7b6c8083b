// SCTP with real packets between two network namespaces, over raw sockets (no SCTP sockets needed):
// an INIT from a's helper, an INIT-ACK from b's, and conntrack in b must see a valid exchange.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, tryRun } from '../../src/lab/exec.js';
import { python3Available, SctpPodProcess } from '../../src/lab/sctp.js';

const A = 'moatsctp-a';
const B = 'moatsctp-b';
const A_IP = '10.250.0.1';
const B_IP = '10.250.0.2';
const B_IP6 = 'fd00:250::2';

const skip: string | false =
  process.getuid?.() !== 0
    ? 'skipped: the SCTP lab test needs root (it creates network namespaces and nft tables)'
    : !(await python3Available())
      ? 'skipped: the SCTP lab test needs python3'
      : false;

async function removeNetns(): Promise<void> {
  for (const n of [A, B]) await tryRun(['ip', 'netns', 'del', n]);
}

async function createNetns(): Promise<void> {
  await run(['ip', 'netns', 'add', A]);
  await run(['ip', 'netns', 'add', B]);
  // Both ends are created inside the namespaces: nothing appears in the host's namespace.
  await run([
    'ip',
    '-n',
    A,
    'link',
    'add',
    'moatsctpa',
    'type',
    'veth',
    'peer',
    'name',
    'moatsctpb',
    'netns',
    B,
  ]);
  for (const [ns, dev, ip4, ip6] of [
    [A, 'moatsctpa', `${A_IP}/24`, 'fd00:250::1/64'],
    [B, 'moatsctpb', `${B_IP}/24`, `${B_IP6}/64`],
  ] as const) {
    await run(['ip', '-n', ns, 'addr', 'add', ip4, 'dev', dev]);
    await run(['ip', '-n', ns, 'addr', 'add', ip6, 'dev', dev, 'nodad']);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  // Right after the veth comes up, neighbour solicitations go unanswered for up to a second or so:
  // wait until both families really pass packets, so a probe's timeout means "no answer".
  for (const ip of [B_IP, B_IP6]) await run(['ip', 'netns', 'exec', A, 'ping', '-c', '1', '-w', '5', ip]);
}

function nft(ns: string, script: string): Promise<unknown> {
  return run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], script);
}

async function counters(ns: string): Promise<Map<string, number>> {
  const { stdout } = await run([
    'ip',
    'netns',
    'exec',
    ns,
    'nft',
    '-j',
    'list',
    'counters',
    'table',
    'inet',
    'moatsctp',
  ]);
  const json = JSON.parse(stdout) as { nftables: { counter?: { name: string; packets: number } }[] };
  return new Map(
    json.nftables.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets] as const] : [])),
  );
}

test('lab: SCTP INIT/INIT-ACK over raw sockets between two network namespaces', { skip }, async (t) => {
  await removeNetns();
  let a: SctpPodProcess | undefined;
  let b: SctpPodProcess | undefined;
  try {
    await createNetns();
    a = await SctpPodProcess.start(A, { ports: [], ipv6: true });
    b = await SctpPodProcess.start(B, { ports: [5000], ipv6: true });
    const client = a;

    await t.test('IPv4: b:5000 answers with an INIT-ACK', async () => {
      assert.deepEqual(await client.probe(B_IP, 5000, 1000), { ok: true, detail: 'init-ack' });
    });

    await t.test('IPv6: b:5000 answers with an INIT-ACK', async () => {
      assert.deepEqual(await client.probe(B_IP6, 5000, 1000), { ok: true, detail: 'init-ack' });
    });

    await t.test('a port b does not serve: no answer', async () => {
      assert.deepEqual(await client.probe(B_IP, 5001, 600), { ok: false, detail: 'timeout' });
      assert.deepEqual(await client.probe(B_IP6, 5001, 600), { ok: false, detail: 'timeout' });
    });

    await t.test('nft drops sctp dport 5000 in b: timeout', async () => {
      await nft(
        B,
        'table inet moatsctp {\n' +
          '  chain input { type filter hook input priority 0; policy accept; sctp dport 5000 drop; }\n' +
          '}\n',
      );
      try {
        assert.deepEqual(await client.probe(B_IP, 5000, 600), { ok: false, detail: 'timeout' });
        assert.deepEqual(await client.probe(B_IP6, 5000, 600), { ok: false, detail: 'timeout' });
      } finally {
        await run(['ip', 'netns', 'exec', B, 'nft', 'delete', 'table', 'inet', 'moatsctp']);
      }
      assert.deepEqual(
        await client.probe(B_IP, 5000, 1000),
        { ok: true, detail: 'init-ack' },
        'allowed again',
      );
    });

    await t.test('conntrack: INIT is new, INIT-ACK established, nothing invalid', async () => {
      // In a, conntrack checks the INIT-ACK's CRC32c on the way in (as b's does the INIT's).
      await nft(
        A,
        'table inet moatsctp {\n' +
          '  counter established {}\n  counter invalid {}\n' +
          '  chain input {\n    type filter hook input priority 0; policy accept;\n' +
          '    ct state established sctp sport 5000 counter name established\n' +
          '    meta l4proto sctp ct state invalid counter name invalid\n  }\n' +
          '}\n',
      );
      await nft(
        B,
        'table inet moatsctp {\n' +
          '  counter new {}\n  counter established {}\n  counter invalid {}\n  counter unreach {}\n' +
          '  chain input {\n    type filter hook input priority 0; policy accept;\n' +
          '    ct state new sctp dport 5000 counter name new\n' +
          '    meta l4proto sctp ct state invalid counter name invalid\n  }\n' +
          '  chain output {\n    type filter hook output priority 0; policy accept;\n' +
          '    ct state established sctp sport 5000 counter name established\n' +
          '    ct state invalid counter name invalid\n' +
          // With a raw socket consuming the packets the kernel must not also answer
          // "protocol unreachable" (ICMP) / "unrecognized next header" (ICMPv6).
          '    icmp type destination-unreachable counter name unreach\n' +
          '    icmpv6 type parameter-problem counter name unreach\n  }\n' +
          '}\n',
      );
      try {
        assert.deepEqual(await client.probe(B_IP, 5000, 1000), { ok: true, detail: 'init-ack' });
        assert.deepEqual(await client.probe(B_IP6, 5000, 1000), { ok: true, detail: 'init-ack' });
        // The ABORT that follows each INIT-ACK is judged at b's input: let it arrive.
        await new Promise((r) => setTimeout(r, 200));
        const c = await counters(B);
        assert.ok((c.get('new') ?? 0) >= 2, `new: ${c.get('new')}`);
        assert.ok((c.get('established') ?? 0) >= 2, `established: ${c.get('established')}`);
        assert.equal(c.get('invalid'), 0, 'invalid');
        assert.equal(c.get('unreach'), 0, 'ICMP errors from b');
        const ca = await counters(A);
        assert.ok((ca.get('established') ?? 0) >= 2, `established in a: ${ca.get('established')}`);
        assert.equal(ca.get('invalid'), 0, 'invalid in a');
      } finally {
        await run(['ip', 'netns', 'exec', A, 'nft', 'delete', 'table', 'inet', 'moatsctp']);
        await run(['ip', 'netns', 'exec', B, 'nft', 'delete', 'table', 'inet', 'moatsctp']);
      }
    });

    await t.test('50 probes in flight at once all succeed', async () => {
      // Ten probes of a closed port in flight with them must time out without disturbing the rest.
      const [results, closed] = await Promise.all([
        Promise.all(Array.from({ length: 50 }, (_, i) => client.probe(i % 2 ? B_IP6 : B_IP, 5000, 3000))),
        Promise.all(Array.from({ length: 10 }, (_, i) => client.probe(i % 2 ? B_IP6 : B_IP, 5001, 500))),
      ]);
      assert.equal(results.length, 50);
      assert.deepEqual(
        results.filter((r) => !r.ok || r.detail !== 'init-ack'),
        [],
      );
      assert.deepEqual(
        new Set(closed.map((r) => JSON.stringify(r))),
        new Set(['{"ok":false,"detail":"timeout"}']),
      );
    });

    await t.test('the same helper answers and probes: b probes a (a serves nothing)', async () => {
      assert.deepEqual(await b!.probe(A_IP, 5000, 500), { ok: false, detail: 'timeout' });
    });

    await t.test('stop: the helper exits on stdin EOF; later probes fail at once', async () => {
      await b!.stop();
      assert.deepEqual(await b!.probe(A_IP, 5000, 500), { ok: false, detail: 'sctp helper exited' });
      // Nothing answers in b any more; with no raw socket there the kernel rejects the INIT itself.
      assert.deepEqual(await client.probe(B_IP, 5000, 600), { ok: false, detail: 'timeout' });
    });

    await t.test('start fails clearly in a namespace that does not exist', async () => {
      await assert.rejects(
        SctpPodProcess.start('moatsctp-missing', { ports: [], ipv6: false }),
        /lab SCTP helper in moatsctp-missing: exited/,
      );
    });
  } finally {
    await a?.stop();
    await b?.stop();
    await removeNetns();
  }
});
