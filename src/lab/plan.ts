// The lab's plan, pure: which lab nodes exist, which node each pod runs on, which addresses pods
// use, and the snapshot the agents enforce (pods with nodeName and addresses filled in).
//
// Nodes: with one node (the default) the node owns the whole pod CIDR, as before. With N > 1 each
// pod CIDR is carved into N equal slices (at least /24 for IPv4 and /112 for IPv6 apart, e.g.
// 10.244.0.0/16 -> 10.244.0.0/24, 10.244.1.0/24, ...): node i owns slice i, and its own address is
// the first free host of its slice.
//
// Placement (first rule that applies): spec.nodeName if it names a lab node; else the node whose
// slice holds one of the pod's status.podIPs; else the node the pod was on in the previous plan;
// else the node with the fewest pods so far (ties: the lowest), which for a fresh plan is round
// robin in manifest order. A pod keeps its manifest addresses wherever it lands (other nodes then
// route those addresses to its node); missing families are allocated from its node's slice.
//
// hostNetwork pods are placed by the same rules and live in their node's namespace: their
// addresses are their node's, as the kubelet reports them ("hostNetwork pods ... have the node's
// IPs": status.podIPs = the node's InternalIP addresses), whatever the manifest says.
//
// Node objects in the manifests that name a lab node lend it their labels (what `nodes` peers of
// the admin tiers select); every lab node has `kubernetes.io/hostname` as the kubelet sets it. Their
// addresses and pod CIDRs are the lab's.
import {
  bits,
  cidrContains,
  formatAddress,
  formatCidr,
  parseCidr,
  parseIP,
  type Cidr,
  type Family,
} from '../model/cidr.js';
import { InputError, UsageError, type Problem } from '../errors.js';
import type { Node, Pod, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';

export const DEFAULT_PREFIX = 'moat-lab';
export const DEFAULT_NODE_NAME = 'moat-lab';
export const DEFAULT_POD_CIDRS: readonly string[] = ['10.244.0.0/16'];
/** Most nodes a lab builds (each is a namespace with its own agent). */
export const MAX_NODES = 16;

/** Netns and link names: a `moat` prefix, and short enough for `ip` and IFNAMSIZ. */
const PREFIX_RE = /^moat[a-z0-9-]{0,20}$/;

export function checkPrefix(prefix: string): string | undefined {
  return PREFIX_RE.test(prefix)
    ? undefined
    : `lab prefix "${prefix}" must match ${String(PREFIX_RE)} (lab namespaces are named PREFIX-node, PREFIX-pN)`;
}

/** Netns of lab node `index` (0-based): PREFIX-node, PREFIX-node2, PREFIX-node3, ... */
export function nodeNetns(prefix: string, index = 0): string {
  return index === 0 ? `${prefix}-node` : `${prefix}-node${index + 1}`;
}

/** Netns of the bridge that joins the nodes when there are more than two. */
export function fabricNetns(prefix: string): string {
  return `${prefix}-fabric`;
}

/** Name of lab node `index` (0-based): NAME, NAME-2, NAME-3, ... */
export function labNodeName(base: string, index = 0): string {
  return index === 0 ? base : `${base}-${index + 1}`;
}

export function podNetns(prefix: string, slot: number): string {
  return `${prefix}-p${slot}`;
}

/** The pod's veth end in the node namespace ("moatv" + slot: at most 15 characters). */
export function nodeLink(slot: number): string {
  return `moatv${slot}`;
}

/** The host-side pod interfaces of every lab node: the agents' --pod-interfaces. */
export const LAB_POD_INTERFACES: readonly string[] = ['moatv*'];

/** The pod bridge of a node in `--network bridge` (flannel's cni0). */
export const POD_BRIDGE = 'moatcni0';

/** How a node connects its pods: a routed veth per pod (kindnet, ptp, Calico), or one bridge (flannel). */
export type LabNetwork = 'routed' | 'bridge';
export const LAB_NETWORKS: readonly LabNetwork[] = ['routed', 'bridge'];

/** The node's link to the other nodes (a veth to the peer node, or to the fabric's bridge). */
export const FABRIC_LINK = 'moatnet';
export const FABRIC_BRIDGE = 'moatbr';

/** The fabric's end of node `index`'s link. */
export function fabricPort(index: number): string {
  return `moatn${index + 1}`;
}

/** Next-hop addresses of node `index` on the inter-node link (link-local: never pod addresses). */
export function fabricAddress(index: number, f: Family): string {
  return f === 4 ? `169.254.100.${index + 1}` : `fe80::100:${(index + 1).toString(16)}`;
}

/** The gateway every pod routes through: an address on each node-side veth (as Calico does). */
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::1';

export interface PlanOptions {
  /** Name of the (first) lab Node. */
  readonly nodeName?: string;
  /** The lab Nodes' names, one per node (overrides nodeName and nodes), e.g. the manifests' Nodes. */
  readonly nodeNames?: readonly string[];
  readonly podCidrs?: readonly string[];
  /** Number of lab nodes, 1..MAX_NODES. Default 1. */
  readonly nodes?: number;
  /** The pod network of each node. Default 'routed'. */
  readonly network?: LabNetwork;
}

export interface PlannedPod {
  readonly key: string;
  /** The pod as enforced: nodeName set, ips filled in. */
  readonly pod: Pod;
  /** Index of its node in Plan.nodes. */
  readonly node: number;
}

export interface Plan {
  /** The first lab node (the only one unless PlanOptions.nodes > 1). */
  readonly node: Node;
  /** Every lab node, in order: spec.podCIDRs are its slices. */
  readonly nodes: readonly Node[];
  /**
   * Bridge network only: each node's bridge addresses (one per slice, in slice order), the pods'
   * gateway. They are not in Node.status.addresses, as cni0's address is not on a flannel node.
   */
  readonly gateways: readonly (readonly string[])[];
  readonly pods: readonly PlannedPod[];
  /** The snapshot the agents enforce and the evaluator judges. */
  readonly snapshot: Snapshot;
  /** One line per thing the lab changed in the manifests (a Node's addresses). */
  readonly notes: readonly string[];
}

/** Node names must be DNS subdomains, as the API server requires. */
const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The lab Nodes' names: PlanOptions.nodeNames, else NAME, NAME-2, ... for `nodes` nodes. */
export function labNodeNames(opts: PlanOptions = {}): string[] {
  if (opts.nodeNames !== undefined) {
    const names = [...opts.nodeNames];
    if (names.length < 1 || names.length > MAX_NODES) {
      throw new UsageError(`lab: ${names.length} node names: a lab has 1 to ${MAX_NODES} nodes`);
    }
    for (const n of names) {
      if (!NODE_NAME_RE.test(n) || n.length > 253)
        throw new UsageError(`lab: node name "${n}" is not a DNS name`);
    }
    if (new Set(names).size !== names.length)
      throw new UsageError(`lab: node names repeat: ${names.join(', ')}`);
    return names;
  }
  const n = opts.nodes ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES) {
    throw new UsageError(`lab: --nodes ${n}: must be an integer from 1 to ${MAX_NODES}`);
  }
  const base = opts.nodeName ?? DEFAULT_NODE_NAME;
  return Array.from({ length: n }, (_, i) => labNodeName(base, i));
}

