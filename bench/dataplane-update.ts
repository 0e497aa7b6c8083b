// Incremental update latency: a 10,000-pod / 1,000-policy cluster is applied once (node-0's share)
// into a throwaway netns (root), then, interleaved, single changes are applied and timed until
// DataplaneApplier.apply() returns (the nft transaction is committed and conntrack cleanup is done):
//   pod+local   one pod added on this node (dispatch maps, local sets, peer sets)
//   pod+remote  one pod added on another node (peer and named-port sets only)
//   policy      one policy of this node's pods changed (a policy chain is rewritten)
// "nft committed" is when the kernel enforces the change for new connections; apply() returns
// after the conntrack cleanup of flows the change stopped allowing. The netns's conntrack table
// holds `flows` established entries (inserted with conntrack -I; to node-0's pods on 8080/TCP, one
// in ten of them app-2 -> app-1, which the policy change judges and keeps), and before each policy
// change (untimed) 8 more app-2 -> app-1 on 8081/TCP, which every other policy change cuts.
// With admin policies (`10000:1000:100`, bench/admin-policies.ts), two more kinds:
//   admin-rule  an Admin-tier policy of this node's pods (ns-0's tenant isolation) gains or loses a
//               first ingress rule, Deny app-2 -> 8081/TCP (every other change cuts those flows)
//   admin-prio  the same policy's priority moves past the other Admin-tier policies selecting
//               those pods and back (the admin signature chain's jump order changes)
// Conntrack goes through ctnetlink (NetlinkConntrack, a child in the netns: exact-tuple deletes),
// as the agent does; `tools` as the fifth argument runs conntrack-tools instead (its fallback).
// Incremental nft transactions go through one long-lived `nft -i` (NftSession), as the agent
// does; `exec` as the sixth argument runs `nft -f` per change instead (its fallback).
//   node dist/bench/dataplane-update.js [pods:policies[:admin]=10000:1000] [iterations=60] [flows=1000] [netlink|tools] [session|exec]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  localRunner,
  NetlinkConntrack,
  netnsRunner,
  DataplaneApplier,
  NftSession,
  type CommandRunner,
  type ConntrackClient,
  type NftBatcher,
} from '../src/dataplane/index.js';
import { adminSelects } from '../src/dataplane/compile-admin.js';
import {
  adminRule,
  aport,
  netpol,
  pod,
  podPeer,
  podSubject,
  pport,
  rule,
  sel,
  cport,
} from '../src/model/build.js';
import { podKey, type AdminPolicy, type NetworkPolicy, type Snapshot } from '../src/model/types.js';
import { adminCluster, parseSize } from './admin-policies.js';
import { generate } from './dataplane-load.js';
import { BenchNetns, isRoot, median, percentile } from './netns.js';

type Kind = 'pod+local' | 'pod+remote' | 'policy' | 'admin-rule' | 'admin-prio';

/** A runner that records how long nft took, and conntrack (wall time: its processes may overlap). */
function timed(inner: CommandRunner): CommandRunner & {
  nftMs: number;
  nftDone: number;
  ctStart: number;
  ctEnd: number;
} {
  const r = {
    nftMs: 0,
    nftDone: 0,
    ctStart: NaN,
    ctEnd: NaN,
    async run(argv: readonly string[], input?: string) {
      const t0 = performance.now();
      const res = await inner.run(argv, input);
      if (argv.includes('nft')) {
        r.nftDone = performance.now();
        r.nftMs += r.nftDone - t0;
      } else {
        if (!(r.ctStart <= t0)) r.ctStart = t0;
        r.ctEnd = performance.now();
      }
      return res;
    },
  };
  return r;
}

/** A client whose requests count as conntrack time of the runner (wall time, as there). */
function timedClient(inner: ConntrackClient, r: ReturnType<typeof timed>): ConntrackClient {
  const time = async <T>(p: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await p();
    } finally {
      if (!(r.ctStart <= t0)) r.ctStart = t0;
      r.ctEnd = Math.max(Number.isNaN(r.ctEnd) ? 0 : r.ctEnd, performance.now());
    }
  };
  return {
    list: (addresses) => time(() => inner.list(addresses)),
    delete: (entries) => time(() => inner.delete(entries)),
    ...(inner.addresses !== undefined ? { addresses: () => time(() => inner.addresses!()) } : {}),
    close: () => inner.close(),
  };
}

