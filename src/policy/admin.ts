// The admin tiers: ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy, as
// two tiers of the evaluator's chain. "Policy tiers are evaluated in the following order: Admin
// tier, NetworkPolicy tier, Baseline tier". Pure.
import { cidrContains, formatAddress, parseIP, type Address, type Family } from '../model/cidr.js';
import { formatLabels, formatSelector, matchesSelector } from '../model/selector.js';
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
  flowFamily,
  hasNamedPort,
  podCacheKey,
  type Direction,
  type Endpoint,
  type Flow,
  type SnapshotIndex,
} from './match.js';
import { describeEndpoint, selectorMisses } from './trace.js';

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

type RuleResult = { action: AdminAction; denyAll?: boolean } | undefined;

/**
 * A rule's result from its checks, the one place that applies the rule-level semantics (both the
 * evaluator and the trace call it). Fail closed on an unknown peer: "For Accept rules ... treat the
 * rule as matching no traffic. For Deny and Pass rules ... treat the rule as a 'Deny all' rule".
 */
function ruleResult(rule: AdminRule, peerMatched: () => boolean, portMatched: () => boolean): RuleResult {
  if (rule.peers.some((p) => p.kind === 'unknown')) {
    return rule.action === 'Accept' ? undefined : { action: 'Deny', denyAll: true };
  }
  if (!peerMatched()) return undefined;
  // No ports: "protocol-specific attributes will not be used to match traffic".
  if (rule.ports !== undefined && !portMatched()) return undefined;
  return { action: rule.action };
}

/** The action a rule applies to the flow, or undefined when it does not match (see ruleResult). */
export function adminRuleAction(
  index: SnapshotIndex,
  rule: AdminRule,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
): { action: AdminAction; denyAll?: boolean } | undefined {
  return ruleResult(
    rule,
    () => rule.peers.some((p) => adminPeerMatches(index, p, other, otherAddress)),
    () => (rule.ports ?? []).some((p) => adminPortMatches(p, flow)),
  );
}

// ---------------------------------------------------------------------------------------------
// The trace: what an admin tier checked for one side of a flow, policy by policy in order, rule by
// rule up to the one that decided, peer by peer and port by port, matched or why not. Built by the
// tier from the checks that decide (adminPeerMatches, adminPortMatches, ruleResult).

/** One peer (from[j] / to[j]) of an admin rule, checked against the other end of the flow. */
export interface AdminPeerCheck {
  readonly index: number;
  /** e.g. "namespaces tenant=a", "pods app=web in namespaces <all>", "networks 10.0.0.0/8". */
  readonly peer: string;
  readonly matched: boolean;
  readonly reason?: string;
}

/** One entry of protocols/ports of an admin rule, checked against the flow's protocol and port. */
export interface AdminPortCheck {
  readonly index: number;
  /** e.g. "TCP/80", "TCP/8000-8080", "named port http". */
  readonly port: string;
  readonly matched: boolean;
  readonly reason?: string;
}

/** One ingress[i] / egress[i] rule of an admin policy, checked against a flow. */
export interface AdminRuleTrace {
  readonly rule: number;
  /** The rule's name ("" when unset). */
  readonly name: string;
  readonly action: AdminAction;
  /** Whether the rule applies to the flow; equals adminRuleAction() !== undefined. */
  readonly matched: boolean;
  /** When matched: the action applied (Deny for a rule an unknown peer makes "Deny all"). */
  readonly applied?: AdminAction;
  readonly denyAll?: boolean;
  readonly peers: readonly AdminPeerCheck[];
  /** undefined: the rule has no protocols/ports, it matches every port and protocol. */
  readonly ports?: readonly AdminPortCheck[];
  /** Why the rule does not apply (empty when it does). */
  readonly reasons: readonly string[];
}

/**
 * What happened to one policy of the tier: its subject does not select the pod; it selects it but
 * has no rules of the direction; its rules were checked (in order, up to the one that decided); or
 * it was not consulted because an earlier rule decided.
 */
export type AdminPolicyStatus = 'not-selecting' | 'no-rules' | 'checked' | 'not-consulted';

export interface AdminPolicyTrace {
  readonly kind: AdminKind;
  readonly name: string;
  readonly priority: number;
  readonly tier: AdminTier;
  readonly status: AdminPolicyStatus;
  /** Why not (not-selecting, no-rules, not-consulted). */
  readonly reason?: string;
  /** checked: the rules of the direction, in order, up to and including the one that decided. */
  readonly rules: readonly AdminRuleTrace[];
}

/** What an admin tier (Admin or Baseline) checked for one side of a flow. */
export interface AdminTierTrace {
  readonly tier: AdminTier;
  /** Every policy of the tier, in the order consulted (compareAdminPolicies). */
  readonly policies: readonly AdminPolicyTrace[];
}

