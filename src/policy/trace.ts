// The trace of the NetworkPolicy tier: for each policy that isolates the subject, each rule, peer
// and port checked against the flow, matched or not and why not (with a score of how close it came);
// and the policies of the subject's namespace that do not isolate it, and why. Computed by the
// tier itself, from the same checks that decide (ruleMatches), so explain, flow-log attribution and
// lint format it instead of re-deriving matches. Pure.
import { cidrContains, formatAddress, type Address, type Family } from '../model/cidr.js';
import { formatLabels, formatSelector, matchesRequirement, matchesSelector } from '../model/selector.js';
import type {
  LabelSelector,
  Labels,
  NetworkPolicy,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  Protocol,
  Requirement,
} from '../model/types.js';
import { podKey } from '../model/types.js';
import {
  peerMatches,
  portMatches,
  ruleMatches,
  type Direction,
  type Endpoint,
  type Flow,
  type PolicyRef,
  type SnapshotIndex,
} from './match.js';

/** One peer (from[j] / to[j]) of a rule, checked against the other end of the flow. */
export interface PeerCheck {
  readonly index: number;
  /** e.g. "podSelector app=web, namespaceSelector team=a" or "ipBlock 10.0.0.0/8 except 10.1.0.0/16". */
  readonly peer: string;
  readonly matched: boolean;
  /** Why it does not match (absent when it matches). */
  readonly reason?: string;
}

/** One entry of ports[k] of a rule, checked against the flow's protocol and port. */
export interface PortCheck {
  readonly index: number;
  /** e.g. "TCP/80", "TCP/8000-8080", "TCP/http", "TCP (all ports)". */
  readonly port: string;
  readonly matched: boolean;
  readonly reason?: string;
}

/** One ingress[i] / egress[i] rule of a policy that isolates the subject, checked against a flow. */
export interface RuleTrace {
  readonly rule: number;
  /** Whether the rule admits the flow; equals ruleMatches() from the evaluator. */
  readonly matched: boolean;
  /** The (peer, port) indices by which it admits the flow, as the evaluator reports them. */
  readonly matchedPeer?: number;
  readonly matchedPort?: number;
  /** undefined: the rule has no from/to, "matches all sources/destinations". */
  readonly peers?: readonly PeerCheck[];
  /** undefined: the rule has no ports, "matches all ports". */
  readonly ports?: readonly PortCheck[];
  /** Why the rule does not admit the flow (empty when it does). */
  readonly reasons: readonly string[];
  /** How close it came: 2 = admits; 1.x = peers or ports fit; below 1 = partial fits only. */
  readonly score: number;
}

/** A policy that isolates the subject for the direction, rule by rule. */
export interface PolicyTrace {
  readonly policy: PolicyRef;
  readonly rules: readonly RuleTrace[];
}

/** A policy in the subject's namespace that does not isolate it for this direction, and why not. */
export interface NonSelecting {
  readonly policy: PolicyRef;
  readonly reason: string;
}

/** What the NetworkPolicy tier checked for one side of a flow. */
export interface NetworkPolicyTrace {
  /** Every policy that isolates the subject for the direction, rule by rule. */
  readonly policies: readonly PolicyTrace[];
  /** Policies of the subject's namespace that do not apply to it for this direction. */
  readonly notSelecting: readonly NonSelecting[];
}

// ---------------------------------------------------------------------------------------------
// Describing things.

export function describeEndpoint(e: Endpoint): string {
  return e.kind === 'pod' ? podKey(e.pod) : e.ip;
}

export function describePeer(peer: Peer): string {
  if (peer.kind === 'ipBlock') {
    const ex = peer.ipBlock.except;
    return `ipBlock ${peer.ipBlock.cidr}${ex.length > 0 ? ` except ${ex.join(', ')}` : ''}`;
  }
  const parts: string[] = [];
  if (peer.podSelector !== undefined) parts.push(`podSelector ${formatSelector(peer.podSelector)}`);
  if (peer.namespaceSelector !== undefined) {
    parts.push(`namespaceSelector ${formatSelector(peer.namespaceSelector)}`);
  }
  return parts.join(', ');
}

export function describePort(p: PolicyPort): string {
  if (p.port === undefined) return `${p.protocol} (all ports)`;
  if (p.endPort !== undefined) return `${p.protocol}/${p.port}-${p.endPort}`;
  return `${p.protocol}/${p.port}`;
}

