// Decoding what the API server sends: its raw JSON for Pods, Namespaces, Nodes and NetworkPolicies,
// turned into the loader's tree and decoded by the loader's own code (KINDS, decodeMeta, ...), so
// the agent enforces exactly what `moat validate` accepts. An invalid policy becomes a deny-only
// stand-in (denyStandIn), never an open door.
import type { Problem } from '../errors.js';
import { KINDS, type Collector } from '../model/load.js';
import type { MapTree, Tree } from '../model/parseYaml.js';
import type { NetworkPolicy, Namespace, Node, PolicyType } from '../model/types.js';
import { checkFields, decodeMeta, peekMeta, Reporter, type PodEntry } from '../model/validate.js';

export type WatchedKind = 'Namespace' | 'Pod' | 'Node' | 'NetworkPolicy';

export interface Resource {
  readonly kind: WatchedKind;
  readonly apiVersion: string;
  readonly path: string;
}

export const RESOURCES: readonly Resource[] = [
  { kind: 'Namespace', apiVersion: 'v1', path: '/api/v1/namespaces' },
  { kind: 'Pod', apiVersion: 'v1', path: '/api/v1/pods' },
  { kind: 'Node', apiVersion: 'v1', path: '/api/v1/nodes' },
  {
    kind: 'NetworkPolicy',
    apiVersion: 'networking.k8s.io/v1',
    path: '/apis/networking.k8s.io/v1/networkpolicies',
  },
];

/** The "file" of objects read from the API server, in origins and messages. */
export const API_ORIGIN = 'kube-apiserver';

/** A JSON value as the loader's line-annotated tree (API objects have no lines: 0). */
export function toTree(v: unknown): Tree {
  if (v === null || v === undefined) return { t: 'null', line: 0 };
  if (typeof v === 'string') return { t: 'str', line: 0, v };
  if (typeof v === 'number') return { t: 'num', line: 0, v };
  if (typeof v === 'boolean') return { t: 'bool', line: 0, v };
  if (Array.isArray(v)) return { t: 'seq', line: 0, items: v.map(toTree) };
  const entries = new Map<string, Tree>();
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (x !== undefined) entries.set(k, toTree(x));
  }
  return { t: 'map', line: 0, entries };
}

export interface Decoded {
  readonly kind: WatchedKind;
  /** "ns/name" or "name". */
  readonly key: string;
  readonly problems: readonly Problem[];
  readonly warnings: readonly string[];
  readonly namespace?: Namespace;
  readonly pod?: PodEntry;
  readonly node?: Node;
  /** For a policy with problems: the deny-only stand-in (see denyStandIn). */
  readonly policy?: NetworkPolicy;
  /** True when `policy` is a stand-in for an invalid policy. */
  readonly standIn?: boolean;
}

export function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** "ns/name" (namespaced kinds) or "name", as the object names itself. */
export function objectKey(kind: WatchedKind, raw: unknown): string {
  const md = record(record(raw)?.metadata);
  const name = typeof md?.name === 'string' ? md.name : '';
  if (!(KINDS.get(kind)?.namespaced ?? false)) return name;
  const ns = typeof md?.namespace === 'string' && md.namespace !== '' ? md.namespace : 'default';
  return `${ns}/${name}`;
}

/**
 * Decodes one API object with the loader's code. Only the metadata moat reads is passed on (a
 * metadata field added by a later API version must not make objects invalid); spec and status go
 * through the loader's strict checks, so a NetworkPolicy field moat does not know is a problem.
 */
