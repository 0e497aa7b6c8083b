// Benchmark: `npm run build && node dist/bench/matrix.js [pods] [policies] [naivePods] [admin] [runs]`
// Generates a deterministic cluster (seeded PRNG), times computeMatrix (equivalence classes) on the
// full set, and classes vs naive all-pairs evaluation on a subset. Reports; asserts nothing.
// With admin > 0, the cluster with that many admin-tier policies (bench/admin-policies.ts) and
// without them, side by side, `runs` times (ABBA order); the subset check runs with them.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import {
  classKeys,
  computeMatrix,
  computeMatrixNaive,
  declaredProbes,
  matrixPods,
  type MatrixResult,
} from '../src/analysis/matrix.js';
import { matchesSelector } from '../src/model/selector.js';
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
import type {
  AdminPeer,
  AdminSubject,
  NetworkPolicy,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  Snapshot,
} from '../src/model/types.js';
import { Rng } from '../test/support/rng.js';
import { adminCluster } from './admin-policies.js';
import { median } from './netns.js';

const TIERS = ['web', 'api', 'db', 'cache', 'worker'] as const;
const TIER_PORTS: Record<(typeof TIERS)[number], ReturnType<typeof cport>[]> = {
  web: [cport(80, 'TCP', 'http'), cport(443, 'TCP', 'https')],
  api: [cport(8080, 'TCP', 'http')],
  db: [cport(5432, 'TCP', 'pg')],
  cache: [cport(6379, 'TCP', 'redis')],
  worker: [cport(9090, 'TCP', 'metrics')],
};

