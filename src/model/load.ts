// Loading Kubernetes manifests (YAML or JSON files, directories, stdin) into a validated, defaulted
// Snapshot. Every problem carries FILE:LINE and a field path; invalid objects stay out of the snapshot.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, type Problem } from '../errors.js';
import { isDNS1123Label, isDNS1123Subdomain } from './labels.js';
import { NotFastJson } from './parseJson.js';
import { parseYamlText, streamText, type MapTree, type Tree } from './parseYaml.js';
import type { AdminPolicy, Namespace, NetworkPolicy, Node, Service, Snapshot } from './types.js';
import { decodeService } from './validateService.js';
import { decodeWorkload, type WorkloadEntry } from './validateWorkload.js';
import type { WorkloadKind } from './types.js';
import { addressConflicts } from './conflicts.js';
import { assembleSnapshot } from './snapshot.js';
import { adminStandIn, denyStandIn } from './standin.js';
import {
  decodeAdminNetworkPolicy,
  decodeBaselineAdminNetworkPolicy,
  decodeClusterNetworkPolicy,
} from './validateAdmin.js';
import {
  checkFields,
  decodeMeta,
  decodeNamespace,
  decodeNetworkPolicy,
  decodeNode,
  decodePod,
  msg,
  peekMeta,
  Reporter,
  type Meta,
  type PodEntry,
} from './validate.js';

export interface LoadResult {
  readonly snapshot: Snapshot;
  /** Validation problems, with FILE:LINE and field paths. Empty when all input is valid. */
  readonly problems: readonly Problem[];
  /** One-line notes for stderr (skipped kinds). */
  readonly notes: readonly string[];
}

/** Everything decoded so far; a new kind adds its list here and in `finish`. */
export interface Collector {
  readonly namespaces: Namespace[];
  readonly pods: PodEntry[];
  readonly nodes: Node[];
  readonly policies: NetworkPolicy[];
  readonly adminPolicies: AdminPolicy[];
  readonly services: Service[];
  readonly workloads: WorkloadEntry[];
}

/** A decoded object, and how it joins the collection. */
export interface Decoding {
  readonly object: unknown;
  readonly collect: (c: Collector) => void;
}

/**
 * One supported kind: how to name, decode, validate and collect it, and where the agent lists and
 * watches it. Adding a kind is adding an entry (and its list in Collector).
 */
export interface KindSpec {
  /** Served versions; the first is the one the agent watches. */
  readonly apiVersions: readonly string[];
  /** The API resource (plural, lower case): `/api[s]/<apiVersion>/<resource>`. */
  readonly resource: string;
  readonly namespaced: boolean;
  /** The kind's metadata.name rule (NameIsDNSSubdomain or NameIsDNSLabel). */
  readonly validateName: (name: string) => string[];
  /** Allowed top-level fields (strict field validation). */
  readonly topFields: readonly string[];
  /** Decodes and validates the object; the loader collects it only when it had no problems. */
  readonly decode: (r: Reporter, root: MapTree, meta: Meta, file: string) => Decoding;
  /**
   * What the agent enforces for an object of this kind that has problems (the loader rejects it
   * instead): a fail-closed stand-in, or undefined to keep what decoded. Without it: as decoded.
   */
  /**
   * Served by a CustomResourceDefinition that a cluster may not have installed (the admin tiers):
   * the loader reads it from files; the agent watches it only once API discovery finds it.
   */
  readonly crd?: boolean;
  /** Read from files for analysis only; the agent neither lists nor watches it (nor has RBAC for it). */
  readonly analysisOnly?: boolean;
  readonly failClosed?: (
    decoded: unknown,
    rawSpec: unknown,
    problems: readonly Problem[],
  ) => Decoding | undefined;
}

const TOP = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

/** The admin kinds' stand-in (adminStandIn): never wider than the stored object. */
function adminFailClosed(
  decoded: unknown,
  rawSpec: unknown,
  problems: readonly Problem[],
): Decoding | undefined {
  // Problems only in metadata (labels, BANP's name) do not change what the policy means.
  const semantic = problems.filter((x) => !x.field.startsWith('metadata.'));
  if (semantic.length === 0) return undefined;
  const ps = adminStandIn(decoded as AdminPolicy, rawSpec, semantic);
  return { object: ps, collect: (c) => c.adminPolicies.push(...ps) };
}

