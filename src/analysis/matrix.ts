// The reachability matrix: for each probed (port, protocol), whether every pod can reach every pod.
// Pure, and built on evaluate() so that it agrees with the reference evaluator by construction.
//
// Scale: pods that the evaluator cannot tell apart are grouped into equivalence classes; the
// evaluator runs once per (source class, destination class, probe) and the answer is expanded to
// every pod pair. What the evaluator reads of a pod in a pod-to-pod flow, other than its name (which
// only matters for "a pod reaching itself": the diagonal, set per pod), is: hostNetwork, the family
// of its first IP (the flow's family), its named containerPorts, and what its namespace, labels and
// addresses decide: which policies select it, and which peers (selectors, ipBlocks per family) match
// it. Pods alike in (namespace, labels, ports, hostNetwork, ipBlock membership) always share a class.
// nodeName matters only for "traffic to and from the node where a Pod is running is always allowed",
// i.e. between a pod and a hostNetwork pod on its node: rather than splitting every class per node,
// class representatives are chosen on different nodes, and the same-node pairs are evaluated apart
// (once per pair of classes and probe) and override the class answer.
//
// Admin tiers (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy): the key also
// records which admin policies' subjects select the pod, and which admin peers match it: namespaces
// and pods peers by selection, networks peers by address (per family), nodes peers by address (per
// family) and, for a hostNetwork pod, by its node (so here the node does enter the key, as the
// membership bits of the nodes peers). Named ports are already in the key.
//
// Address family: the flow between two pods uses the evaluator's default, the family of the
// source's first IP (IPv4 for IPv4-only and for dual-stack pods listed IPv4 first).
import { formatAddress, parseIP, type Address } from '../model/cidr.js';
import { conflictedAddresses } from '../model/conflicts.js';
import { selectorKey } from '../model/selector.js';
import type { AdminPeer, Peer, Pod, Protocol, Snapshot } from '../model/types.js';
import { PROTOCOLS, podKey } from '../model/types.js';
import { adminPeerMatches, subjectSelects } from '../policy/admin.js';
import { evaluate, indexOf, peerMatches, type Flow, type SnapshotIndex } from '../policy/evaluate.js';

export interface Probe {
  readonly port: number;
  readonly protocol: Protocol;
}

export interface MatrixOptions {
  /** Probes to compute; default: every (containerPort, protocol) a matrix pod declares. */
  readonly ports?: readonly Probe[];
}

export interface ProbeResult extends Probe {
  /** Row-major pods.length x pods.length: cells[from * n + to] is 1 when allowed. */
  readonly cells: Uint8Array;
}

export interface MatrixResult {
  /** "ns/name" of every live pod (workload pods "ns/deploy/web", ...), sorted. */
  readonly pods: readonly string[];
  readonly probes: readonly ProbeResult[];
  /** Number of equivalence classes the pods fell into (for reports and benchmarks). */
  readonly classes: number;
  /** evaluate() calls made. */
  readonly evaluations: number;
}

/**
 * The stable JSON schema of `moat matrix -o json` and the lab's observed matrix. Other tools consume
 * it: do not change it. Every (from, to) pair is present.
 */
export interface MatrixJson {
  pods: string[];
  probes: { port: number; protocol: Protocol; allowed: Record<string, Record<string, boolean>> }[];
}

/**
 * Pods in the matrix: every live pod, with or without an address (workload pods have none; as in
 * netpol-analyzer, ipBlock peers then match addresses only), sorted by "ns/name".
 */
