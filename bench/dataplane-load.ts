// Benchmark: `npm run build && node dist/bench/dataplane-load.js [pods:policies[:admin] ...] [--runs N]`
// Generates a deterministic cluster (every pod on one of 100 nodes), times compile + render for all
// pods local and for node-0's share, then the agent's first apply (compile + render + `nft -f`, a
// full atomic replace) into a throwaway netns (moat-bench-*), and the process memory holding the
// snapshot and the applier's state. Needs root and nft for the load part. Reports; asserts nothing.
// A third field (`10000:1000:100`) adds that many admin-tier policies (bench/admin-policies.ts) and
// measures the cluster with and without them side by side, `--runs` times (default 5, ABBA order).
// `--flow-log MODE` measures the cluster without and with flow logs (that mode) side by side.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { compile, localRunner, netnsRunner, DataplaneApplier, renderNft } from '../src/dataplane/index.js';
import { FLOW_LOG_MODES, type DataplaneOptions, type FlowLogMode } from '../src/dataplane/model.js';
import {
  cport,
  ipPeer,
  netpol,
  node,
  ns,
  pod,
  podPeer,
  pport,
  rule,
  sel,
  snapshot,
} from '../src/model/build.js';
import type { NetworkPolicy, Pod, Snapshot } from '../src/model/types.js';
import { adminCluster, parseSize } from './admin-policies.js';
import { BenchNetns, median } from './netns.js';

