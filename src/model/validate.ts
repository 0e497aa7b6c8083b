// Decoding, defaulting and validation of the Kubernetes objects moat reads, as the API server does
// them (k8s.io/kubernetes pkg/apis/networking/validation ValidateNetworkPolicy, pkg/apis/networking/v1
// defaults, apimachinery ValidateObjectMeta and ValidateLabelSelector). One pass per object: each
// field is type-checked, then validated; every problem is collected, nothing stops at the first.
import type { Problem } from '../errors.js';
import { cidrContains } from './cidr.js';
import {
  isDNS1123Label,
  isDNS1123Subdomain,
  isQualifiedName,
  isValidLabelValue,
  isValidPortName,
  isValidPortNum,
} from './labels.js';
import { typeName, type MapTree, type Tree } from './parseYaml.js';
import type {
  ContainerPort,
  IPBlock,
  LabelSelector,
  Labels,
  Namespace,
  NetworkPolicy,
  Node,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  PolicyType,
  Protocol,
  Requirement,
  SelectorOperator,
} from './types.js';
import { PROTOCOLS } from './types.js';
import { invalidCIDRMessage, invalidIPMessage, parseLegacyCIDR, parseLegacyIP } from './validateNet.js';

// ---- messages, modelled on k8s.io/apimachinery/pkg/util/validation/field ----

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v) ?? String(v);
}

export const msg = {
  invalid: (value: unknown, detail: string): string => `Invalid value: ${fmtValue(value)}: ${detail}`,
  required: (detail = ''): string => (detail === '' ? 'Required value' : `Required value: ${detail}`),
  forbidden: (detail: string): string => `Forbidden: ${detail}`,
  notSupported: (value: unknown, supported: readonly string[]): string =>
    `Unsupported value: ${fmtValue(value)}: supported values: ${supported.map((s) => JSON.stringify(s)).join(', ')}`,
  duplicate: (value: unknown, detail = ''): string =>
    `Duplicate value: ${fmtValue(value)}${detail === '' ? '' : `: ${detail}`}`,
  type: (expected: string, got: Tree): string => `Invalid type: expected ${expected}, got ${typeName(got)}`,
  unknownField: 'field not declared in schema',
};

// ---- problem collection for one object ----

export class Reporter {
  readonly problems: Problem[] = [];
  readonly warnings: string[] = [];
  constructor(
    readonly file: string,
    readonly kind: string,
    public object: string,
  ) {}

  add(field: string, line: number, message: string): void {
    this.problems.push({ file: this.file, line, kind: this.kind, object: this.object, field, message });
  }

  /** Upstream returns these as API warnings; moat prints them as notes. */
  warn(field: string, line: number, message: string): void {
    this.warnings.push(`warning: ${this.file}:${line}: ${this.kind} ${this.object}: ${field}: ${message}`);
  }
}

export function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

export function index(path: string, i: number): string {
  return `${path}[${i}]`;
}

/** A mapping's value; JSON null decodes to the zero value, so null counts as absent. */
export function get(m: MapTree | undefined, key: string): Tree | undefined {
  const v = m?.entries.get(key);
  return v === undefined || v.t === 'null' ? undefined : v;
}

export function expectMap(r: Reporter, path: string, t: Tree | undefined): MapTree | undefined {
  if (t === undefined || t.t === 'null') return undefined;
  if (t.t !== 'map') {
    r.add(path, t.line, msg.type('an object', t));
    return undefined;
  }
  return t;
}

export function expectSeq(r: Reporter, path: string, t: Tree | undefined): readonly Tree[] | undefined {
  if (t === undefined || t.t === 'null') return undefined;
  if (t.t !== 'seq') {
    r.add(path, t.line, msg.type('a list', t));
    return undefined;
  }
  return t.items;
}

export function expectStr(r: Reporter, path: string, t: Tree | undefined): string | undefined {
  if (t === undefined || t.t === 'null') return undefined;
  if (t.t !== 'str') {
    r.add(path, t.line, msg.type('a string', t));
    return undefined;
  }
  return t.v;
}

export function expectInt(r: Reporter, path: string, t: Tree | undefined): number | undefined {
  if (t === undefined || t.t === 'null') return undefined;
  if (t.t !== 'num' || !Number.isInteger(t.v)) {
    r.add(path, t.line, msg.type('an integer', t));
    return undefined;
  }
  return t.v;
}

