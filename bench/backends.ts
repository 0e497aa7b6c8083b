// The two backends side by side in one run (root): nftables (sets, verdict maps, one atomic nft
// transaction, incremental updates) and iptables + ipset (ipset restore/swap, iptables-restore
// --noflush of moat's chains; every change a full replace).
// Part 1, rulesets: a PODS/POLICIES cluster, node-0's share, in a throwaway netns per backend; each
// run (backends in ABBA order over runs) times the first apply through the agent's applier
// (DataplaneApplier, with IptablesWriter for iptables), then CHANGES each of: one pod added on node-0,
// one on another node, one node-0 policy changed, each timed until apply() returns (the kernel
// enforces the change for new connections; conntrack cleanup is on, the table is empty). Rules,
// chains, sets and set entries are read back from the kernel.
// Part 2, traffic: client netns -- node netns -- server netns (bench/dataplane-traffic.ts's
// topology and 10,000-pod / 1,000-policy cluster), rounds of none / conntrack / nftables / iptables in a
// rotating order (each round has all four back to back; ratios per round): new connections/s on
// 8 sockets, iperf3 Gbit/s, connect latency. "none": no rules at all in the node namespace;
// "conntrack": only nft rules that accept established flows (conntrack's own cost, which any
// stateful policy pays).
//   node dist/bench/backends.js [PODS:POLICIES=10000:1000] [RUNS=5] [CHANGES=10] [ROUNDS=6] [RATE_MS=3000]
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  compile,
  NetlinkConntrack,
  netnsRunner,
  DataplaneApplier,
  NftSession,
  parseNftJson,
  renderNft,
  type CommandRunner,
} from '../src/dataplane/index.js';
import { IptablesWriter } from '../src/dataplane/iptables-applier.js';
import type { Backend } from '../src/dataplane/probe.js';
import { cport, netpol, pod, podPeer, pport, rule, sel } from '../src/model/build.js';
import type { Snapshot } from '../src/model/types.js';
import { parseSize } from './admin-policies.js';
import { generate } from './dataplane-load.js';
import {
  baselineScript,
  benchSnapshot,
  inNs,
  IPERF_PORT,
  PORT,
  SERVER,
  setup,
  spread,
  TABLE,
  TCP_LOAD,
  waitListening,
} from './dataplane-traffic.js';
import { BenchNetns, isRoot, median, percentile, sh } from './netns.js';

const BACKENDS: readonly Backend[] = ['nftables', 'iptables'];
type Kind = 'first' | 'pod+local' | 'pod+remote' | 'policy';

function applierFor(backend: Backend, netns: string): DataplaneApplier {
  const runner = netnsRunner(netns);
  const conntrack = new NetlinkConntrack({ netns });
  return new DataplaneApplier(
    runner,
    { table: TABLE, nodeName: 'node-0' },
    backend === 'iptables'
      ? { conntrack, writer: new IptablesWriter(runner) }
      : { conntrack, nft: new NftSession({ netns }) },
  );
}

interface Size {
  rules: number;
  chains: number;
  sets: number;
  entries: number;
}

