// The reference evaluator: the oracle for explain, matrix, flow-log attribution and dataplane tests.
// Pure. A verdict is decided per side (egress of the source, ingress of the destination) by an
// ordered chain of tiers, each answering Allow, Deny, Pass or nothing; the flow passes when both
// sides allow it.
import { cidrContains, formatAddress, parseCidr, parseIP, type Address, type Family } from '../model/cidr.js';
import { conflictedAddresses } from '../model/conflicts.js';
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

export type TierAnswer = 'Allow' | 'Deny' | 'Pass' | 'None';

export interface TierOutcome {
  readonly tier: string;
  readonly answer: TierAnswer;
  /** Human summary of why the tier answered so. */
  readonly detail: string;
}

export type SideReason =
  | 'not-a-subject' // the endpoint is an IP or a hostNetwork pod: nothing to enforce
  | 'self' // a pod reaching itself
  | 'node' // traffic between a pod and its own node
  | 'address-conflict' // the subject's address is also another live pod's: fail-closed
  | 'not-isolated' // no policy of this direction selects the pod, and no tier decided
  | 'allowed-by-rule'
  | 'no-rule-matched'
  | 'admin-allow'
  | 'admin-deny'
  | 'baseline-allow'
  | 'baseline-deny';

export interface SideVerdict {
  readonly direction: Direction;
  /** "ns/name" of the pod whose policies apply on this side, when it is a policy subject. */
  readonly subject?: string;
  readonly allowed: boolean;
  readonly reason: SideReason;
  /** NetworkPolicies that select the subject and have this direction in policyTypes. */
  readonly isolatedBy: readonly PolicyRef[];
  /** NetworkPolicy rules that admit the flow (all of them, not only the first). */
  readonly matches: readonly RuleMatch[];
  /** Every tier's answer, in chain order, up to the one that decided. */
  readonly tiers: readonly TierOutcome[];
}

export interface Verdict {
  readonly allowed: boolean;
  readonly egress: SideVerdict;
  readonly ingress: SideVerdict;
}

/** Context a tier sees for one side of one flow. */
export interface SideContext {
  readonly index: SnapshotIndex;
  readonly direction: Direction;
  readonly subject: Pod;
  /** The other end of the flow. */
  readonly peer: Endpoint;
  readonly peerAddress?: Address;
  readonly flow: Flow;
}

export interface TierDecision {
  readonly answer: TierAnswer;
  readonly detail: string;
  readonly isolatedBy?: readonly PolicyRef[];
  readonly matches?: readonly RuleMatch[];
}

/**
 * One tier of the chain. The NetworkPolicy tier answers Allow (a rule admitted the flow), Deny (the
 * pod is isolated and no rule did) or None (not isolated). Admin tiers may also answer Pass, which
 * skips to the NetworkPolicy tier.
 */
