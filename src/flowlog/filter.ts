// Flow filters in the spirit of `hubble observe`, built from key/value parameters so that the agent's
// `GET /flows?verdict=denied&namespace=x` and `moat flows --verdict denied -n x` share one parser
// and one meaning. Pure: the caller passes `now` (for `since=5m`).
//
// Semantics: every parameter is a list (repeated, or comma-separated); a record matches a parameter
// when it matches any of its values, and matches the filter when it matches every parameter given.
// Names (namespaces, pods, policies, nodes) may end in `*`, a prefix glob.
import { UsageError } from '../errors.js';
import { cidrContains, parseCidr, parseIP, type Cidr } from '../model/cidr.js';
import type {
  FlowDirection,
  FlowEndpoint,
  FlowRecord,
  FlowVerdict,
  PolicyHit,
  PolicyKind,
} from './record.js';

/** The filter parameters, in the order filterToParams writes them. */
export const FLOW_FILTER_KEYS = [
  'verdict',
  'direction',
  'namespace',
  'pod',
  'from',
  'to',
  'port',
  'protocol',
  'policy',
  'node',
  'since',
] as const;
export type FlowFilterKey = (typeof FLOW_FILTER_KEYS)[number];

/**
 * /flows query parameters that are not filters: `follow` (keep the response open and stream new
 * records). The agent passes them as `ignore` to parseFlowFilter and reads them itself.
 */
export const FLOWS_CONTROL_PARAMS = ['follow'] as const;

/** A parameter's raw values: one string, a list (a repeated query parameter or flag), or absent. */
export type FlowFilterParams = Readonly<Record<string, string | readonly string[] | undefined>>;

/** `web` (exact) or `web*` (prefix: {name: 'web', prefix: true}). */
export interface NamePattern {
  readonly name: string;
  readonly prefix: boolean;
}

/** `pod`: a pod in any namespace, or in one. */
export interface PodPattern {
  readonly namespace?: string;
  readonly pod: NamePattern;
}

/** `from` / `to`: pods of a namespace (`ns/`, pod absent), a pod (`ns/name`), or an address range. */
export type EndpointPattern =
  | { readonly kind: 'pod'; readonly namespace: string; readonly pod?: NamePattern }
  /** An IP is kept as a /32 or /128; `cidr.text` is the text as given. */
  | { readonly kind: 'cidr'; readonly cidr: Cidr };

/** `policy`: `name` (any kind), `ns/name` (a NetworkPolicy), `Kind/name` or `Kind/ns/name`. */
export interface PolicyPattern {
  readonly kind?: PolicyKind;
  readonly namespace?: string;
  readonly name: NamePattern;
}

/** Each field absent: no constraint; present: never empty, matches any of its values. */
export interface FlowFilter {
  readonly verdict?: readonly FlowVerdict[];
  readonly direction?: readonly FlowDirection[];
  readonly namespace?: readonly NamePattern[];
  readonly pod?: readonly PodPattern[];
  readonly from?: readonly EndpointPattern[];
  readonly to?: readonly EndpointPattern[];
  readonly port?: readonly number[];
  /** Lower case: tcp, udp, sctp, icmp, icmpv6, or an IP protocol number as text. */
  readonly protocol?: readonly string[];
  readonly policy?: readonly PolicyPattern[];
  readonly node?: readonly NamePattern[];
  /** Records at or after this instant (ms since the epoch); repeated: the earliest. */
  readonly since?: number;
}