function spec<T>(
  s: Omit<KindSpec, 'decode'> & {
    decode: (r: Reporter, root: MapTree, meta: Meta, file: string) => T;
    collect: (c: Collector, x: T) => void;
  },
): KindSpec {
  const { collect, decode, ...rest } = s;
  return {
    ...rest,
    decode: (r, root, meta, file) => {
      const object = decode(r, root, meta, file);
      return { object, collect: (c) => collect(c, object) };
    },
  };
}

/** A workload kind: its pod template is read as pods, for analysis only. */
function workload(kind: WorkloadKind, apiVersion: string, resource: string): KindSpec {
  return spec({
    apiVersions: [apiVersion],
    resource,
    namespaced: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    analysisOnly: true,
    decode: decodeWorkload(kind),
    collect: (c, x) => c.workloads.push(x),
  });
}

/** Every kind moat reads, from files and from the API server. */
export const KINDS = {
  Namespace: spec({
    apiVersions: ['v1'],
    resource: 'namespaces',
    namespaced: false,
    validateName: isDNS1123Label,
    topFields: TOP,
    decode: decodeNamespace,
    collect: (c, x) => c.namespaces.push(x),
  }),
  Pod: spec({
    apiVersions: ['v1'],
    resource: 'pods',
    namespaced: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodePod,
    collect: (c, x) => c.pods.push(x),
  }),
  Node: spec({
    apiVersions: ['v1'],
    resource: 'nodes',
    namespaced: false,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodeNode,
    collect: (c, x) => c.nodes.push(x),
  }),
  NetworkPolicy: spec({
    apiVersions: ['networking.k8s.io/v1'],
    resource: 'networkpolicies',
    namespaced: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodeNetworkPolicy,
    collect: (c, x) => c.policies.push(x),
    failClosed: (decoded, rawSpec, problems) => {
      // Problems only in metadata (labels, annotations) do not change what the policy means.
      const semantic = problems.filter((x) => !x.field.startsWith('metadata.'));
      if (semantic.length === 0) return undefined;
      const p = denyStandIn(decoded as NetworkPolicy, rawSpec, semantic);
      return { object: p, collect: (c) => c.policies.push(p) };
    },
  }),
  ClusterNetworkPolicy: spec({
    apiVersions: ['policy.networking.k8s.io/v1beta1', 'policy.networking.k8s.io/v1alpha2'],
    resource: 'clusternetworkpolicies',
    namespaced: false,
    crd: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodeClusterNetworkPolicy,
    collect: (c, x) => c.adminPolicies.push(x),
    failClosed: adminFailClosed,
  }),
  AdminNetworkPolicy: spec({
    apiVersions: ['policy.networking.k8s.io/v1alpha1'],
    resource: 'adminnetworkpolicies',
    namespaced: false,
    crd: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodeAdminNetworkPolicy,
    collect: (c, x) => c.adminPolicies.push(x),
    failClosed: adminFailClosed,
  }),
  BaselineAdminNetworkPolicy: spec({
    apiVersions: ['policy.networking.k8s.io/v1alpha1'],
    resource: 'baselineadminnetworkpolicies',
    namespaced: false,
    crd: true,
    validateName: isDNS1123Subdomain,
    topFields: TOP,
    decode: decodeBaselineAdminNetworkPolicy,
    collect: (c, x) => c.adminPolicies.push(x),
    failClosed: adminFailClosed,
  }),
  Service: spec({
    apiVersions: ['v1'],
    resource: 'services',
    namespaced: true,
    // ValidateServiceName: "NameIsDNS1035Label"; DNS-1123 label is its superset moat checks.
    validateName: isDNS1123Label,
    topFields: TOP,
    analysisOnly: true,
    decode: decodeService,
    collect: (c, x) => c.services.push(x),
  }),
  Deployment: workload('Deployment', 'apps/v1', 'deployments'),
  StatefulSet: workload('StatefulSet', 'apps/v1', 'statefulsets'),
  DaemonSet: workload('DaemonSet', 'apps/v1', 'daemonsets'),
  ReplicaSet: workload('ReplicaSet', 'apps/v1', 'replicasets'),
  Job: workload('Job', 'batch/v1', 'jobs'),
  CronJob: workload('CronJob', 'batch/v1', 'cronjobs'),
  ReplicationController: workload('ReplicationController', 'v1', 'replicationcontrollers'),
} as const satisfies Record<string, KindSpec>;

