import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { cport, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import type { Pod, Snapshot } from '../model/types.js';
import { DataplaneApplier } from './applier.js';
import { parseConntrackList, type CtEntry } from './conntrack.js';
import { NetlinkConntrack, type ConntrackClient } from './ct-client.js';
import { NftSession, NftSessionError } from './nft-session.js';
import { localRunner, netnsRunner, type CommandResult, type CommandRunner } from './runner.js';

interface Call {
  argv: readonly string[];
  input?: string;
}

/**
 * Records every command (with the content of a `conntrack -R` file); nft succeeds unless
 * `failNext` says otherwise; `conntrack -L` lists `ctList`.
 */
function fakeRunner(): CommandRunner & {
  calls: Call[];
  failNext: number;
  ctList: string;
  batches: string[];
} {
  const r = {
    calls: [] as Call[],
    batches: [] as string[],
    failNext: 0,
    ctList: '',
    run(argv: readonly string[], input?: string) {
      r.calls.push({ argv, ...(input !== undefined ? { input } : {}) });
      if (argv[0] === 'conntrack' && argv[1] === '-R') r.batches.push(readFileSync(argv[2]!, 'utf8'));
      if (r.failNext > 0) {
        r.failNext--;
        return Promise.resolve({ stdout: '', stderr: 'Error: boom', code: 1 });
      }
      const list = argv[0] === 'conntrack' && argv[1] === '-L';
      return Promise.resolve({ stdout: list ? r.ctList : '', stderr: '', code: 0 });
    },
  };
  return r;
}

/** A `conntrack -L` line of an established TCP flow (no NAT). */
function tcpFlow(src: string, sport: number, dst: string, dport: number): string {
  return `tcp      6 431999 ESTABLISHED src=${src} dst=${dst} sport=${sport} dport=${dport} src=${dst} dst=${src} sport=${dport} dport=${sport} [ASSURED] mark=0 use=1\n`;
}

function snap(o: { extraPods?: Pod[]; webFrom?: string; deny?: boolean } = {}): Snapshot {
  return snapshot({
    namespaces: [ns('a'), ns('b')],
    nodes: [node('n1', ['192.168.0.1'])],
    pods: [
      pod('a', 'web', {
        labels: { app: 'web' },
        ips: ['10.0.0.1'],
        nodeName: 'n1',
        ports: [cport(80, 'TCP', 'http')],
      }),
      pod('a', 'db', { labels: { app: 'db' }, ips: ['10.0.0.2'], nodeName: 'n1' }),
      pod('a', 'cli', { labels: { app: 'cli' }, ips: ['10.0.0.3'], nodeName: 'n2' }),
      ...(o.extraPods ?? []),
    ],
    policies: [
      netpol('a', 'web', {
        podSelector: sel({ app: 'web' }),
        ingress: [rule([podPeer(sel({ app: o.webFrom ?? 'cli' }))], [pport('http')])],
      }),
      ...(o.deny === true ? [netpol('a', 'deny-db', { podSelector: sel({ app: 'db' }) })] : []),
    ],
  });
}

const nftCalls = (r: { calls: Call[] }) => r.calls.filter((c) => c.argv[0] === 'nft');

/** Every conntrack deletion asked for, one by one or in -R batches. */
function deletions(r: { calls: Call[]; batches: string[] }): string[] {
  const one = r.calls.filter((c) => c.argv[0] === 'conntrack' && c.argv[1] === '-D');
  const batched = r.batches.flatMap((b) => b.split('\n').filter((l) => l !== ''));
  return [...one.map((c) => c.argv.slice(1).join(' ')), ...batched].sort();
}

describe('DataplaneApplier (fake runner)', () => {
  it('replaces the table atomically first, then applies element-only diffs', async () => {
    const r = fakeRunner();
    const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' });
    const first = await ap.apply(snap());
    assert.equal(first.mode, 'full');
    const script = nftCalls(r)[0]!;
    assert.deepEqual(script.argv, ['nft', '-f', '-']);
    const lines = script.input!.split('\n');
    assert.deepEqual(lines.slice(0, 2), ['table inet moat {}', 'delete table inet moat']);
    assert.doesNotMatch(script.input!, /\bflush\b|\bqueue\b/);

    const second = await ap.apply(
      snap({ extraPods: [pod('a', 'cli2', { labels: { app: 'cli' }, ips: ['10.0.0.4'], nodeName: 'n2' })] }),
    );
    assert.equal(second.mode, 'incremental');
    const tx = nftCalls(r)[1]!.input!;
    assert.match(tx, /^add element inet moat peer_\w+_v4 \{ 10\.0\.0\.4 \}$/m);
    assert.doesNotMatch(tx, /chain|delete table/);
    assert.equal(
      (
        await ap.apply(
          snap({
            extraPods: [pod('a', 'cli2', { labels: { app: 'cli' }, ips: ['10.0.0.4'], nodeName: 'n2' })],
          }),
        )
      ).mode,
      'none',
    );
  });

  it('rebuilds changed chains in one transaction and deletes the flows the new rules drop', async () => {
    const r = fakeRunner();
    const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' });
    await ap.apply(snap());
    // The first (full) apply judged the flows of the pods it isolates (web): one listing, nothing
    // to delete in an empty table.
    assert.deepEqual(
      r.calls.filter((c) => c.argv[0] === 'conntrack').map((c) => c.argv.join(' ')),
      ['conntrack -L'],
    );
    r.calls.length = 0;
    r.ctList =
      tcpFlow('10.0.0.3', 40000, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.3', 40001, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.1', 40002, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.3', 40003, '10.0.0.1', 80);
    const res = await ap.apply(snap({ deny: true }));
    assert.equal(res.mode, 'incremental');
    assert.equal(nftCalls(r).length, 1);
    const tx = nftCalls(r)[0]!.input!;
    assert.match(tx, /^add chain inet moat in_\w+/m);
    assert.match(tx, /^add element inet moat ingress_v4 \{ 10\.0\.0\.2 : goto in_\w+ \}$/m);
    // db became isolated for ingress: the table is listed once after the commit, and all of db's
    // flows (found by reply source) go with one filter; cli -> web is not touched.
    const ct = r.calls.filter((c) => c.argv[0] === 'conntrack').map((c) => c.argv.join(' '));
    assert.deepEqual(ct, ['conntrack -L', 'conntrack -D -f ipv4 -r 10.0.0.2']);
    assert.ok(r.calls.findIndex((c) => c.argv[0] === 'conntrack') > r.calls.indexOf(nftCalls(r)[0]!));
    assert.deepEqual(res.conntrackDeleted, ['to 10.0.0.2 (3 flows)']);

    // Loosening back deletes the chain after its map element, and needs no conntrack cleanup.
    const calls = r.calls.length;
    const back = await ap.apply(snap());
    const tx2 = nftCalls(r)[1]!.input!;
    assert.ok(tx2.indexOf('delete element inet moat ingress_v4') < tx2.indexOf('delete chain'));
    assert.deepEqual(back.conntrackDeleted, []);
    assert.deepEqual(
      r.calls.slice(calls).map((c) => c.argv[0]),
      ['nft'],
    );
  });

  describe('with a conntrack client (ctnetlink)', () => {
    const FLOWS =
      tcpFlow('10.0.0.3', 40000, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.3', 40001, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.1', 40002, '10.0.0.2', 5432) +
      tcpFlow('10.0.0.3', 40003, '10.0.0.1', 80);
    /** A client listing FLOWS; `fail` makes list or delete reject, `errnos` answers deletes. */
    function fakeClient(o: { fail?: 'list' | 'delete'; errnos?: (e: CtEntry) => number } = {}) {
      const c = {
        deleted: [] as CtEntry[][],
        list: () =>
          o.fail === 'list'
            ? Promise.reject(new Error('child died'))
            : Promise.resolve(parseConntrackList(FLOWS)),
        delete: (entries: readonly CtEntry[]) => {
          c.deleted.push([...entries]);
          if (o.fail === 'delete') return Promise.reject(new Error('child died'));
          return Promise.resolve(entries.map((e) => o.errnos?.(e) ?? 0));
        },
        close: () => Promise.resolve(),
      } satisfies ConntrackClient & { deleted: CtEntry[][] };
      return c;
    }
    const ctCalls = (r: { calls: Call[] }) =>
      r.calls.filter((c) => c.argv[0] === 'conntrack').map((c) => c.argv.join(' '));

    it('deletes the dropped entries by exact tuple; conntrack-tools is not run', async () => {
      const r = fakeRunner();
      const client = fakeClient({ errnos: (e) => (e.orig.sport === 40001 ? 2 : 0) });
      const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' }, { conntrack: client });
      await ap.apply(snap());
      const res = await ap.apply(snap({ deny: true }));
      assert.deepEqual(ctCalls(r), []);
      assert.deepEqual(
        client.deleted
          .at(-1)!
          .map((e) => `${e.orig.src}:${e.orig.sport}`)
          .sort(),
        ['10.0.0.1:40002', '10.0.0.3:40000', '10.0.0.3:40001'],
      );
      // ENOENT: gone between the listing and the delete (expired, closed), not an error.
      assert.deepEqual(res.conntrackDeleted, [
        'tcp 10.0.0.1 -> 10.0.0.2 port 5432 (1 flow)',
        'tcp 10.0.0.3 -> 10.0.0.2 port 5432 (1 flow already gone)',
        'tcp 10.0.0.3 -> 10.0.0.2 port 5432 (1 flow)',
      ]);
      assert.deepEqual(res.conntrackErrors, []);
      assert.equal(res.conntrackFallback, undefined);
    });

    const fallbacks: [string, Parameters<typeof fakeClient>[0], string[], RegExp][] = [
      [
        'the listing fails',
        { fail: 'list' },
        ['conntrack -L', 'conntrack -D -f ipv4 -r 10.0.0.2'],
        /^list: child died/,
      ],
      ['the delete fails', { fail: 'delete' }, ['conntrack -D -f ipv4 -r 10.0.0.2'], /^delete: child died/],
      [
        'the kernel refuses an entry',
        { errnos: (e) => (e.orig.sport === 40002 ? 1 : 0) },
        ['conntrack -D -f ipv4 -r 10.0.0.2'],
        /^delete tcp 10\.0\.0\.1 -> 10\.0\.0\.2 port 5432: EPERM/,
      ],
    ];
    for (const [name, o, want, why] of fallbacks) {
      it(`falls back to conntrack-tools when ${name}`, async () => {
        const r = fakeRunner();
        r.ctList = FLOWS;
        const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' }, { conntrack: fakeClient(o) });
        await ap.apply(snap());
        r.calls.length = 0;
        const res = await ap.apply(snap({ deny: true }));
        assert.deepEqual(ctCalls(r), want);
        assert.deepEqual(res.conntrackDeleted, ['to 10.0.0.2 (3 flows)']);
        assert.match(res.conntrackFallback ?? '', why);
      });
    }
  });

  it('a starting applier never falls back to cutting every flow when conntrack cannot be listed', async () => {
    const r = fakeRunner();
    const inner = r.run.bind(r);
    r.run = (argv, input) => {
      if (argv[0] === 'conntrack' && argv[1] === '-L') {
        r.calls.push({ argv });
        return Promise.resolve({ stdout: '', stderr: 'conntrack: netlink error', code: 1 });
      }
      return inner(argv, input);
    };
    const res = await new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' }).apply(snap());
    assert.equal(res.mode, 'full');
    assert.deepEqual(res.conntrackDeleted, []);
    assert.match(res.conntrackErrors[0] ?? '', /conntrack -L: exit 1: conntrack: netlink error/);
    assert.ok(!r.calls.some((c) => c.argv[0] === 'conntrack' && c.argv[1] !== '-L'));
  });

  it('runs a conntrack deletion again when conntrack-tools aborted on a vanished entry', async () => {
    for (const [enoents, ok] of [
      [2, true],
      [9, false],
    ] as const) {
      const r = fakeRunner();
      const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' });
      await ap.apply(snap());
      r.ctList = tcpFlow('10.0.0.3', 40000, '10.0.0.2', 5432);
      let left: number = enoents;
      const inner = r.run.bind(r);
      r.run = (argv, input) => {
        if (argv[0] === 'conntrack' && argv[1] === '-D' && left > 0) {
          left--;
          r.calls.push({ argv });
          return Promise.resolve({
            stdout: '',
            stderr: "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist",
            code: 1,
          });
        }
        return inner(argv, input);
      };
      const res = await ap.apply(snap({ deny: true }));
      const del = r.calls.filter((c) => c.argv[0] === 'conntrack' && c.argv[1] === '-D');
      if (ok) {
        assert.deepEqual(res.conntrackDeleted, ['to 10.0.0.2 (1 flow)']);
        assert.deepEqual(res.conntrackErrors, []);
        assert.equal(del.length, 3);
      } else {
        // Bounded: it gives up after a few tries and reports the error.
        assert.deepEqual(res.conntrackDeleted, []);
        assert.match(res.conntrackErrors[0] ?? '', /such conntrack doesn't exist/);
        assert.equal(del.length, 5);
      }
    }
  });

  it('when the table cannot be listed, deletes every entry of every touched address', async () => {
    const r = fakeRunner();
    const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' });
    await ap.apply(snap());
    const inner = r.run.bind(r);
    r.run = (argv, input) =>
      argv[0] === 'conntrack' && argv[1] === '-L'
        ? Promise.resolve({ stdout: '', stderr: 'conntrack: Operation not permitted', code: 1 })
        : inner(argv, input);
    const res = await ap.apply(snap({ deny: true }));
    assert.deepEqual(res.conntrackDeleted, ['reply-src 10.0.0.2']);
    assert.ok(r.calls.some((c) => c.argv.join(' ') === 'conntrack -D -f ipv4 -r 10.0.0.2'));
  });

  it('a changed peer selector cuts the flows of removed peers only; conntrackCleanup=false skips it', async () => {
    for (const cleanup of [true, false]) {
      const r = fakeRunner();
      const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1', conntrackCleanup: cleanup });
      await ap.apply(snap());
      r.ctList =
        tcpFlow('10.0.0.3', 40000, '10.0.0.1', 80) + // cli -> web:http, allowed before, not after
        tcpFlow('10.0.0.2', 40001, '10.0.0.1', 80) + // db -> web:http, allowed after: kept
        tcpFlow('10.0.0.2', 40002, '10.0.0.1', 81); // db -> web:81, never allowed
      const res = await ap.apply(snap({ webFrom: 'db' }));
      const ct = r.calls.filter((c) => c.argv[0] === 'conntrack');
      if (cleanup) {
        // web's port 81 (never allowed), and cli's flow on port 80 by its flow key.
        assert.deepEqual(res.conntrackDeleted, [
          'tcp 10.0.0.3 -> 10.0.0.1 port 80 (1 flow)',
          'tcp to 10.0.0.1 port 81 (1 flow)',
        ]);
        assert.deepEqual(deletions(r), [
          '-D -f ipv4 -r 10.0.0.1 -p tcp --reply-port-src 80 -s 10.0.0.3 -d 10.0.0.1 --dport 80',
          '-D -f ipv4 -r 10.0.0.1 -p tcp --reply-port-src 81',
        ]);
      } else {
        assert.equal(ct.length, 0);
      }
    }
  });

  it('falls back to a full replace when the incremental transaction is rejected', async () => {
    const r = fakeRunner();
    const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' });
    await ap.apply(snap());
    r.failNext = 1;
    const res = await ap.apply(snap({ deny: true }));
    assert.equal(res.mode, 'full');
    assert.match(nftCalls(r).at(-1)!.input!, /^table inet moat \{\}\ndelete table inet moat\n/);
  });

  /** A session that records its scripts and answers `answer` (a string: throws it). */
  function fakeSession(answer: () => CommandResult | string = () => ({ stdout: '', stderr: '', code: 0 })) {
    const s = {
      scripts: [] as string[],
      warmed: 0,
      apply(script: string) {
        s.scripts.push(script);
        const a = answer();
        return typeof a === 'string' ? Promise.reject(new NftSessionError(a)) : Promise.resolve(a);
      },
      warm() {
        s.warmed++;
      },
      close: () => Promise.resolve(),
    };
    return s;
  }

  it('sends incremental transactions to the session, full replaces to nft -f', async () => {
    const r = fakeRunner();
    const session = fakeSession();
    const ap = new DataplaneApplier(r, { table: 'moat', nodeName: 'n1' }, { nft: session });
    assert.equal((await ap.apply(snap())).mode, 'full');
    assert.equal(session.warmed, 1);
    const res = await ap.apply(snap({ deny: true }));
    assert.equal(res.mode, 'incremental');
    assert.equal(res.nftSessionError, undefined);
    assert.equal(nftCalls(r).length, 1);
    assert.equal(session.scripts.length, 1);
    assert.match(session.scripts[0]!, /^add chain inet moat /m);
    // A script too long for one editline line goes to nft -f.
    const many = Array.from({ length: 1500 }, (_, i) =>
      pod('a', `x${i}`, { labels: { app: 'db' }, ips: [`10.1.${i >> 8}.${i & 255}`], nodeName: 'n1' }),
    );
    assert.equal((await ap.apply(snap({ deny: true, extraPods: many }))).mode, 'incremental');
    assert.equal(session.scripts.length, 1);
    assert.equal(nftCalls(r).length, 2);
    assert.ok(nftCalls(r)[1]!.input!.length > 16 * 1024);
  });

  it('a rejected transaction in the session is a full replace; so is a failed session, said in the result', async () => {
    for (const answer of [
      { stdout: '', stderr: 'Error: boom', code: 1 },
      'nft session: no answer in 10000 ms',
    ]) {
      const r = fakeRunner();
      const ap = new DataplaneApplier(
        r,
        { table: 'moat', nodeName: 'n1' },
        { nft: fakeSession(() => answer) },
      );
      await ap.apply(snap());
      const res = await ap.apply(snap({ deny: true }));
      assert.equal(res.mode, 'full');
      assert.match(nftCalls(r).at(-1)!.input!, /^table inet moat \{\}\ndelete table inet moat\n/);
      assert.equal(res.nftSessionError, typeof answer === 'string' ? answer : undefined);
    }
  });

  it('remove() deletes the table even if it is missing, in one transaction', async () => {
    const r = fakeRunner();
    await new DataplaneApplier(r, { table: 'moat_x' }).remove();
    assert.deepEqual(r.calls, [
      {
        argv: ['nft', '-f', '-'],
        input:
          'table inet moat_x {}\ndelete table inet moat_x\ntable bridge moat_x {}\ndelete table bridge moat_x\n',
      },
    ]);
  });
});

async function canUseNft(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const r = await localRunner().run(['nft', '--version']);
  return r.code === 0;
}

describe('DataplaneApplier (real nft in a throwaway netns)', async () => {
  const ok = await canUseNft();
  for (const via of ['ctnetlink', 'conntrack-tools'] as const) {
    it(
      `deletes exactly the conntrack entries the new rules drop (real conntrack table, ${via})`,
      { skip: ok ? false : 'needs root and nft' },
      async () => {
        const netns = `moat-test-ct-${randomBytes(4).toString('hex')}`;
        const local = localRunner();
        const add = await local.run(['ip', 'netns', 'add', netns]);
        assert.equal(add.code, 0, add.stderr);
        const client = via === 'ctnetlink' ? new NetlinkConntrack({ netns }) : undefined;
        try {
          const runner = netnsRunner(netns, local);
          const ap = new DataplaneApplier(runner, { table: 'moat', nodeName: 'n1' }, { conntrack: client });
          await ap.apply(snap());
          // Established flows to web (10.0.0.1:80 = http): from cli, from db, from db through a
          // service address (DNAT), and db -> web:81; inserted directly into this netns's table.
          const flows: [string, string, number, string?][] = [
            ['10.0.0.3', '10.0.0.1', 80],
            ['10.0.0.2', '10.0.0.1', 80],
            ['10.0.0.2', '10.0.0.1', 80, '10.96.0.10'],
            ['10.0.0.2', '10.0.0.1', 81],
          ];
          for (const [i, [src, dst, port, via]] of flows.entries()) {
            const sport = String(40000 + i);
            const ins = await runner.run([
              'conntrack',
              '-I',
              '-p',
              'tcp',
              '-s',
              src,
              '-d',
              via ?? dst,
              '--sport',
              sport,
              '--dport',
              via !== undefined ? '8080' : String(port),
              '-r',
              dst,
              '-q',
              src,
              '--reply-port-src',
              String(port),
              '--reply-port-dst',
              sport,
              '--state',
              'ESTABLISHED',
              '-t',
              '600',
            ]);
            assert.equal(ins.code, 0, ins.stderr);
          }
          // web now admits db instead of cli.
          const res = await ap.apply(snap({ webFrom: 'db' }));
          assert.deepEqual(res.conntrackErrors, []);
          const left = await runner.run(['conntrack', '-L']);
          const tuples = left.stdout
            .split('\n')
            .map((l) => /src=(\S+) dst=(\S+) sport=\d+ dport=(\d+)/.exec(l)) // the original direction
            .filter((m) => m !== null)
            .map((m) => `${m[1]} -> ${m[2]}:${m[3]}`)
            .sort();
          assert.deepEqual(tuples, ['10.0.0.2 -> 10.0.0.1:80', '10.0.0.2 -> 10.96.0.10:8080']);
          assert.equal(res.conntrackFallback, undefined);
          if (via === 'ctnetlink') {
            // By exact tuple: one label per flow key, each of the two cut flows once.
            assert.deepEqual(res.conntrackDeleted, [
              'tcp 10.0.0.2 -> 10.0.0.1 port 81 (1 flow)',
              'tcp 10.0.0.3 -> 10.0.0.1 port 80 (1 flow)',
            ]);
            assert.equal(client?.starts, 1);
          }
        } finally {
          await client?.close();
          await local.run(['ip', 'netns', 'delete', netns]);
        }
      },
    );
  }
  for (const via of ['nft -f', 'nft session'] as const)
    it(
      `applies, diffs, detects and repairs drift (${via})`,
      { skip: ok ? false : 'needs root and nft' },
      async () => {
        const netns = `moat-test-dp-${randomBytes(4).toString('hex')}`;
        const local = localRunner();
        const add = await local.run(['ip', 'netns', 'add', netns]);
        assert.equal(add.code, 0, add.stderr);
        const session = via === 'nft session' ? new NftSession({ netns }) : undefined;
        try {
          const runner = netnsRunner(netns, local);
          const ap = new DataplaneApplier(runner, { table: 'moat', nodeName: 'n1' }, { nft: session });
          // With attachments (an empty CNI cache), so the bridge table exists too.
          const withCni = (x: Snapshot): Snapshot => ({ ...x, attachments: [] });
          assert.equal((await ap.apply(withCni(snap()))).mode, 'full');
          assert.deepEqual(await ap.checkDrift(), { drifted: false, differences: [], repaired: false });
          const steps = [
            snap({ deny: true }),
            snap({
              deny: true,
              extraPods: [pod('a', 'cli2', { labels: { app: 'cli' }, ips: ['10.0.0.4'], nodeName: 'n2' })],
            }),
            snap({ webFrom: 'db' }),
            snap(),
          ];
          for (const s of steps) {
            const res = await ap.apply(withCni(s));
            assert.equal(res.mode, 'incremental');
            assert.equal(res.nftSessionError, undefined);
            assert.deepEqual(res.conntrackErrors, []);
            assert.deepEqual((await ap.checkDrift()).differences, []);
          }
          // Someone edits the table behind moat's back.
          const tamper = await runner.run(
            ['nft', '-f', '-'],
            'delete element inet moat self_v4 { 10.0.0.1 . 10.0.0.1 }\nadd rule inet moat ingress accept\n' +
              'flush chain bridge moat guard\n',
          );
          assert.equal(tamper.code, 0, tamper.stderr);
          const drift = await ap.checkDrift();
          assert.equal(drift.repaired, true);
          assert.ok(
            drift.differences.some((d) => d.startsWith('inet: set self_v4')),
            drift.differences.join('\n'),
          );
          assert.ok(
            drift.differences.some((d) => d.startsWith('inet: chain ingress')),
            drift.differences.join('\n'),
          );
          assert.ok(
            drift.differences.includes('bridge: chain guard: 0 rule(s), want 1'),
            drift.differences.join('\n'),
          );
          assert.deepEqual((await ap.checkDrift()).differences, []);
          await ap.remove();
          const list = await runner.run(['nft', 'list', 'tables']);
          assert.doesNotMatch(list.stdout, /moat/);
          if (session !== undefined) assert.equal(session.starts, 1);
        } finally {
          await session?.close();
          await local.run(['ip', 'netns', 'delete', netns]);
        }
      },
    );
});
