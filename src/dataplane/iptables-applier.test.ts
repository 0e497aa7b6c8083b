import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import { compile } from './compile.js';
import { IptablesWriter } from './iptables-applier.js';
import type { CommandResult, CommandRunner } from './runner.js';

const ok = (stdout = ''): CommandResult => ({ stdout, stderr: '', code: 0 });

/** A host whose `*-save` binaries print `saves[bin]`, with legacy tables loaded or not. */
function host(opts: { saves?: Record<string, string>; legacyLoaded?: boolean; version?: string }): {
  runner: CommandRunner;
  calls: string[][];
} {
  const calls: string[][] = [];
  return {
    calls,
    runner: {
      run(argv) {
        calls.push([...argv]);
        const bin = argv[0]!;
        if (bin === 'cat') return Promise.resolve(ok(opts.legacyLoaded === true ? 'mangle\nnat\n' : ''));
        if (argv[1] === '--version')
          return Promise.resolve(ok(`${bin} ${opts.version ?? 'v1.8.9 (nf_tables)'}\n`));
        if (bin.endsWith('-save')) return Promise.resolve(ok(opts.saves?.[bin] ?? ''));
        return Promise.resolve(ok());
      },
    },
  };
}

const rules = (n: number) =>
  Array.from({ length: n }, (_, i) => `-A KUBE-SVC -d 10.96.0.${i}/32 -j KUBE-X\n`).join('');

describe('IptablesWriter flavour', () => {
  const cases: {
    name: string;
    saves: Record<string, string>;
    legacyLoaded: boolean;
    version?: string;
    want: string;
    bin: string;
  }[] = [
    {
      name: 'kube-proxy in legacy mode: legacy, by its binaries',
      saves: { 'iptables-legacy-save': rules(30), 'iptables-nft-save': rules(2) },
      legacyLoaded: true,
      want: 'iptables-legacy',
      bin: 'iptables-legacy-save',
    },
    {
      name: 'kube-proxy in nft mode: nft, the plain binaries (they are nft)',
      saves: { 'iptables-legacy-save': rules(1), 'iptables-nft-save': rules(30) },
      legacyLoaded: true,
      want: 'iptables-nft',
      bin: 'iptables-save',
    },
    {
      name: 'legacy tables not loaded: not read (no module loaded), nft',
      saves: { 'iptables-legacy-save': rules(30) },
      legacyLoaded: false,
      want: 'iptables-nft',
      bin: 'iptables-save',
    },
    {
      name: 'empty host whose iptables is legacy: plain binaries',
      saves: {},
      legacyLoaded: false,
      version: 'v1.8.4 (legacy)',
      want: 'iptables-legacy',
      bin: 'iptables-save',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const h = host(c);
      const w = new IptablesWriter(h.runner);
      await w.counters();
      assert.equal(w.flavour?.name, c.want);
      const used = h.calls.filter((a) => a.includes('-c')).map((a) => a[0]);
      assert.deepEqual([...new Set(used)], [c.bin, c.bin.replace('iptables', 'ip6tables')]);
      if (!c.legacyLoaded) assert.ok(!h.calls.some((a) => a[0] === 'iptables-legacy-save'));
    });
  }

  it('a flavour asked for is used without probing', async () => {
    const h = host({});
    const w = new IptablesWriter(h.runner, { flavour: 'iptables-legacy' });
    await w.counters();
    assert.ok(
      h.calls.every((a) => a[0]!.startsWith('iptables-legacy') || a[0]!.startsWith('ip6tables-legacy')),
    );
  });
});

describe('IptablesWriter counters', () => {
  it("sums moat's commented rules over families and tables, by counter name", async () => {
    const v4 = [
      '*mangle',
      ':MOAT-POSTROUTING - [0:0]',
      '[5:300] -A MOAT-INGRESS -m set --match-set moat-d-1 dst -m comment --comment moat:acc_a -g MOAT-ACCEPT',
      '[2:120] -A MOAT-INGRESS -m comment --comment "moat:drop_b" -j DROP',
      '[9:900] -A KUBE-X -m comment --comment moat:acc_a -j ACCEPT',
      '[1:60] -A MOAT-EGRESS -j RETURN',
      'COMMIT',
    ].join('\n');
    const v6 =
      '[3:240] -A MOAT-INGRESS -m set --match-set moat-d-1-6 dst -m comment --comment moat:acc_a -g MOAT-ACCEPT\n';
    const h = host({
      saves: { 'iptables-nft-save': rules(1) },
    });
    const runner: CommandRunner = {
      run(argv, input) {
        if (argv[0] === 'iptables-save' && argv.includes('-c') && argv.includes('mangle'))
          return Promise.resolve(ok(v4));
        if (argv[0] === 'ip6tables-save' && argv.includes('-c') && argv.includes('mangle'))
          return Promise.resolve(ok(v6));
        return h.runner.run(argv, input);
      },
    };
    const got = await new IptablesWriter(runner).counters();
    // A foreign chain's rule with the same comment is not moat's and is not counted.
    assert.deepEqual(Object.fromEntries(got), {
      acc_a: { packets: 8, bytes: 540 },
      drop_b: { packets: 2, bytes: 120 },
    });
  });
});