export type KindName = keyof typeof KINDS;

/** The entry of a kind, or undefined for a kind moat does not read. */
export function kindSpec(kind: string): KindSpec | undefined {
  return Object.hasOwn(KINDS, kind) ? KINDS[kind as KindName] : undefined;
}

export const KIND_NAMES = Object.keys(KINDS) as KindName[];

export function emptyCollector(): Collector {
  return {
    namespaces: [],
    pods: [],
    nodes: [],
    policies: [],
    adminPolicies: [],
    services: [],
    workloads: [],
  };
}

/** Accumulates objects, problems and notes across files. */
class Loader {
  readonly problems: Problem[] = [];
  readonly warnings: string[] = [];
  readonly collector: Collector = emptyCollector();
  /** Skipped kinds in order of first appearance, with counts. */
  readonly skipped = new Map<string, number>();
  /** kind/ns/name -> FILE:LINE of its first definition. */
  readonly seen = new Map<string, string>();

  /** Files skipped whole, with why (one note each). */
  readonly skippedFiles: string[] = [];
  /** generateName objects so far: "a name generated from generateName" is made unique per load. */
  private generated = 0;

  loadText(text: string, file: string): void {
    // A Helm (Go) template is not YAML until rendered: when the text has template actions and does
    // not load cleanly on its own, skip it with a hint rather than report its template syntax.
    if (HELM_ACTION.test(text)) {
      const alone = new Loader();
      alone.loadManifest(text, file);
      if (alone.problems.length > 0) {
        this.skippedFiles.push(
          `skipped ${file}: a Helm template ({{ ... }}); run \`helm template\` first and pass its output`,
        );
        return;
      }
    }
    this.loadManifest(text, file);
  }

  /** What undo() needs to forget everything loaded since. */
  private mark(): () => void {
    const lengths = {
      problems: this.problems.length,
      warnings: this.warnings.length,
      skippedFiles: this.skippedFiles.length,
      collector: Object.values(this.collector).map((a: unknown[]) => a.length),
    };
    const skipped = new Map(this.skipped);
    const seen = this.seen.size;
    const generated = this.generated;
    return () => {
      this.problems.length = lengths.problems;
      this.warnings.length = lengths.warnings;
      this.skippedFiles.length = lengths.skippedFiles;
      Object.values(this.collector).forEach((a: unknown[], i) => (a.length = lengths.collector[i]!));
      this.skipped.clear();
      for (const [k, v] of skipped) this.skipped.set(k, v);
      // Only ever added to, in order: what came after the mark is the tail.
      [...this.seen.keys()].slice(seen).forEach((k) => this.seen.delete(k));
      this.generated = generated;
    };
  }

  private loadManifest(text: string, file: string): void {
    // Each document is decoded as soon as it is parsed. When the fast ways give up, perhaps part
    // way, what they loaded is undone and the text is read the precise way, which reports the
    // errors.
    const undo = this.mark();
    let docs = 0;
    let objects = 0;
    let streamed: boolean;
    try {
      streamed = streamText(text, (d) => {
        docs++;
        if (looksLikeObject(d.root)) objects++;
        this.loadObject(d.root, file, undefined, d.items);
      });
    } catch (e) {
      if (!(e instanceof NotFastJson)) throw e;
      streamed = false;
    }
    if (streamed) {
      if (docs > 0 && objects === 0) {
        undo();
        this.skipNotManifest(file);
      }
      return;
    }
    undo();
    const parsed = parseYamlText(text);
    for (const e of parsed.errors) {
      this.problems.push({ file, line: e.line, kind: 'YAML', object: '-', field: '', message: e.message });
    }
    // A file none of whose documents names an apiVersion or kind is not a manifest (a JSON report,
    // a kustomization.yaml without them, a values file): one note, no problems.
    if (
      parsed.errors.length === 0 &&
      parsed.docs.length > 0 &&
      !parsed.docs.some((d) => looksLikeObject(d.root))
    ) {
      this.skipNotManifest(file);
      return;
    }
    for (const doc of parsed.docs) this.loadObject(doc.root, file, undefined);
  }

  private skipNotManifest(file: string): void {
    this.skippedFiles.push(`skipped ${file}: not a Kubernetes manifest (no document has apiVersion or kind)`);
  }