function parseCidrs(texts: readonly string[]): Cidr[] {
  return texts.map((t) => {
    const c = parseCidr(t);
    if (typeof c === 'string') throw new UsageError(`--pod-cidr ${t}: ${c}`);
    if (c.prefix > (c.family === 4 ? 30 : 126)) throw new UsageError(`--pod-cidr ${t}: too small for a lab`);
    return c;
  });
}

/** Slice i of n of a pod CIDR (the whole CIDR when n is 1). */
export function nodeSlices(c: Cidr, n: number): Cidr[] {
  if (n === 1) return [c];
  const need = Math.ceil(Math.log2(n));
  const prefix = Math.max(c.prefix + need, c.family === 4 ? 24 : 112);
  if (prefix > (c.family === 4 ? 30 : 126)) {
    throw new UsageError(`--pod-cidr ${c.text}: too small to split across ${n} nodes`);
  }
  const step = 1n << BigInt(bits(c.family) - prefix);
  return Array.from({ length: n }, (_, i) => {
    const base = c.base + BigInt(i) * step;
    const text = formatCidr({ family: c.family, base, prefix, text: '' });
    return { family: c.family, base, prefix, text };
  });
}

function sameFamily(ip: string, f: Family): boolean {
  return parseIP(ip)?.family === f;
}

/** Whether an address lies in one of the slices. */
function inSlices(slices: readonly Cidr[], ip: string): boolean {
  const a = parseIP(ip);
  return a !== undefined && slices.some((c) => c.family === a.family && cidrContains(c, a));
}

/**
 * Plans the lab for a snapshot. `previous` holds the addresses allocated by an earlier plan
 * ("ns/name" -> ips) so a pod keeps its address across reloads; `previousNodes` ("ns/name" -> node
 * name) keeps it on its node.
 */