function ip4(i: number): string {
  const v = (10 << 24) + (128 << 16) + i + 2;
  return [24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.');
}

/** A deterministic cluster: ~10 policies and ~100 pods per namespace, 10 apps per namespace. */
export function generate(numPods: number, numPolicies: number, numNodes = 100): Snapshot {
  const numNs = Math.max(1, Math.round(numPolicies / 10));
  const namespaces = Array.from({ length: numNs }, (_, i) => ns(`ns-${i}`, { team: `t${i % 20}` }));
  const nodes = Array.from({ length: numNodes }, (_, i) =>
    node(`node-${i}`, [`192.168.${i >> 8}.${(i & 255) + 1}`]),
  );
  const pods: Pod[] = [];
  for (let i = 0; i < numPods; i++) {
    const n = i % numNs;
    const app = `app-${Math.floor(i / numNs) % 10}`;
    pods.push(
      pod(`ns-${n}`, `p-${i}`, {
        labels: { app, tier: i % 3 === 0 ? 'front' : 'back' },
        ips: [ip4(i)],
        nodeName: `node-${i % numNodes}`,
        ports: [cport(8080, 'TCP', 'http'), cport(9090, 'TCP', 'metrics')],
      }),
    );
  }
  const policies: NetworkPolicy[] = [];
  for (let k = 0; k < numPolicies; k++) {
    const n = k % numNs;
    const j = Math.floor(k / numNs);
    const nsName = `ns-${n}`;
    switch (j % 5) {
      case 0:
        policies.push(netpol(nsName, `deny-${j}`, { podSelector: sel({ app: `app-${j % 10}` }) }));
        break;
      case 1:
        policies.push(
          netpol(nsName, `from-app-${j}`, {
            podSelector: sel({ app: `app-${j % 10}` }),
            ingress: [rule([podPeer(sel({ app: `app-${(j + 1) % 10}` }))], [pport(8080), pport('http')])],
          }),
        );
        break;
      case 2:
        policies.push(
          netpol(nsName, `from-team-${j}`, {
            podSelector: sel({ app: `app-${j % 10}` }),
            ingress: [
              rule(
                [podPeer(sel({ tier: 'front' }), sel({ team: `t${(n + j) % 20}` }))],
                [pport(9000, 'TCP', 9100)],
              ),
            ],
          }),
        );
        break;
      case 3:
        policies.push(
          netpol(nsName, `egress-${j}`, {
            podSelector: sel({ app: `app-${j % 10}` }),
            egress: [
              rule([ipPeer('0.0.0.0/0', ['10.0.0.0/8', '192.168.0.0/16'])], [pport(443)]),
              rule([podPeer(undefined, sel({ team: `t${j % 20}` }))], [pport(53, 'UDP'), pport('metrics')]),
            ],
          }),
        );
        break;
      default:
        policies.push(
          netpol(nsName, `ipblock-${j}`, {
            podSelector: sel({ tier: 'back' }),
            ingress: [
              rule([ipPeer(`172.${16 + (k % 16)}.0.0/16`, [`172.${16 + (k % 16)}.${k % 256}.0/24`])]),
            ],
          }),
        );
    }
  }
  return snapshot({ namespaces, nodes, pods, policies });
}

function gc(): void {
  // Runnable as plain `node dist/bench/...`: expose gc at run time for the memory figures.
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function mib(n: number): string {
  return `${(n / 1048576).toFixed(0)} MiB`;
}

interface Measure {
  compileMs: number;
  renderMs: number;
  applyMs: number | undefined;
  sets: number;
  elements: number;
  chains: number;
  rules: number;
  counters: number;
  kib: number;
  heapMiB: number | undefined;
}

/** One compile + render, and the first apply through a fresh DataplaneApplier when a netns is given. */
async function measure(
  snap: Snapshot,
  nodeName: string | undefined,
  netns: string | undefined,
  extra: Partial<DataplaneOptions> = {},
): Promise<Measure> {
  const opts = { table: 'moat_bench', ...(nodeName !== undefined ? { nodeName } : {}), ...extra };
  gc();
  const t0 = performance.now();
  const rs = compile(snap, opts);
  const t1 = performance.now();
  const text = renderNft(rs);
  const t2 = performance.now();
  const m: Measure = {
    compileMs: t1 - t0,
    renderMs: t2 - t1,
    applyMs: undefined,
    sets: rs.sets.length,
    elements: rs.sets.reduce((n, s) => n + s.elements.length, 0),
    chains: rs.chains.length,
    rules: rs.chains.reduce((n, c) => n + c.rules.length, 0),
    counters: rs.counters.length,
    kib: text.length / 1024,
    heapMiB: undefined,
  };
  if (netns !== undefined) {
    const ap = new DataplaneApplier(netnsRunner(netns), { ...opts, conntrackCleanup: false });
    const t3 = performance.now();
    await ap.apply(snap);
    m.applyMs = performance.now() - t3;
    gc();
    m.heapMiB = process.memoryUsage().heapUsed / 1048576;
    await ap.remove();
  }
  return m;
}

function stats(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(0)} (${s[0]!.toFixed(0)}-${s[s.length - 1]!.toFixed(0)})`;
}

function ratioStats(xs: readonly number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(2)} (${s[0]!.toFixed(2)}-${s[s.length - 1]!.toFixed(2)})`;
}

/**
 * `pods:policies:admin`: the cluster with and without `admin` admin policies (bench/admin-policies.ts),
 * side by side in each run (ABBA order over runs), for all pods and for node-0's share.
 */
async function sideBySide(
  p: number,
  q: number,
  a: number,
  runs: number,
  netns: string | undefined,
): Promise<void> {
  const { plain, admin, mix } = adminCluster(generate(p, q), a);
  process.stdout.write(
    `${p} pods / ${q} policies / ${a} admin policies: ${Object.entries(mix)
      .map(([k, v]) => `${v} ${k}`)
      .join('; ')}\n`,
  );
  for (const nodeName of [undefined, 'node-0']) {
    const res: Record<'plain' | 'admin', Measure[]> = { plain: [], admin: [] };
    for (let r = 0; r < runs; r++) {
      const order = r % 2 === 0 ? (['plain', 'admin'] as const) : (['admin', 'plain'] as const);
      for (const v of order) {
        const m = await measure(v === 'plain' ? plain : admin, nodeName, netns);
        res[v].push(m);
        process.stdout.write(
          `  run ${r} node=${nodeName ?? '<all>'} ${v.padEnd(5)}: compile ${m.compileMs.toFixed(0)} ms, render ${m.renderMs.toFixed(0)} ms, ` +
            `first apply ${m.applyMs === undefined ? 'skipped' : `${m.applyMs.toFixed(0)} ms`}; ${m.sets} sets, ${m.elements} elements, ` +
            `${m.chains} chains, ${m.rules} rules, ${m.counters} counters, ${m.kib.toFixed(0)} KiB` +
            `${m.heapMiB === undefined ? '' : `; heap used ${m.heapMiB.toFixed(0)} MiB`}\n`,
        );
      }
    }
    const local = plain.pods.filter((x) => nodeName === undefined || x.nodeName === nodeName).length;
    for (const v of ['plain', 'admin'] as const) {
      const ms = res[v];
      const last = ms[ms.length - 1]!;
      const applies = ms.map((m) => m.applyMs).filter((x): x is number => x !== undefined);
      process.stdout.write(
        `${v.padEnd(5)} node=${nodeName ?? '<all>'} (${local} local pods), ${runs} runs, median (min-max): compile ${stats(ms.map((m) => m.compileMs))} ms, ` +
          `render ${stats(ms.map((m) => m.renderMs))} ms, first apply ${applies.length > 0 ? `${stats(applies)} ms` : 'skipped'}; ` +
          `${last.rules} rules / ${last.chains} chains / ${last.sets} sets / ${last.elements} elements, ${last.counters} counters, ${last.kib.toFixed(0)} KiB\n`,
      );
    }
    const ratio = (f: (m: Measure) => number | undefined) =>
      res.admin.map((m, i) => (f(m) ?? NaN) / (f(res.plain[i]!) ?? NaN)).filter((x) => !Number.isNaN(x));
    const ra = ratio((m) => m.applyMs);
    process.stdout.write(
      `admin/plain node=${nodeName ?? '<all>'}, per run, median (min-max): compile ${ratioStats(ratio((m) => m.compileMs))}, ` +
        `first apply ${ra.length > 0 ? ratioStats(ra) : 'skipped'}\n`,
    );
  }
}

/** The cluster without and with flow logs in `mode`, side by side (ABBA), all pods and node-0. */
async function flowSideBySide(
  p: number,
  q: number,
  mode: FlowLogMode,
  runs: number,
  netns: string | undefined,
): Promise<void> {
  const snap = generate(p, q);
  const flowLog = { mode, group: 3477, rate: 1000, burst: 200 };
  for (const nodeName of [undefined, 'node-0']) {
    const res: Record<'off' | 'on', Measure[]> = { off: [], on: [] };
    for (let r = 0; r < runs; r++) {
      for (const k of r % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        res[k].push(await measure(snap, nodeName, netns, k === 'on' ? { flowLog } : {}));
      }
    }
    const line = (k: 'off' | 'on') => {
      const m = res[k][0]!;
      const apply = res[k].map((x) => x.applyMs ?? NaN);
      return `${k}: ${m.chains} chains, ${m.rules} rules, ${m.counters} counters, ${m.kib.toFixed(0)} KiB; compile ${stats(res[k].map((x) => x.compileMs))} ms, first apply ${netns !== undefined ? stats(apply) : '-'} ms`;
    };
    const ratio = res.on.map((x, i) => (x.applyMs ?? NaN) / (res.off[i]!.applyMs ?? NaN));
    process.stdout.write(
      `${p} pods / ${q} policies, node=${nodeName ?? '<all>'}, flow log ${mode} (${runs} runs):\n  ${line('off')}\n  ${line('on')}\n` +
        (netns !== undefined ? `  first apply on/off per run ${ratioStats(ratio)}\n` : ''),
    );
  }
}

async function main(): Promise<void> {
  const argv0 = process.argv.slice(2);
  const fi = argv0.indexOf('--flow-log');
  const flowMode = fi >= 0 ? argv0[fi + 1] : undefined;
  if (flowMode !== undefined && !(FLOW_LOG_MODES as readonly string[]).includes(flowMode)) {
    throw new Error(`--flow-log ${flowMode}: one of ${FLOW_LOG_MODES.join(', ')}`);
  }
  const argv = fi >= 0 ? argv0.filter((_, i) => i !== fi && i !== fi + 1) : argv0;
  const ri = argv.indexOf('--runs');
  const runs = ri >= 0 ? Math.max(1, Number(argv[ri + 1] ?? 5)) : 5;
  const args = ri >= 0 ? argv.filter((_, i) => i !== ri && i !== ri + 1) : argv;
  const sizes = args.length > 0 ? args : ['1000:100', '10000:1000', '50000:5000'];
  const canLoad = process.getuid?.() === 0 && (await localRunner().run(['nft', '--version'])).code === 0;
  const nsx = canLoad ? new BenchNetns() : undefined;
  process.stdout.write(
    `date: ${new Date().toISOString()}; load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}\n`,
  );
  const withAdmin = sizes.some((s) => parseSize(s, [0, 0, 0])[2] > 0);
  try {
    // Rules are flat in pods: 1,000 policies fixed, pods x10 and x50 (not repeated in admin runs).
    for (const nodeName of withAdmin || flowMode !== undefined ? [] : [undefined, 'node-0']) {
      const counts = [1000, 10000, 50000].map((p) => {
        const rs = compile(generate(p, 1000), {
          table: 'moat_bench',
          ...(nodeName !== undefined ? { nodeName } : {}),
        });
        const rules = rs.chains.reduce((n, c) => n + c.rules.length, 0);
        const elems = rs.sets.reduce((n, s) => n + s.elements.length, 0);
        return `${p} pods: ${rules} rules, ${rs.chains.length} chains, ${rs.sets.length} sets, ${elems} elements`;
      });
      process.stdout.write(`1000 policies, node=${nodeName ?? '<all>'}: ${counts.join('; ')}\n`);
    }
    const netns = nsx?.add('load');
    for (const size of sizes) {
      const [p, q, a] = parseSize(size, [10000, 1000, 0]);
      if (flowMode !== undefined) {
        await flowSideBySide(p, q, flowMode as FlowLogMode, runs, netns);
        continue;
      }
      if (a > 0) {
        await sideBySide(p, q, a, runs, netns);
        continue;
      }
      for (const nodeName of [undefined, 'node-0']) {
        gc();
        const before = process.memoryUsage();
        let snap: Snapshot | undefined = generate(p, q);
        const opts = { table: 'moat_bench', ...(nodeName !== undefined ? { nodeName } : {}) };
        const t0 = performance.now();
        const rs = compile(snap, opts);
        const t1 = performance.now();
        const text = renderNft(rs);
        const t2 = performance.now();
        const rules = rs.chains.reduce((n, c) => n + c.rules.length, 0);
        const elems = rs.sets.reduce((n, s) => n + s.elements.length, 0);
        const local = snap.pods.filter((x) => nodeName === undefined || x.nodeName === nodeName).length;
        let load = 'skipped (not root or no nft)';
        let mem = '';
        if (netns !== undefined) {
          const runner = netnsRunner(netns);
          // What the agent does: one applier, first apply = compile + render + nft -f (full replace).
          const ap = new DataplaneApplier(runner, { ...opts, conntrackCleanup: false });
          const t3 = performance.now();
          await ap.apply(snap);
          const t4 = performance.now();
          load = `compile+load via DataplaneApplier.apply ${(t4 - t3).toFixed(0)} ms`;
          gc();
          const after = process.memoryUsage();
          mem = `; memory holding snapshot + applier state: rss ${mib(after.rss)} (+${mib(after.rss - before.rss)}), heap used ${mib(after.heapUsed)} (+${mib(after.heapUsed - before.heapUsed)})`;
          await ap.remove();
        }
        snap = undefined;
        process.stdout.write(
          `${p} pods / ${q} policies, node=${nodeName ?? '<all>'} (${local} local pods): compile ${(t1 - t0).toFixed(0)} ms, render ${(t2 - t1).toFixed(0)} ms ` +
            `(${rs.sets.length} sets, ${elems} elements, ${rs.chains.length} chains, ${rules} rules, ${rs.counters.length} counters, ` +
            `${(text.length / 1024).toFixed(0)} KiB); ${load}${mem}\n`,
        );
      }
    }
  } finally {
    nsx?.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