export function describeAdminPeer(p: AdminPeer): string {
  switch (p.kind) {
    case 'namespaces':
      return `namespaces ${formatSelector(p.namespaceSelector)}`;
    case 'pods':
      return `pods ${formatSelector(p.podSelector)} in namespaces ${formatSelector(p.namespaceSelector)}`;
    case 'nodes':
      return `nodes ${formatSelector(p.nodeSelector)}`;
    case 'networks':
      return `networks ${p.networks.join(', ')}`;
    case 'domainNames':
      return `domainNames ${p.domainNames.join(', ')}`;
    case 'unknown':
      return `unknown peer (${p.fields.join(', ')})`;
  }
}

export function describeAdminPort(p: AdminPort): string {
  switch (p.kind) {
    case 'number':
      return `${p.protocol}/${p.port}`;
    case 'range':
      return `${p.protocol}/${p.start}-${p.end}`;
    case 'named':
      return `named port ${p.name}`;
  }
}

/** Why a subject (or a namespaces/pods peer) does not select a pod. */
export function subjectReason(index: SnapshotIndex, subject: AdminSubject, pod: Pod): string {
  if (pod.hostNetwork) return `${podKey(pod)} uses the host network: "host-networked pods are not included"`;
  const nsLabels = index.namespaceLabels(pod.namespace);
  if (!matchesSelector(subject.namespaceSelector, nsLabels)) {
    const misses = selectorMisses(subject.namespaceSelector, nsLabels, 'it');
    return `namespace ${pod.namespace} fails ${misses.join('; ')}`;
  }
  if (subject.kind === 'pods') {
    return `podSelector ${formatSelector(subject.podSelector)} does not match labels ${formatLabels(pod.labels)}`;
  }
  return '';
}

function peerReason(
  index: SnapshotIndex,
  peer: AdminPeer,
  other: Endpoint,
  otherAddress: Address | undefined,
  family: Family,
): string {
  const no = (what: string) => `${describeEndpoint(other)} has no IPv${family} address ${what}`;
  switch (peer.kind) {
    case 'namespaces':
    case 'pods':
      return other.kind === 'pod'
        ? subjectReason(index, peer, other.pod)
        : `selects pods; ${other.ip} is not a pod (only networks and nodes peers match addresses)`;
    case 'nodes': {
      const set = adminIndexOf(index).nodes(peer.nodeSelector);
      const names = [...set.names].sort();
      const which = names.length === 0 ? 'selects no node' : `selects node ${names.join(', ')}`;
      if (otherAddress === undefined) return `${which}; ${no('to compare')}`;
      return `${which}; ${describeEndpoint(other)} is neither one of their addresses nor a hostNetwork pod on them`;
    }
    case 'networks':
      if (otherAddress === undefined) return no('to match');
      return `${peer.networks.length > 1 ? 'do' : 'does'} not contain ${formatAddress(otherAddress)}`;
    case 'domainNames':
      return 'domain names are resolved by the dataplane at run time; analysis treats them as unresolved (no match)';
    case 'unknown':
      return 'a peer moat does not know';
  }
}

function portReason(p: AdminPort, flow: Flow): string {
  switch (p.kind) {
    case 'number':
      return p.protocol !== flow.protocol
        ? `protocol ${p.protocol}, flow is ${flow.protocol}`
        : `allows port ${p.port} only`;
    case 'range':
      return p.protocol !== flow.protocol
        ? `protocol ${p.protocol}, flow is ${flow.protocol}`
        : `allows ports ${p.start}-${p.end} only`;
    case 'named': {
      const dst = flow.dst;
      if (dst.kind !== 'pod')
        return `named port ${p.name} resolves against pods only; ${dst.ip} is not a pod`;
      const cp = dst.pod.ports.find((c) => c.name === p.name && c.protocol === flow.protocol);
      if (!cp) return `${podKey(dst.pod)} has no ${flow.protocol} containerPort named ${p.name}`;
      return `named port ${p.name} is ${podKey(dst.pod)}'s ${flow.protocol}/${cp.containerPort}, flow is to ${flow.port}`;
    }
  }
}

/** One rule, traced: every peer and port checked, the result from ruleResult as the evaluator's. */
export function traceAdminRule(
  index: SnapshotIndex,
  rule: AdminRule,
  r: number,
  direction: Direction,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
): AdminRuleTrace {
  const family = flowFamily(flow);
  const peers: AdminPeerCheck[] = rule.peers.map((p, j) => {
    const peer = describeAdminPeer(p);
    if (adminPeerMatches(index, p, other, otherAddress)) return { index: j, peer, matched: true };
    return { index: j, peer, matched: false, reason: peerReason(index, p, other, otherAddress, family) };
  });
  const ports: AdminPortCheck[] | undefined = rule.ports?.map((p, k) => {
    const port = describeAdminPort(p);
    if (adminPortMatches(p, flow)) return { index: k, port, matched: true };
    return { index: k, port, matched: false, reason: portReason(p, flow) };
  });
  const res = ruleResult(
    rule,
    () => peers.some((c) => c.matched),
    () => (ports ?? []).some((c) => c.matched),
  );
  const reasons: string[] = [];
  if (res === undefined) {
    const peerWord = direction === 'ingress' ? 'from' : 'to';
    const unknown = rule.peers.findIndex((p) => p.kind === 'unknown');
    if (unknown >= 0) {
      reasons.push(
        `${peerWord}[${unknown}] is a peer moat does not know: an Accept rule with it matches no traffic`,
      );
    } else {
      if (!peers.some((c) => c.matched)) {
        for (const c of peers) reasons.push(`${peerWord}[${c.index}]: ${c.reason ?? ''}`);
      }
      if (ports !== undefined && !ports.some((c) => c.matched)) {
        for (const c of ports) reasons.push(`ports[${c.index}]: ${c.reason ?? ''}`);
      }
    }
  }
  return {
    rule: r,
    name: rule.name,
    action: rule.action,
    matched: res !== undefined,
    ...(res !== undefined ? { applied: res.action } : {}),
    ...(res?.denyAll === true ? { denyAll: true } : {}),
    peers,
    ...(ports !== undefined ? { ports } : {}),
    reasons,
  };
}