/** A bad parameter value; the agent answers it with 400 and the message. */
export class FlowFilterError extends UsageError {
  constructor(
    readonly param: string,
    readonly value: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ParseFlowFilterOptions {
  /** Written before parameter names in messages: "--" for the CLI's flags, "" (default) for a URL. */
  readonly flagPrefix?: string;
  /** Keys that are not filters and are left to the caller (the agent's `follow`), not refused. */
  readonly ignore?: readonly string[];
}

const VERDICTS: readonly FlowVerdict[] = ['allowed', 'denied', 'audit'];
const DIRECTIONS: readonly FlowDirection[] = ['ingress', 'egress'];
const PROTOCOL_NAMES = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6'] as const;
/** IP protocol numbers of the named protocols: `protocol=6` and `protocol=tcp` are one filter. */
const PROTOCOL_NUMBERS: Readonly<Record<string, string>> = {
  '1': 'icmp',
  '6': 'tcp',
  '17': 'udp',
  '58': 'icmpv6',
  '132': 'sctp',
};
const KINDS: Readonly<Record<string, PolicyKind>> = {
  networkpolicy: 'NetworkPolicy',
  np: 'NetworkPolicy',
  netpol: 'NetworkPolicy',
  adminnetworkpolicy: 'AdminNetworkPolicy',
  anp: 'AdminNetworkPolicy',
  baselineadminnetworkpolicy: 'BaselineAdminNetworkPolicy',
  banp: 'BaselineAdminNetworkPolicy',
  clusternetworkpolicy: 'ClusterNetworkPolicy',
  cnp: 'ClusterNetworkPolicy',
};
/** Kubernetes object names: DNS subdomains (lower case, digits, '-', '.'). */
const NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * Parses filter parameters: `verdict`, `direction`, `namespace`, `pod`, `from`, `to`, `port`,
 * `protocol`, `policy`, `node`, `since` (see docs/flows.md). Throws FlowFilterError naming the
 * parameter and the bad value; an unknown parameter is an error too (a typo would show everything).
 */
export function parseFlowFilter(
  params: FlowFilterParams,
  now: Date,
  options: ParseFlowFilterOptions = {},
): FlowFilter {
  const prefix = options.flagPrefix ?? '';
  const ignore = new Set(options.ignore ?? []);
  const known = new Set<string>(FLOW_FILTER_KEYS);
  for (const [key, v] of Object.entries(params)) {
    if (v === undefined || known.has(key) || ignore.has(key)) continue;
    const text = typeof v === 'string' ? v : v.join(',');
    throw new FlowFilterError(
      key,
      text,
      `${prefix}${key} "${text}": unknown filter; expected one of ${FLOW_FILTER_KEYS.join(', ')}`,
    );
  }
  const f: { -readonly [K in keyof FlowFilter]: FlowFilter[K] } = {};
  const each = <T>(
    key: FlowFilterKey,
    parse: (value: string, fail: (why: string) => never) => T,
  ): T[] | undefined => {
    const raw = params[key];
    if (raw === undefined) return undefined;
    const out: T[] = [];
    for (const item of typeof raw === 'string' ? [raw] : raw) {
      for (const part of item.split(',')) {
        const value = part.trim();
        const fail = (why: string): never => {
          throw new FlowFilterError(key, value, `${prefix}${key} "${value}": ${why}`);
        };
        if (value === '') fail('empty value');
        out.push(parse(value, fail));
      }
    }
    return out.length > 0 ? out : undefined;
  };
  const set = <K extends FlowFilterKey>(key: K, v: FlowFilter[K] | undefined): void => {
    if (v !== undefined) f[key] = v;
  };

  set(
    'verdict',
    each(
      'verdict',
      (v, fail) => oneOf(v.toLowerCase(), VERDICTS) ?? fail(`must be one of ${VERDICTS.join(', ')}`),
    ),
  );
  set(
    'direction',
    each(
      'direction',
      (v, fail) => oneOf(v.toLowerCase(), DIRECTIONS) ?? fail(`must be one of ${DIRECTIONS.join(', ')}`),
    ),
  );
  set(
    'namespace',
    each(
      'namespace',
      (v, fail) => namePattern(v) ?? fail('must be a namespace name (a trailing * is a prefix)'),
    ),
  );
  set('pod', each('pod', parsePodPattern));
  set('from', each('from', parseEndpointPattern));
  set('to', each('to', parseEndpointPattern));
  set(
    'port',
    each('port', (v, fail) =>
      /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535
        ? Number(v)
        : fail('must be a port number between 1 and 65535'),
    ),
  );
  set(
    'protocol',
    each('protocol', (v, fail) => {
      const p = v.toLowerCase();
      if ((PROTOCOL_NAMES as readonly string[]).includes(p)) return p;
      if (/^\d{1,3}$/.test(p) && Number(p) <= 255)
        return PROTOCOL_NUMBERS[String(Number(p))] ?? String(Number(p));
      return fail(`must be one of ${PROTOCOL_NAMES.join(', ')} (any case) or an IP protocol number`);
    }),
  );
  set('policy', each('policy', parsePolicyPattern));
  set(
    'node',
    each('node', (v, fail) => namePattern(v) ?? fail('must be a node name (a trailing * is a prefix)')),
  );
  const since = each('since', (v, fail) => parseSince(v, now) ?? fail(SINCE_HELP));
  if (since !== undefined) f.since = Math.min(...since);
  return f;
}

const SINCE_HELP = 'expected a duration such as 500ms, 30s, 5m, 2h or 1h30m, or an RFC 3339 time';

function oneOf<T extends string>(v: string, values: readonly T[]): T | undefined {
  return (values as readonly string[]).includes(v) ? (v as T) : undefined;
}

function namePattern(text: string): NamePattern | undefined {
  const prefix = text.endsWith('*');
  const name = prefix ? text.slice(0, -1) : text;
  // `*` alone, or `ns/*`, is every name; a prefix may end in '-' or '.' (web-*).
  if (prefix ? name === '' || /^[a-z0-9][a-z0-9.-]*$/.test(name) : NAME.test(name)) return { name, prefix };
  return undefined;
}

function parsePodPattern(v: string, fail: (why: string) => never): PodPattern {
  const parts = v.split('/');
  const help = 'expected NAME or NAMESPACE/NAME (a trailing * is a prefix)';
  if (parts.length > 2) fail(help);
  const [first = '', second] = parts;
  const pod = namePattern(second ?? first) ?? fail(help);
  if (second === undefined) return { pod };
  if (!NAME.test(first)) fail(help);
  return { namespace: first, pod };
}

function parseEndpointPattern(v: string, fail: (why: string) => never): EndpointPattern {
  if (parseIP(v) !== undefined) {
    const c = parseCidr(`${v}/${v.includes(':') ? 128 : 32}`);
    if (typeof c !== 'string') return { kind: 'cidr', cidr: { ...c, text: v } };
  }
  const help = 'expected NAMESPACE/POD, NAMESPACE/ (every pod of the namespace), an IP, or a CIDR';
  const parts = v.split('/');
  const [first = '', second] = parts;
  if (parts.length === 2 && parseIP(first) !== undefined) {
    const c = parseCidr(v);
    if (typeof c === 'string') fail(c);
    return { kind: 'cidr', cidr: c };
  }
  // Namespaces (DNS labels) have neither dots nor colons.
  if (/^[\d.]*\.[\d.]*$|:/.test(first))
    fail(parts.length === 2 ? `"${first}" is not an IP address` : 'not an IP address');
  if (parts.length === 1) {
    fail(NAME.test(v) ? `${help}; for the namespace ${v} write ${v}/` : help);
  }
  if (parts.length > 2 || !NAME.test(first)) fail(help);
  if (second === '') return { kind: 'pod', namespace: first };
  const pod = namePattern(second ?? '') ?? fail(help);
  return { kind: 'pod', namespace: first, pod };
}

function parsePolicyPattern(v: string, fail: (why: string) => never): PolicyPattern {
  const help =
    'expected NAME, NAMESPACE/NAME, KIND/NAME or KIND/NAMESPACE/NAME (KIND: NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy, or np, anp, banp, cnp)';
  const parts = v.split('/');
  // A namespace is lower case; a kind is a word of KINDS (any case): `np/x` is a kind, `shop/x` a namespace.
  const kind = parts.length >= 2 ? KINDS[(parts[0] ?? '').toLowerCase()] : undefined;
  if (parts.length >= 2 && kind === undefined && /[A-Z]/.test(parts[0] ?? '')) {
    fail(`unknown kind "${parts[0]}"; ${help}`);
  }
  const rest = kind !== undefined ? parts.slice(1) : parts;
  if (rest.length > 2 || rest.length === 0) fail(help);
  const [a = '', b] = rest;
  const name = namePattern(b ?? a) ?? fail(help);
  if (b === undefined) return kind !== undefined ? { kind, name } : { name };
  if (!NAME.test(a)) fail(help);
  if (kind !== undefined && kind !== 'NetworkPolicy')
    fail(`${kind} is cluster-scoped (no namespace): write ${parts[0]}/${b}`);
  return { kind: 'NetworkPolicy', namespace: a, name };
}

/** `5m` (now minus 5 minutes), `1h30m`, `500ms`, `0` (now), or an RFC 3339 time; ms since the epoch. */
function parseSince(text: string, now: Date): number | undefined {
  if (RFC3339.test(text)) {
    const t = Date.parse(text);
    return Number.isNaN(t) ? undefined : t;
  }
  if (text === '0') return now.getTime();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ''] ?? 0);
    end = re.lastIndex;
  }
  if (end === 0 || end !== text.length) return undefined;
  return now.getTime() - Math.round(total);
}