export function decodeApiObject(kind: WatchedKind, raw: unknown): Decoded {
  const spec = KINDS.get(kind);
  if (!spec) throw new Error(`no decoder for kind ${kind}`);
  const res = RESOURCES.find((r) => r.kind === kind);
  const o = record(raw) ?? {};
  const md = record(o.metadata) ?? {};
  const projected = {
    apiVersion: res?.apiVersion,
    kind,
    // deletionTimestamp: a terminating pod yields an address that a new pod was given (snapshot.ts).
    metadata: {
      name: md.name,
      namespace: md.namespace,
      labels: md.labels,
      deletionTimestamp: md.deletionTimestamp,
    },
    spec: o.spec,
    status: o.status,
  };
  const root = toTree(projected) as MapTree;
  const peek = peekMeta(root, spec.namespaced);
  const key = spec.namespaced ? `${peek.namespace}/${peek.name}` : peek.name;
  const r = new Reporter(API_ORIGIN, kind, key);
  checkFields(r, '', root, spec.topFields);
  const meta = decodeMeta(r, root, spec.namespaced, spec.validateName);
  const c: Collector = { namespaces: [], pods: [], nodes: [], policies: [] };
  spec.decode(r, root, meta, API_ORIGIN)(c);
  const base = { kind, key: objectKey(kind, raw), problems: r.problems, warnings: r.warnings };
  switch (kind) {
    case 'Namespace':
      return c.namespaces[0] ? { ...base, namespace: c.namespaces[0] } : base;
    case 'Pod':
      return c.pods[0] ? { ...base, pod: c.pods[0] } : base;
    case 'Node':
      return c.nodes[0] ? { ...base, node: c.nodes[0] } : base;
    case 'NetworkPolicy': {
      const p = c.policies[0];
      if (!p) return base;
      // Problems only in metadata (labels, annotations) do not change what the policy means.
      const semantic = r.problems.filter((x) => !x.field.startsWith('metadata.'));
      if (semantic.length === 0) return { ...base, policy: p };
      return { ...base, policy: denyStandIn(p, o.spec, semantic), standIn: true };
    }
  }
}

const ALL_PODS = { matchLabels: {}, matchExpressions: [] };

/**
 * What an invalid NetworkPolicy is enforced as. Dropping it would open a door: the pods it selects
 * would lose their isolation. Enforcing what decoded would too: a rule whose every peer failed
 * decodes as "from: []", which "matches all sources". So the policy is replaced by one with the
 * same namespace and name, no rules at all, that isolates at least the pods it was meant to, in at
 * least the directions it was meant to. Policies only add allowances, so a policy without rules
 * can never allow anything: the selected pods fail closed until the policy is fixed.
 *  - podSelector: the decoded one, or, when it was itself invalid, every pod in the namespace;
 *  - policyTypes: the decoded ones when given explicitly and valid; otherwise Ingress, plus Egress
 *    when the spec has an egress field or the policyTypes were invalid.
 */
export function denyStandIn(
  decoded: NetworkPolicy,
  rawSpec: unknown,
  problems: readonly Problem[],
): NetworkPolicy {
  const at = (prefix: string) => problems.some((p) => p.field === prefix || p.field.startsWith(`${prefix}.`));
  const specBroken = problems.some((p) => p.field === 'spec' || p.field === '');
  const podSelector = specBroken || at('spec.podSelector') ? ALL_PODS : decoded.podSelector;
  const spec = record(rawSpec);
  const explicit = Array.isArray(spec?.policyTypes) && spec.policyTypes.length > 0;
  const typesBroken = specBroken || problems.some((p) => p.field.startsWith('spec.policyTypes'));
  let policyTypes: PolicyType[];
  if (explicit && !typesBroken) policyTypes = [...decoded.policyTypes];
  else if (typesBroken || (spec?.egress !== undefined && spec.egress !== null)) {
    policyTypes = ['Ingress', 'Egress'];
  } else policyTypes = ['Ingress'];
  return {
    namespace: decoded.namespace,
    name: decoded.name,
    podSelector,
    policyTypes,
    ingress: [],
    egress: [],
    ...(decoded.origin ? { origin: decoded.origin } : {}),
  };
}

export function formatApiProblem(p: Problem): string {
  return p.field === '' ? p.message : `${p.field}: ${p.message}`;
}