export function generate(numPods: number, numPolicies: number, seed = 42): Snapshot {
  const rng = new Rng(seed);
  const rnd = () => rng.next();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const numNs = 20;
  const numNodes = 20;
  const namespaces = Array.from({ length: numNs }, (_, i) =>
    ns(`ns-${String(i).padStart(2, '0')}`, { team: `t${i % 5}`, env: i % 3 === 0 ? 'prod' : 'dev' }),
  );
  namespaces.push(ns('kube-system'));
  const nodes = Array.from({ length: numNodes }, (_, i) =>
    node(`node-${i}`, [`192.168.0.${i + 1}`], [`10.244.${i}.0/24`]),
  );
  const pods: Pod[] = [];
  const nodeFill = new Array<number>(numNodes).fill(0);
  const place = (): { nodeName: string; ip: string } => {
    const n = Math.floor(rnd() * numNodes);
    nodeFill[n]!++;
    return { nodeName: `node-${n}`, ip: `10.244.${n}.${nodeFill[n]! + 1}` };
  };
  // One hostNetwork agent per node, and DNS.
  for (let i = 0; i < numNodes; i++) {
    pods.push(
      pod('kube-system', `agent-${i}`, {
        labels: { app: 'agent' },
        ips: [`192.168.0.${i + 1}`],
        hostNetwork: true,
        nodeName: `node-${i}`,
        ports: [cport(9100, 'TCP', 'metrics')],
      }),
    );
  }
  for (let i = 0; i < 2; i++) {
    const p = place();
    pods.push(
      pod('kube-system', `coredns-${i}`, {
        labels: { 'k8s-app': 'kube-dns' },
        ips: [p.ip],
        nodeName: p.nodeName,
        ports: [cport(53, 'UDP', 'dns'), cport(53, 'TCP', 'dns-tcp')],
      }),
    );
  }
  // Deployments of 10 replicas each, spread over namespaces.
  const perDeployment = 10;
  let d = 0;
  while (pods.length < numPods) {
    const namespace = namespaces[d % numNs]!.name;
    const tier = TIERS[d % TIERS.length]!;
    const app = `app-${Math.floor(d / numNs)}`;
    for (let r = 0; r < perDeployment && pods.length < numPods; r++) {
      const p = place();
      pods.push(
        pod(namespace, `${app}-${tier}-${r}`, {
          labels: { app, tier, 'pod-template-hash': `h${d}` },
          ips: [p.ip],
          nodeName: p.nodeName,
          ports: TIER_PORTS[tier],
        }),
      );
    }
    d++;
  }

  const policies: NetworkPolicy[] = [];
  const userNs = namespaces.slice(0, numNs).map((n) => n.name);
  const portsFor = (): PolicyPort[] | undefined => {
    const r = rnd();
    if (r < 0.2) return undefined;
    if (r < 0.5) return [pport(pick([80, 443, 8080, 5432, 6379]))];
    if (r < 0.7) return [pport('http'), pport('https')];
    if (r < 0.85) return [pport(8000, 'TCP', 8100)];
    return [pport(9090), pport('metrics')];
  };
  const peerFor = (): Peer => {
    const r = rnd();
    if (r < 0.35) return podPeer(sel({ tier: pick(TIERS) }));
    if (r < 0.55) return podPeer(undefined, sel({ team: `t${Math.floor(rnd() * 5)}` }));
    if (r < 0.8) return podPeer(sel({ tier: pick(TIERS) }), sel({ env: pick(['prod', 'dev']) }));
    if (r < 0.85) return ipPeer('0.0.0.0/0', ['10.0.0.0/8', '169.254.169.254/32']);
    if (r < 0.9) return ipPeer(pick(['10.244.0.0/16', '10.244.0.0/20']));
    return ipPeer(pick(['192.168.0.0/16', '172.16.0.0/12', '203.0.113.0/24']));
  };
  for (let i = 0; policies.length < numPolicies; i++) {
    const namespace = userNs[i % userNs.length]!;
    const kind = Math.floor(i / userNs.length) % 10;
    const name = `p-${i}`;
    if (kind === 0) {
      policies.push(netpol(namespace, `default-deny-${i}`, { policyTypes: ['Ingress', 'Egress'] }));
      continue;
    }
    if (kind === 1) {
      // DNS egress for everything.
      policies.push(
        netpol(namespace, `allow-dns-${i}`, {
          policyTypes: ['Egress'],
          egress: [
            rule(
              [
                podPeer(
                  sel({ 'k8s-app': 'kube-dns' }),
                  sel({ 'kubernetes.io/metadata.name': 'kube-system' }),
                ),
              ],
              [pport(53, 'UDP'), pport(53, 'TCP')],
            ),
          ],
        }),
      );
      continue;
    }
    const nRules = 1 + Math.floor(rnd() * 3);
    const mkRules = (): PolicyRule[] =>
      Array.from({ length: nRules }, () => {
        const peers = rnd() < 0.1 ? undefined : Array.from({ length: 1 + Math.floor(rnd() * 2) }, peerFor);
        return rule(peers, portsFor());
      });
    const egress = rnd() < 0.4;
    policies.push(
      netpol(namespace, name, {
        podSelector: rnd() < 0.15 ? sel() : sel({ tier: pick(TIERS) }),
        ingress: mkRules(),
        ...(egress ? { egress: mkRules() } : {}),
      }),
    );
  }
  return snapshot({ namespaces, nodes, pods, policies });
}

function time<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

function same(a: MatrixResult, b: MatrixResult): boolean {
  if (a.pods.join() !== b.pods.join() || a.probes.length !== b.probes.length) return false;
  return a.probes.every((p, i) => {
    const q = b.probes[i]!;
    return p.port === q.port && p.protocol === q.protocol && Buffer.compare(p.cells, q.cells) === 0;
  });
}

function allowedShare(r: MatrixResult): string {
  let yes = 0;
  let all = 0;
  for (const p of r.probes) {
    for (const c of p.cells) yes += c;
    all += p.cells.length;
  }
  return all === 0 ? '-' : `${((100 * yes) / all).toFixed(1)}%`;
}

/** Cells where two results over the same pods and probes differ. */
function differing(a: MatrixResult, b: MatrixResult): number {
  let n = 0;
  a.probes.forEach((p, i) => {
    const q = b.probes[i]!.cells;
    for (let c = 0; c < p.cells.length; c++) if (p.cells[c] !== q[c]) n++;
  });
  return n;
}

