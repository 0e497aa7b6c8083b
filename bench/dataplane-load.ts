// Benchmark: `npm run build && node dist/bench/dataplane-load.js [pods:policies ...]`
// Generates a deterministic cluster, times compile + render, then loads the ruleset for real into a
// throwaway network namespace (moat-bench-<random>) with `nft -f -`, and times an incremental
// apply of a pod churn. Needs root and nft for the load part. Reports; asserts nothing.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { compile, localRunner, netnsRunner, NftApplier, renderNft } from '../src/dataplane/index.js';
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

async function sh(argv: string[]): Promise<void> {
  const r = await localRunner().run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['10000:1000', '50000:5000'];
  const canLoad = process.getuid?.() === 0 && (await localRunner().run(['nft', '--version'])).code === 0;
  const netns = `moat-bench-${randomBytes(4).toString('hex')}`;
  if (canLoad) await sh(['ip', 'netns', 'add', netns]);
  try {
    for (const size of sizes) {
      const [p, q] = size.split(':').map(Number);
      const snap = generate(p ?? 10000, q ?? 1000);
      for (const nodeName of [undefined, 'node-0']) {
        const opts = { table: 'moat_bench', ...(nodeName !== undefined ? { nodeName } : {}) };
        const t0 = performance.now();
        const rs = compile(snap, opts);
        const t1 = performance.now();
        const text = renderNft(rs);
        const t2 = performance.now();
        const rules = rs.chains.reduce((n, c) => n + c.rules.length, 0);
        const elems = rs.sets.reduce((n, s) => n + s.elements.length, 0);
        let load = 'skipped (not root or no nft)';
        let incr = '';
        if (canLoad) {
          const runner = netnsRunner(netns);
          const t3 = performance.now();
          const r = await runner.run(['nft', '-f', '-'], text);
          const t4 = performance.now();
          if (r.code !== 0) throw new Error(`nft -f failed: ${r.stderr.slice(0, 500)}`);
          load = `${(t4 - t3).toFixed(0)} ms`;
          // Incremental: a fresh applier (full replace), then one pod replaced by another.
          const ap = new NftApplier(runner, { ...opts, conntrackCleanup: false });
          await ap.apply(snap);
          const churned = {
            ...snap,
            pods: [
              ...snap.pods.slice(1),
              { ...snap.pods[0]!, name: 'p-new', ips: [ip4(p ?? 10000)], nodeName: nodeName ?? 'node-0' },
            ],
          };
          const t5 = performance.now();
          const res = await ap.apply(churned);
          const t6 = performance.now();
          incr = `; pod churn: ${res.mode} apply of ${res.commands} commands in ${(t6 - t5).toFixed(0)} ms (incl. compile)`;
          await runner.run(['nft', 'delete', 'table', 'inet', 'moat_bench']);
        }
        process.stdout.write(
          `${p} pods / ${q} policies, node=${nodeName ?? '<all>'}: compile ${(t1 - t0).toFixed(0)} ms, render ${(t2 - t1).toFixed(0)} ms ` +
            `(${rs.sets.length} sets, ${elems} elements, ${rs.chains.length} chains, ${rules} rules, ${rs.counters.length} counters, ` +
            `${(text.length / 1024).toFixed(0)} KiB); nft load ${load}${incr}\n`,
        );
      }
    }
  } finally {
    if (canLoad) await localRunner().run(['ip', 'netns', 'delete', netns]);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
