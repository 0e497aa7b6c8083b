import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseBackend, probeHost, type HostReport } from './probe.js';
import type { CommandResult, CommandRunner } from './runner.js';

/** A host described by what fails: an nft statement that does not load, a binary that is absent. */
interface FakeHost {
  /** Binaries not installed. */
  readonly absent?: readonly string[];
  /** nft script fragments the kernel (or an old nft) refuses, with the error text. */
  readonly nftRefuses?: readonly [string, string][];
  /** iptables match/target arguments refused. */
  readonly iptablesRefuses?: readonly string[];
  readonly netnsFails?: boolean;
  readonly iptablesVersion?: string;
  /** `-A` lines per *-save binary. */
  readonly saved?: Readonly<Record<string, number>>;
  readonly files?: Readonly<Record<string, string>>;
}

const ok = (stdout = ''): CommandResult => ({ stdout, stderr: '', code: 0 });
const fail = (stderr: string, code: number | null = 1): CommandResult => ({ stdout: '', stderr, code });

function fakeHost(h: FakeHost): { runner: CommandRunner; calls: string[][] } {
  const calls: string[][] = [];
  const runner: CommandRunner = {
    run(argv, input) {
      calls.push([...argv]);
      const inner = argv[0] === 'ip' && argv[1] === 'netns' && argv[2] === 'exec' ? argv.slice(4) : argv;
      const bin = inner[0]!;
      if (argv[0] === 'ip' && argv[2] === 'add')
        return Promise.resolve(h.netnsFails ? fail('Operation not permitted') : ok());
      if (argv[0] === 'ip' && argv[2] !== 'exec') return Promise.resolve(ok());
      if (h.absent?.includes(bin)) return Promise.resolve(fail(`exec of "${bin}" failed: ENOENT`, null));
      if (bin === 'nft' && inner[1] === '--version') return Promise.resolve(ok('nftables v1.0.6\n'));
      if (bin === 'nft' && input !== undefined) {
        const bad = h.nftRefuses?.find(([frag]) => input.includes(frag));
        return Promise.resolve(bad ? fail(`/dev/stdin:2:1-5: Error: ${bad[1]}\n`) : ok());
      }
      if (bin.endsWith('-save')) {
        const n = h.saved?.[bin] ?? 0;
        return Promise.resolve(ok(Array.from({ length: n }, () => '-A KUBE-X -j ACCEPT\n').join('')));
      }
      if (inner[1] === '--version')
        return Promise.resolve(
          ok(
            `${bin} ${bin.startsWith('ip') && h.iptablesVersion !== undefined ? h.iptablesVersion : 'v1.8.9 (nf_tables)'}\n`,
          ),
        );
      if (bin === 'ipset' && inner[1] === 'version')
        return Promise.resolve(ok('ipset v7.17, protocol version: 7\n'));
      if ((bin === 'iptables' || bin === 'ip6tables') && inner.includes('-A')) {
        const bad = h.iptablesRefuses?.find((a) => inner.includes(a));
        return Promise.resolve(
          bad ? fail(`${bin} v1.8.9 (nf_tables): Couldn't load match \`${bad}'`, 2) : ok(),
        );
      }
      return Promise.resolve(ok());
    },
  };
  return { runner, calls };
}

async function probe(h: FakeHost): Promise<{ report: HostReport; calls: string[][] }> {
  const { runner, calls } = fakeHost(h);
  const report = await probeHost({
    runner,
    scratch: 'moat-doctor-1',
    kernel: '5.15.167.4-microsoft-standard-WSL2',
    readFile: (p) => h.files?.[p],
  });
  return { report, calls };
}

