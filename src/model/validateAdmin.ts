// Decoding and validation of the admin-tier kinds as the API server does it with the upstream CRDs
// of sigs.k8s.io/network-policy-api (OpenAPI schema and CEL rules): ClusterNetworkPolicy
// policy.networking.k8s.io/v1beta1 and v1alpha2 (v0.3.0, identical schemas), AdminNetworkPolicy and
// BaselineAdminNetworkPolicy v1alpha1 (v0.1.7). moat accepts the experimental channel (a superset of
// standard: nodes, domainNames, destinationNamedPort). Where the CRD leaves a field unchecked that moat
// must evaluate (label selector operators and keys, ANP port protocols, ANP port ranges with start
// >= end), moat is stricter: it cannot enforce what it cannot read. Checked against a real API server
// with the CRDs, those differences listed, in test/k8s/admin-validate-compare.test.ts.
import { parseCidr, formatCidr } from './cidr.js';
import type { MapTree, Tree } from './parseYaml.js';
import type {
  AdminAction,
  AdminKind,
  AdminPeer,
  AdminPolicy,
  AdminPort,
  AdminRule,
  AdminSubject,
  AdminTier,
  LabelSelector,
  Protocol,
} from './types.js';
import { PROTOCOLS } from './types.js';
import {
  checkFields,
  child,
  decodeSelector,
  expectInt,
  expectMap,
  expectSeq,
  expectStr,
  get,
  index,
  msg,
  type Meta,
  type Reporter,
} from './validate.js';

const EMPTY: LabelSelector = { matchLabels: {}, matchExpressions: [] };

/** The differences between the kinds, as their CRDs state them. */
interface KindRules {
  readonly kind: AdminKind;
  readonly actions: readonly string[];
  readonly maxRules: number;
  readonly maxPeers: number;
  readonly maxPorts: number;
  /** spec fields besides subject, ingress and egress. */
  readonly specFields: readonly ('tier' | 'priority')[];
  /** Egress peer fields, in the order the CRD's named-port message lists them (ingress: namespaces, pods). */
  readonly egressPeers: readonly string[];
  /** The DomainName pattern (v0.1.7 spells `[a-zA-z0-9]`, and the API server checks just that). */
  readonly domainPattern: string;
  /** NamespacedPod: CNP requires only podSelector, v1alpha1 both selectors. */
  readonly podsRequired: readonly string[];
  /** CNP networks must be canonical: `cidr(self) == cidr(self).masked()`; v1alpha1 only `isCIDR`. */
  readonly canonicalNetworks: boolean;
}

// DomainName: "'*' may only be specified as a prefix" (CRD pattern; v0.1.7 spells [a-zA-z0-9]).
const DOMAIN_CNP =
  '^(\\*\\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.?$';
const DOMAIN_ANP =
  '^(\\*\\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\\.?$';

const CNP: KindRules = {
  kind: 'ClusterNetworkPolicy',
  actions: ['Accept', 'Deny', 'Pass'],
  maxRules: 25,
  maxPeers: 25,
  maxPorts: 25,
  specFields: ['tier', 'priority'],
  egressPeers: ['namespaces', 'pods', 'networks', 'nodes', 'domainNames'],
  domainPattern: DOMAIN_CNP,
  podsRequired: ['podSelector'],
  canonicalNetworks: true,
};
const ANP: KindRules = {
  kind: 'AdminNetworkPolicy',
  actions: ['Allow', 'Deny', 'Pass'],
  maxRules: 100,
  maxPeers: 100,
  maxPorts: 100,
  specFields: ['priority'],
  egressPeers: ['namespaces', 'pods', 'networks', 'nodes', 'domainNames'],
  domainPattern: DOMAIN_ANP,
  podsRequired: ['namespaceSelector', 'podSelector'],
  canonicalNetworks: false,
};
const BANP: KindRules = {
  ...ANP,
  kind: 'BaselineAdminNetworkPolicy',
  actions: ['Allow', 'Deny'],
  specFields: [],
  egressPeers: ['namespaces', 'pods', 'networks', 'nodes'],
};

const TIERS: readonly AdminTier[] = ['Admin', 'Baseline'];