describe('IptablesWriter incremental writes', () => {
  /** A host that answers every command and records what was written. */
  function recording() {
    const writes: { argv: string[]; input: string }[] = [];
    const runner: CommandRunner = {
      run(argv, input) {
        if (input !== undefined) writes.push({ argv: [...argv], input });
        if (argv[1] === '--version') return Promise.resolve(ok('iptables v1.8.9 (nf_tables)\n'));
        return Promise.resolve(ok());
      },
    };
    return { runner, writes };
  }
  const cluster = (labels: Record<string, string>[]) =>
    snapshot({
      namespaces: [ns('a')],
      nodes: [node('n1', ['192.168.0.1'])],
      pods: labels.map((l, i) => pod('a', `p${i}`, { labels: l, ips: [`10.0.0.${i + 1}`], nodeName: 'n1' })),
      policies: [
        netpol('a', 'web', {
          podSelector: sel({ app: 'web' }),
          ingress: [rule([podPeer(sel({ role: 'client' }))], [pport(80)])],
        }),
        netpol('a', 'db', {
          podSelector: sel({ app: 'db' }),
          ingress: [rule([podPeer(sel({ app: 'web' }))], [pport(5432)])],
        }),
      ],
    });
  const opts = { table: 'moat', nodeName: 'n1', podInterfaces: [] };

  it('a pod added changes set members only; a relabel adds before it deletes', async () => {
    const h = recording();
    const w = new IptablesWriter(h.runner, { selfPairs: 'set' });
    const base = [{ app: 'web' }, { app: 'db' }, { app: 'web' }];
    await w.replace(compile(cluster(base), opts));
    assert.ok(
      h.writes.some((x) => x.argv[0] === 'iptables-restore'),
      'first write: the chains',
    );
    h.writes.length = 0;

    // A client pod joins: members of the peer set, no chain written.
    await w.replace(compile(cluster([...base, { role: 'client' }]), opts));
    assert.deepEqual(
      h.writes.map((x) => x.argv[0]),
      ['ipset'],
    );
    assert.deepEqual(h.writes[0]!.input.split('\n').filter(Boolean).sort(), [
      'add moat-local_v4 10.0.0.4',
      'add moat-peer_4061d0faffa5250f_v4 10.0.0.4',
      'add moat-self_v4 10.0.0.4,10.0.0.4',
    ]);
    h.writes.length = 0;

    // The web pod becomes a db pod: it joins db's dispatch set before it leaves web's.
    await w.replace(
      compile(cluster([{ app: 'db' }, { app: 'db' }, { app: 'web' }, { role: 'client' }]), opts),
    );
    const text = h.writes.map((x) => x.input).join('');
    const add = text.search(/^add \S+ 10\.0\.0\.1$/m);
    const del = text.search(/^del \S+ 10\.0\.0\.1$/m);
    assert.ok(add >= 0 && del > add, text);
    assert.ok(!h.writes.some((x) => x.argv[0]!.includes('iptables')), 'no chain changed');
    h.writes.length = 0;

    // Without hash:net,net a local pod is one rule in each of the two chains holding the self
    // pairs: only those are written again.
    const rules = new IptablesWriter(h.runner, { selfPairs: 'rules' });
    await rules.replace(compile(cluster(base), opts));
    h.writes.length = 0;
    await rules.replace(compile(cluster([...base, { app: 'web' }]), opts));
    const restore = h.writes.filter((x) => x.argv[0] === 'iptables-restore');
    assert.equal(restore.length, 1);
    const declared = restore[0]!.input.split('\n').filter((l) => l.startsWith(':'));
    assert.deepEqual(declared, [':MOAT-egress_pods - [0:0]', ':MOAT-ingress_pods - [0:0]']);
    assert.match(restore[0]!.input, /-s 10\.0\.0\.4\/32 -d 10\.0\.0\.4\/32/);
    h.writes.length = 0;

    // Drift found: the next write is a full one again.
    const sawDrift = new IptablesWriter(h.runner, { selfPairs: 'rules' });
    await sawDrift.replace(compile(cluster(base), opts));
    assert.notDeepEqual(await sawDrift.drift(compile(cluster(base), opts)), []);
    h.writes.length = 0;
    await sawDrift.replace(compile(cluster(base), opts));
    assert.ok(h.writes.some((x) => x.argv[0] === 'iptables-restore'));
  });
});