  /** "a name generated from generateName": the prefix and 5 characters, unique in this load. */
  private generateName = (prefix: string): string => {
    this.generated++;
    // maxGeneratedNameLength = 63 - 5: the prefix is cut so the name stays a valid length.
    return `${prefix.slice(0, 58)}${this.generated.toString(36).padStart(5, '0')}`;
  };

  private loadObject(
    t: Tree,
    file: string,
    listDefaults: { kind: string; apiVersion: string } | undefined,
    lazyItems?: (each: (item: Tree) => void) => void,
  ): void {
    if (t.t === 'null') return;
    if (t.t !== 'map') {
      this.problems.push({
        file,
        line: t.line,
        kind: 'Object',
        object: '-',
        field: '',
        message: `expected a Kubernetes object (a mapping with apiVersion and kind), got ${t.t === 'seq' ? 'a list' : 'a scalar'}`,
      });
      return;
    }
    const kindTree = t.entries.get('kind');
    const avTree = t.entries.get('apiVersion');
    const kind = kindTree?.t === 'str' ? kindTree.v : (listDefaults?.kind ?? '');
    const apiVersion = avTree?.t === 'str' ? avTree.v : (listDefaults?.apiVersion ?? '');

    // kind: List (kubectl get -o yaml) and typed lists (PodList, ...): load the items.
    if (kind === 'List' || (kind.endsWith('List') && t.entries.has('items'))) {
      const r = new Reporter(file, kind, '-');
      const items = t.entries.get('items');
      if (items !== undefined && items.t !== 'null' && items.t !== 'seq') {
        r.add('items', items.line, msg.type('a list', items));
      }
      this.problems.push(...r.problems);
      const itemDefaults = kind === 'List' ? undefined : { kind: kind.slice(0, -'List'.length), apiVersion };
      if (lazyItems !== undefined) lazyItems((item) => this.loadObject(item, file, itemDefaults));
      else if (items?.t === 'seq') for (const item of items.items) this.loadObject(item, file, itemDefaults);
      return;
    }

    if (kind === '' || apiVersion === '') {
      const r = new Reporter(file, kind === '' ? 'Object' : kind, '-');
      if (kindTree !== undefined && kindTree.t !== 'str')
        r.add('kind', kindTree.line, msg.type('a string', kindTree));
      else if (kind === '') r.add('kind', t.line, msg.required('kind not set'));
      if (avTree !== undefined && avTree.t !== 'str') {
        r.add('apiVersion', avTree.line, msg.type('a string', avTree));
      } else if (apiVersion === '') r.add('apiVersion', t.line, msg.required('apiVersion not set'));
      this.problems.push(...r.problems);
      return;
    }

    const spec = kindSpec(kind);
    if (!spec) {
      this.skipped.set(kind, (this.skipped.get(kind) ?? 0) + 1);
      return;
    }
    const peek = peekMeta(t, spec.namespaced);
    const object = spec.namespaced ? `${peek.namespace}/${peek.name}` : peek.name;
    const r = new Reporter(file, kind, object);
    if (!spec.apiVersions.includes(apiVersion)) {
      // Old group versions (extensions/v1beta1 NetworkPolicy, ...) are no longer served.
      r.add('apiVersion', avTree?.line ?? t.line, msg.notSupported(apiVersion, spec.apiVersions));
      this.problems.push(...r.problems);
      return;
    }
    checkFields(r, '', t, spec.topFields);
    const meta = decodeMeta(r, t, spec.namespaced, spec.validateName, this.generateName);
    const decoded = spec.decode(r, t, meta, file);
    this.warnings.push(...r.warnings);
    if (meta.name !== '') {
      const key = `${kind}/${meta.namespace}/${meta.name}`;
      const first = this.seen.get(key);
      if (first !== undefined) {
        const nameLine =
          (t.entries.get('metadata') as MapTree | undefined)?.entries.get('name')?.line ?? t.line;
        r.add(
          'metadata.name',
          nameLine,
          msg.duplicate(meta.name, `${kind} ${object} is already defined at ${first}`),
        );
      } else {
        this.seen.set(key, `${file}:${t.line}`);
      }
    }
    if (r.problems.length > 0) {
      this.problems.push(...r.problems);
      return;
    }
    decoded.collect(this.collector);
  }