// CRD messages, as the apiextensions validator words them.
const crd = {
  tooMany: (n: number, max: number) => `Too many: ${n}: must have at most ${max} items`,
  tooFew: (path: string, min: number, n: number) =>
    `Invalid value: ${n}: ${path} in body should have at least ${min} items`,
  minProps: (path: string, n: number) =>
    `Invalid value: ${n}: ${path} in body should have at least 1 properties`,
  maxProps: (n: number) => `Too many: ${n}: must have at most 1 items`,
  max: (path: string, v: number, max: number) =>
    `Invalid value: ${v}: ${path} in body should be less than or equal to ${max}`,
  min: (path: string, v: number, min: number) =>
    `Invalid value: ${v}: ${path} in body should be greater than or equal to ${min}`,
  maxLength: (max: number) => `Too long: may not be more than ${max} bytes`,
  pattern: (path: string, v: string, re: string) =>
    `Invalid value: ${JSON.stringify(v)}: ${path} in body should match '${re}'`,
  cel: (what: 'object' | 'string', message: string) => `Invalid value: "${what}": ${message}`,
};

/** A mapping's set fields (null counts as absent, as in `get`). */
function present(m: MapTree): string[] {
  return [...m.entries].filter(([, v]) => v.t !== 'null').map(([k]) => k);
}

/**
 * minProperties=1, maxProperties=1: exactly one of `fields`. Returns the field, or undefined. Other
 * (unknown) fields do not count: the API server prunes them before it checks the schema.
 */
function exactlyOne(r: Reporter, path: string, m: MapTree, fields: readonly string[]): string | undefined {
  const set = present(m).filter((k) => fields.includes(k));
  if (set.length === 0) {
    r.add(path, m.line, crd.minProps(path, 0));
    return undefined;
  }
  if (set.length > 1) {
    r.add(path, m.line, crd.maxProps(set.length));
    return undefined;
  }
  return set[0];
}

function boundedList(
  r: Reporter,
  path: string,
  t: Tree | undefined,
  min: number,
  max: number,
): readonly Tree[] | undefined {
  const items = expectSeq(r, path, t);
  if (items === undefined) return undefined;
  if (items.length > max) r.add(path, t!.line, crd.tooMany(items.length, max));
  if (items.length < min) r.add(path, t!.line, crd.tooFew(path, min, items.length));
  return items;
}

function intIn(r: Reporter, path: string, t: Tree | undefined, min: number, max: number): number | undefined {
  const v = expectInt(r, path, t);
  if (v === undefined) return undefined;
  if (v > max) r.add(path, t!.line, crd.max(path, v, max));
  else if (v < min) r.add(path, t!.line, crd.min(path, v, min));
  else return v;
  return undefined;
}

/** x-kubernetes-list-type=set: no duplicates. */
function setOfStrings(
  r: Reporter,
  path: string,
  items: readonly Tree[],
): { v: string; t: Tree; p: string }[] {
  const out: { v: string; t: Tree; p: string }[] = [];
  const seen = new Set<string>();
  items.forEach((t, i) => {
    const p = index(path, i);
    const v = expectStr(r, p, t);
    if (v === undefined) return;
    if (seen.has(v)) r.add(p, t.line, msg.duplicate(v));
    seen.add(v);
    out.push({ v, t, p });
  });
  return out;
}

function required(r: Reporter, m: MapTree, path: string, key: string): Tree | undefined {
  const t = get(m, key);
  if (t === undefined) r.add(child(path, key), m.line, msg.required());
  return t;
}

function decodeNamespacedPod(r: Reporter, k: KindRules, path: string, t: Tree): AdminSubject | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  checkFields(r, path, m, ['namespaceSelector', 'podSelector']);
  for (const f of k.podsRequired) required(r, m, path, f);
  const namespaceSelector = decodeSelector(r, child(path, 'namespaceSelector'), get(m, 'namespaceSelector'));
  const podSelector = decodeSelector(r, child(path, 'podSelector'), get(m, 'podSelector'));
  return { kind: 'pods', namespaceSelector: namespaceSelector ?? EMPTY, podSelector: podSelector ?? EMPTY };
}

function decodeSubject(r: Reporter, k: KindRules, spec: MapTree): AdminSubject | undefined {
  const path = 'spec.subject';
  const m = expectMap(r, path, required(r, spec, 'spec', 'subject'));
  if (!m) return undefined;
  checkFields(r, path, m, ['namespaces', 'pods']);
  const f = exactlyOne(r, path, m, ['namespaces', 'pods']);
  if (f === 'namespaces') {
    const s = decodeSelector(r, child(path, f), get(m, f));
    return s ? { kind: 'namespaces', namespaceSelector: s } : undefined;
  }
  if (f === 'pods') return decodeNamespacedPod(r, k, child(path, f), get(m, f)!);
  return undefined;
}