// ---------------------------------------------------------------------------------------------

function nameMatches(p: NamePattern, name: string | undefined): boolean {
  if (name === undefined) return false;
  return p.prefix ? name.startsWith(p.name) : name === p.name;
}

function podMatches(p: PodPattern, e: FlowEndpoint): boolean {
  return (p.namespace === undefined || e.namespace === p.namespace) && nameMatches(p.pod, e.pod);
}

function endpointMatches(p: EndpointPattern, e: FlowEndpoint): boolean {
  if (p.kind === 'cidr') {
    const a = parseIP(e.ip);
    return a !== undefined && cidrContains(p.cidr, a);
  }
  if (e.pod === undefined || e.namespace !== p.namespace) return false;
  return p.pod === undefined || nameMatches(p.pod, e.pod);
}

function policyMatches(p: PolicyPattern, h: PolicyHit): boolean {
  return (
    (p.kind === undefined || h.kind === p.kind) &&
    (p.namespace === undefined || h.namespace === p.namespace) &&
    nameMatches(p.name, h.name)
  );
}

function protocolOf(r: FlowRecord): string {
  const p = r.protocol.toLowerCase();
  return PROTOCOL_NUMBERS[p] ?? p;
}

/** True when the record matches every parameter of the filter (any of each parameter's values). */
export function matchesFlow(f: FlowFilter, r: FlowRecord): boolean {
  const any = <T>(values: readonly T[] | undefined, test: (v: T) => boolean): boolean =>
    values === undefined || values.some(test);
  const ends = [r.src, r.dst];
  return (
    any(f.verdict, (v) => r.verdict === v) &&
    any(f.direction, (d) => r.direction === d) &&
    any(f.namespace, (n) => ends.some((e) => nameMatches(n, e.namespace))) &&
    any(f.pod, (p) => ends.some((e) => podMatches(p, e))) &&
    any(f.from, (p) => endpointMatches(p, r.src)) &&
    any(f.to, (p) => endpointMatches(p, r.dst)) &&
    any(f.port, (p) => r.src.port === p || r.dst.port === p) &&
    any(f.protocol, (p) => protocolOf(r) === p) &&
    any(f.policy, (p) => r.policies.some((h) => policyMatches(p, h))) &&
    any(f.node, (n) => nameMatches(n, r.node)) &&
    (f.since === undefined || Date.parse(r.time) >= f.since)
  );
}