// ---------------------------------------------------------------------------------------------
// The tiers.

const ANSWER: Readonly<Record<AdminAction, 'Allow' | 'Deny' | 'Pass'>> = {
  Accept: 'Allow',
  Deny: 'Deny',
  Pass: 'Pass',
};

function decision(
  tier: AdminTier,
  policy: AdminPolicy,
  rule: AdminRule,
  r: number,
  m: NonNullable<RuleResult>,
): TierDecision {
  // Admin: "Pass: Skips all further ANP rules and delegates to the NetworkPolicy tier".
  // Baseline: Pass skips the rest of the Baseline tier; nothing follows but the default allow.
  const answer = tier === 'Baseline' && m.action === 'Pass' ? 'None' : ANSWER[m.action];
  const named = rule.name !== '' ? ` (${rule.name})` : '';
  const why = m.denyAll === true ? ' (an unknown peer makes the rule Deny all)' : '';
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

function noDecision(tier: AdminTier, ctx: SideContext, selecting: number): TierDecision {
  return {
    answer: 'None',
    detail:
      selecting === 0
        ? `no ${tier}-tier policy selects ${podKey(ctx.subject)} for ${ctx.direction}`
        : `no ${tier}-tier ${ctx.direction} rule matches`,
  };
}

function decideTier(tier: AdminTier, ctx: SideContext): TierDecision {
  if (ctx.trace) return decideTierTraced(tier, ctx);
  const { index, direction, subject } = ctx;
  const policies = adminIndexOf(index).selecting(subject, tier, direction);
  for (const policy of policies) {
    const rules = direction === 'ingress' ? policy.ingress : policy.egress;
    for (let r = 0; r < rules.length; r++) {
      const rule = rules[r]!;
      const m = adminRuleAction(index, rule, ctx.peer, ctx.peerAddress, ctx.flow);
      if (m) return decision(tier, policy, rule, r, m);
    }
  }
  return noDecision(tier, ctx, policies.length);
}

/**
 * decideTier for explain: every policy of the tier in order, the same subject check
 * (subjectSelects) and rule checks (traceAdminRule, i.e. ruleResult), recorded as they decide.
 */
function decideTierTraced(tier: AdminTier, ctx: SideContext): TierDecision {
  const { index, direction, subject } = ctx;
  const policies: AdminPolicyTrace[] = [];
  let decided: TierDecision | undefined;
  let selecting = 0;
  for (const policy of adminIndexOf(index).byTier[tier]) {
    const head = { kind: policy.kind, name: policy.name, priority: policy.priority, tier: policy.tier };
    if (decided !== undefined) {
      const by = decided.admin!;
      const how =
        by.action !== 'Pass'
          ? `decided first (${by.action})`
          : tier === 'Admin'
            ? 'passed the flow to the NetworkPolicy tier'
            : 'passed (Pass skips the rest of the Baseline tier)';
      policies.push({
        ...head,
        status: 'not-consulted',
        reason: `${by.kind} ${by.name} ${direction} rule ${by.rule} ${how}`,
        rules: [],
      });
      continue;
    }
    if (!subjectSelects(index, policy.subject, subject)) {
      policies.push({
        ...head,
        status: 'not-selecting',
        reason: subjectReason(index, policy.subject, subject),
        rules: [],
      });
      continue;
    }
    const rules = direction === 'ingress' ? policy.ingress : policy.egress;
    if (rules.length === 0) {
      policies.push({ ...head, status: 'no-rules', reason: `no ${direction} rules`, rules: [] });
      continue;
    }
    selecting++;
    const traced: AdminRuleTrace[] = [];
    for (let r = 0; r < rules.length && decided === undefined; r++) {
      const rule = rules[r]!;
      const t = traceAdminRule(index, rule, r, direction, ctx.peer, ctx.peerAddress, ctx.flow);
      traced.push(t);
      if (t.matched) {
        decided = decision(tier, policy, rule, r, {
          action: t.applied!,
          ...(t.denyAll === true ? { denyAll: true } : {}),
        });
      }
    }
    policies.push({ ...head, status: 'checked', rules: traced });
  }
  return { ...(decided ?? noDecision(tier, ctx, selecting)), adminTrace: { tier, policies } };
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
