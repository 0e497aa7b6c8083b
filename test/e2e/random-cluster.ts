// Random clusters for the differential lab test: a seeded generator of namespaces, pods and
// NetworkPolicies, written out as Kubernetes manifests (YAML) so that every generated object goes
// through the loader's validation and defaulting, and a failing round can be replayed from its text.
import { stringify } from 'yaml';
import { formatAddress, parseIP, type Family } from '../../src/model/cidr.js';
import type { PolicyType } from '../../src/model/types.js';
import { Rng } from '../support/rng.js';

export { Rng };

export const NAMESPACES = ['d0', 'd1', 'd2'] as const;
const POD_NAMES = ['p0', 'p1', 'p2'] as const;
/** Every pod a round may have: "d0/p0" ... "d2/p2". Rounds pick a subset, so pods come and go. */
export const POD_POOL: readonly string[] = NAMESPACES.flatMap((n) => POD_NAMES.map((p) => `${n}/${p}`));
/** Port numbers the pods declare (and so serve, on TCP and UDP: the lab serves their union). */
export const PORTS = [80, 81, 82, 83] as const;
export const POD_CIDRS = ['10.244.0.0/16', 'fd00:10:244::/64'] as const;
const PORT_NAMES = ['web', 'alt', 'dns'] as const;
const POD_KEYS = ['app', 'tier'] as const;
const NS_KEYS = ['team', 'env'] as const;
const VALUES = ['a', 'b', 'c'] as const;

/** Fixed per pod, so a pod keeps its address (and the lab its namespace) across rounds. */
export function poolAddress(key: string, family: Family): string {
  const i = POD_POOL.indexOf(key);
  if (i < 0) throw new Error(`not a pool pod: ${key}`);
  return family === 4 ? `10.244.0.${16 + i}` : `fd00:10:244::${(16 + i).toString(16)}`;
}

type Obj = Record<string, unknown>;

function labels(rng: Rng, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (rng.chance(0.6)) out[k] = rng.pick(VALUES);
  return out;
}

function selector(rng: Rng, keys: readonly string[], extraKeys: readonly string[] = []): Obj {
  const out: Obj = {};
  const all = [...keys, ...extraKeys];
  if (rng.chance(0.25)) return out; // {}: everything
  if (rng.chance(0.6)) {
    const k = rng.pick(keys);
    out.matchLabels = { [k]: rng.pick(VALUES) };
  }
  if (out.matchLabels === undefined || rng.chance(0.4)) {
    const exprs: Obj[] = [];
    for (let i = rng.range(1, 2); i > 0; i--) {
      const key = rng.pick(all);
      const operator = rng.pick(['In', 'NotIn', 'Exists', 'DoesNotExist'] as const);
      const values =
        key === 'kubernetes.io/metadata.name' ? rng.subset(NAMESPACES, 0.5) : rng.subset(VALUES, 0.5);
      if (operator === 'In' || operator === 'NotIn') {
        exprs.push({ key, operator, values: values.length > 0 ? values : [rng.pick(VALUES)] });
      } else {
        exprs.push({ key, operator });
      }
    }
    out.matchExpressions = exprs;
  }
  return out;
}

/** A CIDR of the given prefix length around an address (host bits cleared). */
function cidrAround(ip: string, prefix: number): string {
  const a = parseIP(ip)!;
  const width = a.family === 4 ? 32 : 128;
  const host = (1n << BigInt(width - prefix)) - 1n;
  return `${formatAddress({ family: a.family, value: a.value & ~host })}/${prefix}`;
}

function ipBlock(rng: Rng, podKeys: readonly string[]): Obj {
  const family: Family = rng.chance(0.5) ? 4 : 6;
  const width = family === 4 ? 32 : 128;
  // Prefixes that cut through the pods' addresses (.16-.24 / ::10-::18) in interesting places.
  const prefixes = family === 4 ? [0, 16, 27, 28, 29, 30, 31, 32] : [0, 64, 123, 124, 125, 126, 127, 128];
  const anchor = poolAddress(rng.pick(podKeys), family);
  const prefix = rng.pick(prefixes);
  const cidr = cidrAround(anchor, prefix);
  const block: Obj = { cidr };
  if (prefix < width && rng.chance(0.5)) {
    // "except ... values will be rejected if they are outside the cidr range": stay inside.
    const inside = podKeys.map((k) => poolAddress(k, family)).filter((ip) => cidrAround(ip, prefix) === cidr);
    const except = new Set<string>();
    for (let i = rng.range(1, 2); i > 0; i--) {
      except.add(cidrAround(rng.pick(inside), rng.range(Math.max(prefix + 1, width - 4), width)));
    }
    block.except = [...except];
  }
  return block;
}