/**
 * An estimate of the class count once the classes take the admin tiers into account: classKeys()
 * plus, per pod, which admin subjects select it and which admin namespaces/pods/nodes peers match
 * it (networks peers are left out: none of this generator's pod addresses is in one). Bench-local
 * and independent of src/analysis: the same answer before and after classKeys learns the tiers.
 */
function adminAwareClasses(snap: Snapshot, pods: readonly Pod[]): number {
  const base = classKeys(snap, pods);
  const nsl = new Map(snap.namespaces.map((n) => [n.name, n.labels]));
  const nodeLabels = new Map(snap.nodes.map((n) => [n.name, n.labels]));
  const selects = (s: AdminSubject, p: Pod) =>
    !p.hostNetwork &&
    matchesSelector(s.namespaceSelector, nsl.get(p.namespace) ?? {}) &&
    (s.kind === 'namespaces' || matchesSelector(s.podSelector, p.labels));
  const peers = new Map<string, AdminPeer>();
  for (const a of snap.adminPolicies ?? [])
    for (const r of [...a.ingress, ...a.egress]) for (const q of r.peers) peers.set(JSON.stringify(q), q);
  const keys = pods.map((p, i) => {
    let k = `${base[i]}|`;
    for (const a of snap.adminPolicies ?? []) k += selects(a.subject, p) ? '1' : '0';
    for (const q of peers.values()) {
      if (q.kind === 'namespaces' || q.kind === 'pods') k += selects(q, p) ? '1' : '0';
      else if (q.kind === 'nodes')
        k +=
          p.hostNetwork && matchesSelector(q.nodeSelector, nodeLabels.get(p.nodeName ?? '') ?? {})
            ? '1'
            : '0';
    }
    return k;
  });
  return new Set(keys).size;
}

function range(xs: readonly number[], digits: number): string {
  const s = [...xs].sort((a, b) => a - b);
  return `${median(s).toFixed(digits)} (${s[0]!.toFixed(digits)}-${s[s.length - 1]!.toFixed(digits)})`;
}

function sideBySide(
  numPods: number,
  numPolicies: number,
  subsetPods: number,
  numAdmin: number,
  runs: number,
) {
  const { plain, admin, mix } = adminCluster(generate(numPods, numPolicies), numAdmin);
  const probes = declaredProbes(matrixPods(plain));
  console.log(
    `matrix: ${numPods} pods, ${numPolicies} policies, ${numAdmin} admin policies, ${probes.length} probes (${probes.map((p) => `${p.protocol}/${p.port}`).join(' ')})`,
  );
  console.log(
    `  admin mix: ${Object.entries(mix)
      .map(([k, v]) => `${v} ${k}`)
      .join('; ')}`,
  );
  computeMatrix(adminCluster(generate(200, 20, 7), 10).admin);
  const ms: Record<'plain' | 'admin', number[]> = { plain: [], admin: [] };
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? (['plain', 'admin'] as const) : (['admin', 'plain'] as const);
    for (const v of order) {
      const t = time(() => computeMatrix(v === 'plain' ? plain : admin));
      ms[v].push(t.ms);
      console.log(
        `  run ${r} ${v.padEnd(5)}: ${t.ms.toFixed(0)} ms  (${t.value.classes} classes, ${t.value.evaluations} evaluations, ${allowedShare(t.value)} allowed)`,
      );
    }
  }
  for (const v of ['plain', 'admin'] as const)
    console.log(`  ${v.padEnd(5)} ${runs} runs, median (min-max): ${range(ms[v], 0)} ms`);
  console.log(
    `  admin/plain per run, median (min-max): ${range(
      ms.admin.map((x, i) => x / ms.plain[i]!),
      2,
    )}`,
  );

  const est = adminAwareClasses(admin, matrixPods(admin));
  console.log(
    `  estimate with the admin tiers' inputs in the class key: ${est} classes, ~${est * est * probes.length} evaluations (bench-local estimate)`,
  );

  // Is the class answer still the evaluator's with admin policies? Classes vs naive on a subset;
  // naive on the same subset without them gives the admin tiers' cost per evaluate().
  const subC = adminCluster(generate(subsetPods, numPolicies), numAdmin);
  const sub = subC.admin;
  const subCls = time(() => computeMatrix(sub));
  const subNaive = time(() => computeMatrixNaive(sub));
  const subPlain = time(() => computeMatrixNaive(subC.plain));
  const us = (t: { ms: number; value: MatrixResult }) => (1000 * t.ms) / Math.max(1, t.value.evaluations);
  console.log(
    `subset with admin policies: ${subsetPods} pods, ${numPolicies} policies, ${numAdmin} admin policies`,
  );
  console.log(
    `  classes:  ${subCls.ms.toFixed(0)} ms  (${subCls.value.classes} classes, ${subCls.value.evaluations} evaluations)`,
  );
  console.log(
    `  naive:    ${subNaive.ms.toFixed(0)} ms  (${subNaive.value.evaluations} evaluations, ${allowedShare(subNaive.value)} allowed)`,
  );
  console.log(
    `  per evaluate(): ${us(subNaive).toFixed(1)} µs with admin policies, ${us(subPlain).toFixed(1)} µs without (naive, same subset)`,
  );
  const same_ = same(subCls.value, subNaive.value);
  console.log(
    `  results identical: ${same_}${same_ ? '' : ` (${differing(subCls.value, subNaive.value)} of ${subNaive.value.pods.length ** 2 * subNaive.value.probes.length} cells differ)`}`,
  );
}