// ---------------------------------------------------------------------------------------------

function nameText(p: NamePattern): string {
  return p.prefix ? `${p.name}*` : p.name;
}

/**
 * The filter as query parameters (one pair per value, in FLOW_FILTER_KEYS order), for the CLI to
 * forward to the agent: `new URLSearchParams(filterToParams(f))`. parseFlowFilter reads them back
 * to the same filter. `since` is written as the absolute instant (RFC 3339), so the agent cuts at
 * the instant the CLI computed, whatever its own clock and the request's delay.
 */
export function filterToParams(f: FlowFilter): [FlowFilterKey, string][] {
  const out: [FlowFilterKey, string][] = [];
  const add = <T>(key: FlowFilterKey, values: readonly T[] | undefined, text: (v: T) => string): void => {
    for (const v of values ?? []) out.push([key, text(v)]);
  };
  add('verdict', f.verdict, String);
  add('direction', f.direction, String);
  add('namespace', f.namespace, nameText);
  add('pod', f.pod, (p) => (p.namespace !== undefined ? `${p.namespace}/` : '') + nameText(p.pod));
  const endpoint = (p: EndpointPattern): string =>
    p.kind === 'cidr' ? p.cidr.text : `${p.namespace}/${p.pod !== undefined ? nameText(p.pod) : ''}`;
  add('from', f.from, endpoint);
  add('to', f.to, endpoint);
  add('port', f.port, String);
  add('protocol', f.protocol, String);
  add('policy', f.policy, (p) => {
    if (p.namespace !== undefined) return `${p.namespace}/${nameText(p.name)}`;
    return (p.kind !== undefined ? `${p.kind}/` : '') + nameText(p.name);
  });
  add('node', f.node, nameText);
  if (f.since !== undefined) out.push(['since', new Date(f.since).toISOString()]);
  return out;
}

/** A URL's query as parseFlowFilter's parameters (repeated keys kept), for the agent's /flows. */
export function paramsFromSearch(search: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of search) (out[k] ??= []).push(v);
  return out;
}