function describeRequirement(r: Requirement): string {
  switch (r.operator) {
    case 'In':
      return `${r.key} in (${r.values.join(',')})`;
    case 'NotIn':
      return `${r.key} notin (${r.values.join(',')})`;
    case 'Exists':
      return `label ${r.key}`;
    case 'DoesNotExist':
      return `no label ${r.key}`;
  }
}

/** The terms of a selector the labels fail, e.g. "team=web, namespace y has none". */
export function selectorMisses(s: LabelSelector, labels: Labels, what: string): string[] {
  const out: string[] = [];
  const has = (k: string): string =>
    Object.prototype.hasOwnProperty.call(labels, k)
      ? `${what} has ${k}=${labels[k] ?? ''}`
      : `${what} has none`;
  for (const [k, v] of Object.entries(s.matchLabels)) {
    if (labels[k] !== v) out.push(`${k}=${v}, ${has(k)}`);
  }
  for (const r of s.matchExpressions) {
    if (matchesRequirement(r, labels)) continue;
    out.push(`${describeRequirement(r)}, ${r.operator === 'Exists' ? `${what} has none` : has(r.key)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Why a peer or a port does not match.

export function ipBlockReason(
  index: SnapshotIndex,
  peer: Peer & { kind: 'ipBlock' },
  other: Endpoint,
  addr: Address | undefined,
  family: Family,
): string {
  const desc = describePeer(peer);
  if (!addr) return `${desc} cannot match ${describeEndpoint(other)}: it has no IPv${family} address`;
  const c = index.cidr(peer.ipBlock.cidr);
  const a = formatAddress(addr);
  if (typeof c === 'string' || !cidrContains(c, addr)) return `${desc} does not contain ${a}`;
  const ex = peer.ipBlock.except.find((e) => {
    const x = index.cidr(e);
    return typeof x !== 'string' && cidrContains(x, addr);
  });
  return `ipBlock ${peer.ipBlock.cidr} except ${ex ?? '?'} excludes ${a}`;
}

export function selectorReason(
  index: SnapshotIndex,
  policyNamespace: string,
  peer: Peer & { kind: 'selector' },
  other: Endpoint,
): { reason: string; partial: number } {
  if (other.kind !== 'pod') {
    return {
      reason: `peer selects pods; ${other.ip} is not a pod (only ipBlock peers match IPs)`,
      partial: 0,
    };
  }
  const pod = other.pod;
  if (pod.hostNetwork) {
    return {
      reason: `peer selects pods; ${podKey(pod)} uses the host network and is matched by ipBlock only`,
      partial: 0,
    };
  }
  let nsOk = true;
  let nsReason = '';
  if (peer.namespaceSelector === undefined) {
    if (pod.namespace !== policyNamespace) {
      nsOk = false;
      nsReason = `peer without namespaceSelector selects pods in namespace ${policyNamespace} only, ${podKey(pod)} is in namespace ${pod.namespace}`;
    }
  } else {
    const nsLabels = index.namespaceLabels(pod.namespace);
    if (!matchesSelector(peer.namespaceSelector, nsLabels)) {
      nsOk = false;
      const misses = selectorMisses(peer.namespaceSelector, nsLabels, `namespace ${pod.namespace}`);
      nsReason = `peer requires namespace label ${misses.join('; ')}`;
    }
  }
  const podOk = peer.podSelector === undefined || matchesSelector(peer.podSelector, pod.labels);
  const reasons: string[] = [];
  if (!nsOk) reasons.push(nsReason);
  if (!podOk && peer.podSelector !== undefined) {
    reasons.push(
      `peer podSelector ${formatSelector(peer.podSelector)} does not match labels ${formatLabels(pod.labels)}`,
    );
  }
  // Half credit when one of two constraints (namespace, podSelector) fits.
  const half = nsOk || (podOk && peer.podSelector !== undefined);
  return { reason: reasons.join('; '), partial: half ? 0.5 : 0 };
}

export function portReason(
  p: PolicyPort,
  protocol: Protocol,
  port: number,
  dst: Endpoint,
): { reason: string; partial: number } {
  if (p.protocol !== protocol) return { reason: `protocol ${p.protocol}, flow is ${protocol}`, partial: 0 };
  if (typeof p.port === 'number') {
    return p.endPort === undefined
      ? { reason: `allows port ${p.port} only`, partial: 0.5 }
      : { reason: `allows ports ${p.port}-${p.endPort} only`, partial: 0.5 };
  }
  const name = p.port ?? '';
  if (dst.kind !== 'pod') {
    return { reason: `named port ${name} resolves against pods only; ${dst.ip} is not a pod`, partial: 0.5 };
  }
  const cp = dst.pod.ports.find((c) => c.name === name && c.protocol === protocol);
  if (!cp) {
    return {
      reason: `named port ${name}: ${podKey(dst.pod)} has no ${protocol} containerPort named ${name}`,
      partial: 0.5,
    };
  }
  return {
    reason: `named port ${name} is ${podKey(dst.pod)}'s ${protocol}/${cp.containerPort}, flow is to ${port}`,
    partial: 0.5,
  };
}

// ---------------------------------------------------------------------------------------------
// Rules and policies.

export function traceRule(
  index: SnapshotIndex,
  policy: NetworkPolicy,
  rule: PolicyRule,
  r: number,
  direction: Direction,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
  family: Family,
): RuleTrace {
  const m = ruleMatches(index, policy, rule, other, otherAddress, flow);
  const peerWord = direction === 'ingress' ? 'from' : 'to';
  const reasons: string[] = [];
  let peerScore = 1;
  let peers: PeerCheck[] | undefined;
  if (rule.peers !== undefined) {
    let best = 0;
    peers = rule.peers.map((pe, j) => {
      const peer = describePeer(pe);
      if (peerMatches(index, policy.namespace, pe, other, otherAddress)) {
        best = 1;
        return { index: j, peer, matched: true };
      }
      const why =
        pe.kind === 'ipBlock'
          ? { reason: ipBlockReason(index, pe, other, otherAddress, family), partial: 0 }
          : selectorReason(index, policy.namespace, pe, other);
      best = Math.max(best, why.partial);
      return { index: j, peer, matched: false, reason: why.reason };
    });
    peerScore = best;
    if (best < 1) {
      if (peers.length === 0) reasons.push(`${peerWord} lists no peers`);
      for (const pc of peers) reasons.push(`${peerWord}[${pc.index}]: ${pc.reason ?? ''}`);
    }
  }
  let portScore = 1;
  let ports: PortCheck[] | undefined;
  if (rule.ports !== undefined) {
    let best = 0;
    ports = rule.ports.map((p, k) => {
      const port = describePort(p);
      if (portMatches(p, flow.protocol, flow.port, flow.dst)) {
        best = 1;
        return { index: k, port, matched: true };
      }
      const why = portReason(p, flow.protocol, flow.port, flow.dst);
      best = Math.max(best, why.partial);
      return { index: k, port, matched: false, reason: why.reason };
    });
    portScore = best;
    if (best < 1) {
      const numeric = rule.ports.every((p) => typeof p.port === 'number');
      if (numeric && rule.ports.length > 1) {
        reasons.push(
          `allows ${rule.ports.map(describePort).join(', ')} only, flow is ${flow.protocol}/${flow.port}`,
        );
      } else {
        for (const pc of ports) reasons.push(`ports[${pc.index}]: ${pc.reason ?? ''}`);
      }
    }
  }
  return {
    rule: r,
    matched: m !== undefined,
    ...(m?.peer !== undefined ? { matchedPeer: m.peer } : {}),
    ...(m?.port !== undefined ? { matchedPort: m.port } : {}),
    ...(peers !== undefined ? { peers } : {}),
    ...(ports !== undefined ? { ports } : {}),
    reasons: m !== undefined ? [] : reasons,
    score: m !== undefined ? 2 : peerScore + portScore,
  };
}

export const dirType = (d: Direction): 'Ingress' | 'Egress' => (d === 'ingress' ? 'Ingress' : 'Egress');

export function notSelecting(index: SnapshotIndex, subject: Pod, direction: Direction): NonSelecting[] {
  const out: NonSelecting[] = [];
  for (const p of index.snapshot.policies) {
    if (p.namespace !== subject.namespace) continue;
    const policy = { namespace: p.namespace, name: p.name };
    if (!matchesSelector(p.podSelector, subject.labels)) {
      out.push({
        policy,
        reason: `podSelector ${formatSelector(p.podSelector)} does not match labels ${formatLabels(subject.labels)}`,
      });
    } else if (!p.policyTypes.includes(dirType(direction))) {
      out.push({
        policy,
        reason: `policyTypes [${p.policyTypes.join(', ')}] does not include ${dirType(direction)}`,
      });
    }
  }
  return out;
}