  result(): LoadResult {
    const notes: string[] = [...this.skippedFiles, ...this.warnings];
    if (this.skipped.size > 0) {
      const total = [...this.skipped.values()].reduce((a, b) => a + b, 0);
      const kinds = [...this.skipped.keys()];
      notes.push(
        `skipped ${total} ${total === 1 ? 'object' : 'objects'} of ${kinds.length === 1 ? 'kind' : 'kinds'} ${kinds.join(', ')} (not used by moat)`,
      );
    }
    notes.push(...resolveWorkloads(this.collector));
    const finished = this.collector.pods.filter((e) => e.finished).length;
    if (finished > 0) {
      notes.push(
        `left out ${finished} ${finished === 1 ? 'pod' : 'pods'} in phase Succeeded or Failed (not live: no policy applies to ${finished === 1 ? 'it' : 'them'})`,
      );
    }
    const snapshot = assembleSnapshot(this.collector);
    const undeclared = undeclaredNamespaces(this.collector, snapshot);
    if (undeclared.length > 0) {
      const one = undeclared.length === 1;
      notes.push(
        `${one ? 'namespace' : 'namespaces'} ${undeclared.join(', ')} ${one ? 'is' : 'are'} not declared in the input: ` +
          `assumed with only the label kubernetes.io/metadata.name (namespaceSelectors on other labels do not match ${one ? 'it' : 'them'})`,
      );
    }
    return { snapshot, problems: sortByLine([...this.problems, ...conflictProblems(snapshot)]), notes };
  }
}

/**
 * Adds the workloads' template pods to the collected pods, except where the input already has what
 * they stand for (a `kubectl get all -o yaml` dump holds a Deployment, its ReplicaSet and its pods):
 * - a workload whose controller is loaded (a Deployment's ReplicaSet, a CronJob's Job) is left to it;
 * - a workload with live pods in the input (pods whose controller is it, or is a workload it
 *   controls) is represented by those pods.
 * Returns notes on what was left out.
 */
function resolveWorkloads(c: Collector): string[] {
  if (c.workloads.length === 0) return [];
  const byKey = new Map(c.workloads.map((w) => [w.key, w]));
  const represented = new Set<string>();
  for (const e of c.pods) {
    if (e.finished || e.owner === undefined) continue;
    // Up the controller chain: Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob.
    for (let k: string | undefined = e.owner, i = 0; k !== undefined && i < 4; i++) {
      represented.add(k);
      k = byKey.get(k)?.owner;
    }
  }
  let owned = 0;
  let withPods = 0;
  const zero: string[] = [];
  for (const w of c.workloads) {
    if (w.owner !== undefined && byKey.has(w.owner)) owned++;
    else if (represented.has(w.key)) withPods++;
    else {
      if (w.scaledToZero) zero.push(w.key.split('/').slice(1).join('/'));
      c.pods.push(...w.pods);
    }
  }
  const notes: string[] = [];
  const n = (k: number, one: string, many: string): string => `${k} ${k === 1 ? one : many}`;
  if (owned > 0)
    notes.push(
      `left out ${n(owned, 'workload', 'workloads')} whose controller is in the input (it stands for them)`,
    );
  if (withPods > 0)
    notes.push(
      `left out ${n(withPods, 'workload', 'workloads')} whose pods are in the input (the pods stand for them)`,
    );
  if (zero.length > 0) notes.push(`no pods for ${zero.join(', ')}: scaled to 0 replicas`);
  return notes;
}

/** Go template actions: `{{ .Values.x }}`, `{{- if ... }}`, `{{ include ... }}`, comments. */
const HELM_ACTION_SOURCE = String.raw`\{\{-?\s*(?:[.$(/"]|[a-z]+\b)[^}]*\}\}`;
const HELM_ACTION = new RegExp(HELM_ACTION_SOURCE);

function looksLikeObject(t: Tree): boolean {
  return t.t === 'map' && (t.entries.has('apiVersion') || t.entries.has('kind'));
}

/**
 * Namespaces that objects live in but that the input does not declare (synthesized), sorted; only
 * when the input declares some (an input of policies alone is not expected to carry namespaces).
 */
