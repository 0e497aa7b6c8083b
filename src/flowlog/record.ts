// The flow record: one JSON line per connection and side (egress on the source's node, ingress on
// the destination's), written by the agent and read by `moat flows`. Documented in docs/flows.md;
// fields are only ever added. Plain data, no I/O.
import type { AdminKind } from '../model/types.js';

export type FlowVerdict = 'allowed' | 'denied' | 'audit';
export type FlowDirection = 'egress' | 'ingress';
export type FlowTier = 'Admin' | 'NetworkPolicy' | 'Baseline';
export type PolicyKind = 'NetworkPolicy' | AdminKind;

/**
 * Why the verdict was what it was:
 * - rule-matched: a NetworkPolicy rule admitted the flow (named in `policies`);
 * - no-rule-matched: the pod is isolated (by every policy in `policies`) and no rule admitted it;
 * - admin-accept / admin-deny: an Admin-tier rule decided; baseline-accept / baseline-deny likewise;
 * - not-isolated: no policy selects the pod in this direction (an admin Pass may precede it);
 * - own-node: the pod's own node, always allowed.
 */
export type FlowReason =
  | 'rule-matched'
  | 'no-rule-matched'
  | 'admin-accept'
  | 'admin-deny'
  | 'baseline-accept'
  | 'baseline-deny'
  | 'not-isolated'
  | 'own-node';

/** One end of a flow. namespace/pod are absent for addresses that are no pod's. */
export interface FlowEndpoint {
  readonly ip: string;
  /** TCP, UDP and SCTP only. */
  readonly port?: number;
  readonly namespace?: string;
  readonly pod?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** The pod's node, or the node whose address this is. */
  readonly node?: string;
}

/** A policy that took part in the verdict (Goldmane's PolicyHit: kind, tier, name, rule, action). */
export interface PolicyHit {
  readonly kind: PolicyKind;
  /** NetworkPolicy only. */
  readonly namespace?: string;
  readonly name: string;
  readonly tier: FlowTier;
  /** ingress[i] / egress[i] of the policy; absent for an isolation drop (no rule matched). */
  readonly rule?: number;
  /** The rule's name, where the API names rules (the admin kinds). */
  readonly ruleName?: string;
  /** allow / deny / pass; `deny` without `rule` on a NetworkPolicy: it isolates the pod. */
  readonly action: 'allow' | 'deny' | 'pass';
}

export interface FlowRecord {
  /** RFC 3339 with milliseconds, from the kernel's timestamp of the packet when it has one. */
  readonly time: string;
  /** The node whose agent logged the record. */
  readonly node: string;
  readonly verdict: FlowVerdict;
  readonly direction: FlowDirection;
  /** TCP, UDP, SCTP, ICMP, ICMPv6, or the IP protocol number. */
  readonly protocol: string;
  readonly family: 'ipv4' | 'ipv6';
  readonly src: FlowEndpoint;
  readonly dst: FlowEndpoint;
  /** ICMP and ICMPv6 only. */
  readonly icmp?: { readonly type: number; readonly code: number };
  /** TCP only: the flags of the first packet, e.g. "SYN". */
  readonly tcpFlags?: string;
  /** In order of evaluation (an admin Pass before the NetworkPolicy verdict). */
  readonly policies: readonly PolicyHit[];
  readonly reason: FlowReason;
  /** One human sentence, e.g. "isolated by x/default-deny; no rule matched". */
  readonly summary: string;
}
