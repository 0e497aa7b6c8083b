// Matching: the per-snapshot index and the primitives every tier and explain share (which pods a
// policy selects, whether a peer, a port, a rule matches the other end of a flow). Pure.
import { cidrContains, parseCidr, parseIP, type Address, type Family } from '../model/cidr.js';
import { matchesSelector } from '../model/selector.js';
import type {
  LabelSelector,
  Labels,
  NetworkPolicy,
  Node,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  Protocol,
  Snapshot,
} from '../model/types.js';
import { podKey } from '../model/types.js';

export type Endpoint =
  { readonly kind: 'pod'; readonly pod: Pod } | { readonly kind: 'ip'; readonly ip: string };

export interface Flow {
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly protocol: Protocol;
  readonly port: number;
  /** Address family of the flow; defaults to the family of the first usable address. */
  readonly family?: Family;
}

export type Direction = 'ingress' | 'egress';

export interface EvaluateOptions {
  /** Police pod -> own-node egress instead of always allowing it (the dataplane's opt-in flag). */
  readonly policeNodeEgress?: boolean;
}

export interface PolicyRef {
  readonly namespace: string;
  readonly name: string;
}

/** One rule that admitted the flow: policy, direction, rule index, and which peer/port matched. */
export interface RuleMatch {
  readonly policy: PolicyRef;
  readonly direction: Direction;
  readonly rule: number;
  /** Index into from/to; undefined when the rule has no peers (all peers). */
  readonly peer?: number;
  /** Index into ports; undefined when the rule has no ports (all ports). */
  readonly port?: number;
}

// ---------------------------------------------------------------------------------------------
// Index: per-snapshot caches so that matrix-sized workloads evaluate quickly.

export class SnapshotIndex {
  readonly nsLabels = new Map<string, Labels>();
  readonly nodesByName = new Map<string, Node>();
  private readonly selecting = new Map<string, { ingress: number[]; egress: number[] }>();
  private readonly cidrCache = new Map<string, ReturnType<typeof parseCidr>>();

  constructor(readonly snapshot: Snapshot) {
    for (const ns of snapshot.namespaces) this.nsLabels.set(ns.name, ns.labels);
    for (const n of snapshot.nodes) this.nodesByName.set(n.name, n);
  }

  namespaceLabels(ns: string): Labels {
    // The API server labels every namespace with kubernetes.io/metadata.name.
    return this.nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns };
  }

  /** Indices of policies in the pod's namespace whose podSelector selects it, per direction. */
  policiesFor(pod: Pod): { ingress: number[]; egress: number[] } {
    const key = podCacheKey(pod);
    let hit = this.selecting.get(key);
    if (!hit) {
      hit = { ingress: [], egress: [] };
      this.snapshot.policies.forEach((p, i) => {
        if (p.namespace !== pod.namespace || !matchesSelector(p.podSelector, pod.labels)) return;
        if (p.policyTypes.includes('Ingress')) hit!.ingress.push(i);
        if (p.policyTypes.includes('Egress')) hit!.egress.push(i);
      });
      this.selecting.set(key, hit);
    }
    return hit;
  }

  cidr(text: string): ReturnType<typeof parseCidr> {
    let c = this.cidrCache.get(text);
    if (c === undefined) {
      c = parseCidr(text);
      this.cidrCache.set(text, c);
    }
    return c;
  }

  /** Node addresses of the node a pod runs on. */
  nodeAddresses(nodeName: string | undefined): readonly string[] {
    if (nodeName === undefined) return [];
    return this.nodesByName.get(nodeName)?.addresses ?? [];
  }
}

const indexCache = new WeakMap<Snapshot, SnapshotIndex>();

export function indexOf(snapshot: Snapshot): SnapshotIndex {
  let idx = indexCache.get(snapshot);
  if (!idx) {
    idx = new SnapshotIndex(snapshot);
    indexCache.set(snapshot, idx);
  }
  return idx;
}

