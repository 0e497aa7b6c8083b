// Decoding what the API server sends: its raw JSON for every kind of the loader's registry (KINDS),
// turned into the loader's tree and decoded by the loader's own code, so the agent enforces exactly
// what `moat validate` accepts. An invalid object is enforced as its kind's fail-closed stand-in
// (a NetworkPolicy: denyStandIn), never as an open door.
import type { Problem } from '../errors.js';
import { KIND_NAMES, KINDS, type Decoding, type KindName, type KindSpec } from '../model/load.js';
import type { MapTree, Tree } from '../model/parseYaml.js';
import { AUDIT_ANNOTATION, checkFields, decodeMeta, peekMeta, Reporter } from '../model/validate.js';
import { record } from '../model/json.js';

export type WatchedKind = KindName;

export interface Resource {
  readonly kind: WatchedKind;
  readonly apiVersion: string;
  readonly path: string;
}

/** The API path of a resource at one group version: `/api[s]/<apiVersion>/<resource>`. */
export function resourceAt(kind: WatchedKind, apiVersion: string): Resource {
  const root = apiVersion.includes('/') ? '/apis' : '/api';
  return { kind, apiVersion, path: `${root}/${apiVersion}/${KINDS[kind].resource}` };
}

/** What the agent can watch of one kind: its API group, resource and versions in order of preference. */
export interface Watchable {
  readonly kind: WatchedKind;
  /** "" for the core group. */
  readonly group: string;
  readonly resource: string;
  /** The registry's order: the first one served is watched (ClusterNetworkPolicy: v1beta1, then v1alpha2). */
  readonly apiVersions: readonly string[];
  /** Served by a CRD: watched only when API discovery finds it (k8s-source.ts). */
  readonly discovered: boolean;
}

function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** Every kind of the registry, as the agent may watch it (the ClusterRole grants exactly these). */
export const WATCHABLE: readonly Watchable[] = KIND_NAMES.filter((k) => KINDS[k].analysisOnly !== true).map(
  (kind) => {
    const spec = KINDS[kind];
    return {
      kind,
      group: groupOf(spec.apiVersions[0]!),
      resource: spec.resource,
      apiVersions: spec.apiVersions,
      discovered: spec.crd === true,
    };
  },
);

/**
 * What the agent always lists and watches: the built-in kinds, at their first version. Kinds served
 * by a CRD (the admin tiers) are watched only once API discovery finds them, so that a cluster
 * without the CRDs is not an error.
 */
export const RESOURCES: readonly Resource[] = WATCHABLE.filter((w) => !w.discovered).map((w) =>
  resourceAt(w.kind, w.apiVersions[0]!),
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
 * `apiVersion`: the version it was read at (default: the kind's first).
 */
function annotationOf(annotations: unknown, key: string): unknown {
  return record(annotations)?.[key];
}

export function decodeApiObject(kind: WatchedKind, raw: unknown, apiVersion?: string): Decoded {
  const spec: KindSpec = KINDS[kind];
  const o = record(raw) ?? {};
  const md = record(o.metadata) ?? {};
  const projected = {
    apiVersion: apiVersion ?? spec.apiVersions[0],
    kind,
    // deletionTimestamp: a terminating pod yields an address that a new pod was given (snapshot.ts).
    metadata: {
      name: md.name,
      namespace: md.namespace,
      labels: md.labels,
      // Only the annotation moat reads (audit mode): the others are not moat's to check.
      ...(annotationOf(md.annotations, AUDIT_ANNOTATION) !== undefined
        ? { annotations: { [AUDIT_ANNOTATION]: annotationOf(md.annotations, AUDIT_ANNOTATION) } }
        : {}),
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