export function matrixPods(snapshot: Snapshot): Pod[] {
  return snapshot.pods
    .map((p) => ({ p, k: podKey(p) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map((e) => e.p);
}

const protoRank = (p: Protocol): number => PROTOCOLS.indexOf(p);

export function sortProbes(probes: readonly Probe[]): Probe[] {
  const seen = new Set<string>();
  const out: Probe[] = [];
  for (const p of probes) {
    const k = `${p.port}/${p.protocol}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ port: p.port, protocol: p.protocol });
  }
  return out.sort((a, b) => a.port - b.port || protoRank(a.protocol) - protoRank(b.protocol));
}

/** Every (containerPort, protocol) the pods declare, sorted by port then protocol (TCP, UDP, SCTP). */
export function declaredProbes(pods: readonly Pod[]): Probe[] {
  return sortProbes(
    pods.flatMap((p) => p.ports.map((cp) => ({ port: cp.containerPort, protocol: cp.protocol }))),
  );
}

function firstAddress(p: Pod): Address | undefined {
  for (const ip of p.ips) {
    const a = parseIP(ip);
    if (a) return a;
  }
  return undefined;
}

function addressOf(p: Pod, family: 4 | 6): Address | undefined {
  for (const ip of p.ips) {
    const a = parseIP(ip);
    if (a && a.family === family) return a;
  }
  return undefined;
}

/** The distinct peers of all policies' rules, with the namespace of their policy. */
function distinctPeers(snapshot: Snapshot): { namespace: string; peer: Peer }[] {
  const seen = new Map<string, { namespace: string; peer: Peer }>();
  for (const pol of snapshot.policies) {
    for (const r of [...pol.ingress, ...pol.egress]) {
      for (const peer of r.peers ?? []) {
        // ipBlock peers do not depend on the policy's namespace; selector peers may.
        const k =
          peer.kind === 'ipBlock'
            ? `ip|${peer.ipBlock.cidr}|${peer.ipBlock.except.join(',')}`
            : `sel|${pol.namespace}|${peer.podSelector ? selectorKey(peer.podSelector) : '-'}|${
                peer.namespaceSelector ? selectorKey(peer.namespaceSelector) : '-'
              }|${peer.podSelector ? 'p' : ''}${peer.namespaceSelector ? 'n' : ''}`;
        if (!seen.has(k)) seen.set(k, { namespace: pol.namespace, peer });
      }
    }
  }
  return [...seen.values()];
}

/** The distinct peers of all admin policies' rules that a pod may match (not domainNames, unknown). */
function distinctAdminPeers(snapshot: Snapshot): AdminPeer[] {
  const seen = new Map<string, AdminPeer>();
  for (const pol of snapshot.adminPolicies ?? []) {
    for (const r of [...pol.ingress, ...pol.egress]) {
      for (const peer of r.peers) {
        if (peer.kind === 'domainNames' || peer.kind === 'unknown') continue;
        const k =
          peer.kind === 'networks'
            ? `net|${peer.networks.join(',')}`
            : peer.kind === 'nodes'
              ? `node|${selectorKey(peer.nodeSelector)}`
              : `${peer.kind}|${selectorKey(peer.namespaceSelector)}|${
                  peer.kind === 'pods' ? selectorKey(peer.podSelector) : ''
                }`;
        if (!seen.has(k)) seen.set(k, peer);
      }
    }
  }
  return [...seen.values()];
}

/** What the admin tiers read of a pod: subject selection and peer membership (see the header). */
function adminKey(index: SnapshotIndex, peers: readonly AdminPeer[], p: Pod): string {
  const policies = index.snapshot.adminPolicies ?? [];
  if (policies.length === 0) return '';
  const e = { kind: 'pod', pod: p } as const;
  let out = '';
  for (const pol of policies) out += subjectSelects(index, pol.subject, p) ? '1' : '0';
  out += '|';
  for (const peer of peers) {
    if (peer.kind === 'namespaces' || peer.kind === 'pods') {
      out += adminPeerMatches(index, peer, e, undefined) ? '1' : '0';
    } else {
      // networks and nodes: per family (the flow's); nodes also by node for hostNetwork pods.
      out += adminPeerMatches(index, peer, e, addressOf(p, 4)) ? '1' : '0';
      out += adminPeerMatches(index, peer, e, addressOf(p, 6)) ? '1' : '0';
    }
  }
  return out;
}

/**
 * Class key per pod: what evaluate() may read of a pod in a pod-to-pod flow, except its name and
 * node. Rather than the namespace and labels themselves, it records what they decide: which
 * policies select the pod (per direction), and which peers of any policy match it (ipBlocks per
 * family). Pods alike in (namespace, labels, ports, hostNetwork, ipBlock membership) get equal keys,
 * and so do more pods that no policy tells apart. Exported for tests.
 */
export function classKeys(snapshot: Snapshot, pods: readonly Pod[]): string[] {
  const index = indexOf(snapshot);
  const peers = distinctPeers(snapshot);
  const adminPeers = distinctAdminPeers(snapshot);
  // A pod at an address another live pod shares is judged fail-closed (per family).
  const shared = conflictedAddresses(snapshot);
  const isShared = (a: Address | undefined): string =>
    a !== undefined && shared.has(formatAddress(a)) ? 'S' : '-';
  const bits = (p: Pod, addr: Address | undefined, kind: Peer['kind']): string => {
    let out = '';
    for (const { namespace, peer } of peers) {
      if (peer.kind !== kind) continue;
      out += peerMatches(index, namespace, peer, { kind: 'pod', pod: p }, addr) ? '1' : '0';
    }
    return out;
  };
  return pods.map((p) => {
    // Only named container ports are read (numeric policy ports ignore the destination).
    const named = p.ports
      .filter((cp) => cp.name !== undefined)
      .map((cp) => `${cp.name ?? ''}:${cp.containerPort}/${cp.protocol}`)
      .sort()
      .join(',');
    const selecting = p.hostNetwork ? { ingress: [], egress: [] } : index.policiesFor(p);
    return [
      p.hostNetwork ? 'H' : '-',
      String(firstAddress(p)?.family ?? 0),
      named,
      selecting.ingress.join(','),
      selecting.egress.join(','),
      bits(p, undefined, 'selector'),
      bits(p, addressOf(p, 4), 'ipBlock'),
      bits(p, addressOf(p, 6), 'ipBlock'),
      shared.size === 0 ? '' : `${isShared(addressOf(p, 4))}${isShared(addressOf(p, 6))}`,
      adminKey(index, adminPeers, p),
    ].join('\u0000');
  });
}

const sameNode = (p: Pod, q: Pod): boolean => p.nodeName !== undefined && p.nodeName === q.nodeName;

/**
 * Two distinct pods, one of each class, whose flow stands for every pair of the classes except the
 * same-node pairs of a pod and a hostNetwork pod (handled apart). Undefined when there is none.
 */
function representatives(
  pods: readonly Pod[],
  from: readonly number[],
  to: readonly number[],
  sameClass: boolean,
): [number, number] | undefined {
  const f0 = from[0]!;
  if (sameClass) return from.length > 1 ? [f0, from[1]!] : undefined;
  const t0 = to[0]!;
  if (pods[f0]!.hostNetwork === pods[t0]!.hostNetwork) return [f0, t0];
  const j = to.find((t) => !sameNode(pods[f0]!, pods[t]!));
  if (j !== undefined) return [f0, j];
  const i = from.find((f) => !sameNode(pods[f]!, pods[t0]!));
  return i !== undefined ? [i, t0] : undefined;
}

const podFlow = (src: Pod, dst: Pod, probe: Probe): Flow => ({
  src: { kind: 'pod', pod: src },
  dst: { kind: 'pod', pod: dst },
  port: probe.port,
  protocol: probe.protocol,
});

/** The matrix, computed per equivalence class and expanded per pod. */
export function computeMatrix(snapshot: Snapshot, opts: MatrixOptions = {}): MatrixResult {
  const pods = matrixPods(snapshot);
  const n = pods.length;
  const probes = opts.ports !== undefined ? sortProbes(opts.ports) : declaredProbes(pods);

  const keys = classKeys(snapshot, pods);
  const classIds = new Map<string, number>();
  const classOf = new Int32Array(n);
  const members: number[][] = [];
  keys.forEach((k, i) => {
    let c = classIds.get(k);
    if (c === undefined) {
      c = members.length;
      classIds.set(k, c);
      members.push([]);
    }
    members[c]!.push(i);
    classOf[i] = c;
  });
  const m = members.length;
  const byNode = members.map((ms) => {
    const g = new Map<string, number[]>();
    for (const i of ms) {
      const nn = pods[i]!.nodeName;
      if (nn === undefined) continue;
      const l = g.get(nn);
      if (l) l.push(i);
      else g.set(nn, [i]);
    }
    return g;
  });
  const hostPods: number[] = [];
  pods.forEach((p, i) => {
    if (p.hostNetwork && p.nodeName !== undefined) hostPods.push(i);
  });

  let evaluations = 0;
  const results: ProbeResult[] = probes.map((probe) => {
    // Class x class verdicts. A class with one member has no distinct pair with itself: only the
    // diagonal, which is decided per pod below.
    const classAllowed = new Uint8Array(m * m);
    for (let a = 0; a < m; a++) {
      const from = members[a]!;
      for (let b = 0; b < m; b++) {
        const to = members[b]!;
        const pair = representatives(pods, from, to, a === b);
        if (pair === undefined) continue;
        evaluations++;
        const verdict = evaluate(snapshot, podFlow(pods[pair[0]]!, pods[pair[1]]!, probe));
        classAllowed[a * m + b] = verdict.allowed ? 1 : 0;
      }
    }
    // Expand: one row per class, copied to each member's row.
    const cells = new Uint8Array(n * n);
    for (let c = 0; c < m; c++) {
      const row = new Uint8Array(n);
      for (let j = 0; j < n; j++) row[j] = classAllowed[c * m + classOf[j]!]!;
      for (const i of members[c]!) cells.set(row, i * n);
    }
    // Pairs of a pod and a hostNetwork pod on its node. The evaluator compares node names only for
    // equality, so the answer is the same for every node: one evaluation per pair of classes.
    const sameNodeMemo = new Map<number, readonly [number, number]>();
    for (const h of hostPods) {
      const node = pods[h]!.nodeName!;
      for (let c = 0; c < m; c++) {
        const same = byNode[c]!.get(node);
        if (same === undefined || pods[same[0]!]!.hostNetwork) continue;
        const memoKey = c * m + classOf[h]!;
        let ans = sameNodeMemo.get(memoKey);
        if (ans === undefined) {
          const rep = pods[same[0]!]!;
          evaluations += 2;
          ans = [
            evaluate(snapshot, podFlow(rep, pods[h]!, probe)).allowed ? 1 : 0,
            evaluate(snapshot, podFlow(pods[h]!, rep, probe)).allowed ? 1 : 0,
          ];
          sameNodeMemo.set(memoKey, ans);
        }
        for (const i of same) {
          cells[i * n + h] = ans[0];
          cells[h * n + i] = ans[1];
        }
      }
    }
    // "a pod reaching itself" is always allowed (the evaluator's 'self' and not-a-subject cases).
    // A workload pod (other than a StatefulSet's, one per replica) stands for all its replicas: its
    // diagonal is the flow between two of them.
    for (let i = 0; i < n; i++) {
      const p = pods[i]!;
      if (p.workload === undefined || p.workload.kind === 'StatefulSet') cells[i * n + i] = 1;
      else {
        evaluations++;
        cells[i * n + i] = evaluate(snapshot, podFlow(p, replicaOf(p), probe)).allowed ? 1 : 0;
      }
    }
    return { ...probe, cells };
  });
  return { pods: pods.map(podKey), probes: results, classes: m, evaluations };
}

/** Another replica of a workload pod: the same pod under another name (the evaluator's "self" is by name). */
export function replicaOf(p: Pod): Pod {
  return { ...p, name: `${p.name}#2` };
}

/** The same matrix by evaluating every pair: the baseline for benchmarks and tests. */
export function computeMatrixNaive(snapshot: Snapshot, opts: MatrixOptions = {}): MatrixResult {
  const pods = matrixPods(snapshot);
  const n = pods.length;
  const probes = opts.ports !== undefined ? sortProbes(opts.ports) : declaredProbes(pods);
  let evaluations = 0;
  const results = probes.map((probe) => {
    const cells = new Uint8Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        evaluations++;
        const dst =
          i === j && pods[i]!.workload !== undefined && pods[i]!.workload?.kind !== 'StatefulSet'
            ? replicaOf(pods[j]!)
            : pods[j]!;
        cells[i * n + j] = evaluate(snapshot, podFlow(pods[i]!, dst, probe)).allowed ? 1 : 0;
      }
    }
    return { ...probe, cells };
  });
  return { pods: pods.map(podKey), probes: results, classes: n, evaluations };
}

export function isAllowed(r: MatrixResult, probe: number, from: number, to: number): boolean {
  return r.probes[probe]!.cells[from * r.pods.length + to] === 1;
}

export function matrixToJson(r: MatrixResult): MatrixJson {
  const n = r.pods.length;
  return {
    pods: [...r.pods],
    probes: r.probes.map((p) => {
      const allowed: Record<string, Record<string, boolean>> = {};
      for (let i = 0; i < n; i++) {
        const row: Record<string, boolean> = {};
        for (let j = 0; j < n; j++) row[r.pods[j]!] = p.cells[i * n + j] === 1;
        allowed[r.pods[i]!] = row;
      }
      return { port: p.port, protocol: p.protocol, allowed };
    }),
  };
}

/**
 * The text of `JSON.stringify(matrixToJson(r))`, in chunks of one row each. At 2,000 pods the whole
 * text is hundreds of megabytes, more than one V8 string can hold, so the CLI streams it.
 */
export function* matrixJsonChunks(r: MatrixResult): Generator<string> {
  const n = r.pods.length;
  const keys = r.pods.map((p) => `${JSON.stringify(p)}:`);
  yield `{"pods":[${r.pods.map((p) => JSON.stringify(p)).join(',')}],"probes":[`;
  for (let pi = 0; pi < r.probes.length; pi++) {
    const p = r.probes[pi]!;
    yield `${pi > 0 ? ',' : ''}{"port":${p.port},"protocol":${JSON.stringify(p.protocol)},"allowed":{`;
    const row: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) row[j] = keys[j]! + (p.cells[i * n + j] === 1 ? 'true' : 'false');
      yield `${i > 0 ? ',' : ''}${keys[i]!}{${row.join(',')}}`;
    }
    yield '}}';
  }
  yield ']}';
}

