// The conformance model, after upstream's netpol e2e: namespaces x, y, z, pods a, b, c in each,
// every pod serving 80 and 81 on TCP, UDP and SCTP. Cases (cases.ts) are data; this file holds the
// cluster they run against and the truth-matrix helpers shared by the evaluator test and the
// dataplane e2e runner.
import type { Family } from '../../src/model/cidr.js';
import { cport, node, ns, pod, snapshot } from '../../src/model/build.js';
import type { ContainerPort, NetworkPolicy, Pod, Protocol, Snapshot } from '../../src/model/types.js';
import { PROTOCOLS } from '../../src/model/types.js';
import { evaluate, type Endpoint } from '../../src/policy/evaluate.js';

export type { Family };

export const NAMESPACES = ['x', 'y', 'z'] as const;
export const POD_NAMES = ['a', 'b', 'c'] as const;
export const SERVED_PORTS = [80, 81] as const;
export const FAMILIES: readonly Family[] = [4, 6];

/** "x/a", ..., "z/c": the rows (sources) and columns (destinations) of every matrix, in order. */
export const PODS: readonly string[] = NAMESPACES.flatMap((n) => POD_NAMES.map((p) => `${n}/${p}`));

export const NODE_NAME = 'moat-lab';
export const NODE_ADDRESSES: Readonly<Record<Family, string>> = { 4: '10.244.0.1', 6: 'fd00:10:244::1' };

/** Upstream's container port names: "serve-80-tcp", "serve-81-udp", ... */
export function portName(port: number, protocol: Protocol): string {
  return `serve-${port}-${protocol.toLowerCase()}`;
}

function splitKey(key: string): { nsIndex: number; podIndex: number } {
  const [n = '', p = ''] = key.split('/');
  const nsIndex = (NAMESPACES as readonly string[]).indexOf(n);
  const podIndex = (POD_NAMES as readonly string[]).indexOf(p);
  if (nsIndex < 0 || podIndex < 0) throw new Error(`not a model pod: "${key}"`);
  return { nsIndex, podIndex };
}

/**
 * Deterministic addresses: namespace x is 10.244.1.0/24 (fd00:10:244::1:0/112), y is .2, z is .3;
 * pod a is .1, b .2, c .3. So x/a = 10.244.1.1 / fd00:10:244::1:1, z/c = 10.244.3.3 / fd00:10:244::3:3.
 */
export function podAddress(key: string, family: Family): string {
  const { nsIndex, podIndex } = splitKey(key);
  return family === 4
    ? `10.244.${nsIndex + 1}.${podIndex + 1}`
    : `fd00:10:244::${nsIndex + 1}:${podIndex + 1}`;
}

export function modelPorts(): ContainerPort[] {
  return SERVED_PORTS.flatMap((p) => PROTOCOLS.map((proto) => cport(p, proto, portName(p, proto))));
}

/** The nine pods, with addresses of the given families (dual-stack by default). */
export function modelPods(families: readonly Family[] = FAMILIES): Pod[] {
  return PODS.map((key) => {
    const [n = '', p = ''] = key.split('/');
    return pod(n, p, {
      labels: { pod: p },
      ips: families.map((f) => podAddress(key, f)),
      ports: modelPorts(),
      nodeName: NODE_NAME,
    });
  });
}

/** Snapshot of the model cluster with the given policies. */
export function buildSnapshot(
  policies: readonly NetworkPolicy[],
  families: readonly Family[] = FAMILIES,
): Snapshot {
  return snapshot({
    namespaces: NAMESPACES.map((n) => ns(n, { ns: n })),
    pods: modelPods(families),
    nodes: [
      node(
        NODE_NAME,
        families.map((f) => NODE_ADDRESSES[f]),
      ),
    ],
    policies: [...policies],
  });
}

// ---------------------------------------------------------------------------------------------
// Truth matrices.

/** Connectivity matrix: matrix[from][to] is true when from may connect to to. Plain JSON. */
export type Matrix = Readonly<Record<string, Readonly<Record<string, boolean>>>>;
/** A matrix written by hand from the API reference. */
export type Truth = Matrix;

export interface Probe {
  readonly port: number;
  readonly protocol: Protocol;
  readonly expected: Truth;
}

export interface ConformanceCase {
  readonly name: string;
  /** The API reference rule (quoted) the case checks. */
  readonly description: string;
  readonly policies: readonly NetworkPolicy[];
  /** Address families the truth holds for (cases with ipBlocks are family-specific). */
  readonly families: readonly Family[];
  readonly probes: readonly Probe[];
}

function mutable(fill: boolean): Record<string, Record<string, boolean>> {
  const m: Record<string, Record<string, boolean>> = {};
  for (const f of PODS) {
    const row: Record<string, boolean> = {};
    for (const t of PODS) row[t] = fill;
    m[f] = row;
  }
  return m;
}

// Pod patterns for edits: "x/a", "x/*" (all of namespace x), "*/a" (pod a everywhere), "*", or a
// list of those.
export type PodPattern = string | readonly string[];

export function expandPattern(p: PodPattern): string[] {
  const parts = typeof p === 'string' ? [p] : p;
  const out = new Set<string>();
  for (const part of parts) {
    const [n, name] = part === '*' ? ['*', '*'] : part.split('/');
    if (n === undefined || name === undefined) throw new Error(`bad pod pattern "${part}"`);
    let hit = false;
    for (const key of PODS) {
      const [kn, kp] = key.split('/');
      if ((n === '*' || n === kn) && (name === '*' || name === kp)) {
        out.add(key);
        hit = true;
      }
    }
    if (!hit) throw new Error(`pod pattern "${part}" matches no model pod`);
  }
  return [...out];
}