export function expectBool(r: Reporter, path: string, t: Tree | undefined): boolean | undefined {
  if (t === undefined || t.t === 'null') return undefined;
  if (t.t !== 'bool') {
    r.add(path, t.line, msg.type('a boolean', t));
    return undefined;
  }
  return t.v;
}

/** Strict field validation (kubectl's default, --validate=strict): unknown fields are errors. */
export function checkFields(r: Reporter, path: string, m: MapTree, allowed: readonly string[]): void {
  for (const [k, v] of m.entries) {
    if (!allowed.includes(k)) r.add(child(path, k), v.line, msg.unknownField);
  }
}

// ---- metadata ----

const OBJECT_META_FIELDS = [
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
];

export interface Meta {
  readonly name: string;
  /** "default" when not given, for namespaced kinds; "" for cluster-scoped kinds. */
  readonly namespace: string;
  readonly labels: Labels;
  /** metadata.deletionTimestamp is set: the object is being deleted. */
  readonly terminating: boolean;
  /** The AUDIT_ANNOTATION is "true": the policy's would-be drops are logged, not enforced. */
  readonly audit?: true;
}

/** A policy with this annotation set to "true" is in audit mode (docs/flows.md#audit-mode). */
export const AUDIT_ANNOTATION = 'moat.dev/audit';

/** Reads name and namespace without reporting (for naming the object in messages). */
export function peekMeta(root: MapTree, namespaced: boolean): { name: string; namespace: string } {
  const m = root.entries.get('metadata');
  const meta = m?.t === 'map' ? m : undefined;
  const n = meta?.entries.get('name');
  const ns = meta?.entries.get('namespace');
  const name = n?.t === 'str' && n.v !== '' ? n.v : '<unnamed>';
  const namespace = namespaced ? (ns?.t === 'str' && ns.v !== '' ? ns.v : 'default') : '';
  return { name, namespace };
}

/** Labels as ValidateLabels checks them (keys are qualified names, values label values). */
export function decodeLabels(r: Reporter, path: string, t: Tree | undefined): Labels {
  const m = expectMap(r, path, t);
  const out: Record<string, string> = {};
  if (!m) return out;
  for (const [k, v] of m.entries) {
    for (const e of isQualifiedName(k)) r.add(path, v.line, msg.invalid(k, e));
    const value = v.t === 'null' ? '' : expectStr(r, child(path, k), v);
    if (value === undefined) continue;
    for (const e of isValidLabelValue(value)) r.add(path, v.line, msg.invalid(value, e));
    out[k] = value;
  }
  return out;
}

/** ValidateObjectMeta: name (with the kind's name rule), namespace (a DNS label), labels. */
export function decodeMeta(
  r: Reporter,
  root: MapTree,
  namespaced: boolean,
  validateName: (name: string) => string[],
  /** Makes a name from metadata.generateName, as the API server does on create (files only). */
  generate?: (prefix: string) => string,
): Meta {
  const mt = root.entries.get('metadata');
  const m = expectMap(r, 'metadata', mt);
  if (m) checkFields(r, 'metadata', m, OBJECT_META_FIELDS);
  const at = m?.line ?? root.line;
  const nameTree = get(m, 'name');
  let name = expectStr(r, 'metadata.name', nameTree) ?? '';
  const generateName = expectStr(r, 'metadata.generateName', get(m, 'generateName')) ?? '';
  // "If this field is specified and the generated name exists, the server will return a 409";
  // otherwise the name is generateName plus a unique suffix, validated as any name.
  if (
    name === '' &&
    generateName !== '' &&
    generate !== undefined &&
    (nameTree === undefined || nameTree.t === 'str')
  ) {
    name = generate(generateName);
    for (const e of validateName(name))
      r.add('metadata.generateName', get(m, 'generateName')?.line ?? at, msg.invalid(generateName, e));
    r.object = r.object.replace('<unnamed>', name);
  } else if (name === '') {
    if (nameTree === undefined || nameTree.t === 'str') {
      r.add(
        'metadata.name',
        nameTree?.line ?? at,
        generateName === ''
          ? msg.required('name or generateName is required')
          : msg.required('moat needs a concrete name (generateName is only resolved by the API server)'),
      );
    }
  } else {
    for (const e of validateName(name)) r.add('metadata.name', nameTree?.line ?? at, msg.invalid(name, e));
  }
  let namespace = '';
  const nsTree = get(m, 'namespace');
  const ns = expectStr(r, 'metadata.namespace', nsTree);
  if (namespaced) {
    // The namespace of a request without one (kubectl's default context namespace is "default").
    namespace = ns === undefined || ns === '' ? 'default' : ns;
    if (ns !== undefined && ns !== '') {
      for (const e of isDNS1123Label(ns)) r.add('metadata.namespace', nsTree?.line ?? at, msg.invalid(ns, e));
    }
  }
  // Cluster-scoped objects: the API server clears metadata.namespace (rest.BeforeCreate), so ignore it.
  const labels = decodeLabels(r, 'metadata.labels', get(m, 'labels'));
  const annotations = expectMap(r, 'metadata.annotations', get(m, 'annotations'));
  const auditTree = get(annotations, AUDIT_ANNOTATION);
  let audit = false;
  if (auditTree !== undefined) {
    const v = auditTree.t === 'str' ? auditTree.v : undefined;
    if (v === 'true') audit = true;
    else if (v !== 'false') {
      r.add(
        `metadata.annotations["${AUDIT_ANNOTATION}"]`,
        auditTree.line,
        msg.invalid(v ?? auditTree.t, 'must be "true" or "false"'),
      );
    }
  }
  const deletion = get(m, 'deletionTimestamp');
  const terminating = deletion !== undefined && deletion.t === 'str' && deletion.v !== '';
  return { name, namespace, labels, terminating, ...(audit ? { audit: true as const } : {}) };
}