/** What the kernel holds of moat's, read back with the backend's own listing tools. */
async function kernelSize(backend: Backend, runner: CommandRunner): Promise<Size> {
  const out = async (argv: string[]) => {
    const r = await runner.run(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  if (backend === 'nftables') {
    const size: Size = { rules: 0, chains: 0, sets: 0, entries: 0 };
    for (const family of ['inet', 'bridge']) {
      const r = await runner.run(['nft', '-j', 'list', 'table', family, TABLE]);
      if (r.code !== 0) continue;
      const t = parseNftJson(r.stdout);
      size.chains += t.chains.size;
      for (const c of t.chains.values()) size.rules += c.rules;
      size.sets += t.sets.size;
      for (const s of t.sets.values()) size.entries += s.size;
    }
    return size;
  }
  let text = '';
  for (const bin of ['iptables-save', 'ip6tables-save']) text += await out([bin]);
  const ipset = await out(['ipset', 'save']);
  const count = (s: string, re: RegExp) => s.split('\n').filter((l) => re.test(l)).length;
  return {
    rules: count(text, /^-A MOAT-/),
    chains: count(text, /^:MOAT-/),
    sets: count(ipset, /^create moat-/),
    entries: count(ipset, /^add moat-/),
  };
}

function ipOf(i: number): string {
  return `10.200.${(i >> 8) & 255}.${i & 255}`;
}

async function rulesets(p: number, q: number, runs: number, changes: number, nsx: BenchNetns): Promise<void> {
  const base = generate(p, q);
  const netns = { nftables: nsx.add('rn'), iptables: nsx.add('ri') };
  const times = Object.fromEntries(
    BACKENDS.map((b) => [b, { first: [], 'pod+local': [], 'pod+remote': [], policy: [] }]),
  ) as unknown as Record<Backend, Record<Kind, number[]>>;
  const sizes: Partial<Record<Backend, Size>> = {};
  const modes: Record<Backend, Set<string>> = { nftables: new Set(), iptables: new Set() };
  let n = 0;
  for (let r = 0; r < runs; r++) {
    for (const b of r % 2 === 0 ? BACKENDS : [...BACKENDS].reverse()) {
      const ap = applierFor(b, netns[b]);
      let snap: Snapshot = base;
      try {
        const t0 = performance.now();
        await ap.apply(snap);
        times[b].first.push(performance.now() - t0);
        sizes[b] ??= await kernelSize(b, netnsRunner(netns[b]));
        const idx = snap.policies.findIndex((x) => x.namespace === 'ns-0' && x.name === 'from-app-1');
        for (let i = 0; i < changes; i++) {
          for (const kind of ['pod+local', 'pod+remote', 'policy'] as const) {
            n++;
            if (kind === 'policy') {
              const policies = [...snap.policies];
              policies[idx] = netpol('ns-0', 'from-app-1', {
                podSelector: sel({ app: 'app-1' }),
                ingress: [rule([podPeer(sel({ app: 'app-2' }))], [pport(8080 + (n % 2)), pport('http')])],
              });
              snap = { ...snap, policies };
            } else {
              const added = pod(`ns-${n % 100}`, `new-${n}`, {
                labels: { app: `app-${n % 10}`, tier: n % 3 === 0 ? 'front' : 'back' },
                ips: [ipOf(n)],
                nodeName: kind === 'pod+local' ? 'node-0' : 'node-1',
                ports: [cport(8080, 'TCP', 'http')],
              });
              snap = { ...snap, pods: [...snap.pods, added] };
            }
            const t1 = performance.now();
            const res = await ap.apply(snap);
            times[b][kind].push(performance.now() - t1);
            modes[b].add(res.mode);
          }
        }
        const drift = await ap.checkDrift();
        if (drift.drifted) throw new Error(`${b}: drift after the changes: ${drift.differences.join('; ')}`);
      } finally {
        await ap.remove();
        await ap.close();
      }
      process.stdout.write(
        `  run ${r + 1} ${b.padEnd(8)}: first apply ${times[b].first.at(-1)!.toFixed(0)} ms; ` +
          (['pod+local', 'pod+remote', 'policy'] as const)
            .map((k) => `${k} p50 ${median(times[b][k].slice(-changes)).toFixed(1)} ms`)
            .join(', ') +
          '\n',
      );
    }
  }
  const f = (x: number) => x.toFixed(1);
  const local = base.pods.filter((x) => x.nodeName === 'node-0').length;
  process.stdout.write(
    `rulesets: ${p} pods / ${q} policies, node-0's share (${local} local pods), ${runs} runs x ${changes} changes of each kind, conntrack cleanup on\n`,
  );
  for (const b of BACKENDS) {
    const s = sizes[b]!;
    const t = times[b];
    process.stdout.write(
      `  ${b.padEnd(8)} in the kernel: ${s.rules} rules, ${s.chains} chains, ${s.sets} sets, ${s.entries} set entries; ` +
        `first apply median ${f(median(t.first))} ms (${f(Math.min(...t.first))}-${f(Math.max(...t.first))}); ` +
        (['pod+local', 'pod+remote', 'policy'] as const)
          .map((k) => `${k} p50 ${f(median(t[k]))} p99 ${f(percentile(t[k], 99))} ms`)
          .join('; ') +
        `; apply modes: ${[...modes[b]].join(', ')}\n`,
    );
  }
  const ratio = (k: Kind) => median(times.iptables[k]) / median(times.nftables[k]);
  process.stdout.write(
    `  iptables/nftables (medians): first apply ${ratio('first').toFixed(2)}, pod+local ${ratio('pod+local').toFixed(2)}, ` +
      `pod+remote ${ratio('pod+remote').toFixed(2)}, policy ${ratio('policy').toFixed(2)}\n`,
  );
}

type Variant = 'none' | 'conntrack' | Backend;

async function traffic(rounds: number, rateMs: number, nsx: BenchNetns): Promise<void> {
  const snap = benchSnapshot();
  const rs = compile(snap, { table: TABLE, nodeName: 'node-0', podInterfaces: ['moat*'] });
  const { client, node, server } = setup(nsx);
  const nodeRunner = netnsRunner(node);
  const ipt = new IptablesWriter(nodeRunner);
  nsx.spawnIn(server, ['node', TCP_LOAD, 'serve', String(PORT)]);
  nsx.spawnIn(server, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
  await waitListening(server, PORT);
  await waitListening(server, IPERF_PORT);
  const nftText = renderNft(rs);
  const clear = async () => {
    for (const family of ['inet', 'bridge']) await nodeRunner.run(['nft', 'delete', 'table', family, TABLE]);
    await ipt.remove();
  };
  const loadMs: Record<Backend, number[]> = { nftables: [], iptables: [] };
  const load = async (v: Variant) => {
    await clear();
    const t0 = performance.now();
    if (v === 'conntrack') sh(['ip', 'netns', 'exec', node, 'nft', '-f', '-'], baselineScript());
    if (v === 'nftables') sh(['ip', 'netns', 'exec', node, 'nft', '-f', '-'], nftText);
    if (v === 'iptables') await ipt.replace(rs);
    if (v === 'nftables' || v === 'iptables') loadMs[v].push(performance.now() - t0);
  };
  // Each ruleset really admits the flow through its accept rules (their counters move).
  const hits: Record<Backend, string[]> = { nftables: [], iptables: [] };
  for (const b of BACKENDS) {
    await load(b);
    inNs(client, ['node', TCP_LOAD, 'latency', SERVER, String(PORT), '3']);
    if (b === 'nftables') {
      const counters = inNs(node, ['nft', 'list', 'counters', 'table', 'inet', TABLE]);
      hits[b] = [...counters.matchAll(/counter (a_\w+) \{\s*packets (\d+)/g)]
        .filter((m) => Number(m[2]) > 0)
        .map((m) => m[1]!);
    } else {
      hits[b] = [...(await ipt.counters())]
        .filter(([name, c]) => name.startsWith('a_') && c.packets > 0)
        .map(([name]) => name);
    }
    if (hits[b].length === 0) throw new Error(`${b}: the test flow hit no accept rule`);
  }
  const variants: readonly Variant[] = ['none', 'conntrack', 'nftables', 'iptables'];
  const empty = (): Record<Variant, number[]> => ({ none: [], conntrack: [], nftables: [], iptables: [] });
  const [rate, gbps, lat] = [empty(), empty(), empty()];
  try {
    for (let r = 0; r < rounds; r++) {
      const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
      for (const v of order) {
        await load(v);
        const c = JSON.parse(
          inNs(client, ['node', TCP_LOAD, 'rate', SERVER, String(PORT), String(rateMs), '8']),
        ) as { connections: number; errors: number; ms: number };
        if (c.errors > 0) process.stderr.write(`round ${r + 1} ${v}: ${c.errors} connect errors\n`);
        rate[v].push(c.connections / (c.ms / 1000));
        const ip = JSON.parse(
          inNs(client, ['iperf3', '-c', SERVER, '-p', String(IPERF_PORT), '-t', '2', '-J']),
        ) as { end: { sum_received: { bits_per_second: number } } };
        gbps[v].push(ip.end.sum_received.bits_per_second / 1e9);
        const l = JSON.parse(
          inNs(client, ['node', TCP_LOAD, 'latency', SERVER, String(PORT), '600']),
        ) as number[];
        lat[v].push(...l.slice(50));
        process.stdout.write(
          `  round ${r + 1} ${v.padEnd(8)}: ${rate[v].at(-1)!.toFixed(0)} conn/s, ${gbps[v].at(-1)!.toFixed(2)} Gbit/s, connect p50 ${percentile(l, 50)} us\n`,
        );
      }
    }
  } finally {
    await clear();
  }
  const perRound = (xs: Record<Variant, number[]>, a: Variant, b: Variant) =>
    spread(
      xs[a].map((x, i) => x / xs[b][i]!),
      3,
    );
  const ratios = (xs: Record<Variant, number[]>) =>
    (
      [
        ['nftables', 'none'],
        ['iptables', 'none'],
        ['nftables', 'conntrack'],
        ['iptables', 'conntrack'],
        ['iptables', 'nftables'],
      ] as const
    )
      .map(([a, b]) => `${a}/${b} ${perRound(xs, a, b)}`)
      .join('; ');
  const rules = rs.chains.reduce((k, c) => k + c.rules.length, 0);
  process.stdout.write(
    [
      `traffic: 10,000 pods / ${snap.policies.length} policies, node-0's share (nft model: ${rs.sets.length} sets, ${rules} rules); ${rounds} rounds, rotating order; rate ${rateMs} ms on 8 sockets`,
      `  accept rules hit by the test flow: nftables ${hits.nftables.join(', ')}; iptables ${hits.iptables.join(', ')}`,
      `  full load into the node: nftables ${spread(loadMs.nftables)} ms, iptables ${spread(loadMs.iptables)} ms`,
      `  connections/s  ${variants.map((v) => `${v} ${spread(rate[v])}`).join('  ')}`,
      `                 per round: ${ratios(rate)}`,
      `  iperf3 Gbit/s  ${variants.map((v) => `${v} ${spread(gbps[v], 2)}`).join('  ')}`,
      `                 per round: ${ratios(gbps)}`,
      `  connect us     ${variants.map((v) => `${v} p50 ${percentile(lat[v], 50)} p99 ${percentile(lat[v], 99)}`).join('; ')}`,
    ].join('\n') + '\n',
  );
}

async function main(): Promise<void> {
  if (!isRoot()) {
    process.stdout.write('backends: needs root (network namespaces); skipped\n');
    return;
  }
  const [p, q] = parseSize(process.argv[2] ?? '10000:1000', [10000, 1000, 0]);
  const runs = Math.min(Math.max(Number(process.argv[3] ?? 5), 1), 50);
  const changes = Math.min(Math.max(Number(process.argv[4] ?? 10), 1), 200);
  const rounds = Math.min(Math.max(Number(process.argv[5] ?? 6), 0), 40);
  const rateMs = Math.min(Math.max(Number(process.argv[6] ?? 3000), 500), 20_000);
  process.stdout.write(
    `date: ${new Date().toISOString()}; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
  const nsx = new BenchNetns();
  try {
    await rulesets(p, q, runs, changes, nsx);
    if (rounds > 0) await traffic(rounds, rateMs, nsx);
  } finally {
    nsx.cleanup();
  }
  process.stdout.write(
    `load average at the end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