function undeclaredNamespaces(c: Collector, s: Snapshot): string[] {
  if (c.namespaces.length === 0) return [];
  const declared = new Set(c.namespaces.map((n) => n.name));
  return s.namespaces
    .filter((n) => !declared.has(n.name))
    .map((n) => n.name)
    .sort();
}

/** Two live pods with one address: an error on each of them (the agent enforces it fail-closed). */
function conflictProblems(s: Snapshot): Problem[] {
  const conflicts = addressConflicts(s.pods);
  if (conflicts.length === 0) return [];
  const byKey = new Map(s.pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  const out: Problem[] = [];
  for (const c of conflicts) {
    for (const key of c.pods) {
      const p = byKey.get(key);
      const others = c.pods.filter((k) => k !== key);
      out.push({
        file: p?.origin?.file ?? '-',
        line: p?.origin?.line ?? 0,
        kind: 'Pod',
        object: key,
        field: 'status.podIPs',
        message:
          `Duplicate value: "${c.address}": also the address of live pod ${others.join(', ')}; ` +
          'packets cannot be told apart, so the address is enforced fail-closed',
      });
    }
  }
  return out;
}

/** Problems of one file read top to bottom; files keep their load order (the sort is stable). */
function sortByLine(problems: readonly Problem[]): Problem[] {
  const order = new Map<string, number>();
  for (const p of problems) if (!order.has(p.file)) order.set(p.file, order.size);
  return [...problems].sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
}

const MANIFEST = /\.(ya?ml|json)$/i;

/**
 * `--ignore GLOB`: `*` and `?` within a path segment, `**` across segments. A glob matches a path
 * when it matches the whole path or, without a `/`, any one segment (`--ignore 'kustomization.yaml'`,
 * `--ignore 'charts'`, `--ignore 'test/**'`).
 */
export function globMatcher(globs: readonly string[]): (path: string) => boolean {
  const res = globs.map((g) => {
    let re = '';
    for (let i = 0; i < g.length; i++) {
      const c = g[i]!;
      if (c === '*' && g[i + 1] === '*') {
        re += '.*';
        i++;
        if (g[i + 1] === '/') i++;
      } else if (c === '*') re += '[^/]*';
      else if (c === '?') re += '[^/]';
      else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    return { re: new RegExp(`^${re}$`), segment: !g.includes('/') };
  });
  return (path) => {
    const norm = path.replace(/\\/g, '/').replace(/^\.\//, '');
    const segments = norm.split('/');
    return res.some(({ re, segment }) => re.test(norm) || (segment && segments.some((x) => re.test(x))));
  };
}

async function listDir(dir: string, ignored: (p: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (ignored(p)) continue;
    if (e.isDirectory()) out.push(...(await listDir(p, ignored)));
    else if (e.isFile() && MANIFEST.test(e.name)) out.push(p);
  }
  return out;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

export interface LoadOptions {
  /** Reads "-" (stdin); injectable for tests. */
  readonly readStdin?: () => Promise<string>;
  /** `--ignore GLOB`: paths (files or directories) not to read. */
  readonly ignore?: readonly string[];
}

export const STDIN_NAME = '<stdin>';

/** Loads files, directories (recursive *.yaml, *.yml, *.json) and "-" (stdin). */
export async function loadPaths(paths: readonly string[], opts: LoadOptions = {}): Promise<LoadResult> {
  const loader = new Loader();
  const extraNotes: string[] = [];
  const ignored = globMatcher(opts.ignore ?? []);
  for (const path of paths) {
    if (path === '-') {
      const text = await (opts.readStdin ?? (() => readAll(process.stdin)))();
      loader.loadText(text, STDIN_NAME);
      continue;
    }
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      throw new InputError([], `cannot read ${path}: ${describe(err)}`);
    }
    if (ignored(path)) continue;
    const files = isDir ? await listDir(path, ignored) : [path];
    if (isDir && files.length === 0) extraNotes.push(`no *.yaml, *.yml or *.json files in ${path}`);
    for (const f of files) {
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (err) {
        throw new InputError([], `cannot read ${f}: ${describe(err)}`);
      }
      loader.loadText(text, f);
    }
  }
  const res = loader.result();
  return { ...res, notes: [...extraNotes, ...res.notes] };
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}

/** Loads one YAML or JSON text (multi-document, kind: List). */
export function loadText(text: string, file: string): LoadResult {
  const loader = new Loader();
  loader.loadText(text, file);
  return loader.result();
}
