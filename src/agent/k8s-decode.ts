// Decoding what the API server sends: its raw JSON for every kind of the loader's registry (KINDS),
// turned into the loader's tree and decoded by the loader's own code, so the agent enforces exactly
// what `moat validate` accepts. An invalid object is enforced as its kind's fail-closed stand-in
// (a NetworkPolicy: denyStandIn), never as an open door.
import type { Problem } from '../errors.js';
import { KIND_NAMES, KINDS, type Decoding, type KindName, type KindSpec } from '../model/load.js';
import type { MapTree, Tree } from '../model/parseYaml.js';
import { checkFields, decodeMeta, peekMeta, Reporter } from '../model/validate.js';
import { record } from '../model/json.js';

export type WatchedKind = KindName;

export interface Resource {
  readonly kind: WatchedKind;
  readonly apiVersion: string;
  readonly path: string;
}

/**
 * What the agent lists and watches: every kind of the registry, at its first served version. Kinds
 * served by a CRD (the admin tiers) are not watched yet: that waits for API discovery, so that a
 * cluster without the CRDs is not an error.
 */
export const RESOURCES: readonly Resource[] = KIND_NAMES.filter((kind) => KINDS[kind].crd !== true).map(
  (kind) => {
    const spec = KINDS[kind];
    const apiVersion = spec.apiVersions[0]!;
    const root = apiVersion.includes('/') ? '/apis' : '/api';
    return { kind, apiVersion, path: `${root}/${apiVersion}/${spec.resource}` };
  },
);

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
  /** What to enforce (absent when nothing decoded), and how it joins the snapshot. */
  readonly decoded?: Decoding;
  /** True when `decoded` is a fail-closed stand-in for an invalid object (KindSpec.failClosed). */
  readonly standIn?: boolean;
}

/** "ns/name" (namespaced kinds) or "name", as the object names itself. */
export function objectKey(kind: WatchedKind, raw: unknown): string {
  const md = record(record(raw)?.metadata);
  const name = typeof md?.name === 'string' ? md.name : '';
  if (!KINDS[kind].namespaced) return name;
  const ns = typeof md?.namespace === 'string' && md.namespace !== '' ? md.namespace : 'default';
  return `${ns}/${name}`;
}

/**
 * Decodes one API object with the loader's code. Only the metadata moat reads is passed on (a
 * metadata field added by a later API version must not make objects invalid); spec and status go
 * through the loader's strict checks, so a NetworkPolicy field moat does not know is a problem.
 */
export function decodeApiObject(kind: WatchedKind, raw: unknown): Decoded {
  const spec: KindSpec = KINDS[kind];
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
  const decoded = spec.decode(r, root, meta, API_ORIGIN);
  const base = { kind, key: objectKey(kind, raw), problems: r.problems, warnings: r.warnings };
  if (r.problems.length > 0 && spec.failClosed) {
    const standIn = spec.failClosed(decoded.object, o.spec, r.problems);
    if (standIn !== undefined) return { ...base, decoded: standIn, standIn: true };
  }
  return { ...base, decoded };
}

export function formatApiProblem(p: Problem): string {
  return p.field === '' ? p.message : `${p.field}: ${p.message}`;
}
