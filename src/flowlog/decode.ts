// Reading flow records back from NDJSON (the agent's log files, its /flows stream). Pure. Checks the
// fields that filters and formats read, by type only: a newer agent may add fields and enum values,
// and an older `moat flows` still prints its records.
import type { FlowRecord } from './record.js';

/** A record from one JSON line; a string is why the line is not one (the caller adds FILE:LINE). */
export function decodeFlowRecord(line: string): FlowRecord | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    return `not JSON: ${e instanceof Error ? e.message : String(e)}`;
  }
  const why = record(v, '');
  return why === undefined ? (v as FlowRecord) : `not a flow record: ${why}`;
}

/** A problem at `path` (`src.ip`, `policies[0].name`; "" is the record itself), or undefined. */
type Check = (v: unknown, path: string) => string | undefined;

const at = (path: string, why: string): string => (path === '' ? why : `${path}: ${why}`);
const str: Check = (v, p) => (typeof v === 'string' ? undefined : at(p, 'must be a string'));
const int: Check = (v, p) => (Number.isInteger(v) ? undefined : at(p, 'must be an integer'));

function optional(c: Check): Check {
  return (v, p) => (v === undefined ? undefined : c(v, p));
}

function object(fields: Readonly<Record<string, Check>>): Check {
  return (v, p) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return at(p, 'must be an object');
    const o = v as Record<string, unknown>;
    for (const [k, c] of Object.entries(fields)) {
      const why = c(o[k], p === '' ? k : `${p}.${k}`);
      if (why !== undefined) return why;
    }
    return undefined;
  };
}

function array(c: Check): Check {
  return (v, p) => {
    if (!Array.isArray(v)) return at(p, 'must be an array');
    for (const [i, item] of (v as unknown[]).entries()) {
      const why = c(item, `${p}[${i}]`);
      if (why !== undefined) return why;
    }
    return undefined;
  };
}

const endpoint = object({
  ip: str,
  port: optional(int),
  namespace: optional(str),
  pod: optional(str),
  node: optional(str),
});

const record = object({
  time: str,
  node: str,
  verdict: str,
  direction: str,
  protocol: str,
  family: str,
  src: endpoint,
  dst: endpoint,
  icmp: optional(object({ type: int, code: int })),
  tcpFlags: optional(str),
  policies: array(
    object({
      kind: str,
      namespace: optional(str),
      name: str,
      rule: optional(int),
      ruleName: optional(str),
      action: str,
    }),
  ),
  reason: str,
  summary: str,
});