export interface Edit {
  readonly allowed: boolean;
  readonly from: PodPattern;
  readonly to: PodPattern;
}

export const deny = (from: PodPattern, to: PodPattern): Edit => ({ allowed: false, from, to });
export const allow = (from: PodPattern, to: PodPattern): Edit => ({ allowed: true, from, to });

/**
 * Starts from all-allowed and applies the edits in order. The diagonal is then set to allowed: a pod
 * reaching itself is never subject to policy (the evaluator's "self" rule; upstream ignores loopback).
 */
export function truth(...edits: readonly Edit[]): Truth {
  const m = mutable(true);
  for (const e of edits) {
    for (const f of expandPattern(e.from)) for (const t of expandPattern(e.to)) m[f]![t] = e.allowed;
  }
  for (const p of PODS) m[p]![p] = true;
  return m;
}

/**
 * Parses an upstream-style truth table: a header naming the nine destinations, then one row per
 * source: its name and nine cells, '.' allowed and 'X' denied.
 */
export function grid(text: string): Truth {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const [header, ...rows] = lines;
  const cols = header?.split(/\s+/) ?? [];
  if (cols.join(' ') !== PODS.join(' '))
    throw new Error(`grid header must be "${PODS.join(' ')}", got "${header}"`);
  const m = mutable(true);
  const seen = new Set<string>();
  for (const row of rows) {
    const [from = '', ...cells] = row.split(/\s+/);
    if (!PODS.includes(from) || seen.has(from))
      throw new Error(`grid row "${row}": unknown or repeated source`);
    if (cells.length !== PODS.length) throw new Error(`grid row "${row}": want ${PODS.length} cells`);
    seen.add(from);
    cells.forEach((cell, i) => {
      const to = PODS[i]!;
      if (cell !== '.' && cell !== 'X')
        throw new Error(`grid row "${row}": cell "${cell}" is not '.' or 'X'`);
      if (from === to && cell === 'X') throw new Error(`grid row "${row}": the diagonal is always allowed`);
      m[from]![to] = cell === '.';
    });
  }
  if (seen.size !== PODS.length) throw new Error(`grid has ${seen.size} rows, want ${PODS.length}`);
  return m;
}

/** Renders a matrix as a grid, the format `grid()` reads. `mark` decorates chosen cells. */
export function formatMatrix(m: Matrix, mark: (from: string, to: string) => string = () => ' '): string {
  const lines = [`    ${PODS.map((p) => ` ${p}`).join('')}`];
  for (const f of PODS) {
    const cells = PODS.map((t) => {
      const v = m[f]?.[t];
      const c = v === undefined ? '?' : v ? '.' : 'X';
      return `  ${c}${mark(f, t)}`;
    });
    lines.push(`${f} ${cells.join('')}`.trimEnd());
  }
  return lines.join('\n');
}

/**
 * Undefined when the matrices agree on all 81 pairs; otherwise a report with both grids (mismatches
 * marked '!') and the list of differing pairs.
 */
export function diffMatrices(expected: Matrix, actual: Matrix): string | undefined {
  const wrong: string[] = [];
  for (const f of PODS) {
    for (const t of PODS) {
      const e = expected[f]?.[t];
      const a = actual[f]?.[t];
      if (e !== a) {
        const word = (v: boolean | undefined): string =>
          v === undefined ? 'missing' : v ? 'allowed' : 'denied';
        wrong.push(`  ${f} -> ${t}: expected ${word(e)}, got ${word(a)}`);
      }
    }
  }
  if (wrong.length === 0) return undefined;
  const mark = (f: string, t: string): string => (expected[f]?.[t] !== actual[f]?.[t] ? '!' : ' ');
  return [
    `${wrong.length} of ${PODS.length * PODS.length} pairs differ (rows = from, columns = to; '.' allowed, 'X' denied, '!' mismatch)`,
    'expected:',
    formatMatrix(expected, mark),
    'actual:',
    formatMatrix(actual, mark),
    ...wrong,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Running cases.

/** One concrete run of a case: one family, one port and protocol, the expected matrix as JSON. */
export interface CaseRun {
  readonly case: string;
  readonly family: Family;
  readonly port: number;
  readonly protocol: Protocol;
  /** e.g. "80/TCP IPv4" */
  readonly label: string;
  readonly expected: Matrix;
}

/** Expands a case into its runs: every family times every probe. */
export function caseMatrices(c: ConformanceCase, families: readonly Family[] = c.families): CaseRun[] {
  return families
    .filter((f) => c.families.includes(f))
    .flatMap((family) =>
      c.probes.map((p) => ({
        case: c.name,
        family,
        port: p.port,
        protocol: p.protocol,
        label: `${p.port}/${p.protocol} IPv${family}`,
        expected: p.expected,
      })),
    );
}

/** The reference evaluator's answer for all 81 pairs. */
export function evaluateMatrix(snap: Snapshot, port: number, protocol: Protocol, family: Family): Matrix {
  const byKey = new Map(snap.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  const ep = (key: string): Endpoint => {
    const p = byKey.get(key);
    if (!p) throw new Error(`snapshot has no pod ${key}`);
    return { kind: 'pod', pod: p };
  };
  const m: Record<string, Record<string, boolean>> = {};
  for (const f of PODS) {
    const row: Record<string, boolean> = {};
    for (const t of PODS) {
      row[t] = evaluate(snap, { src: ep(f), dst: ep(t), port, protocol, family }).allowed;
    }
    m[f] = row;
  }
  return m;
}
