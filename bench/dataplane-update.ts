// Incremental update latency: a 10,000-pod / 1,000-policy cluster is applied once (node-0's share)
// into a throwaway netns (root), then, interleaved, single changes are applied and timed until
// NftApplier.apply() returns (the nft transaction is committed and conntrack cleanup is done):
//   pod+local   one pod added on this node (dispatch maps, local sets, peer sets)
//   pod+remote  one pod added on another node (peer and named-port sets only)
//   policy      one policy of this node's pods changed (a policy chain is rewritten)
// "nft committed" is when the kernel enforces the change for new connections; apply() returns
// after the conntrack cleanup of flows the change may have tightened.
//   node dist/bench/dataplane-update.js [pods:policies=10000:1000] [iterations=60]
import { performance } from 'node:perf_hooks';
import { localRunner, netnsRunner, NftApplier, type CommandRunner } from '../src/dataplane/index.js';
import { netpol, pod, podPeer, pport, rule, sel, cport } from '../src/model/build.js';
import type { NetworkPolicy, Snapshot } from '../src/model/types.js';
import { generate } from './dataplane-load.js';
import { BenchNetns, isRoot, median, percentile } from './netns.js';

type Kind = 'pod+local' | 'pod+remote' | 'policy';

/** A runner that records how long nft itself took. */
function timed(inner: CommandRunner): CommandRunner & { nftMs: number; ctMs: number; nftDone: number } {
  const r = {
    nftMs: 0,
    ctMs: 0,
    nftDone: 0,
    async run(argv: readonly string[], input?: string) {
      const t0 = performance.now();
      const res = await inner.run(argv, input);
      if (argv.includes('nft')) {
        r.nftDone = performance.now();
        r.nftMs += r.nftDone - t0;
      } else r.ctMs += performance.now() - t0;
      return res;
    },
  };
  return r;
}

function ip(i: number): string {
  return `10.200.${(i >> 8) & 255}.${i & 255}`;
}

async function main(): Promise<void> {
  if (!isRoot()) {
    process.stdout.write('dataplane-update: needs root (network namespaces); skipped\n');
    return;
  }
  const [p, q] = (process.argv[2] ?? '10000:1000').split(':').map(Number);
  const iterations = Math.min(Math.max(Number(process.argv[3] ?? 60), 1), 500);
  let snap: Snapshot = generate(p ?? 10000, q ?? 1000);
  const nsx = new BenchNetns();
  try {
    const netns = nsx.add('u');
    const runner = timed(netnsRunner(netns, localRunner()));
    const ap = new NftApplier(runner, { table: 'moat_bench', nodeName: 'node-0' });
    const t0 = performance.now();
    await ap.apply(snap);
    const firstMs = performance.now() - t0;
    // The policy that changes: ns-0/from-app-1 selects node-0 pods (p-0 is app-0 ... see generate).
    const idx = snap.policies.findIndex((x) => x.namespace === 'ns-0' && x.name === 'from-app-1');
    const variant = (k: number): NetworkPolicy =>
      netpol('ns-0', 'from-app-1', {
        podSelector: sel({ app: 'app-1' }),
        ingress: [rule([podPeer(sel({ app: 'app-2' }))], [pport(8080 + (k % 2)), pport('http')])],
      });
    const res: Record<
      Kind,
      { total: number[]; committed: number[]; nft: number[]; ct: number[]; commands: number[] }
    > = {
      'pod+local': { total: [], committed: [], nft: [], ct: [], commands: [] },
      'pod+remote': { total: [], committed: [], nft: [], ct: [], commands: [] },
      policy: { total: [], committed: [], nft: [], ct: [], commands: [] },
    };
    let n = 0;
    const deadline = Date.now() + 10 * 60_000;
    for (let i = 0; i < iterations && Date.now() < deadline; i++) {
      for (const kind of ['pod+local', 'pod+remote', 'policy'] as const) {
        n++;
        if (kind === 'policy') {
          const policies = [...snap.policies];
          policies[idx] = variant(i + 1);
          snap = { ...snap, policies };
        } else {
          const newPod = pod(`ns-${n % 100}`, `new-${n}`, {
            labels: { app: `app-${n % 10}`, tier: n % 3 === 0 ? 'front' : 'back' },
            ips: [ip(n)],
            nodeName: kind === 'pod+local' ? 'node-0' : 'node-1',
            ports: [cport(8080, 'TCP', 'http')],
          });
          snap = { ...snap, pods: [...snap.pods, newPod] };
        }
        runner.nftMs = 0;
        runner.ctMs = 0;
        const t1 = performance.now();
        const r = await ap.apply(snap);
        const ms = performance.now() - t1;
        if (r.mode !== 'incremental')
          throw new Error(`${kind}: expected an incremental apply, got ${r.mode}`);
        res[kind].total.push(ms);
        res[kind].committed.push(runner.nftDone - t1);
        res[kind].nft.push(runner.nftMs);
        res[kind].ct.push(runner.ctMs);
        res[kind].commands.push(r.commands);
      }
    }
    const drift = await ap.checkDrift();
    const f = (x: number) => x.toFixed(1);
    const lines = [
      `date: ${new Date().toISOString()}`,
      `${p} pods / ${q} policies, node-0's share; first full apply ${firstMs.toFixed(0)} ms; drift after the run: ${drift.drifted ? drift.differences.join('; ') : 'none'}`,
    ];
    for (const [k, v] of Object.entries(res)) {
      lines.push(
        `${k.padEnd(10)} n=${v.total.length} nft committed p50 ${f(median(v.committed))} ms p99 ${f(percentile(v.committed, 99))} ms; apply() p50 ${f(median(v.total))} ms p99 ${f(percentile(v.total, 99))} ms max ${f(Math.max(...v.total))} ms; ` +
          `of which nft p50 ${f(median(v.nft))} ms, conntrack p50 ${f(median(v.ct))} ms, compile+diff p50 ${f(median(v.total.map((t, i) => t - v.nft[i]! - v.ct[i]!)))} ms; nft commands ${median(v.commands)}`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    nsx.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