/** formatMatrixTable's text in chunks of one line each (see matrixJsonChunks). */
/**
 * The truth tables; with `width` (a terminal's columns), a table wider than that is cut into
 * column groups that fit, each printed under a `(columns K-M of N)` line, every row repeated.
 */
export function* matrixTableChunks(r: MatrixResult, view?: MatrixView, width?: number): Generator<string> {
  const pods = r.pods;
  const n = pods.length;
  const all = pods.map((_, i) => i);
  const rows = view?.rows ?? all;
  const cols = view?.cols ?? all;
  const fromW = Math.max('from\\to'.length, ...rows.map((i) => pods[i]!.length));
  // Column groups: as many columns as fit after the row labels (at least one).
  const groups: number[][] = [];
  let group: number[] = [];
  let used = fromW;
  for (const j of cols) {
    const w = 2 + pods[j]!.length;
    if (width !== undefined && group.length > 0 && used + w > width) {
      groups.push(group);
      group = [];
      used = fromW;
    }
    group.push(j);
    used += w;
  }
  if (group.length > 0 || groups.length === 0) groups.push(group);
  let first = 0;
  const ranges = groups.map((g) => {
    const range = [first + 1, first + g.length] as const;
    first += g.length;
    return range;
  });
  for (let pi = 0; pi < r.probes.length; pi++) {
    const p = r.probes[pi]!;
    if (pi > 0) yield '\n';
    yield `${p.protocol}/${p.port}\n`;
    for (let gi = 0; gi < groups.length; gi++) {
      const g = groups[gi]!;
      if (groups.length > 1)
        yield `${gi > 0 ? '\n' : ''}(columns ${ranges[gi]![0]}-${ranges[gi]![1]} of ${cols.length})\n`;
      const allowed = g.map((j) => '.'.padEnd(pods[j]!.length));
      const denied = g.map((j) => 'X'.padEnd(pods[j]!.length));
      yield `${['from\\to'.padEnd(fromW), ...g.map((j) => pods[j]!)].join('  ').trimEnd()}\n`;
      const cells: string[] = new Array<string>(g.length);
      for (const i of rows) {
        g.forEach((j, k) => (cells[k] = p.cells[i * n + j] === 1 ? allowed[k]! : denied[k]!));
        yield `${[pods[i]!.padEnd(fromW), ...cells].join('  ').trimEnd()}\n`;
      }
    }
  }
}