describe('host probe and backend choice', () => {
  it('a full host: nftables, and every check passes', async () => {
    const { report } = await probe({ files: { '/proc/sys/net/bridge/bridge-nf-call-iptables': '1\n' } });
    const v = chooseBackend(report);
    assert.equal(v.chosen, 'nftables');
    assert.deepEqual(v.missing, { nftables: [], iptables: [] });
  });

  const table: { name: string; host: FakeHost; chosen: string | undefined; missing: string[] }[] = [
    {
      name: 'WSL2-like: no nft queue, no nft ct -> iptables',
      host: {
        nftRefuses: [
          ['queue num', 'Could not process rule: No such file or directory'],
          ['ct state', 'Could not process rule: No such file or directory'],
        ],
      },
      chosen: 'iptables',
      missing: ['nft.ct'],
    },
    {
      name: 'an nft too old for th dport -> iptables',
      host: { nftRefuses: [['th dport', 'syntax error, unexpected th']] },
      chosen: 'iptables',
      missing: ['nft.concat'],
    },
    {
      name: 'no nft binary -> iptables',
      host: { absent: ['nft'] },
      chosen: 'iptables',
      missing: [
        'nft.binary',
        'nft.table',
        'nft.ct',
        'nft.vmap',
        'nft.concat',
        'nft.interval',
        'nft.counter',
        'nft.fib',
      ],
    },
    {
      name: 'no nft ct and no xt_set -> none',
      host: {
        nftRefuses: [['ct state', 'Could not process rule: No such file or directory']],
        iptablesRefuses: ['set'],
      },
      chosen: undefined,
      missing: ['nft.ct'],
    },
  ];
  for (const c of table) {
    it(c.name, async () => {
      const { report } = await probe(c.host);
      const v = chooseBackend(report);
      assert.equal(v.chosen, c.chosen, v.why);
      assert.deepEqual(v.missing.nftables, c.missing);
      // queue is never required: kube-network-policies needs it, moat does not.
      assert.ok(!v.missing.nftables.includes('nft.queue'));
    });
  }

  it('the error text of the tool is the detail, and the fix is named', async () => {
    const { report } = await probe({ nftRefuses: [['th dport', 'syntax error, unexpected th']] });
    const c = report.checks.find((x) => x.id === 'nft.concat')!;
    assert.equal(c.ok, false);
    assert.match(c.detail, /syntax error, unexpected th/);
    assert.match(c.fix!, /nftables >= 0\.9\.2/);
  });

  it('nothing half-checked: without a scratch namespace nothing is usable, and nothing runs on the host', async () => {
    const { report, calls } = await probe({ netnsFails: true });
    assert.equal(report.scratch.ok, false);
    assert.match(report.scratch.detail, /Operation not permitted/);
    const v = chooseBackend(report);
    assert.equal(v.chosen, undefined);
    assert.match(v.why, /neither backend can enforce here/);
    // Only version queries and *-save listings ran outside the namespace.
    const changing = calls.filter(
      (a) =>
        a[0] !== 'ip' &&
        !a.includes('--version') &&
        !(a[0] === 'ipset' && a[1] === 'version') &&
        !a[0]!.endsWith('-save'),
    );
    assert.deepEqual(changing, []);
  });

  it('every change happens inside the scratch namespace, which is deleted', async () => {
    const { calls } = await probe({});
    for (const a of calls) {
      const harmless =
        a.includes('--version') || a[0]!.endsWith('-save') || (a[0] === 'ipset' && a[1] === 'version');
      if (a[0] === 'ip') assert.equal(a[3], 'moat-doctor-1', a.join(' '));
      else assert.ok(harmless, a.join(' '));
    }
    assert.deepEqual(calls.at(-1), ['ip', 'netns', 'delete', 'moat-doctor-1']);
  });

  it('iptables mode: the flavour holding more rules, as kube-proxy decides', async () => {
    const legacy = await probe({
      saved: { 'iptables-legacy-save': 40, 'iptables-nft-save': 3 },
      files: { '/proc/net/ip_tables_names': 'filter\nnat\n' },
    });
    assert.equal(legacy.report.iptablesMode?.mode, 'legacy');
    // Legacy tables the kernel does not have are not listed (no module is loaded by the probe).
    const nft = await probe({ saved: { 'iptables-legacy-save': 40, 'iptables-nft-save': 3 } });
    assert.equal(nft.report.iptablesMode?.mode, 'nft');
    assert.ok(!nft.calls.some((a) => a[0] === 'iptables-legacy-save'));
    const empty = await probe({ iptablesVersion: 'v1.8.9 (legacy)' });
    assert.equal(empty.report.iptablesMode?.mode, 'legacy');
    assert.match(empty.report.iptablesMode.why, /no rules in either/);
  });

  it('--backend names one: judged alone', async () => {
    const { report } = await probe({ iptablesRefuses: ['conntrack'] });
    assert.equal(chooseBackend(report, 'nftables').chosen, 'nftables');
    const v = chooseBackend(report, 'iptables');
    assert.equal(v.chosen, undefined);
    assert.match(v.why, /iptables was asked for, but this host lacks: iptables\.xt_conntrack/);
  });
});