// ---- label selectors (metav1.LabelSelector) ----

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** ValidateLabelSelector with AllowInvalidLabelValueInSelector=false (the create path). */
export function decodeSelector(r: Reporter, path: string, t: Tree | undefined): LabelSelector | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  checkFields(r, path, m, ['matchLabels', 'matchExpressions']);
  const matchLabels = decodeLabels(r, child(path, 'matchLabels'), get(m, 'matchLabels'));
  const matchExpressions: Requirement[] = [];
  const exprsPath = child(path, 'matchExpressions');
  const exprs = expectSeq(r, exprsPath, get(m, 'matchExpressions')) ?? [];
  exprs.forEach((e, i) => {
    const p = index(exprsPath, i);
    // A JSON null decodes to the zero requirement (key "", operator ""), invalid for both fields.
    const em: MapTree | undefined =
      e.t === 'null' ? { t: 'map', line: e.line, entries: new Map() } : expectMap(r, p, e);
    if (!em) return;
    checkFields(r, p, em, ['key', 'operator', 'values']);
    const keyTree = get(em, 'key');
    const key = expectStr(r, child(p, 'key'), keyTree) ?? '';
    const opTree = get(em, 'operator');
    const op = expectStr(r, child(p, 'operator'), opTree) ?? '';
    const valuesPath = child(p, 'values');
    const valuesTree = get(em, 'values');
    const values: string[] = [];
    (expectSeq(r, valuesPath, valuesTree) ?? []).forEach((v, j) => {
      // null decodes to "" (the API server stores `values: [""]`), a valid value.
      const s = v.t === 'null' ? '' : expectStr(r, index(valuesPath, j), v);
      if (s !== undefined) values.push(s);
    });
    const nValues = valuesTree?.t === 'seq' ? valuesTree.items.length : 0;
    let ok = true;
    switch (op) {
      case 'In':
      case 'NotIn':
        if (nValues === 0) {
          r.add(
            valuesPath,
            valuesTree?.line ?? em.line,
            msg.required("must be specified when `operator` is 'In' or 'NotIn'"),
          );
          ok = false;
        }
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (nValues > 0) {
          r.add(
            valuesPath,
            valuesTree?.line ?? em.line,
            msg.forbidden("may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
          );
          ok = false;
        }
        break;
      default:
        if (opTree === undefined || opTree.t === 'str') {
          r.add(
            child(p, 'operator'),
            opTree?.line ?? em.line,
            msg.invalid(op, 'not a valid selector operator'),
          );
        }
        ok = false;
    }
    if (keyTree === undefined || keyTree.t === 'str') {
      for (const err of isQualifiedName(key))
        r.add(child(p, 'key'), keyTree?.line ?? em.line, msg.invalid(key, err));
    }
    if (valuesTree?.t === 'seq') {
      valuesTree.items.forEach((v, j) => {
        if (v.t !== 'str') return;
        for (const err of isValidLabelValue(v.v)) r.add(index(valuesPath, j), v.line, msg.invalid(v.v, err));
      });
    }
    if (ok && OPERATORS.includes(op as SelectorOperator)) {
      matchExpressions.push({ key, operator: op as SelectorOperator, values });
    }
  });
  return { matchLabels, matchExpressions };
}