/**
 * One truth table per probe: a `PROTOCOL/PORT` header line, then rows = from, columns = to,
 * `.` allowed and `X` denied, aligned. Accepts the JSON form too, so the lab can print observations.
 */
export function formatMatrixTable(m: MatrixResult | MatrixJson): string {
  const json = 'classes' in m ? null : m;
  const pods = m.pods;
  const n = pods.length;
  const fromW = Math.max('from\\to'.length, ...pods.map((p) => p.length));
  const out: string[] = [];
  m.probes.forEach((p, pi) => {
    if (pi > 0) out.push('');
    out.push(`${p.protocol}/${p.port}`);
    out.push(['from\\to'.padEnd(fromW), ...pods].join('  ').trimEnd());
    for (let i = 0; i < n; i++) {
      const cells: string[] = [];
      for (let j = 0; j < n; j++) {
        const ok =
          json !== null
            ? json.probes[pi]!.allowed[pods[i]!]?.[pods[j]!] === true
            : (p as ProbeResult).cells[i * n + j] === 1;
        cells.push((ok ? '.' : 'X').padEnd(pods[j]!.length));
      }
      out.push([pods[i]!.padEnd(fromW), ...cells].join('  ').trimEnd());
    }
  });
  return out.join('\n') + (out.length > 0 ? '\n' : '');
}