export function planLab(
  input: Snapshot,
  opts: PlanOptions = {},
  previous: ReadonlyMap<string, readonly string[]> = new Map(),
  previousNodes: ReadonlyMap<string, string> = new Map(),
): Plan {
  const names = labNodeNames(opts);
  const n = names.length;
  const cidrs = parseCidrs(opts.podCidrs ?? DEFAULT_POD_CIDRS);
  // slices[i]: node i's slice of every pod CIDR, in --pod-cidr order.
  const perCidr = cidrs.map((c) => nodeSlices(c, n));
  const slices = Array.from({ length: n }, (_, i) => perCidr.map((s) => s[i]!));
  const notes: string[] = [];
  // Pods with their own network namespace (hostNetwork pods share their node's).
  const pods = input.pods.filter((p) => !p.hostNetwork);

  // Addresses already spoken for: the manifest's, then earlier allocations.
  const used = new Set<string>();
  const norm = (ip: string): string => {
    const a = parseIP(ip);
    return a ? formatAddress(a) : ip;
  };
  const owner = new Map<string, string>();
  const problems: Problem[] = [];
  for (const p of pods) {
    for (const ip of p.ips) {
      const other = owner.get(norm(ip));
      if (other !== undefined) {
        problems.push({
          file: p.origin?.file ?? '-',
          line: p.origin?.line ?? 0,
          kind: 'Pod',
          object: podKey(p),
          field: 'status.podIPs',
          message: `address ${ip} is also used by pod ${other}; the lab needs distinct pod addresses`,
        });
      }
      owner.set(norm(ip), podKey(p));
      used.add(norm(ip));
    }
  }
  if (problems.length > 0) throw new InputError(problems);
  for (const ips of previous.values()) for (const ip of ips) used.add(norm(ip));

  const cursors = new Map<string, bigint>();
  const allocate = (c: Cidr, what: string): string => {
    const size = 1n << BigInt(bits(c.family) - c.prefix);
    let off = cursors.get(c.text) ?? 1n;
    for (; off < size - 1n; off++) {
      const ip = formatAddress({ family: c.family, value: c.base + off });
      if (!used.has(ip)) {
        used.add(ip);
        cursors.set(c.text, off + 1n);
        return ip;
      }
    }
    throw new UsageError(`pod CIDR ${c.text} has no free address for ${what}`);
  };

  // Each node's own address comes first: the lowest free host of each of its slices.
  const declared = new Map(input.nodes.map((x) => [x.name, x]));
  const nodes = names.map((name, i): Node => {
    const d = declared.get(name);
    const addresses = slices[i]!.map((c) => allocate(c, `node ${name}`));
    const theirs = [...(d?.addresses ?? []), ...(d?.externalAddresses ?? [])];
    if (theirs.length > 0) {
      notes.push(
        `node ${name}: the lab's addresses ${addresses.join(', ')} replace the manifest's ${theirs.join(', ')}`,
      );
    }
    return {
      name,
      labels: { 'kubernetes.io/hostname': name, ...d?.labels },
      addresses,
      podCIDRs: slices[i]!.map((c) => c.text),
      ...(d?.origin !== undefined ? { origin: d.origin } : {}),
    };
  });

  // The bridge's own address: the next free host of each slice (bridge network only).
  const gateways = nodes.map((n, i) =>
    opts.network === 'bridge' ? slices[i]!.map((c) => allocate(c, `the bridge of node ${n.name}`)) : [],
  );

  // Placement: pinned pods first (nodeName, manifest address, previous node), then the rest.
  const placed = new Map<string, number>();
  const load = new Array<number>(n).fill(0);
  const pinned = (p: Pod): number | undefined => {
    const byName = p.nodeName !== undefined ? names.indexOf(p.nodeName) : -1;
    if (byName >= 0) return byName;
    const byIP = slices.findIndex((s) => p.ips.some((ip) => inSlices(s, ip)));
    if (byIP >= 0) return byIP;
    const prev = previousNodes.get(podKey(p));
    const byPrev = prev !== undefined ? names.indexOf(prev) : -1;
    return byPrev >= 0 ? byPrev : undefined;
  };
  for (const p of input.pods) {
    const i = pinned(p);
    if (i === undefined) continue;
    placed.set(podKey(p), i);
    load[i]!++;
  }
  for (const p of input.pods) {
    if (placed.has(podKey(p))) continue;
    const i = load.indexOf(Math.min(...load));
    placed.set(podKey(p), i);
    load[i]!++;
  }

  const planned = input.pods.map((p): PlannedPod => {
    const key = podKey(p);
    const node = placed.get(key)!;
    if (p.hostNetwork)
      return { key, pod: { ...p, nodeName: names[node]!, ips: [...nodes[node]!.addresses] }, node };
    const ips = [...p.ips];
    const prev = previous.get(key) ?? [];
    for (const c of slices[node]!) {
      if (ips.some((ip) => sameFamily(ip, c.family))) continue;
      const keep = prev.find((ip) => inSlices([c], ip));
      ips.push(keep ?? allocate(c, `pod ${key}`));
    }
    const pod: Pod = { ...p, nodeName: names[node]!, ips };
    return { key, pod, node };
  });

  const labNames = new Set(names);
  const snapshot: Snapshot = {
    namespaces: input.namespaces,
    pods: planned.map((p) => p.pod),
    nodes: [...nodes, ...input.nodes.filter((x) => !labNames.has(x.name))],
    policies: input.policies,
    ...(input.adminPolicies !== undefined ? { adminPolicies: input.adminPolicies } : {}),
  };
  return { node: nodes[0]!, nodes, gateways, pods: planned, snapshot, notes };
}