function peer(rng: Rng, podKeys: readonly string[]): Obj {
  switch (rng.int(4)) {
    case 0:
      return { podSelector: selector(rng, POD_KEYS) };
    case 1:
      return { namespaceSelector: selector(rng, NS_KEYS, ['kubernetes.io/metadata.name']) };
    case 2:
      return {
        podSelector: selector(rng, POD_KEYS),
        namespaceSelector: selector(rng, NS_KEYS, ['kubernetes.io/metadata.name']),
      };
    default:
      return { ipBlock: ipBlock(rng, podKeys) };
  }
}

function policyPort(rng: Rng): Obj {
  const protocol = rng.chance(0.05) ? 'SCTP' : rng.pick(['TCP', 'UDP'] as const);
  const out: Obj = rng.chance(0.3) && protocol === 'TCP' ? {} : { protocol }; // missing: TCP
  const kind = rng.int(10);
  if (kind === 0) return out; // all ports of the protocol
  if (kind <= 3) return { ...out, port: rng.pick(PORT_NAMES) };
  const port = rng.chance(0.1) ? 79 : rng.pick(PORTS);
  if (kind <= 5) return { ...out, port, endPort: port + rng.range(0, 3) };
  return { ...out, port };
}

function rules(rng: Rng, podKeys: readonly string[], direction: 'from' | 'to'): Obj[] {
  const out: Obj[] = [];
  for (let i = rng.range(0, 2); i > 0; i--) {
    const r: Obj = {};
    if (rng.chance(0.75)) r[direction] = Array.from({ length: rng.range(1, 2) }, () => peer(rng, podKeys));
    if (rng.chance(0.65)) r.ports = Array.from({ length: rng.range(1, 2) }, () => policyPort(rng));
    out.push(r);
  }
  return out;
}

// Admin tiers: ClusterNetworkPolicies (v1beta1, tier Admin or Baseline), AdminNetworkPolicies and
// a BaselineAdminNetworkPolicy (v1alpha1), valid as their CRDs require: priorities from a small
// range (ties are frequent: moat's tie order is exercised), peers of every kind that can match in a
// one-node lab (namespaces, pods, networks; nodes too, which only the node itself could be), and
// named ports only where the CRDs allow them (not with networks or nodes peers).

const ACTIONS = ['Accept', 'Deny', 'Pass'] as const;

function adminSubject(rng: Rng): Obj {
  const namespaceSelector = selector(rng, NS_KEYS, ['kubernetes.io/metadata.name']);
  return rng.chance(0.5)
    ? { namespaces: namespaceSelector }
    : { pods: { namespaceSelector, podSelector: selector(rng, POD_KEYS) } };
}

function adminPeer(rng: Rng, podKeys: readonly string[], egress: boolean, named: boolean): Obj {
  // Ingress peers are namespaces and pods only; so are peers of a rule with a named port.
  const kind = rng.int(egress && !named ? 3 : 1);
  if (kind === 0) return adminSubject(rng);
  if (kind === 1) {
    const n = rng.range(1, 2);
    return { networks: [...new Set(Array.from({ length: n }, () => ipBlock(rng, podKeys).cidr as string))] };
  }
  return { nodes: selector(rng, ['kubernetes.io/hostname']) };
}

/** CNP `protocols` or ANP `ports`: 1-2 entries (numbers, ranges, a name when `named`). */
function adminPorts(rng: Rng, cnp: boolean, named: boolean): Obj[] {
  return Array.from({ length: rng.range(1, 2) }, (): Obj => {
    const protocol = rng.chance(0.05) ? 'SCTP' : rng.pick(['TCP', 'UDP'] as const);
    const kind = named ? 0 : rng.range(1, 2);
    const name = rng.pick(PORT_NAMES);
    const port = rng.pick(PORTS);
    const end = port + rng.range(1, 3);
    if (cnp) {
      if (kind === 0) return { destinationNamedPort: name };
      const destinationPort = kind === 1 ? { number: port } : { range: { start: port, end } };
      return { [protocol.toLowerCase()]: { destinationPort } };
    }
    if (kind === 0) return { namedPort: name };
    return kind === 1 ? { portNumber: { protocol, port } } : { portRange: { protocol, start: port, end } };
  });
}

function adminRules(rng: Rng, podKeys: readonly string[], egress: boolean, cnp: boolean): Obj[] {
  const out: Obj[] = [];
  for (let i = rng.range(0, 3); i > 0; i--) {
    const withPorts = rng.chance(0.6);
    const named = withPorts && rng.chance(0.25);
    const peers = Array.from({ length: rng.range(1, 2) }, () => adminPeer(rng, podKeys, egress, named));
    const action = rng.pick(ACTIONS);
    const r: Obj = {
      name: `r${out.length}`,
      action: cnp ? action : action === 'Accept' ? 'Allow' : action,
      [egress ? 'to' : 'from']: peers,
    };
    if (withPorts) r[cnp ? 'protocols' : 'ports'] = adminPorts(rng, cnp, named);
    out.push(r);
  }
  return out;
}