/**
 * The matrix restricted to some sources (rows) and destinations (columns), for `--namespace`,
 * `--from` and `--to`. The JSON form needs a square matrix, so a restriction keeps the union of both
 * as pods and marks only the kept cells; the text forms print rows and columns apart.
 */
export interface MatrixView {
  readonly rows: readonly number[];
  readonly cols: readonly number[];
}

export function matrixView(
  r: MatrixResult,
  from: (pod: string) => boolean,
  to: (pod: string) => boolean,
): MatrixView {
  const all = r.pods.map((_, i) => i);
  return { rows: all.filter((i) => from(r.pods[i]!)), cols: all.filter((i) => to(r.pods[i]!)) };
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** CSV: one line per (from, to, probe): `from,to,protocol,port,allowed`. */
export function* matrixCsvChunks(r: MatrixResult, v: MatrixView): Generator<string> {
  yield 'from,to,protocol,port,allowed\n';
  const n = r.pods.length;
  for (const p of r.probes) {
    for (const i of v.rows) {
      let out = '';
      for (const j of v.cols) {
        out += `${csvField(r.pods[i]!)},${csvField(r.pods[j]!)},${p.protocol},${p.port},${p.cells[i * n + j] === 1}\n`;
      }
      yield out;
    }
  }
}

/** Markdown: one table per probe, rows = from, columns = to, ✓ allowed, ✗ denied. */
export function* matrixMarkdownChunks(r: MatrixResult, v: MatrixView): Generator<string> {
  const n = r.pods.length;
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  for (let pi = 0; pi < r.probes.length; pi++) {
    const p = r.probes[pi]!;
    if (pi > 0) yield '\n';
    yield `### ${p.protocol}/${p.port}\n\n`;
    yield `| from \\ to | ${v.cols.map((j) => `\`${esc(r.pods[j]!)}\``).join(' | ')} |\n`;
    yield `| --- | ${v.cols.map(() => ':-:').join(' | ')} |\n`;
    for (const i of v.rows) {
      yield `| \`${esc(r.pods[i]!)}\` | ${v.cols.map((j) => (p.cells[i * n + j] === 1 ? '✓' : '✗')).join(' | ')} |\n`;
    }
  }
}