function decodePeer(
  r: Reporter,
  k: KindRules,
  path: string,
  t: Tree,
  fields: readonly string[],
): AdminPeer | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  checkFields(r, path, m, fields);
  const f = exactlyOne(r, path, m, fields);
  if (f === undefined) return undefined;
  const p = child(path, f);
  const v = get(m, f)!;
  switch (f) {
    case 'namespaces': {
      const s = decodeSelector(r, p, v);
      return s ? { kind: 'namespaces', namespaceSelector: s } : undefined;
    }
    case 'pods':
      return decodeNamespacedPod(r, k, p, v);
    case 'nodes': {
      const s = decodeSelector(r, p, v);
      return s ? { kind: 'nodes', nodeSelector: s } : undefined;
    }
    case 'networks': {
      const items = boundedList(r, p, v, 1, 25) ?? [];
      const networks: string[] = [];
      for (const { v: text, t: it, p: ip } of setOfStrings(r, p, items)) {
        if (text.length > 43) {
          r.add(ip, it.line, crd.maxLength(43));
          continue;
        }
        // CEL: isCIDR(self) [&& cidr(self) == cidr(self).masked()]
        const c = parseCidr(text);
        const masked = typeof c !== 'string' ? formatCidr({ ...c, text: '' }) : '';
        if (typeof c === 'string' || (k.canonicalNetworks && masked !== text)) {
          r.add(ip, it.line, crd.cel('string', 'Invalid CIDR format provided'));
          continue;
        }
        networks.push(masked);
      }
      return { kind: 'networks', networks };
    }
    case 'domainNames': {
      const items = boundedList(r, p, v, 1, 25) ?? [];
      const re = k.domainPattern;
      const domainNames: string[] = [];
      for (const { v: text, t: it, p: ip } of setOfStrings(r, p, items)) {
        if (!new RegExp(re).test(text)) r.add(ip, it.line, crd.pattern(ip, text, re));
        else domainNames.push(text);
      }
      return { kind: 'domainNames', domainNames };
    }
  }
  return undefined;
}

function decodeProtocol(r: Reporter, path: string, t: Tree | undefined): Protocol {
  // ANP/BANP: `protocol` is a free string defaulted to TCP in the CRD; moat needs a real one.
  const v = expectStr(r, path, t);
  if (v === undefined) return 'TCP';
  if (!PROTOCOLS.includes(v as Protocol)) {
    r.add(path, t!.line, msg.notSupported(v, PROTOCOLS));
    return 'TCP';
  }
  return v as Protocol;
}

function decodeRange(r: Reporter, path: string, m: MapTree): { start: number; end: number } | undefined {
  const start = intIn(r, child(path, 'start'), required(r, m, path, 'start'), 1, 65535);
  const end = intIn(r, child(path, 'end'), required(r, m, path, 'end'), 1, 65535);
  if (start === undefined || end === undefined) return undefined;
  return { start, end };
}

/** CNP `protocols[i]`: exactly one of tcp, udp, sctp, destinationNamedPort. */
function decodeCnpProtocol(r: Reporter, path: string, t: Tree): AdminPort | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  const fields = ['tcp', 'udp', 'sctp', 'destinationNamedPort'];
  checkFields(r, path, m, fields);
  const f = exactlyOne(r, path, m, fields);
  if (f === undefined) return undefined;
  const p = child(path, f);
  if (f === 'destinationNamedPort') {
    const name = expectStr(r, p, get(m, f));
    return name === undefined ? undefined : { kind: 'named', name };
  }
  const protocol = f.toUpperCase() as Protocol;
  const pm = expectMap(r, p, get(m, f));
  if (!pm) return undefined;
  checkFields(r, p, pm, ['destinationPort']);
  const dpPath = child(p, 'destinationPort');
  const dp = get(pm, 'destinationPort');
  if (dp === undefined) {
    // minProperties=1; unknown fields are pruned first, so there are none.
    r.add(p, pm.line, crd.minProps(p, 0));
    return undefined;
  }
  const dm = expectMap(r, dpPath, dp);
  if (!dm) return undefined;
  checkFields(r, dpPath, dm, ['number', 'range']);
  const which = exactlyOne(r, dpPath, dm, ['number', 'range']);
  if (which === 'number') {
    const port = intIn(r, child(dpPath, 'number'), get(dm, 'number'), 1, 65535);
    return port === undefined ? undefined : { kind: 'number', protocol, port };
  }
  if (which === 'range') {
    const rp = child(dpPath, 'range');
    const rm = expectMap(r, rp, get(dm, 'range'));
    if (!rm) return undefined;
    checkFields(r, rp, rm, ['start', 'end']);
    const range = decodeRange(r, rp, rm);
    // CEL: self.start < self.end, evaluated on the values as given (also out of bounds, as the API
    // server does: a bound error does not stop the rule).
    const [s, e] = [get(rm, 'start'), get(rm, 'end')];
    if (s?.t === 'num' && e?.t === 'num' && Number.isInteger(s.v) && Number.isInteger(e.v) && s.v >= e.v) {
      r.add(rp, rm.line, crd.cel('object', 'Start port must be less than End port'));
      return undefined;
    }
    if (!range) return undefined;
    return { kind: 'range', protocol, ...range };
  }
  return undefined;
}