/** 0-3 admin-tier objects. */
function adminPolicies(rng: Rng, podKeys: readonly string[]): Obj[] {
  const docs: Obj[] = [];
  let banp = false;
  for (let i = rng.range(0, 3); i > 0; i--) {
    const which = rng.int(3);
    const cnp = which === 0;
    const isBanp = which === 2 && !banp;
    if (isBanp) banp = true;
    const spec: Obj = { subject: adminSubject(rng) };
    if (cnp) spec.tier = rng.pick(['Admin', 'Baseline'] as const);
    if (!isBanp) spec.priority = rng.range(0, 3);
    // BANP has no Pass ("Allow" and "Deny" only).
    const fix = (rs: Obj[]): Obj[] =>
      isBanp ? rs.map((r) => (r.action === 'Pass' ? { ...r, action: 'Deny' } : r)) : rs;
    const ingress = fix(adminRules(rng, podKeys, false, cnp));
    const egress = fix(adminRules(rng, podKeys, true, cnp));
    if (ingress.length > 0) spec.ingress = ingress;
    if (egress.length > 0) spec.egress = egress;
    docs.push({
      apiVersion: cnp ? 'policy.networking.k8s.io/v1beta1' : 'policy.networking.k8s.io/v1alpha1',
      kind: cnp ? 'ClusterNetworkPolicy' : isBanp ? 'BaselineAdminNetworkPolicy' : 'AdminNetworkPolicy',
      metadata: { name: isBanp ? 'default' : `admin-${i}` },
      spec,
    });
  }
  return docs;
}

export interface Round {
  readonly pods: readonly string[];
  /** Manifests, as a multi-document YAML stream the loader (and `moat`) reads. */
  readonly yaml: string;
}

/**
 * One random cluster: namespaces, a subset of the pod pool, 1-4 NetworkPolicies and, with `admin`,
 * 0-3 admin-tier policies.
 */
export function generateRound(rng: Rng, admin = false): Round {
  const docs: Obj[] = [];
  for (const name of NAMESPACES) {
    docs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: labels(rng, NS_KEYS) } });
  }
  let pods = POD_POOL.filter(() => rng.chance(0.8));
  if (pods.length < 4) pods = [...POD_POOL];
  // Container ports: a few (port, protocol) pairs per pod, some named; names unique per pod.
  const ports = new Map<string, Obj[]>();
  for (const key of pods) {
    const list: Obj[] = [];
    const seen = new Set<string>();
    const names = [...PORT_NAMES];
    for (let i = rng.range(1, 3); i > 0; i--) {
      const containerPort = rng.pick(PORTS);
      const protocol = rng.pick(['TCP', 'UDP'] as const);
      if (seen.has(`${containerPort}/${protocol}`)) continue;
      seen.add(`${containerPort}/${protocol}`);
      const p: Obj = { containerPort, protocol };
      if (names.length > 0 && rng.chance(0.6)) p.name = names.splice(rng.int(names.length), 1)[0];
      list.push(p);
    }
    ports.set(key, list);
  }
  // The lab serves the union of declared port numbers: make it every port, so all can be probed.
  for (const port of PORTS) {
    if ([...ports.values()].some((l) => l.some((p) => p.containerPort === port))) continue;
    ports.get(rng.pick(pods))!.push({ containerPort: port, protocol: 'TCP' });
  }
  for (const key of pods) {
    const [namespace, name] = key.split('/');
    docs.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, labels: labels(rng, POD_KEYS) },
      spec: { containers: [{ name: 'c', image: 'x', ports: ports.get(key) }] },
      status: { podIPs: [{ ip: poolAddress(key, 4) }, { ip: poolAddress(key, 6) }] },
    });
  }
  for (let i = rng.range(1, 4); i > 0; i--) {
    const spec: Obj = { podSelector: selector(rng, POD_KEYS) };
    const choices: (readonly PolicyType[] | undefined)[] = [
      undefined,
      ['Ingress'],
      ['Egress'],
      ['Ingress', 'Egress'],
    ];
    const types = rng.pick(choices);
    if (types !== undefined) spec.policyTypes = types;
    if (types === undefined || types.includes('Ingress') || rng.chance(0.2)) {
      const ing = rules(rng, pods, 'from');
      if (ing.length > 0 || rng.chance(0.5)) spec.ingress = ing;
    }
    if (types === undefined ? rng.chance(0.5) : types.includes('Egress') || rng.chance(0.2)) {
      const eg = rules(rng, pods, 'to');
      if (eg.length > 0 || rng.chance(0.5)) spec.egress = eg;
    }
    docs.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `pol-${i}`, namespace: rng.pick(NAMESPACES) },
      spec,
    });
  }
  if (admin) docs.push(...adminPolicies(rng, pods));
  return { pods, yaml: docs.map((d) => stringify(d)).join('---\n') };
}