function main(): void {
  const numPods = Number(process.argv[2] ?? 2000);
  const numPolicies = Number(process.argv[3] ?? 200);
  const subsetPods = Number(process.argv[4] ?? 200);
  const numAdmin = Number(process.argv[5] ?? 0);
  if (numAdmin > 0) {
    sideBySide(numPods, numPolicies, subsetPods, numAdmin, Math.max(1, Number(process.argv[6] ?? 5)));
    return;
  }

  const full = generate(numPods, numPolicies);
  const probes = declaredProbes(matrixPods(full));
  // Warm up the JIT on a small instance so the figures measure steady state.
  computeMatrix(generate(200, 20, 7));

  const cls = time(() => computeMatrix(full));
  const cells = cls.value.pods.length ** 2 * probes.length;
  console.log(
    `matrix: ${numPods} pods, ${numPolicies} policies, ${probes.length} probes (${probes.map((p) => `${p.protocol}/${p.port}`).join(' ')})`,
  );
  console.log(
    `  classes:  ${cls.ms.toFixed(0)} ms  (${cls.value.classes} classes, ${cls.value.evaluations} evaluations, ${cells} cells, ${allowedShare(cls.value)} allowed)`,
  );

  const sub = generate(subsetPods, numPolicies);
  const subCls = time(() => computeMatrix(sub));
  const subNaive = time(() => computeMatrixNaive(sub));
  const ratio = subNaive.ms / Math.max(subCls.ms, 0.001);
  console.log(`subset: ${subsetPods} pods, ${numPolicies} policies`);
  console.log(
    `  classes:  ${subCls.ms.toFixed(0)} ms  (${subCls.value.classes} classes, ${subCls.value.evaluations} evaluations)`,
  );
  console.log(`  naive:    ${subNaive.ms.toFixed(0)} ms  (${subNaive.value.evaluations} evaluations)`);
  console.log(
    `  ratio:    naive / classes = ${ratio.toFixed(1)}x; results identical: ${same(subCls.value, subNaive.value)}`,
  );
  const perEval = subNaive.ms / Math.max(subNaive.value.evaluations, 1);
  console.log(
    `  naive on the full set would take ~${((perEval * cells) / 1000).toFixed(0)} s (${(perEval * 1000).toFixed(1)} µs per evaluation, extrapolated)`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
