// The reference evaluator: the oracle for explain, matrix, flow-log attribution and dataplane tests.
// Pure. A verdict is decided per side (egress of the source, ingress of the destination) by an
// ordered chain of tiers, each answering Allow, Deny, Pass or nothing; the flow passes when both
// sides allow it.
import { formatAddress, parseIP, type Address, type Family } from '../model/cidr.js';
import { conflictedAddresses } from '../model/conflicts.js';
import type { Pod, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import {
  endpointAddress,
  flowFamily,
  indexOf,
  isSubject,
  ruleMatches,
  type Direction,
  type Endpoint,
  type EvaluateOptions,
  type Flow,
  type PolicyRef,
  type RuleMatch,
  type SnapshotIndex,
} from './match.js';
import { adminTier, baselineTier, type AdminDecision, type AdminTierTrace } from './admin.js';
import { notSelecting, traceRule, type NetworkPolicyTrace, type PolicyTrace } from './trace.js';

export * from './match.js';

export type TierAnswer = 'Allow' | 'Deny' | 'Pass' | 'None';

export interface TierOutcome {
  readonly tier: string;
  readonly answer: TierAnswer;
  /** Human summary of why the tier answered so. */
  readonly detail: string;
  /** The admin-tier rule that decided (Admin and Baseline tiers only). */
  readonly admin?: AdminDecision;
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
  /** Whether the tier should say what it checked (explain); the verdict never depends on it. */
  readonly trace: boolean;
}

export interface TierDecision {
  readonly answer: TierAnswer;
  readonly detail: string;
  readonly isolatedBy?: readonly PolicyRef[];
  readonly matches?: readonly RuleMatch[];
  /** When ctx.trace: what the tier checked (the NetworkPolicy tier: every policy, rule, peer, port). */
  readonly trace?: NetworkPolicyTrace;
  /** When ctx.trace, admin tiers: every policy in order, selecting or not, rules up to the decision. */
  readonly adminTrace?: AdminTierTrace;
  /** The admin-tier rule that decided: tier, kind, name, priority, rule index and name, action. */
  readonly admin?: AdminDecision;
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
  /** When present and false for the snapshot, the tier is left out of the chain (no outcome). */
  applies?(index: SnapshotIndex): boolean;
  decide(ctx: SideContext): TierDecision;
}

// ---------------------------------------------------------------------------------------------
// The NetworkPolicy tier.

export const networkPolicyTier: Tier = {
  name: 'NetworkPolicy',
  stage: 'networkpolicy',
  decide(ctx) {
    const { index, direction, subject } = ctx;
    const idxs = index.policiesFor(subject)[direction];
    const others = ctx.trace ? notSelecting(index, subject, direction) : [];
    if (idxs.length === 0) {
      return {
        answer: 'None',
        detail: `no NetworkPolicy isolates ${podKey(subject)} for ${direction}`,
        ...(ctx.trace ? { trace: { policies: [], notSelecting: others } } : {}),
      };
    }
    const family = flowFamily(ctx.flow);
    const isolatedBy: PolicyRef[] = [];
    const matches: RuleMatch[] = [];
    const traces: PolicyTrace[] = [];
    for (const i of idxs) {
      const policy = index.snapshot.policies[i]!;
      const ref = { namespace: policy.namespace, name: policy.name };
      isolatedBy.push(ref);
      const rules = direction === 'ingress' ? policy.ingress : policy.egress;
      if (ctx.trace) {
        // The trace's own matching decides, so what explain shows is what decided.
        const rt = rules.map((rule, r) =>
          traceRule(index, policy, rule, r, direction, ctx.peer, ctx.peerAddress, ctx.flow, family),
        );
        traces.push({ policy: ref, rules: rt });
        for (const t of rt) {
          if (!t.matched) continue;
          matches.push({
            policy: ref,
            direction,
            rule: t.rule,
            ...(t.matchedPeer !== undefined ? { peer: t.matchedPeer } : {}),
            ...(t.matchedPort !== undefined ? { port: t.matchedPort } : {}),
          });
        }
      } else {
        rules.forEach((rule, r) => {
          const m = ruleMatches(index, policy, rule, ctx.peer, ctx.peerAddress, ctx.flow);
          if (m) matches.push({ policy: ref, direction, rule: r, ...m });
        });
      }
    }
    const trace = ctx.trace ? { trace: { policies: traces, notSelecting: others } } : {};
    if (matches.length > 0) {
      const first = matches[0]!;
      return {
        answer: 'Allow',
        detail: `allowed by NetworkPolicy ${first.policy.namespace}/${first.policy.name} ${direction} rule ${first.rule}`,
        isolatedBy,
        matches,
        ...trace,
      };
    }
    return {
      answer: 'Deny',
      detail: `${podKey(subject)} is isolated for ${direction} and no rule allows the flow`,
      isolatedBy,
      matches,
      ...trace,
    };
  },
};

/**
 * Admin tier, NetworkPolicy tier, Baseline tier. The admin tiers leave the chain (and the verdict's
 * tiers list) untouched when the snapshot has no admin policies.
 */
export const defaultTiers: readonly Tier[] = [adminTier, networkPolicyTier, baselineTier];

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

/** What each consulted tier checked, in chain order (evaluateTraced). */
export interface SideTrace {
  readonly tiers: readonly {
    readonly tier: string;
    readonly stage: Tier['stage'];
    readonly trace?: NetworkPolicyTrace;
    /** Admin and Baseline tiers: what they checked (see AdminTierTrace). */
    readonly adminTrace?: AdminTierTrace;
  }[];
}

const NO_TRACE: SideTrace = { tiers: [] };

function decideSide(
  index: SnapshotIndex,
  tiers: readonly Tier[],
  flow: Flow,
  direction: Direction,
  opts: EvaluateOptions,
  trace: boolean,
): { side: SideVerdict; trace: SideTrace } {
  const side = (v: SideVerdict, t: SideTrace = NO_TRACE) => ({ side: v, trace: t });
  const self = direction === 'egress' ? flow.src : flow.dst;
  const other = direction === 'egress' ? flow.dst : flow.src;
  if (self.kind !== 'pod' || !isSubject(self.pod)) return side(nonSubject(direction));
  const subject = self.pod;
  const key = podKey(subject);
  if (isSamePod(self, other)) return side(nonSubject(direction, 'self', key));
  const policeNode = direction === 'egress' && opts.policeNodeEgress === true;
  if (!policeNode && isOwnNode(index, subject, other)) return side(nonSubject(direction, 'node', key));

  const family = flowFamily(flow);
  const conflicts = conflictedAddresses(index.snapshot);
  if (conflicts.size > 0) {
    // The kernel cannot tell whose packet it is: neither pod's policies apply, nothing is allowed.
    const own = endpointAddress(self, family);
    if (own !== undefined && conflicts.has(formatAddress(own))) {
      return side({
        direction,
        subject: key,
        allowed: false,
        reason: 'address-conflict',
        isolatedBy: [],
        matches: [],
        tiers: [],
      });
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
    trace,
  };
  const outcomes: TierOutcome[] = [];
  const traces: SideTrace['tiers'][number][] = [];
  let isolatedBy: readonly PolicyRef[] = [];
  let matches: readonly RuleMatch[] = [];
  let skipToNetworkPolicy = false;
  for (const tier of tiers) {
    if (skipToNetworkPolicy && tier.stage === 'admin') continue;
    if (tier.applies !== undefined && !tier.applies(index)) continue;
    const d = tier.decide(ctx);
    outcomes.push({
      tier: tier.name,
      answer: d.answer,
      detail: d.detail,
      ...(d.admin !== undefined ? { admin: d.admin } : {}),
    });
    if (trace) {
      traces.push({
        tier: tier.name,
        stage: tier.stage,
        ...(d.trace ? { trace: d.trace } : {}),
        ...(d.adminTrace ? { adminTrace: d.adminTrace } : {}),
      });
    }
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
    return side(
      { direction, subject: key, allowed, reason, isolatedBy, matches, tiers: outcomes },
      { tiers: traces },
    );
  }
  return side(
    {
      direction,
      subject: key,
      allowed: true,
      reason: 'not-isolated',
      isolatedBy,
      matches,
      tiers: outcomes,
    },
    { tiers: traces },
  );
}

/** Evaluates one flow against a snapshot. */
export function evaluate(
  snapshot: Snapshot,
  flow: Flow,
  opts: EvaluateOptions = {},
  tiers: readonly Tier[] = defaultTiers,
): Verdict {
  return evaluateTraced(snapshot, flow, opts, tiers, false).verdict;
}

export interface TracedVerdict {
  /** Exactly evaluate()'s verdict. */
  readonly verdict: Verdict;
  /** What each tier checked on each side: the tier, policy, rule, peer and port, and why not. */
  readonly trace: { readonly egress: SideTrace; readonly ingress: SideTrace };
}

/** evaluate(), with the trace of every tier consulted (for explain; slower). */
export function evaluateTraced(
  snapshot: Snapshot,
  flow: Flow,
  opts: EvaluateOptions = {},
  tiers: readonly Tier[] = defaultTiers,
  trace = true,
): TracedVerdict {
  const index = indexOf(snapshot);
  const egress = decideSide(index, tiers, flow, 'egress', opts, trace);
  const ingress = decideSide(index, tiers, flow, 'ingress', opts, trace);
  return {
    verdict: {
      allowed: egress.side.allowed && ingress.side.allowed,
      egress: egress.side,
      ingress: ingress.side,
    },
    trace: { egress: egress.trace, ingress: ingress.trace },
  };
}