function labelsKey(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k] ?? ''}`)
    .join(',');
}

/** A key for per-pod caches: the pod and its labels (label order does not matter). */
export function podCacheKey(pod: Pod): string {
  return `${podKey(pod)}\u0000${labelsKey(pod.labels)}`;
}

/** Whether the destination is a pod with a containerPort of that name, protocol and number. */
export function hasNamedPort(dst: Endpoint, name: string, protocol: Protocol, port: number): boolean {
  if (dst.kind !== 'pod') return false;
  return dst.pod.ports.some(
    (cp) => cp.name === name && cp.protocol === protocol && cp.containerPort === port,
  );
}

// ---------------------------------------------------------------------------------------------
// Matching primitives, exported for explain and the compiler's tests.

/** Whether a pod is a NetworkPolicy subject: hostNetwork pods never are. */
export function isSubject(pod: Pod): boolean {
  return !pod.hostNetwork;
}

/**
 * The address an endpoint uses in a flow of the given family. A pod with no address of that family
 * has none (ipBlock peers then cannot match it).
 */
export function endpointAddress(e: Endpoint, family: Family): Address | undefined {
  const candidates = e.kind === 'ip' ? [e.ip] : e.pod.ips;
  for (const c of candidates) {
    const a = parseIP(c);
    if (a && a.family === family) return a;
  }
  return undefined;
}

export function flowFamily(flow: Flow): Family {
  if (flow.family) return flow.family;
  for (const e of [flow.src, flow.dst]) {
    const first = e.kind === 'ip' ? e.ip : e.pod.ips[0];
    if (first !== undefined) {
      const a = parseIP(first);
      if (a) return a.family;
    }
  }
  return 4;
}

export function ipBlockMatches(
  index: SnapshotIndex,
  peer: Peer & { kind: 'ipBlock' },
  addr: Address | undefined,
): boolean {
  if (!addr) return false;
  const c = index.cidr(peer.ipBlock.cidr);
  if (typeof c === 'string' || !cidrContains(c, addr)) return false;
  for (const ex of peer.ipBlock.except) {
    const e = index.cidr(ex);
    if (typeof e !== 'string' && cidrContains(e, addr)) return false;
  }
  return true;
}

/**
 * NetworkPolicyPeer semantics for a pod peer, in the policy's namespace:
 * - podSelector only: "selects particular Pods in the same namespace as the NetworkPolicy";
 * - namespaceSelector only: "selects particular namespaces for which all Pods should be allowed";
 * - both: "selects particular Pods within particular namespaces".
 * hostNetwork pods are seen by the network as their node and are matched by ipBlock only.
 */
export function selectorPeerMatches(
  index: SnapshotIndex,
  policyNamespace: string,
  podSelector: LabelSelector | undefined,
  namespaceSelector: LabelSelector | undefined,
  peer: Endpoint,
): boolean {
  if (peer.kind !== 'pod' || peer.pod.hostNetwork) return false;
  const pod = peer.pod;
  if (namespaceSelector === undefined) {
    if (pod.namespace !== policyNamespace) return false;
  } else if (!matchesSelector(namespaceSelector, index.namespaceLabels(pod.namespace))) {
    return false;
  }
  return podSelector === undefined || matchesSelector(podSelector, pod.labels);
}

export function peerMatches(
  index: SnapshotIndex,
  policyNamespace: string,
  peer: Peer,
  other: Endpoint,
  otherAddress: Address | undefined,
): boolean {
  if (peer.kind === 'ipBlock') return ipBlockMatches(index, peer, otherAddress);
  return selectorPeerMatches(index, policyNamespace, peer.podSelector, peer.namespaceSelector, other);
}

/**
 * NetworkPolicyPort semantics. A named port "will be resolved against the destination pod's
 * container ports" (name and protocol); it never matches a destination that is not a pod.
 */
export function portMatches(p: PolicyPort, protocol: Protocol, port: number, dst: Endpoint): boolean {
  if (p.protocol !== protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === 'number') {
    return p.endPort === undefined ? port === p.port : port >= p.port && port <= p.endPort;
  }
  return hasNamedPort(dst, p.port, protocol, port);
}

/** Returns the (peer, port) indices by which a rule admits the flow, or undefined. */
export function ruleMatches(
  index: SnapshotIndex,
  policy: NetworkPolicy,
  rule: PolicyRule,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
): { peer?: number; port?: number } | undefined {
  // "If this field is empty or missing, this rule matches all sources" (and ports likewise).
  let peerIdx: number | undefined;
  if (rule.peers !== undefined && rule.peers.length > 0) {
    peerIdx = rule.peers.findIndex((pe) => peerMatches(index, policy.namespace, pe, other, otherAddress));
    if (peerIdx < 0) return undefined;
  }
  let portIdx: number | undefined;
  if (rule.ports !== undefined && rule.ports.length > 0) {
    portIdx = rule.ports.findIndex((p) => portMatches(p, flow.protocol, flow.port, flow.dst));
    if (portIdx < 0) return undefined;
  }
  const out: { peer?: number; port?: number } = {};
  if (peerIdx !== undefined) out.peer = peerIdx;
  if (portIdx !== undefined) out.port = portIdx;
  return out;
}