/** A session whose transactions count as nft time of the runner, as `nft -f` there does. */
function timedSession(inner: NftBatcher, r: ReturnType<typeof timed>): NftBatcher {
  return {
    async apply(script) {
      const t0 = performance.now();
      try {
        return await inner.apply(script);
      } finally {
        r.nftDone = performance.now();
        r.nftMs += r.nftDone - t0;
      }
    },
    ...(inner.warm !== undefined ? { warm: () => inner.warm!() } : {}),
    close: () => inner.close(),
  };
}

/** Inserts established TCP entries (no NAT) into the runner's conntrack table, one process. */
async function insertFlows(
  runner: CommandRunner,
  flows: readonly { src: string; dst: string; sport: number; dport: number }[],
): Promise<void> {
  if (flows.length === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'moat-bench-ct-'));
  try {
    const file = join(dir, 'insert');
    const line = (f: (typeof flows)[number]) =>
      `-I -p tcp -s ${f.src} -d ${f.dst} --sport ${f.sport} --dport ${f.dport} -r ${f.dst} -q ${f.src} ` +
      `--reply-port-src ${f.dport} --reply-port-dst ${f.sport} --state ESTABLISHED -u ASSURED -t 3600\n`;
    writeFileSync(file, flows.map(line).join(''));
    const r = await runner.run(['conntrack', '-R', file]);
    if (r.code !== 0) throw new Error(`conntrack -R (insert): ${r.stderr.trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** "tcp ... (3 flows)" -> 3 */
function flowsOf(labels: readonly string[]): number {
  return labels.reduce((n, l) => n + Number(/\((\d+) flows?\)$/.exec(l)?.[1] ?? 0), 0);
}

function ip(i: number): string {
  return `10.200.${(i >> 8) & 255}.${i & 255}`;
}

async function main(): Promise<void> {
  if (!isRoot()) {
    process.stdout.write('dataplane-update: needs root (network namespaces); skipped\n');
    return;
  }
  const [p, q, a] = parseSize(process.argv[2] ?? '10000:1000', [10000, 1000, 0]);
  const iterations = Math.min(Math.max(Number(process.argv[3] ?? 60), 1), 500);
  const numFlows = Math.min(Math.max(Number(process.argv[4] ?? 1000), 0), 100_000);
  const via = process.argv[5] ?? 'netlink';
  if (via !== 'netlink' && via !== 'tools') throw new Error(`conntrack: "${via}" is not netlink or tools`);
  const nftVia = process.argv[6] ?? 'session';
  if (nftVia !== 'session' && nftVia !== 'exec') throw new Error(`nft: "${nftVia}" is not session or exec`);
  let snap: Snapshot = a > 0 ? adminCluster(generate(p, q), a).admin : generate(p, q);
  const nsx = new BenchNetns();
  try {
    const netns = nsx.add('u');
    const plain = netnsRunner(netns, localRunner());
    const runner = timed(plain);
    const client = via === 'netlink' ? new NetlinkConntrack({ netns }) : undefined;
    const session = nftVia === 'session' ? new NftSession({ netns }) : undefined;
    const ap = new DataplaneApplier(
      runner,
      { table: 'moat_bench', nodeName: 'node-0' },
      {
        conntrack: client && timedClient(client, runner),
        nft: session && timedSession(session, runner),
      },
    );
    let fallbacks = 0;
    let sessionErrors = 0;
    const t0 = performance.now();
    await ap.apply(snap);
    const firstMs = performance.now() - t0;
    const local = snap.pods.filter((x) => x.nodeName === 'node-0');
    const addr = (x: (typeof snap.pods)[number]) => x.ips[0]!;
    let sport = 10000;
    const inNs0 = (app: string) => local.filter((x) => x.namespace === 'ns-0' && x.labels.app === app);
    const [clients, servers] = [inNs0('app-2'), inNs0('app-1')];
    const others = local.filter((x) => !servers.includes(x));
    // 1 in 10 background flows is app-2 -> app-1 on 8080 ("http", allowed in every variant): judged
    // at every policy change and kept. The rest go to other node-0 pods and are never judged.
    await insertFlows(
      plain,
      Array.from({ length: numFlows }, (_, i) =>
        i % 10 === 0
          ? {
              src: addr(clients[i % clients.length]!),
              dst: addr(servers[i % servers.length]!),
              sport: sport++,
              dport: 8080,
            }
          : {
              src: addr(snap.pods[(i * 7919) % snap.pods.length]!),
              dst: addr(others[i % others.length]!),
              sport: sport++,
              dport: 8080,
            },
      ),
    );
    // The policy that changes: ns-0/from-app-1 selects node-0 pods (p-0 is app-0 ... see generate).
    const idx = snap.policies.findIndex((x) => x.namespace === 'ns-0' && x.name === 'from-app-1');
    const variant = (k: number): NetworkPolicy =>
      netpol('ns-0', 'from-app-1', {
        podSelector: sel({ app: 'app-1' }),
        ingress: [rule([podPeer(sel({ app: 'app-2' }))], [pport(8080 + (k % 2)), pport('http')])],
      });
    // The admin policy that changes: ns-0's tenant isolation (it selects every node-0 pod).
    const target = (snap.adminPolicies ?? []).find((x) => x.name === 'tenant-isolation-0');
    const adminIdx = target === undefined ? -1 : snap.adminPolicies!.indexOf(target);
    const p0 = local[0]!;
    const nsl = (n: string) => snap.namespaces.find((x) => x.name === n)?.labels ?? {};
    const rivals = (snap.adminPolicies ?? []).filter(
      (x) => x !== target && x.tier === 'Admin' && x.ingress.length > 0 && adminSelects(x.subject, p0, nsl),
    );
    const maxRival = Math.max(-1, ...rivals.map((x) => x.priority));
    // Past every rival: to 1000 when it is not last already, else to 0.
    const otherPrio = target === undefined ? 0 : target.priority < maxRival ? 1000 : 0;
    const adminVariant = (k: number, kind: 'admin-rule' | 'admin-prio'): AdminPolicy => {
      const t = snap.adminPolicies![adminIdx]!;
      if (kind === 'admin-prio') return { ...t, priority: k % 2 === 1 ? otherPrio : target!.priority };
      const extra = adminRule('Deny', [podSubject(sel({ app: 'app-2' }))], [aport(8081)], 'no-8081');
      const rest = t.ingress.filter((r) => r.name !== 'no-8081');
      return { ...t, ingress: k % 2 === 1 ? [extra, ...rest] : rest };
    };
    const kinds: Kind[] = ['pod+local', 'pod+remote', 'policy'];
    let warmCut = 0;
    if (target !== undefined) {
      kinds.push('admin-rule', 'admin-prio');
      // Untimed: an admin change judges every flow of ns-0's pods, and the background flows from
      // other tenants are ones the admin tier denies (inserted by hand, they never were admitted):
      // one change there and back cuts them before the timed changes.
      for (const k of [1, 0]) {
        const adminPolicies = [...snap.adminPolicies!];
        adminPolicies[adminIdx] = adminVariant(k, 'admin-rule');
        snap = { ...snap, adminPolicies };
        warmCut += flowsOf((await ap.apply(snap)).conntrackDeleted);
      }
    }
    const res = Object.fromEntries(
      kinds.map((k) => [
        k,
        { total: [], committed: [], nft: [], ct: [], commands: [], cut: [], filters: [] },
      ]),
    ) as unknown as Record<
      Kind,
      {
        total: number[];
        committed: number[];
        nft: number[];
        ct: number[];
        commands: number[];
        cut: number[];
        filters: number[];
      }
    >;
    let n = 0;
    const deadline = Date.now() + 10 * 60_000;
    for (let i = 0; i < iterations && Date.now() < deadline; i++) {
      for (const kind of kinds) {
        n++;
        if (kind === 'admin-prio') {
          const adminPolicies = [...snap.adminPolicies!];
          adminPolicies[adminIdx] = adminVariant(i + 1, kind);
          snap = { ...snap, adminPolicies };
        } else if (kind === 'policy' || kind === 'admin-rule') {
          if (kind === 'policy') {
            const policies = [...snap.policies];
            policies[idx] = variant(i + 1);
            snap = { ...snap, policies };
          } else {
            const adminPolicies = [...snap.adminPolicies!];
            adminPolicies[adminIdx] = adminVariant(i + 1, kind);
            snap = { ...snap, adminPolicies };
          }
          await insertFlows(
            plain,
            Array.from({ length: 8 }, (_, j) => ({
              src: addr(clients[j % clients.length]!),
              dst: addr(servers[j % servers.length]!),
              sport: sport++,
              dport: 8081,
            })),
          );
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
        runner.ctStart = NaN;
        runner.ctEnd = NaN;
        const t1 = performance.now();
        const r = await ap.apply(snap);
        const ms = performance.now() - t1;
        if (r.mode !== 'incremental')
          throw new Error(`${kind}: expected an incremental apply, got ${r.mode}`);
        res[kind].total.push(ms);
        res[kind].committed.push(runner.nftDone - t1);
        res[kind].nft.push(runner.nftMs);
        res[kind].ct.push(Number.isNaN(runner.ctStart) ? 0 : runner.ctEnd - runner.ctStart);
        res[kind].commands.push(r.commands);
        res[kind].cut.push(flowsOf(r.conntrackDeleted));
        res[kind].filters.push(r.conntrackDeleted.length);
        if (r.conntrackErrors.length > 0) process.stderr.write(`${kind}: ${r.conntrackErrors.join('; ')}\n`);
        if (r.nftSessionError !== undefined) {
          sessionErrors++;
          process.stderr.write(`${kind}: nft session failed: ${r.nftSessionError}\n`);
        }
        if (r.conntrackFallback !== undefined) {
          fallbacks++;
          process.stderr.write(`${kind}: conntrack-tools fallback: ${r.conntrackFallback}\n`);
        }
      }
    }
    const drift = await ap.checkDrift();
    await ap.close();
    const left = await plain.run(['conntrack', '-L']);
    const entries = left.stdout.split('\n').filter((l) => l.includes('src=')).length;
    const f = (x: number) => x.toFixed(1);
    const lines = [
      `date: ${new Date().toISOString()}`,
      `${p} pods / ${q} policies / ${a} admin policies, node-0's share; first full apply ${firstMs.toFixed(0)} ms; drift after the run: ${drift.drifted ? drift.differences.join('; ') : 'none'}`,
      `conntrack table: ${numFlows} flows inserted, ${warmCut} cut by the untimed admin warm-up, ${entries} entries at the end; ` +
        `cleanup via ${via === 'netlink' ? `ctnetlink (exact tuples; ${fallbacks} fallbacks to conntrack-tools)` : 'conntrack-tools'}`,
      `nft transactions via ${nftVia === 'session' ? `one nft -i (${session!.starts} process(es), ${sessionErrors} session failures)` : 'nft -f per change'}`,
    ];
    if (target !== undefined) {
      lines.push(
        `admin change: ${target.kind} ${target.name} (priority ${target.priority}; admin-prio moves it to ${otherPrio}; ` +
          `${rivals.length} other Admin-tier ingress policies select ${podKey(p0)}, priorities ${rivals.map((x) => x.priority).join(',')})`,
      );
    }
    for (const [k, v] of Object.entries(res)) {
      lines.push(
        `${k.padEnd(10)} n=${v.total.length} nft committed p50 ${f(median(v.committed))} ms p99 ${f(percentile(v.committed, 99))} ms; apply() p50 ${f(median(v.total))} ms p99 ${f(percentile(v.total, 99))} ms max ${f(Math.max(...v.total))} ms; ` +
          `of which nft p50 ${f(median(v.nft))} ms, conntrack p50 ${f(median(v.ct))} ms, compile+diff p50 ${f(median(v.total.map((t, i) => t - v.nft[i]! - v.ct[i]!)))} ms; nft commands ${median(v.commands)}; ` +
          `flows cut per change: total ${v.cut.reduce((a, b) => a + b, 0)}, max ${Math.max(...v.cut)}, by up to ${Math.max(...v.filters)} filter(s)`,
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