// ---- NetworkPolicy (networking.k8s.io/v1) ----

/** ValidateNetworkPolicyPort, after SetDefaults_NetworkPolicyPort ("defaults to TCP"). */
export function decodePolicyPort(r: Reporter, path: string, t: Tree): PolicyPort | undefined {
  const m = expectMap(r, path, t);
  if (!m) return t.t === 'null' ? { protocol: 'TCP' } : undefined;
  checkFields(r, path, m, ['protocol', 'port', 'endPort']);
  const protoTree = get(m, 'protocol');
  const proto = expectStr(r, child(path, 'protocol'), protoTree);
  let protocol: Protocol = 'TCP';
  if (proto !== undefined) {
    if (PROTOCOLS.includes(proto as Protocol)) protocol = proto as Protocol;
    else r.add(child(path, 'protocol'), protoTree?.line ?? m.line, msg.notSupported(proto, PROTOCOLS));
  }
  // intstr.IntOrString: a JSON number is a port number, a JSON string a port name ("80" included).
  const portTree = get(m, 'port');
  const portPath = child(path, 'port');
  let port: number | string | undefined;
  if (portTree?.t === 'num') port = expectInt(r, portPath, portTree);
  else if (portTree !== undefined) port = expectStr(r, portPath, portTree);
  const endTree = get(m, 'endPort');
  const endPath = child(path, 'endPort');
  const endPort = expectInt(r, endPath, endTree);
  const endLine = endTree?.line ?? m.line;
  if (portTree !== undefined) {
    if (typeof port === 'number') {
      for (const e of isValidPortNum(port)) r.add(portPath, portTree.line, msg.invalid(port, e));
      if (endPort !== undefined) {
        if (endPort < port)
          r.add(endPath, endLine, msg.invalid(endPort, 'must be greater than or equal to `port`'));
        for (const e of isValidPortNum(endPort)) r.add(endPath, endLine, msg.invalid(endPort, e));
      }
    } else if (typeof port === 'string') {
      if (endPort !== undefined) {
        r.add(endPath, endLine, msg.invalid(endPort, 'may not be specified when `port` is non-numeric'));
      }
      for (const e of isValidPortName(port)) r.add(portPath, portTree.line, msg.invalid(port, e));
    }
  } else if (endPort !== undefined) {
    r.add(endPath, endLine, msg.invalid(endPort, 'may not be specified when `port` is not specified'));
  }
  return {
    protocol,
    ...(port !== undefined ? { port } : {}),
    ...(endPort !== undefined && typeof port === 'number' ? { endPort } : {}),
  };
}

/** ValidateIPBlock: cidr required and a CIDR; each except a CIDR "strict subset of `cidr`". */
export function decodeIPBlock(r: Reporter, path: string, t: Tree): IPBlock | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  checkFields(r, path, m, ['cidr', 'except']);
  const cidrPath = child(path, 'cidr');
  const cidrTree = get(m, 'cidr');
  const cidrText = expectStr(r, cidrPath, cidrTree);
  const exceptPath = child(path, 'except');
  const exceptItems = expectSeq(r, exceptPath, get(m, 'except')) ?? [];
  if (cidrText === undefined || cidrText === '') {
    if (cidrTree === undefined || cidrTree.t === 'str')
      r.add(cidrPath, cidrTree?.line ?? m.line, msg.required());
    return undefined;
  }
  const cidr = parseLegacyCIDR(cidrText);
  if (!cidr) {
    r.add(cidrPath, cidrTree?.line ?? m.line, msg.invalid(cidrText, invalidCIDRMessage));
    return undefined;
  }
  for (const w of cidr.warnings) r.warn(cidrPath, cidrTree?.line ?? m.line, w);
  const except: string[] = [];
  exceptItems.forEach((e, i) => {
    const p = index(exceptPath, i);
    const text = expectStr(r, p, e);
    if (text === undefined) {
      if (e.t === 'null') r.add(p, e.line, msg.invalid('', invalidCIDRMessage));
      return;
    }
    const ex = parseLegacyCIDR(text);
    if (!ex) {
      r.add(p, e.line, msg.invalid(text, invalidCIDRMessage));
      return;
    }
    for (const w of ex.warnings) r.warn(p, e.line, w);
    // ValidateIPBlock: `!cidrIPNet.Contains(exceptCIDR.IP) || cidrMaskLen >= exceptMaskLen` is an
    // error. Contains looks at IPv4-mapped addresses as IPv4, but the mask lengths are compared as
    // written: "::ffff:10.0.0.0/104" (104) may not except "10.1.0.0/16" (16), and "10.0.0.0/8"
    // may except "::ffff:10.0.0.0/104", the same network.
    if (
      !cidrContains(cidr.cidr, { family: ex.cidr.family, value: ex.cidr.base }) ||
      cidr.writtenPrefix >= ex.writtenPrefix
    ) {
      r.add(p, e.line, msg.invalid(text, 'must be a strict subset of `cidr`'));
      return;
    }
    except.push(ex.canonical);
  });
  return { cidr: cidr.canonical, except };
}