/** ANP/BANP `ports[i]`: exactly one of portNumber, namedPort, portRange. */
function decodeAnpPort(r: Reporter, path: string, t: Tree): AdminPort | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  const fields = ['portNumber', 'namedPort', 'portRange'];
  checkFields(r, path, m, fields);
  const f = exactlyOne(r, path, m, fields);
  if (f === undefined) return undefined;
  const p = child(path, f);
  if (f === 'namedPort') {
    const name = expectStr(r, p, get(m, f));
    return name === undefined ? undefined : { kind: 'named', name };
  }
  const pm = expectMap(r, p, get(m, f));
  if (!pm) return undefined;
  if (f === 'portNumber') {
    checkFields(r, p, pm, ['protocol', 'port']);
    const protocol = decodeProtocol(r, child(p, 'protocol'), get(pm, 'protocol'));
    const port = intIn(r, child(p, 'port'), required(r, pm, p, 'port'), 1, 65535);
    return port === undefined ? undefined : { kind: 'number', protocol, port };
  }
  checkFields(r, p, pm, ['protocol', 'start', 'end']);
  const protocol = decodeProtocol(r, child(p, 'protocol'), get(pm, 'protocol'));
  const range = decodeRange(r, p, pm);
  if (!range) return undefined;
  // "the Start value must be less than End" (the v1alpha1 CRD has no CEL rule for it; moat needs it).
  if (range.start >= range.end) {
    r.add(p, pm.line, msg.invalid(range.start, 'start must be less than end'));
    return undefined;
  }
  return { kind: 'range', protocol, ...range };
}

function decodeRule(
  r: Reporter,
  k: KindRules,
  path: string,
  t: Tree,
  direction: 'ingress' | 'egress',
): AdminRule | undefined {
  const m = expectMap(r, path, t);
  if (!m) return undefined;
  const peersKey = direction === 'ingress' ? 'from' : 'to';
  const portsKey = k.kind === 'ClusterNetworkPolicy' ? 'protocols' : 'ports';
  checkFields(r, path, m, ['name', 'action', peersKey, portsKey]);
  const name = expectStr(r, child(path, 'name'), get(m, 'name')) ?? '';
  if (name.length > 100) r.add(child(path, 'name'), get(m, 'name')!.line, crd.maxLength(100));
  const actionTree = required(r, m, path, 'action');
  const actionText = expectStr(r, child(path, 'action'), actionTree);
  let action: AdminAction | undefined;
  if (actionText !== undefined) {
    if (!k.actions.includes(actionText)) {
      r.add(child(path, 'action'), actionTree!.line, msg.notSupported(actionText, k.actions));
    } else action = actionText === 'Allow' ? 'Accept' : (actionText as AdminAction);
  }
  const peersPath = child(path, peersKey);
  const peerFields = direction === 'ingress' ? ['namespaces', 'pods'] : k.egressPeers;
  const peers: AdminPeer[] = [];
  const peerItems = boundedList(r, peersPath, required(r, m, path, peersKey), 1, k.maxPeers) ?? [];
  let badPeer = false;
  peerItems.forEach((pt, i) => {
    const before = r.problems.length;
    const peer = decodePeer(r, k, index(peersPath, i), pt, peerFields);
    if (peer && r.problems.length === before) peers.push(peer);
    else badPeer = true;
  });
  let ports: AdminPort[] | undefined;
  const portsTree = get(m, portsKey);
  if (portsTree !== undefined) {
    const portsPath = child(path, portsKey);
    ports = [];
    const items = boundedList(r, portsPath, portsTree, 1, k.maxPorts) ?? [];
    items.forEach((pt, i) => {
      const port =
        k.kind === 'ClusterNetworkPolicy'
          ? decodeCnpProtocol(r, index(portsPath, i), pt)
          : decodeAnpPort(r, index(portsPath, i), pt);
      if (port) ports!.push(port);
    });
  }
  // CEL on egress rules: "networks/nodes/domainNames peer cannot be set with namedPorts since there
  // are no namedPorts for networks/nodes/domainNames" (BANP: networks/nodes).
  // Evaluated on the object as given, as CEL does (`has(...)` on the raw fields), so that a peer
  // or port with problems of its own still counts.
  const namedKey = k.kind === 'ClusterNetworkPolicy' ? 'destinationNamedPort' : 'namedPort';
  const namedPorts =
    portsTree?.t === 'seq' && portsTree.items.some((pt) => pt.t === 'map' && get(pt, namedKey) !== undefined);
  if (direction === 'egress' && namedPorts) {
    const hostile = k.egressPeers.filter((f) => f !== 'namespaces' && f !== 'pods');
    const has = peerItems.some((pt) => pt.t === 'map' && hostile.some((f) => get(pt, f) !== undefined));
    if (has) {
      r.add(
        path,
        m.line,
        crd.cel(
          'object',
          `${hostile.join('/')} peer cannot be set with namedPorts since there are no namedPorts for ${hostile.join('/')}`,
        ),
      );
    }
  }
  if (action === undefined || badPeer) return undefined;
  return { name, action, peers, ...(ports !== undefined ? { ports } : {}) };
}

