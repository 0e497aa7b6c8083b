// The admin tiers: ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy, as
// two tiers of the evaluator's chain. "Policy tiers are evaluated in the following order: Admin
// tier, NetworkPolicy tier, Baseline tier". Pure.
import { cidrContains, formatAddress, parseIP, type Address } from '../model/cidr.js';
import { matchesSelector } from '../model/selector.js';
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
  Pod,
  Snapshot,
} from '../model/types.js';
import { podKey } from '../model/types.js';
import type { SideContext, Tier, TierDecision } from './evaluate.js';
import {
  hasNamedPort,
  podCacheKey,
  type Direction,
  type Endpoint,
  type Flow,
  type SnapshotIndex,
} from './match.js';

/** The rule that decided an admin-tier answer (TierDecision.admin, TierOutcome.admin). */
export interface AdminDecision {
  readonly kind: AdminKind;
  readonly name: string;
  readonly priority: number;
  readonly tier: AdminTier;
  /** Index of the rule in the policy's ingress or egress list. */
  readonly rule: number;
  /** The rule's name ("" when unset). */
  readonly ruleName: string;
  /** The action applied: Deny for a Deny or Pass rule made "Deny all" by an unknown peer. */
  readonly action: AdminAction;
}

const KIND_ORDER: Readonly<Record<AdminKind, number>> = {
  ClusterNetworkPolicy: 0,
  AdminNetworkPolicy: 1,
  BaselineAdminNetworkPolicy: 2,
};

/**
 * The order in which a tier's policies are consulted. "Rules with lower priority values have
 * higher precedence"; two policies of equal priority are undefined upstream ("the behavior is
 * undefined"), so moat picks a deterministic order: priority ascending, then ClusterNetworkPolicy
 * before AdminNetworkPolicy (before BaselineAdminNetworkPolicy), then name.
 */
export function compareAdminPolicies(a: AdminPolicy, b: AdminPolicy): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const k = KIND_ORDER[a.kind] - KIND_ORDER[b.kind];
  if (k !== 0) return k;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Per-snapshot index: the policies of each tier sorted once, the policies selecting a pod cached
// per pod, the addresses of the nodes a nodeSelector selects cached per selector.

interface SubjectPolicies {
  readonly ingress: readonly AdminPolicy[];
  readonly egress: readonly AdminPolicy[];
}

class AdminIndex {
  readonly byTier: Readonly<Record<AdminTier, readonly AdminPolicy[]>>;
  private readonly bySubject = new Map<string, Record<AdminTier, SubjectPolicies>>();
  private readonly nodeSets = new Map<LabelSelector, { names: Set<string>; addrs: Set<string> }>();

  constructor(readonly index: SnapshotIndex) {
    const all = [...(index.snapshot.adminPolicies ?? [])].sort(compareAdminPolicies);
    this.byTier = {
      Admin: all.filter((p) => p.tier === 'Admin'),
      Baseline: all.filter((p) => p.tier === 'Baseline'),
    };
  }

  /** The tier's policies whose subject selects the pod, in order, with rules of that direction. */
  selecting(pod: Pod, tier: AdminTier, direction: Direction): readonly AdminPolicy[] {
    const key = podCacheKey(pod);
    let hit = this.bySubject.get(key);
    if (!hit) {
      const pick = (t: AdminTier): SubjectPolicies => {
        const sel = this.byTier[t].filter((p) => subjectSelects(this.index, p.subject, pod));
        return {
          ingress: sel.filter((p) => p.ingress.length > 0),
          egress: sel.filter((p) => p.egress.length > 0),
        };
      };
      hit = { Admin: pick('Admin'), Baseline: pick('Baseline') };
      this.bySubject.set(key, hit);
    }
    return hit[tier][direction];
  }

  /** Names and canonical addresses (InternalIP and ExternalIP) of the nodes a selector selects. */
  nodes(selector: LabelSelector): { names: Set<string>; addrs: Set<string> } {
    let hit = this.nodeSets.get(selector);
    if (!hit) {
      hit = { names: new Set(), addrs: new Set() };
      for (const n of this.index.snapshot.nodes) {
        if (!matchesSelector(selector, n.labels)) continue;
        hit.names.add(n.name);
        for (const text of [...n.addresses, ...(n.externalAddresses ?? [])]) {
          const a = parseIP(text);
          if (a) hit.addrs.add(`${a.family}/${formatAddress(a)}`);
        }
      }
      this.nodeSets.set(selector, hit);
    }
    return hit;
  }
}

const adminIndexes = new WeakMap<SnapshotIndex, AdminIndex>();

function adminIndexOf(index: SnapshotIndex): AdminIndex {
  let a = adminIndexes.get(index);
  if (!a) {
    a = new AdminIndex(index);
    adminIndexes.set(index, a);
  }
  return a;
}

/** Whether the snapshot has any admin-tier policy at all (else the admin tiers stay silent). */
export function hasAdminPolicies(snapshot: Snapshot): boolean {
  return (snapshot.adminPolicies?.length ?? 0) > 0;
}

// ---------------------------------------------------------------------------------------------
// Matching.

/**
 * Subject and namespaces/pods peer selection. "host-networked pods are not included": only pod
 * endpoints that are not hostNetwork are ever selected.
 */
export function subjectSelects(index: SnapshotIndex, subject: AdminSubject, pod: Pod): boolean {
  if (pod.hostNetwork) return false;
  if (!matchesSelector(subject.namespaceSelector, index.namespaceLabels(pod.namespace))) return false;
  return subject.kind === 'namespaces' || matchesSelector(subject.podSelector, pod.labels);
}

