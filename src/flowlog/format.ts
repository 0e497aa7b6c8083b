// `moat flows` output: compact (one line per record, like `hubble observe`), an aligned table, and
// JSON lines. Pure.
import type { FlowEndpoint, FlowRecord, PolicyHit, PolicyKind } from './record.js';

export const FLOW_OUTPUTS = ['compact', 'json', 'table'] as const;
export type FlowOutput = (typeof FLOW_OUTPUTS)[number];

/** `ns/pod:port` for a pod, `ip:port` (`[ip]:port` for IPv6) otherwise; no port: without `:port`. */
export function formatEndpoint(e: FlowEndpoint): string {
  if (e.namespace !== undefined && e.pod !== undefined) {
    return e.port !== undefined ? `${e.namespace}/${e.pod}:${e.port}` : `${e.namespace}/${e.pod}`;
  }
  if (e.port === undefined) return e.ip;
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

const ICMP_NAMES: Readonly<Record<string, string>> = {
  'ipv4:0': 'echo-reply',
  'ipv4:8': 'echo-request',
  'ipv6:128': 'echo-request',
  'ipv6:129': 'echo-reply',
};

/** `TCP SYN`, `UDP`, `ICMP echo-request`, `ICMPv6 type 1 code 4`. */
export function formatProtocol(r: FlowRecord): string {
  if (r.tcpFlags !== undefined && r.tcpFlags !== '') return `${r.protocol} ${r.tcpFlags}`;
  if (r.icmp !== undefined) {
    const name = r.icmp.code === 0 ? ICMP_NAMES[`${r.family}:${r.icmp.type}`] : undefined;
    return `${r.protocol} ${name ?? `type ${r.icmp.type} code ${r.icmp.code}`}`;
  }
  return r.protocol;
}

/**
 * One line: `TIME NODE  SRC -> DST PROTO  VERDICT  DIRECTION  SUMMARY`, e.g.
 * `2026-12-03T05:31:12.345Z node-a  shop/web:41234 -> shop/db:5432 TCP SYN  denied  ingress  isolated by shop/default-deny; no rule matched`.
 */
export function formatCompact(r: FlowRecord): string {
  return (
    `${r.time} ${r.node}  ${formatEndpoint(r.src)} -> ${formatEndpoint(r.dst)} ${formatProtocol(r)}  ` +
    `${r.verdict}  ${r.direction}  ${r.summary}`
  );
}

const KIND_SHORT: Readonly<Record<PolicyKind, string>> = {
  NetworkPolicy: 'np',
  AdminNetworkPolicy: 'anp',
  BaselineAdminNetworkPolicy: 'banp',
  ClusterNetworkPolicy: 'cnp',
};

/** `np shop/allow-web [ingress 0]`, `np shop/default-deny`, `anp x rule "r1"`, `cnp y [egress 2]`. */
export function formatHit(h: PolicyHit, direction: string): string {
  const kind = KIND_SHORT[h.kind] ?? h.kind;
  const name = h.namespace !== undefined ? `${h.namespace}/${h.name}` : h.name;
  if (h.ruleName !== undefined && h.ruleName !== '')
    return `${kind} ${name} rule ${JSON.stringify(h.ruleName)}`;
  if (h.rule !== undefined) return `${kind} ${name} [${direction} ${h.rule}]`;
  return `${kind} ${name}`;
}

/** The action of the hits that decided, by reason; undefined: no policy decided. */
const DECIDING_ACTION: Readonly<Record<string, PolicyHit['action']>> = {
  'rule-matched': 'allow',
  'admin-accept': 'allow',
  'baseline-accept': 'allow',
  'no-rule-matched': 'deny',
  'admin-deny': 'deny',
  'baseline-deny': 'deny',
};
const NO_POLICY: ReadonlySet<string> = new Set(['not-isolated', 'own-node']);

/**
 * The hit that decided, with `+N` for the N others that agree (the other isolating policies, the
 * other admitting rules): the first hit whose action is the reason's (allow for rule-matched, ...),
 * so neither an admin Pass nor the isolation under an admitting rule is named; `-` when no policy
 * decided (not-isolated, own-node). A reason this version does not know: the first non-Pass hit.
 */
export function decidingHit(r: FlowRecord): string {
  const action = DECIDING_ACTION[r.reason];
  const decided =
    action !== undefined
      ? r.policies.filter((h) => h.action === action)
      : NO_POLICY.has(r.reason)
        ? []
        : r.policies.filter((h) => h.action !== 'pass');
  const first = decided[0];
  if (first === undefined) return '-';
  return formatHit(first, r.direction) + (decided.length > 1 ? ` +${decided.length - 1}` : '');
}

export const TABLE_HEADER = [
  'TIME',
  'NODE',
  'SRC',
  'DST',
  'PROTO',
  'VERDICT',
  'DIR',
  'POLICY',
  'REASON',
] as const;

function tableRow(r: FlowRecord): string[] {
  return [
    r.time,
    r.node,
    formatEndpoint(r.src),
    formatEndpoint(r.dst),
    formatProtocol(r),
    r.verdict,
    r.direction,
    decidingHit(r),
    r.reason,
  ];
}

/** Aligned columns (two spaces apart, no trailing spaces), header first; every line ends in \n. */
export function formatTable(records: readonly FlowRecord[]): string {
  const rows: string[][] = [[...TABLE_HEADER], ...records.map(tableRow)];
  const widths = TABLE_HEADER.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

// The record's key order (record.ts), so that JSON output does not depend on the writer's order.
const RECORD_KEYS = [
  'time',
  'node',
  'verdict',
  'direction',
  'protocol',
  'family',
  'src',
  'dst',
  'icmp',
  'tcpFlags',
  'policies',
  'reason',
  'summary',
];
const ENDPOINT_KEYS = ['ip', 'port', 'namespace', 'pod', 'labels', 'node'];
const HIT_KEYS = ['kind', 'namespace', 'name', 'tier', 'rule', 'ruleName', 'action'];
const ICMP_KEYS = ['type', 'code'];

/** The known keys in `order`, then the others (fields a newer writer added) in their own order. */
function ordered(
  o: unknown,
  order: readonly string[],
  nested: (key: string, v: unknown) => unknown,
): unknown {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return o;
  const src = o as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of order) if (k in src) out[k] = nested(k, src[k]);
  for (const k of Object.keys(src)) if (!(k in out)) out[k] = src[k];
  return out;
}

/** The record as one JSON line (no newline), keys in the record type's order, unknown keys kept. */
export function formatJson(r: FlowRecord): string {
  const none = (_k: string, v: unknown): unknown => v;
  return JSON.stringify(
    ordered(r, RECORD_KEYS, (k, v) => {
      if (k === 'src' || k === 'dst') return ordered(v, ENDPOINT_KEYS, none);
      if (k === 'icmp') return ordered(v, ICMP_KEYS, none);
      if (k === 'policies' && Array.isArray(v)) return v.map((h) => ordered(h, HIT_KEYS, none));
      return v;
    }),
  );
}