/**
 * Graphviz: a node per pod or workload (a cluster per namespace), an edge per allowed pair (not a
 * pod to itself) labelled with the probes it is allowed on, "all probed ports" when every probe is. Render
 * with `dot -Tsvg`.
 */
export function* matrixDotChunks(r: MatrixResult, v: MatrixView): Generator<string> {
  const n = r.pods.length;
  const q = (s: string): string => `"${s.replace(/["\\]/g, '\\$&')}"`;
  yield 'digraph moat {\n  rankdir=LR;\n  node [shape=box, fontname="monospace"];\n';
  const shown = [...new Set([...v.rows, ...v.cols])].sort((a, b) => a - b);
  const byNs = new Map<string, number[]>();
  for (const i of shown) {
    const pod = r.pods[i]!;
    const ns = pod.slice(0, pod.indexOf('/'));
    byNs.set(ns, [...(byNs.get(ns) ?? []), i]);
  }
  for (const [ns, members] of byNs) {
    yield `  subgraph ${q(`cluster_${ns}`)} {\n    label=${q(ns)};\n`;
    for (const i of members) yield `    ${q(r.pods[i]!)} [label=${q(r.pods[i]!.slice(ns.length + 1))}];\n`;
    yield '  }\n';
  }
  for (const i of v.rows) {
    let out = '';
    for (const j of v.cols) {
      if (i === j) continue;
      const open = r.probes.filter((p) => p.cells[i * n + j] === 1);
      if (open.length === 0) continue;
      const label =
        open.length === r.probes.length && r.probes.length > 1
          ? 'all probed ports'
          : open.map((p) => `${p.protocol}/${p.port}`).join(', ');
      out += `  ${q(r.pods[i]!)} -> ${q(r.pods[j]!)} [label=${q(label)}];\n`;
    }
    yield out;
  }
  yield '}\n';
}

/** The result with only the view's rows and columns (for the table and the JSON of a square view). */
export function restrictMatrix(r: MatrixResult, v: MatrixView): MatrixResult {
  const n = r.pods.length;
  const keep = [...new Set([...v.rows, ...v.cols])].sort((a, b) => a - b);
  const m = keep.length;
  return {
    ...r,
    pods: keep.map((i) => r.pods[i]!),
    probes: r.probes.map((p) => {
      const cells = new Uint8Array(m * m);
      keep.forEach((i, a) => keep.forEach((j, b) => (cells[a * m + b] = p.cells[i * n + j]!)));
      return { ...p, cells };
    }),
  };
}