function decodeAdmin(k: KindRules, r: Reporter, root: MapTree, meta: Meta, file: string): AdminPolicy {
  const specTree = get(root, 'spec');
  if (specTree === undefined) r.add('spec', root.line, msg.required());
  const spec = expectMap(r, 'spec', specTree) ?? { t: 'map', line: root.line, entries: new Map() };
  if (specTree !== undefined) checkFields(r, 'spec', spec, ['subject', 'ingress', 'egress', ...k.specFields]);
  let tier: AdminTier = k.kind === 'BaselineAdminNetworkPolicy' ? 'Baseline' : 'Admin';
  if (k.specFields.includes('tier') && specTree !== undefined) {
    const tt = required(r, spec, 'spec', 'tier');
    const tv = expectStr(r, 'spec.tier', tt);
    if (tv !== undefined) {
      if (TIERS.includes(tv as AdminTier)) tier = tv as AdminTier;
      else r.add('spec.tier', tt!.line, msg.notSupported(tv, TIERS));
    }
  }
  let priority = 0;
  if (k.specFields.includes('priority') && specTree !== undefined) {
    priority = intIn(r, 'spec.priority', required(r, spec, 'spec', 'priority'), 0, 1000) ?? 0;
  }
  if (k.kind === 'BaselineAdminNetworkPolicy' && meta.name !== '' && meta.name !== 'default') {
    // CEL on the object: self.metadata.name == 'default'
    r.add(
      'metadata.name',
      root.line,
      crd.cel(
        'object',
        'Only one baseline admin network policy with metadata.name="default" can be created in the cluster',
      ),
    );
  }
  const subject = specTree !== undefined ? decodeSubject(r, k, spec) : undefined;
  const rules = (dir: 'ingress' | 'egress'): AdminRule[] => {
    const out: AdminRule[] = [];
    const items = boundedList(r, `spec.${dir}`, get(spec, dir), 0, k.maxRules) ?? [];
    items.forEach((t, i) => {
      const rule = decodeRule(r, k, index(`spec.${dir}`, i), t, dir);
      if (rule) out.push(rule);
    });
    return out;
  };
  const ingress = rules('ingress');
  const egress = rules('egress');
  return {
    kind: k.kind,
    name: meta.name,
    tier,
    priority,
    subject: subject ?? { kind: 'namespaces', namespaceSelector: EMPTY },
    ingress,
    egress,
    ...(meta.audit === true ? { audit: true as const } : {}),
    origin: { file, line: root.line },
  };
}

export function decodeClusterNetworkPolicy(
  r: Reporter,
  root: MapTree,
  meta: Meta,
  file: string,
): AdminPolicy {
  return decodeAdmin(CNP, r, root, meta, file);
}

export function decodeAdminNetworkPolicy(r: Reporter, root: MapTree, meta: Meta, file: string): AdminPolicy {
  return decodeAdmin(ANP, r, root, meta, file);
}

export function decodeBaselineAdminNetworkPolicy(
  r: Reporter,
  root: MapTree,
  meta: Meta,
  file: string,
): AdminPolicy {
  return decodeAdmin(BANP, r, root, meta, file);
}
