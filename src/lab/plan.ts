// The lab's plan, pure: which pods get a namespace, which addresses they use, and the snapshot the
// agent enforces (every pod on the lab's one node, addresses filled in from the pod CIDRs).
import { cidrContains, formatAddress, parseCidr, parseIP, type Cidr, type Family } from '../model/cidr.js';
import { InputError, UsageError, type Problem } from '../errors.js';
import type { Node, Pod, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';

export const DEFAULT_PREFIX = 'moat-lab';
export const DEFAULT_NODE_NAME = 'moat-lab';
export const DEFAULT_POD_CIDRS: readonly string[] = ['10.244.0.0/16'];

/** Netns and link names: a `moat` prefix, and short enough for `ip` and IFNAMSIZ. */
const PREFIX_RE = /^moat[a-z0-9-]{0,20}$/;

export function checkPrefix(prefix: string): string | undefined {
  return PREFIX_RE.test(prefix)
    ? undefined
    : `lab prefix "${prefix}" must match ${String(PREFIX_RE)} (lab namespaces are named PREFIX-node, PREFIX-pN)`;
}

export function nodeNetns(prefix: string): string {
  return `${prefix}-node`;
}

export function podNetns(prefix: string, slot: number): string {
  return `${prefix}-p${slot}`;
}

/** The pod's veth end in the node namespace ("moat" + slot: at most 15 characters). */
export function nodeLink(slot: number): string {
  return `moat${slot}`;
}

/** The gateway every pod routes through: an address on each node-side veth (as Calico does). */
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::1';

export interface PlanOptions {
  readonly nodeName?: string;
  readonly podCidrs?: readonly string[];
}

export interface PlannedPod {
  readonly key: string;
  /** The pod as enforced: nodeName set, ips filled in. */
  readonly pod: Pod;
}

export interface Plan {
  readonly node: Node;
  readonly pods: readonly PlannedPod[];
  /** The snapshot the agent enforces and the evaluator judges. */
  readonly snapshot: Snapshot;
  /** One line per thing the lab does not simulate (hostNetwork pods). */
  readonly notes: readonly string[];
}

function parseCidrs(texts: readonly string[]): Cidr[] {
  return texts.map((t) => {
    const c = parseCidr(t);
    if (typeof c === 'string') throw new UsageError(`--pod-cidr ${t}: ${c}`);
    if (c.prefix > (c.family === 4 ? 30 : 126)) throw new UsageError(`--pod-cidr ${t}: too small for a lab`);
    return c;
  });
}

function sameFamily(ip: string, f: Family): boolean {
  return parseIP(ip)?.family === f;
}

/**
 * Plans the lab for a snapshot. `previous` holds the addresses allocated by an earlier plan
 * ("ns/name" -> ips) so a pod keeps its address across reloads.
 */
export function planLab(
  input: Snapshot,
  opts: PlanOptions = {},
  previous: ReadonlyMap<string, readonly string[]> = new Map(),
): Plan {
  const nodeName = opts.nodeName ?? DEFAULT_NODE_NAME;
  const cidrs = parseCidrs(opts.podCidrs ?? DEFAULT_POD_CIDRS);
  const notes: string[] = [];
  const pods = input.pods.filter((p) => {
    if (!p.hostNetwork) return true;
    notes.push(`pod ${podKey(p)}: hostNetwork pods are not simulated by the lab; left out`);
    return false;
  });

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

  const cursors = new Map<Cidr, bigint>();
  const allocate = (c: Cidr, what: string): string => {
    const size = 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);
    let off = cursors.get(c) ?? 1n;
    for (; off < size - 1n; off++) {
      const ip = formatAddress({ family: c.family, value: c.base + off });
      if (!used.has(ip)) {
        used.add(ip);
        cursors.set(c, off + 1n);
        return ip;
      }
    }
    throw new UsageError(`pod CIDR ${c.text} has no free address for ${what}`);
  };

  // The node's own address comes first: the lowest free host of each pod CIDR.
  const nodeAddresses = cidrs.map((c) => allocate(c, `node ${nodeName}`));
  const node: Node = {
    name: nodeName,
    labels: { 'kubernetes.io/hostname': nodeName },
    addresses: nodeAddresses,
    podCIDRs: cidrs.map((c) => c.text),
  };

  const planned = pods.map((p): PlannedPod => {
    const key = podKey(p);
    const ips = [...p.ips];
    const prev = previous.get(key) ?? [];
    for (const c of cidrs) {
      if (ips.some((ip) => sameFamily(ip, c.family))) continue;
      const keep = prev.find((ip) => {
        const a = parseIP(ip);
        return a !== undefined && cidrContains(c, a);
      });
      ips.push(keep ?? allocate(c, `pod ${key}`));
    }
    const pod: Pod = { ...p, nodeName, ips };
    return { key, pod };
  });

  const snapshot: Snapshot = {
    namespaces: input.namespaces,
    pods: planned.map((p) => p.pod),
    nodes: [node, ...input.nodes.filter((n) => n.name !== nodeName)],
    policies: input.policies,
  };
  return { node, pods: planned, snapshot, notes };
}