/** Whether one peer matches the other end of the flow (peer kind 'unknown' is handled by the rule). */
export function adminPeerMatches(
  index: SnapshotIndex,
  peer: AdminPeer,
  other: Endpoint,
  otherAddress: Address | undefined,
): boolean {
  switch (peer.kind) {
    case 'namespaces':
    case 'pods':
      return other.kind === 'pod' && subjectSelects(index, peer, other.pod);
    case 'nodes': {
      // "Nodes defines a way to select a set of nodes in the cluster": the peer is a selected node
      // when its address is one of the node's (InternalIP or ExternalIP), or it is a hostNetwork
      // pod on that node.
      const set = adminIndexOf(index).nodes(peer.nodeSelector);
      if (other.kind === 'pod' && other.pod.hostNetwork && other.pod.nodeName !== undefined) {
        if (set.names.has(other.pod.nodeName)) return true;
      }
      return (
        otherAddress !== undefined && set.addrs.has(`${otherAddress.family}/${formatAddress(otherAddress)}`)
      );
    }
    case 'networks':
      // "Networks defines a way to select peers via CIDR blocks" (pod addresses included).
      if (otherAddress === undefined) return false;
      return peer.networks.some((text) => {
        const c = index.cidr(text);
        return typeof c !== 'string' && cidrContains(c, otherAddress);
      });
    case 'domainNames':
      // Resolved by the dataplane at run time; analysis has no answers, so it matches nothing.
      return false;
    case 'unknown':
      return false;
  }
}

/**
 * A port of a rule, matched against the flow's destination port. A named port matches when the
 * destination is a pod with a containerPort of that name, number and protocol.
 */
export function adminPortMatches(p: AdminPort, flow: Flow): boolean {
  switch (p.kind) {
    case 'number':
      return p.protocol === flow.protocol && p.port === flow.port;
    case 'range':
      return p.protocol === flow.protocol && flow.port >= p.start && flow.port <= p.end;
    case 'named':
      return hasNamedPort(flow.dst, p.name, flow.protocol, flow.port);
  }
}

/**
 * The action a rule applies to the flow, or undefined when it does not match. Fail closed on an
 * unknown peer: "For Accept rules ... treat the rule as matching no traffic. For Deny and Pass
 * rules ... treat the rule as a 'Deny all' rule".
 */
export function adminRuleAction(
  index: SnapshotIndex,
  rule: AdminRule,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
): { action: AdminAction; denyAll?: boolean } | undefined {
  if (rule.peers.some((p) => p.kind === 'unknown')) {
    return rule.action === 'Accept' ? undefined : { action: 'Deny', denyAll: true };
  }
  if (!rule.peers.some((p) => adminPeerMatches(index, p, other, otherAddress))) return undefined;
  // No ports: "protocol-specific attributes will not be used to match traffic".
  if (rule.ports !== undefined && !rule.ports.some((p) => adminPortMatches(p, flow))) return undefined;
  return { action: rule.action };
}

// ---------------------------------------------------------------------------------------------
// The tiers.

const ANSWER: Readonly<Record<AdminAction, 'Allow' | 'Deny' | 'Pass'>> = {
  Accept: 'Allow',
  Deny: 'Deny',
  Pass: 'Pass',
};

function decideTier(tier: AdminTier, ctx: SideContext): TierDecision {
  const { index, direction, subject } = ctx;
  const policies = adminIndexOf(index).selecting(subject, tier, direction);
  for (const policy of policies) {
    const rules = direction === 'ingress' ? policy.ingress : policy.egress;
    for (let r = 0; r < rules.length; r++) {
      const rule = rules[r]!;
      const m = adminRuleAction(index, rule, ctx.peer, ctx.peerAddress, ctx.flow);
      if (!m) continue;
      // Admin: "Pass: Skips all further ANP rules and delegates to the NetworkPolicy tier".
      // Baseline: Pass skips the rest of the Baseline tier; nothing follows but the default allow.
      const answer = tier === 'Baseline' && m.action === 'Pass' ? 'None' : ANSWER[m.action];
      const named = rule.name !== '' ? ` (${rule.name})` : '';
      const why = m.denyAll ? ' (an unknown peer makes the rule Deny all)' : '';
      return {
        answer,
        detail: `${policy.kind} ${policy.name} rule ${r}${named}: ${m.action}${why}`,
        admin: {
          kind: policy.kind,
          name: policy.name,
          priority: policy.priority,
          tier: policy.tier,
          rule: r,
          ruleName: rule.name,
          action: m.action,
        },
      };
    }
  }
  return {
    answer: 'None',
    detail:
      policies.length === 0
        ? `no ${tier}-tier policy selects ${podKey(subject)} for ${direction}`
        : `no ${tier}-tier ${direction} rule matches`,
  };
}

/** The Admin tier: ClusterNetworkPolicies of tier Admin and AdminNetworkPolicies. */
export const adminTier: Tier = {
  name: 'Admin',
  stage: 'admin',
  applies: (index) => hasAdminPolicies(index.snapshot),
  decide: (ctx) => decideTier('Admin', ctx),
};

/** The Baseline tier: ClusterNetworkPolicies of tier Baseline and the BaselineAdminNetworkPolicy. */
export const baselineTier: Tier = {
  name: 'Baseline',
  stage: 'baseline',
  applies: (index) => hasAdminPolicies(index.snapshot),
  decide: (ctx) => decideTier('Baseline', ctx),
};