export interface Tier {
  readonly name: string;
  /** 'admin' tiers come before NetworkPolicy; 'baseline' tiers after it. */
  readonly stage: 'admin' | 'networkpolicy' | 'baseline';
  decide(ctx: SideContext): TierDecision;
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
    const key = `${podKey(pod)}\u0000${labelsKey(pod.labels)}`;
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
  if (dst.kind !== 'pod') return false;
  return dst.pod.ports.some(
    (cp) => cp.name === p.port && cp.protocol === protocol && cp.containerPort === port,
  );
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

// ---------------------------------------------------------------------------------------------
// The NetworkPolicy tier.

export const networkPolicyTier: Tier = {
  name: 'NetworkPolicy',
  stage: 'networkpolicy',
  decide(ctx) {
    const { index, direction, subject } = ctx;
    const idxs = index.policiesFor(subject)[direction];
    if (idxs.length === 0) {
      return { answer: 'None', detail: `no NetworkPolicy isolates ${podKey(subject)} for ${direction}` };
    }
    const isolatedBy: PolicyRef[] = [];
    const matches: RuleMatch[] = [];
    for (const i of idxs) {
      const policy = index.snapshot.policies[i]!;
      const ref = { namespace: policy.namespace, name: policy.name };
      isolatedBy.push(ref);
      const rules = direction === 'ingress' ? policy.ingress : policy.egress;
      rules.forEach((rule, r) => {
        const m = ruleMatches(index, policy, rule, ctx.peer, ctx.peerAddress, ctx.flow);
        if (m) matches.push({ policy: ref, direction, rule: r, ...m });
      });
    }
    if (matches.length > 0) {
      const first = matches[0]!;
      return {
        answer: 'Allow',
        detail: `allowed by NetworkPolicy ${first.policy.namespace}/${first.policy.name} ${direction} rule ${first.rule}`,
        isolatedBy,
        matches,
      };
    }
    return {
      answer: 'Deny',
      detail: `${podKey(subject)} is isolated for ${direction} and no rule allows the flow`,
      isolatedBy,
      matches,
    };
  },
};

export const defaultTiers: readonly Tier[] = [networkPolicyTier];

// ---------------------------------------------------------------------------------------------
// The chain.

function nonSubject(
  direction: Direction,
  reason: SideReason = 'not-a-subject',
  subject?: string,
): SideVerdict {
  return {
    direction,
    ...(subject !== undefined ? { subject } : {}),
    allowed: true,
    reason,
    isolatedBy: [],
    matches: [],
    tiers: [],
  };
}

function isSamePod(a: Endpoint, b: Endpoint): boolean {
  return (
    a.kind === 'pod' && b.kind === 'pod' && a.pod.namespace === b.pod.namespace && a.pod.name === b.pod.name
  );
}

/**
 * "Traffic to and from the node where a Pod is running is always allowed": the other end is the
 * pod's own node when it is one of the node's addresses or a hostNetwork pod on that node.
 */
function isOwnNode(index: SnapshotIndex, pod: Pod, other: Endpoint): boolean {
  if (pod.nodeName === undefined) return false;
  if (other.kind === 'pod') return other.pod.hostNetwork && other.pod.nodeName === pod.nodeName;
  const addrs = index.nodeAddresses(pod.nodeName);
  const a = parseIP(other.ip);
  if (!a) return false;
  return addrs.some((n) => {
    const b = parseIP(n);
    return b !== undefined && b.family === a.family && b.value === a.value;
  });
}

/** A pod endpoint whose flow address is shared with another live pod, as a plain address. */
export function demoteConflicted(e: Endpoint, family: Family, conflicts: ReadonlySet<string>): Endpoint {
  if (e.kind !== 'pod' || conflicts.size === 0 || e.pod.hostNetwork) return e;
  const a = endpointAddress(e, family);
  if (a === undefined) return e;
  const text = formatAddress(a);
  return conflicts.has(text) ? { kind: 'ip', ip: text } : e;
}

function decideSide(
  index: SnapshotIndex,
  tiers: readonly Tier[],
  flow: Flow,
  direction: Direction,
  opts: EvaluateOptions,
): SideVerdict {
  const self = direction === 'egress' ? flow.src : flow.dst;
  const other = direction === 'egress' ? flow.dst : flow.src;
  if (self.kind !== 'pod' || !isSubject(self.pod)) return nonSubject(direction);
  const subject = self.pod;
  const key = podKey(subject);
  if (isSamePod(self, other)) return nonSubject(direction, 'self', key);
  const policeNode = direction === 'egress' && opts.policeNodeEgress === true;
  if (!policeNode && isOwnNode(index, subject, other)) return nonSubject(direction, 'node', key);

  const family = flowFamily(flow);
  const conflicts = conflictedAddresses(index.snapshot);
  if (conflicts.size > 0) {
    // The kernel cannot tell whose packet it is: neither pod's policies apply, nothing is allowed.
    const own = endpointAddress(self, family);
    if (own !== undefined && conflicts.has(formatAddress(own))) {
      return {
        direction,
        subject: key,
        allowed: false,
        reason: 'address-conflict',
        isolatedBy: [],
        matches: [],
        tiers: [],
      };
    }
  }
  // A pod whose address is shared is only an address to the peer's policies (ipBlock may match it,
  // selectors and named ports may not).
  const peer = demoteConflicted(other, family, conflicts);
  const sideFlow =
    peer === other ? flow : direction === 'egress' ? { ...flow, dst: peer } : { ...flow, src: peer };
  const ctx: SideContext = {
    index,
    direction,
    subject,
    peer,
    ...(endpointAddress(peer, family) ? { peerAddress: endpointAddress(peer, family)! } : {}),
    flow: sideFlow,
  };
  const outcomes: TierOutcome[] = [];
  let isolatedBy: readonly PolicyRef[] = [];
  let matches: readonly RuleMatch[] = [];
  let skipToNetworkPolicy = false;
  for (const tier of tiers) {
    if (skipToNetworkPolicy && tier.stage === 'admin') continue;
    const d = tier.decide(ctx);
    outcomes.push({ tier: tier.name, answer: d.answer, detail: d.detail });
    if (tier.stage === 'networkpolicy') {
      isolatedBy = d.isolatedBy ?? [];
      matches = d.matches ?? [];
    }
    if (d.answer === 'Pass') {
      skipToNetworkPolicy = true;
      continue;
    }
    if (d.answer === 'None') continue;
    const allowed = d.answer === 'Allow';
    const reason: SideReason =
      tier.stage === 'networkpolicy'
        ? allowed
          ? 'allowed-by-rule'
          : 'no-rule-matched'
        : tier.stage === 'admin'
          ? allowed
            ? 'admin-allow'
            : 'admin-deny'
          : allowed
            ? 'baseline-allow'
            : 'baseline-deny';
    return { direction, subject: key, allowed, reason, isolatedBy, matches, tiers: outcomes };
  }
  return {
    direction,
    subject: key,
    allowed: true,
    reason: 'not-isolated',
    isolatedBy,
    matches,
    tiers: outcomes,
  };
}

/** Evaluates one flow against a snapshot. */
export function evaluate(
  snapshot: Snapshot,
  flow: Flow,
  opts: EvaluateOptions = {},
  tiers: readonly Tier[] = defaultTiers,
): Verdict {
  const index = indexOf(snapshot);
  const egress = decideSide(index, tiers, flow, 'egress', opts);
  const ingress = decideSide(index, tiers, flow, 'ingress', opts);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}