/** ValidateNetworkPolicyPeer: "must specify a peer"; ipBlock excludes the selectors. */
export function decodePeer(r: Reporter, path: string, t: Tree): Peer | undefined {
  const m = expectMap(r, path, t);
  if (!m && t.t !== 'null') return undefined;
  if (m) checkFields(r, path, m, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const podT = get(m, 'podSelector');
  const nsT = get(m, 'namespaceSelector');
  const ipT = get(m, 'ipBlock');
  const before = r.problems.length;
  const podSelector = podT !== undefined ? decodeSelector(r, child(path, 'podSelector'), podT) : undefined;
  const namespaceSelector =
    nsT !== undefined ? decodeSelector(r, child(path, 'namespaceSelector'), nsT) : undefined;
  const ipBlock = ipT !== undefined ? decodeIPBlock(r, child(path, 'ipBlock'), ipT) : undefined;
  const numPeers = [podT, nsT, ipT].filter((x) => x !== undefined).length;
  if (numPeers === 0) {
    r.add(path, t.line, msg.required('must specify a peer'));
    return undefined;
  }
  if (numPeers > 1 && ipT !== undefined) {
    r.add(path, t.line, msg.forbidden('may not specify both ipBlock and another peer'));
    return undefined;
  }
  if (r.problems.length !== before) return undefined;
  if (ipBlock) return { kind: 'ipBlock', ipBlock };
  return {
    kind: 'selector',
    ...(podSelector !== undefined ? { podSelector } : {}),
    ...(namespaceSelector !== undefined ? { namespaceSelector } : {}),
  };
}

function decodeRule(r: Reporter, path: string, t: Tree, peersKey: 'from' | 'to'): PolicyRule | undefined {
  const m = expectMap(r, path, t);
  if (!m && t.t !== 'null') return undefined;
  if (m) checkFields(r, path, m, ['ports', peersKey]);
  const portsPath = child(path, 'ports');
  const ports: PolicyPort[] = [];
  (expectSeq(r, portsPath, get(m, 'ports')) ?? []).forEach((p, i) => {
    const port = decodePolicyPort(r, index(portsPath, i), p);
    if (port) ports.push(port);
  });
  const peersPath = child(path, peersKey);
  const peers: Peer[] = [];
  (expectSeq(r, peersPath, get(m, peersKey)) ?? []).forEach((p, i) => {
    const peer = decodePeer(r, index(peersPath, i), p);
    if (peer) peers.push(peer);
  });
  // "If this field is empty or missing, this rule matches all sources/destinations" (and ports).
  return { ...(peers.length > 0 ? { peers } : {}), ...(ports.length > 0 ? { ports } : {}) };
}

const POLICY_TYPES: readonly PolicyType[] = ['Ingress', 'Egress'];

export function decodeNetworkPolicy(r: Reporter, root: MapTree, meta: Meta, file: string): NetworkPolicy {
  const spec = expectMap(r, 'spec', get(root, 'spec'));
  if (spec) checkFields(r, 'spec', spec, ['podSelector', 'ingress', 'egress', 'policyTypes']);
  // podSelector is optional: "If not specified, it defaults to an empty selector, which selects all
  // pods in the namespace" (kubernetes#131354 made the schema say so; validation never required it).
  const podSelector = decodeSelector(r, 'spec.podSelector', get(spec, 'podSelector')) ?? {
    matchLabels: {},
    matchExpressions: [],
  };
  const rules = (key: 'ingress' | 'egress', peersKey: 'from' | 'to'): PolicyRule[] => {
    const out: PolicyRule[] = [];
    (expectSeq(r, `spec.${key}`, get(spec, key)) ?? []).forEach((t, i) => {
      const rule = decodeRule(r, index(`spec.${key}`, i), t, peersKey);
      if (rule) out.push(rule);
    });
    return out;
  };
  const ingress = rules('ingress', 'from');
  const egress = rules('egress', 'to');
  const egressTree = get(spec, 'egress');
  const hasEgress = egressTree?.t === 'seq' && egressTree.items.length > 0;

  const typesPath = 'spec.policyTypes';
  const typesTree = get(spec, 'policyTypes');
  const types: PolicyType[] = [];
  const items = expectSeq(r, typesPath, typesTree) ?? [];
  if (items.length > POLICY_TYPES.length) {
    const shown = items.map((x) => (x.t === 'str' ? x.v : typeName(x)));
    r.add(
      typesPath,
      typesTree?.line ?? root.line,
      msg.invalid(shown, 'may not specify more than two policyTypes'),
    );
  } else {
    items.forEach((x, i) => {
      const p = index(typesPath, i);
      const v = expectStr(r, p, x);
      if (v === undefined) {
        if (x.t === 'null') r.add(p, x.line, msg.notSupported('', POLICY_TYPES));
        return;
      }
      if (!POLICY_TYPES.includes(v as PolicyType)) r.add(p, x.line, msg.notSupported(v, POLICY_TYPES));
      // Upstream accepts a repeated type (["Ingress", "Ingress"]); it means the same as one.
      else if (!types.includes(v as PolicyType)) types.push(v as PolicyType);
    });
  }
  // SetDefaults_NetworkPolicySpec: "if len(PolicyTypes) == 0: Ingress, plus Egress if len(Egress) != 0".
  const policyTypes: PolicyType[] =
    items.length > 0
      ? POLICY_TYPES.filter((p) => types.includes(p))
      : hasEgress
        ? ['Ingress', 'Egress']
        : ['Ingress'];
  // For lint: which ports had no protocol, and whether policyTypes was left to the default.
  const protocols: string[] = [];
  for (const key of ['ingress', 'egress'] as const) {
    const rulesTree = get(spec, key);
    if (rulesTree?.t !== 'seq') continue;
    rulesTree.items.forEach((rt, i) => {
      const portsTree = rt.t === 'map' ? get(rt, 'ports') : undefined;
      if (portsTree?.t !== 'seq') return;
      portsTree.items.forEach((pt, k) => {
        if (pt.t === 'null' || (pt.t === 'map' && get(pt, 'protocol') === undefined)) {
          protocols.push(`spec.${key}[${i}].ports[${k}]`);
        }
      });
    });
  }
  const implicit = {
    ...(items.length === 0 ? { policyTypes: true as const } : {}),
    ...(protocols.length > 0 ? { protocols } : {}),
  };
  return {
    namespace: meta.namespace,
    name: meta.name,
    podSelector,
    policyTypes,
    ingress,
    egress,
    ...(Object.keys(implicit).length > 0 ? { implicit } : {}),
    ...(meta.audit === true ? { audit: true as const } : {}),
    origin: { file, line: root.line },
  };
}

// ---- Namespace, Pod, Node (v1): only what moat uses is projected and checked ----

export function decodeNamespace(_r: Reporter, root: MapTree, meta: Meta, file: string): Namespace {
  // The API server sets "kubernetes.io/metadata.name" to the name on every namespace.
  return {
    name: meta.name,
    labels: { ...meta.labels, 'kubernetes.io/metadata.name': meta.name },
    origin: { file, line: root.line },
  };
}

/** A decoded Pod before hostNetwork pods get their node's addresses. */
export interface PodEntry {
  readonly pod: Pod;
  /** status.hostIPs / status.hostIP, for a hostNetwork pod whose node is not loaded. */
  readonly hostIPs: readonly string[];
  /** status.phase is Succeeded or Failed: "all containers in the Pod have terminated". */
  readonly finished: boolean;
  /** metadata.deletionTimestamp is set. */
  readonly terminating: boolean;
  /** The controller's "Kind/namespace/name" (ownerReferences, controller: true), if any. */
  readonly owner?: string;
}

/** Phases in which "all containers in the Pod have terminated": the pod holds no address. */
export const FINISHED_PHASES: readonly string[] = ['Succeeded', 'Failed'];

function decodeIPList(
  r: Reporter,
  listPath: string,
  listTree: Tree | undefined,
  single: { path: string; tree: Tree | undefined },
): string[] {
  const out: string[] = [];
  const one = (path: string, t: Tree | undefined, fallbackLine: number): void => {
    const s = expectStr(r, path, t);
    if (s === undefined || s === '') return;
    const ip = parseLegacyIP(s);
    if (!ip) {
      r.add(path, t?.line ?? fallbackLine, msg.invalid(s, invalidIPMessage));
      return;
    }
    for (const w of ip.warnings) r.warn(path, t?.line ?? fallbackLine, w);
    if (!out.includes(ip.canonical)) out.push(ip.canonical);
  };
  (expectSeq(r, listPath, listTree) ?? []).forEach((item, i) => {
    const p = index(listPath, i);
    const m = expectMap(r, p, item);
    if (m) one(child(p, 'ip'), get(m, 'ip'), m.line);
  });
  // "If this field is specified, the 0th entry must match the podIP field": podIPs wins when present.
  if (out.length === 0) one(single.path, single.tree, 1);
  return out;
}

function decodeContainerPorts(r: Reporter, path: string, t: Tree | undefined, out: ContainerPort[]): void {
  const names = new Set<string>();
  (expectSeq(r, path, t) ?? []).forEach((item, i) => {
    const p = index(path, i);
    const m = expectMap(r, p, item);
    if (!m) return;
    const before = r.problems.length;
    const cpTree = get(m, 'containerPort');
    const cp = expectInt(r, child(p, 'containerPort'), cpTree);
    if (cpTree === undefined || cp === 0)
      r.add(child(p, 'containerPort'), cpTree?.line ?? m.line, msg.required());
    else if (cp !== undefined) {
      for (const e of isValidPortNum(cp)) r.add(child(p, 'containerPort'), cpTree.line, msg.invalid(cp, e));
    }
    const protoTree = get(m, 'protocol');
    const proto = expectStr(r, child(p, 'protocol'), protoTree) ?? 'TCP';
    if (!PROTOCOLS.includes(proto as Protocol)) {
      r.add(child(p, 'protocol'), protoTree?.line ?? m.line, msg.notSupported(proto, PROTOCOLS));
    }
    const nameTree = get(m, 'name');
    const name = expectStr(r, child(p, 'name'), nameTree) ?? '';
    if (name !== '') {
      const errs = isValidPortName(name);
      for (const e of errs) r.add(child(p, 'name'), nameTree?.line ?? m.line, msg.invalid(name, e));
      if (errs.length === 0 && names.has(name))
        r.add(child(p, 'name'), nameTree?.line ?? m.line, msg.duplicate(name));
      names.add(name);
    }
    if (r.problems.length === before && cp !== undefined) {
      out.push({ containerPort: cp, protocol: proto as Protocol, ...(name !== '' ? { name } : {}) });
    }
  });
}

/** What moat reads of a PodSpec (a Pod's spec, or a workload's pod template's spec at `path`). */
export interface PodSpecPart {
  readonly nodeName?: string;
  readonly hostNetwork: boolean;
  readonly ports: readonly ContainerPort[];
}

export function decodePodSpec(r: Reporter, path: string, spec: MapTree | undefined, at: number): PodSpecPart {
  const nodeName = expectStr(r, child(path, 'nodeName'), get(spec, 'nodeName'));
  const hostNetwork = expectBool(r, child(path, 'hostNetwork'), get(spec, 'hostNetwork')) ?? false;
  const ports: ContainerPort[] = [];
  const containersPath = child(path, 'containers');
  const containersTree = get(spec, 'containers');
  const containers = expectSeq(r, containersPath, containersTree);
  if (containersTree === undefined || (containers !== undefined && containers.length === 0)) {
    r.add(containersPath, containersTree?.line ?? spec?.line ?? at, msg.required());
  }
  (containers ?? []).forEach((c, i) => {
    const p = index(containersPath, i);
    const m = expectMap(r, p, c);
    if (m) decodeContainerPorts(r, child(p, 'ports'), get(m, 'ports'), ports);
  });
  const initPath = child(path, 'initContainers');
  (expectSeq(r, initPath, get(spec, 'initContainers')) ?? []).forEach((c, i) => {
    const p = index(initPath, i);
    const m = expectMap(r, p, c);
    if (!m) return;
    // Sidecars ("restartPolicy: Always" init containers) keep running and serve their ports.
    const restart = expectStr(r, child(p, 'restartPolicy'), get(m, 'restartPolicy'));
    if (restart === 'Always') decodeContainerPorts(r, child(p, 'ports'), get(m, 'ports'), ports);
  });
  return { hostNetwork, ports, ...(nodeName !== undefined && nodeName !== '' ? { nodeName } : {}) };
}

/** The controller of an object: the ownerReference with `controller: true` ("Kind/namespace/name"). */
export function controllerOf(root: MapTree, namespace: string): string | undefined {
  const md = root.entries.get('metadata');
  const refs = md?.t === 'map' ? md.entries.get('ownerReferences') : undefined;
  if (refs?.t !== 'seq') return undefined;
  for (const ref of refs.items) {
    if (ref.t !== 'map') continue;
    const c = ref.entries.get('controller');
    const kind = ref.entries.get('kind');
    const name = ref.entries.get('name');
    if (c?.t === 'bool' && c.v && kind?.t === 'str' && name?.t === 'str')
      return `${kind.v}/${namespace}/${name.v}`;
  }
  return undefined;
}

export function decodePod(r: Reporter, root: MapTree, meta: Meta, file: string): PodEntry {
  const spec = expectMap(r, 'spec', get(root, 'spec'));
  const status = expectMap(r, 'status', get(root, 'status'));
  const { nodeName, hostNetwork, ports } = decodePodSpec(r, 'spec', spec, root.line);
  const ips = decodeIPList(r, 'status.podIPs', get(status, 'podIPs'), {
    path: 'status.podIP',
    tree: get(status, 'podIP'),
  });
  const hostIPs = decodeIPList(r, 'status.hostIPs', get(status, 'hostIPs'), {
    path: 'status.hostIP',
    tree: get(status, 'hostIP'),
  });
  const phase = expectStr(r, 'status.phase', get(status, 'phase'));
  const pod: Pod = {
    namespace: meta.namespace,
    name: meta.name,
    labels: meta.labels,
    hostNetwork,
    ips,
    ports,
    ...(nodeName !== undefined && nodeName !== '' ? { nodeName } : {}),
    origin: { file, line: root.line },
  };
  const owner = controllerOf(root, meta.namespace);
  return {
    pod,
    hostIPs,
    finished: phase !== undefined && FINISHED_PHASES.includes(phase),
    terminating: meta.terminating,
    ...(owner !== undefined ? { owner } : {}),
  };
}

export function decodeNode(r: Reporter, root: MapTree, meta: Meta, file: string): Node {
  const spec = expectMap(r, 'spec', get(root, 'spec'));
  const status = expectMap(r, 'status', get(root, 'status'));
  const podCIDRs: string[] = [];
  const cidrAt = (path: string, t: Tree): void => {
    const s = expectStr(r, path, t);
    if (s === undefined || s === '') return;
    const c = parseLegacyCIDR(s);
    if (!c) r.add(path, t.line, msg.invalid(s, invalidCIDRMessage));
    else if (!podCIDRs.includes(c.canonical)) podCIDRs.push(c.canonical);
  };
  (expectSeq(r, 'spec.podCIDRs', get(spec, 'podCIDRs')) ?? []).forEach((t, i) =>
    cidrAt(index('spec.podCIDRs', i), t),
  );
  const single = get(spec, 'podCIDR');
  if (podCIDRs.length === 0 && single !== undefined) cidrAt('spec.podCIDR', single);
  const addresses: string[] = [];
  const external: string[] = [];
  (expectSeq(r, 'status.addresses', get(status, 'addresses')) ?? []).forEach((t, i) => {
    const p = index('status.addresses', i);
    const m = expectMap(r, p, t);
    if (!m) return;
    const type = expectStr(r, child(p, 'type'), get(m, 'type'));
    const addrTree = get(m, 'address');
    const addr = expectStr(r, child(p, 'address'), addrTree);
    if (type !== 'InternalIP' && type !== 'ExternalIP') return; // Hostname, InternalDNS, ...
    if (addr === undefined || addr === '') return;
    const ip = parseLegacyIP(addr);
    if (!ip) r.add(child(p, 'address'), addrTree?.line ?? m.line, msg.invalid(addr, invalidIPMessage));
    else {
      const list = type === 'InternalIP' ? addresses : external;
      if (!list.includes(ip.canonical)) list.push(ip.canonical);
    }
  });
  return {
    name: meta.name,
    labels: meta.labels,
    addresses,
    ...(external.length > 0 ? { externalAddresses: external } : {}),
    podCIDRs,
    origin: { file, line: root.line },
  };
}

export { isDNS1123Label, isDNS1123Subdomain };
