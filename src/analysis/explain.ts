// `moat explain`: the evaluator's verdict for one flow, in words, policy by policy and rule by rule.
// Pure. Verdict and trace are the evaluator's own (evaluateTraced): this module only formats what
// the tiers checked, and, when a side denies, picks the rule that came closest.
import { familyOf, formatAddress, parseIP, type Family } from '../model/cidr.js';
import type { Protocol, Snapshot, WorkloadKind } from '../model/types.js';
import { WORKLOAD_SHORT } from '../model/validateWorkload.js';
import { podKey } from '../model/types.js';
import { UsageError } from '../errors.js';
import {
  endpointAddress,
  evaluateTraced,
  flowFamily,
  type Direction,
  type Endpoint,
  type EvaluateOptions,
  type Flow,
  type PolicyRef,
  type SideReason,
  type SideTrace,
  type TierAnswer,
  type Verdict,
} from '../policy/evaluate.js';
import {
  hasAdminPolicies,
  type AdminDecision,
  type AdminPolicyTrace,
  type AdminRuleTrace,
} from '../policy/admin.js';
import { describeEndpoint, dirType, type NonSelecting, type PolicyTrace } from '../policy/trace.js';

export type { NonSelecting, PeerCheck, PolicyTrace, PortCheck, RuleTrace } from '../policy/trace.js';
export type {
  AdminDecision,
  AdminPeerCheck,
  AdminPolicyTrace,
  AdminPortCheck,
  AdminRuleTrace,
} from '../policy/admin.js';

export interface RuleRef {
  readonly policy: PolicyRef;
  readonly direction: Direction;
  readonly rule: number;
}

/**
 * One tier of the chain as the side walked it (`moat explain` with admin policies in the input).
 * Admin and Baseline tiers carry the deciding rule (tier, kind, name, priority, rule index, rule
 * name, action) and every policy of the tier in the order consulted: lower priority first; at equal
 * priorities (undefined upstream) ClusterNetworkPolicy before AdminNetworkPolicy or
 * BaselineAdminNetworkPolicy, then by name.
 */
export interface TierStep {
  readonly tier: string;
  readonly answer: TierAnswer;
  /** The step in words, e.g. "ClusterNetworkPolicy tenant-isolation rule deny (ingress[2]): Deny". */
  readonly summary: string;
  /** Admin and Baseline tiers: the rule that decided (absent when none did). */
  readonly decision?: AdminDecision;
  /** Admin and Baseline tiers: every policy of the tier, selecting or not, rules up to the decision. */
  readonly policies?: readonly AdminPolicyTrace[];
}

export interface SideExplanation {
  readonly direction: Direction;
  /** "ns/name" of the pod whose policies apply on this side. */
  readonly subject?: string;
  readonly allowed: boolean;
  readonly reason: SideReason;
  /** One sentence: the verdict of this side in words. */
  readonly summary: string;
  /** Every policy that isolates the subject for this direction, rule by rule. */
  readonly policies: readonly PolicyTrace[];
  /** Policies of the subject's namespace that do not apply to it for this direction. */
  readonly notSelecting: readonly NonSelecting[];
  /** When this side denies: the rule that came closest (absent when no policy has a rule). */
  readonly closest?: RuleRef & { readonly reasons: readonly string[] };
  /**
   * Only when the input has admin policies: the tiers consulted, in chain order (Admin, NetworkPolicy,
   * Baseline); the summary then walks them ("[Admin] ... Pass → [NetworkPolicy] ... → DENIED").
   */
  readonly tiers?: readonly TierStep[];
}

/**
 * The JSON of `moat explain -o json`: `verdict` is exactly evaluate()'s Verdict; `egress` (of the
 * source) and `ingress` (of the destination) are the per-policy, per-rule analyses.
 */
export interface Explanation {
  readonly flow: {
    readonly src: string;
    readonly dst: string;
    readonly protocol: Protocol;
    readonly port: number;
    readonly family: Family;
  };
  readonly verdict: Verdict;
  readonly egress: SideExplanation;
  readonly ingress: SideExplanation;
}

// ---------------------------------------------------------------------------------------------
// Describing things.

// ---------------------------------------------------------------------------------------------
// Rules, policies, sides.

const ruleName = (
  direction: Direction,
  ra: { rule: number; matchedPeer?: number; matchedPort?: number },
): string => {
  const parts = [`${direction}[${ra.rule}]`];
  if (ra.matchedPeer !== undefined)
    parts.push(`${direction === 'ingress' ? 'from' : 'to'}[${ra.matchedPeer}]`);
  if (ra.matchedPort !== undefined) parts.push(`ports[${ra.matchedPort}]`);
  return parts.join(', ');
};

const refText = (p: PolicyRef): string => `${p.namespace}/${p.name}`;

/** The name of an admin rule: "name (ingress[2])", or "ingress[2]" when unnamed. */
export const adminRuleLabel = (direction: Direction, rule: number, name: string): string =>
  name !== '' ? `${name} (${direction}[${rule}])` : `${direction}[${rule}]`;

function adminStepSummary(
  step: SideTrace['tiers'][number],
  outcome: Verdict['egress']['tiers'][number],
  direction: Direction,
  subject: string,
): string {
  const d = outcome.admin;
  if (d !== undefined) {
    const t = step.adminTrace?.policies
      .find((p) => p.kind === d.kind && p.name === d.name)
      ?.rules.find((r) => r.rule === d.rule);
    const denyAll = t?.denyAll === true ? ' (an unknown peer makes the rule Deny all)' : '';
    const pass =
      d.action === 'Pass'
        ? d.tier === 'Admin'
          ? ' (to the NetworkPolicy tier)'
          : ' (skips the rest of the Baseline tier)'
        : '';
    return `${d.kind} ${d.name} rule ${adminRuleLabel(direction, d.rule, d.ruleName)}: ${d.action}${denyAll}${pass}`;
  }
  const checked = (step.adminTrace?.policies ?? []).filter((p) => p.status === 'checked').length;
  return checked === 0
    ? `no policy selects ${subject} with ${direction} rules`
    : `no rule matched (${checked} ${checked === 1 ? 'policy' : 'policies'} checked)`;
}

/** The tiers walked, and the summary that walks them (input with admin policies only). */
function walkTiers(
  verdict: Verdict,
  trace: SideTrace,
  direction: Direction,
  np: SideExplanation,
): Pick<SideExplanation, 'summary' | 'tiers'> {
  const side = verdict[direction];
  const subject = side.subject ?? '';
  const steps: TierStep[] = trace.tiers.map((step, k) => {
    const outcome = side.tiers[k]!;
    if (step.stage === 'networkpolicy') {
      return { tier: step.tier, answer: outcome.answer, summary: networkPolicyStep(side, np, direction) };
    }
    return {
      tier: step.tier,
      answer: outcome.answer,
      summary: adminStepSummary(step, outcome, direction, subject),
      ...(outcome.admin !== undefined ? { decision: outcome.admin } : {}),
      policies: step.adminTrace?.policies ?? [],
    };
  });
  const end = side.allowed
    ? side.reason === 'not-isolated'
      ? 'allowed (no tier decided)'
      : 'allowed'
    : 'DENIED';
  const summary = [...steps.map((s) => `[${s.tier}] ${s.summary}`), end].join(' → ');
  return { summary, tiers: steps };
}

function networkPolicyStep(side: Verdict['egress'], np: SideExplanation, direction: Direction): string {
  if (side.isolatedBy.length === 0) {
    return `not isolated (no NetworkPolicy with policyTypes ${dirType(direction)} selects ${side.subject ?? ''})`;
  }
  const isolated = `isolated by ${side.isolatedBy.map(refText).join(', ')}`;
  if (side.matches.length > 0) {
    const admitted = np.policies.flatMap((pa) =>
      pa.rules.filter((r) => r.matched).map((r) => `${refText(pa.policy)} ${ruleName(direction, r)}`),
    );
    return `${isolated}, allowed by ${admitted.join('; ')}`;
  }
  return `${isolated}, no rule matched`;
}

function explainSide(
  verdict: Verdict,
  trace: SideTrace,
  direction: Direction,
  flow: Flow,
  admin: boolean,
): SideExplanation {
  const e = explainSideNP(verdict, trace, direction, flow, admin);
  if (!admin || trace.tiers.length === 0) return e;
  return { ...e, ...walkTiers(verdict, trace, direction, e) };
}

function explainSideNP(
  verdict: Verdict,
  trace: SideTrace,
  direction: Direction,
  flow: Flow,
  admin: boolean,
): SideExplanation {
  const side = verdict[direction];
  const self = direction === 'egress' ? flow.src : flow.dst;
  const otherEnd = direction === 'egress' ? flow.dst : flow.src;
  const role = direction === 'egress' ? 'source' : 'destination';
  const base = {
    direction,
    ...(side.subject !== undefined ? { subject: side.subject } : {}),
    allowed: side.allowed,
    reason: side.reason,
  };
  const empty = { policies: [], notSelecting: [] };
  switch (side.reason) {
    case 'not-a-subject': {
      const summary =
        self.kind === 'ip'
          ? `the ${role} ${self.ip} is not a pod: no ${direction} policy applies`
          : `${podKey(self.pod)} uses the host network: "hostNetwork pods are not selected by NetworkPolicy"${
              admin ? ` and admin policies' subjects: "host-networked pods are not included"` : ''
            }`;
      return { ...base, ...empty, summary };
    }
    case 'self':
      return { ...base, ...empty, summary: `a pod may always reach itself` };
    case 'address-conflict': {
      const a = endpointAddress(self, flowFamily(flow));
      const text = a !== undefined ? formatAddress(a) : '?';
      return {
        ...base,
        ...empty,
        summary: `${text} is the address of more than one live pod: packets from and to it cannot be told apart, so it is enforced fail-closed (nothing is allowed but the pod itself and its node)`,
      };
    }
    case 'node':
      return {
        ...base,
        ...empty,
        summary: `${describeEndpoint(otherEnd)} is ${side.subject ?? ''}'s own node: "traffic to and from the node where a Pod is running is always allowed"`,
      };
    default:
      break;
  }
  if (self.kind !== 'pod') return { ...base, ...empty, summary: side.reason };
  const subject = self.pod;
  // What the NetworkPolicy tier checked, as it decided (absent when another tier decided first).
  const np = trace.tiers.find((t) => t.stage === 'networkpolicy')?.trace;
  // By namespace/name, whatever order the input listed them in (a cluster lists by name).
  const byRef = <T extends { readonly policy: PolicyRef }>(xs: readonly T[]): T[] =>
    [...xs].sort((a, b) =>
      refText(a.policy) < refText(b.policy) ? -1 : refText(a.policy) > refText(b.policy) ? 1 : 0,
    );
  const policies = byRef(np?.policies ?? []);
  const others = byRef(np?.notSelecting ?? []);
  const key = podKey(subject);
  if (side.reason === 'not-isolated') {
    return {
      ...base,
      policies,
      notSelecting: others,
      summary: `no NetworkPolicy with policyTypes ${dirType(direction)} selects ${key}: it is not isolated for ${direction}, so the flow is allowed`,
    };
  }
  const isolated = `${key} is isolated for ${direction} by ${side.isolatedBy.map(refText).join(', ')}`;
  if (side.allowed && side.reason === 'allowed-by-rule') {
    const admitted = policies.flatMap((pa) =>
      pa.rules.filter((r) => r.matched).map((r) => `${refText(pa.policy)} ${ruleName(direction, r)}`),
    );
    return {
      ...base,
      policies,
      notSelecting: others,
      summary: `${isolated}; allowed by ${admitted.join('; ')}`,
    };
  }
  if (side.reason !== 'no-rule-matched') {
    // Decided by another tier (admin or baseline policies): report the tiers' words.
    const words = side.tiers.map((t) => `${t.tier}: ${t.detail}`).join('; ');
    return { ...base, policies, notSelecting: others, summary: words };
  }
  let closest: SideExplanation['closest'];
  let bestScore = -1;
  for (const pa of policies) {
    for (const r of pa.rules) {
      if (r.score > bestScore) {
        bestScore = r.score;
        closest = { policy: pa.policy, direction, rule: r.rule, reasons: r.reasons };
      }
    }
  }
  const tail =
    closest === undefined
      ? `none of them has ${direction} rules, so all ${direction} is denied`
      : `no rule admits the flow; closest: ${refText(closest.policy)} ${direction}[${closest.rule}]: ${closest.reasons.join('; ')}`;
  return {
    ...base,
    policies,
    notSelecting: others,
    summary: `${isolated}; ${tail}`,
    ...(closest !== undefined ? { closest } : {}),
  };
}

/** Explains one flow. `verdict` is exactly evaluate(snapshot, flow, opts). */
export function explain(snapshot: Snapshot, flow: Flow, opts: EvaluateOptions = {}): Explanation {
  const { verdict, trace } = evaluateTraced(snapshot, flow, opts);
  // Without admin policies the output is exactly what it was before the admin tiers existed.
  const admin = hasAdminPolicies(snapshot);
  return {
    flow: {
      src: describeEndpoint(flow.src),
      dst: describeEndpoint(flow.dst),
      protocol: flow.protocol,
      port: flow.port,
      family: flowFamily(flow),
    },
    verdict,
    egress: explainSide(verdict, trace.egress, 'egress', flow, admin),
    ingress: explainSide(verdict, trace.ingress, 'ingress', flow, admin),
  };
}

// ---------------------------------------------------------------------------------------------
// From command-line words to a flow.

/**
 * "ns/name" names a pod; an IP address is an IP endpoint, unless exactly one pod (not hostNetwork)
 * has that IP, in which case it is that pod (the network cannot tell them apart).
 */
export function resolveEndpoint(snapshot: Snapshot, text: string, what: string): Endpoint {
  if (familyOf(text) !== undefined) {
    const a = parseIP(text)!;
    const same = (ip: string): boolean => {
      const b = parseIP(ip);
      return b !== undefined && b.family === a.family && b.value === a.value;
    };
    const owners = snapshot.pods.filter((p) => !p.hostNetwork && p.ips.some(same));
    return owners.length === 1 ? { kind: 'pod', pod: owners[0]! } : { kind: 'ip', ip: text };
  }
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) {
    throw new UsageError(
      `${what} "${text}" is neither NAMESPACE/POD, NAMESPACE/KIND/NAME (deploy/web, sts/db-0, ...) nor an IP address`,
    );
  }
  const namespace = parts[0]!;
  if (parts.length === 3) {
    const short = WORKLOAD_ALIASES[parts[1]!.toLowerCase()];
    if (short === undefined) {
      throw new UsageError(
        `${what} "${text}": unknown kind ${parts[1]!} (one of pod, ${Object.values(WORKLOAD_SHORT).join(', ')})`,
      );
    }
    if (short !== 'pod') {
      const name = `${short}/${parts[2]!}`;
      const inNs = snapshot.pods.filter((p) => p.namespace === namespace && p.workload !== undefined);
      // A StatefulSet by its own name stands for its first replica (sts/db: sts/db-0).
      const pod =
        inNs.find((p) => p.name === name) ??
        inNs.find(
          (p) => short === 'sts' && p.workload?.kind === 'StatefulSet' && p.workload.name === parts[2],
        );
      if (!pod) throw new UsageError(`${what}: unknown workload ${text} (no such workload in the input)`);
      return { kind: 'pod', pod };
    }
  }
  const name = parts[parts.length - 1]!;
  const pod = snapshot.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new UsageError(`${what}: unknown pod ${text} (no such pod in the input)`);
  return { kind: 'pod', pod };
}

/** kubectl's resource words for the kinds a `NAMESPACE/KIND/NAME` endpoint may name. */
const WORKLOAD_ALIASES: Readonly<Record<string, string>> = {
  pod: 'pod',
  pods: 'pod',
  po: 'pod',
  ...Object.fromEntries(
    (Object.entries(WORKLOAD_SHORT) as [WorkloadKind, string][]).flatMap(([kind, short]) => [
      [short, short],
      [kind.toLowerCase(), short],
      [`${kind.toLowerCase()}s`, short],
    ]),
  ),
  deployments: 'deploy',
  cj: 'cronjob',
};

/** A --port value: a number, or a name resolved against the destination pod's containerPorts. */
export function resolvePort(dst: Endpoint, port: string, protocol: Protocol): number {
  if (/^\d+$/.test(port)) {
    const n = Number(port);
    if (n < 1 || n > 65535) throw new UsageError(`--port ${port}: must be between 1 and 65535`);
    return n;
  }
  if (dst.kind !== 'pod') {
    throw new UsageError(`--port ${port}: a named port needs a destination pod, ${dst.ip} is not a pod`);
  }
  const cp = dst.pod.ports.find((c) => c.name === port && c.protocol === protocol);
  if (!cp) {
    throw new UsageError(
      `--port ${port}: pod ${podKey(dst.pod)} has no ${protocol} containerPort named ${port}`,
    );
  }
  return cp.containerPort;
}

export interface FlowArgs {
  readonly from: string;
  readonly to: string;
  readonly port: string;
  readonly protocol: Protocol;
}

export function resolveFlow(snapshot: Snapshot, a: FlowArgs): Flow {
  const src = resolveEndpoint(snapshot, a.from, '--from');
  const dst = resolveEndpoint(snapshot, a.to, '--to');
  const port = resolvePort(dst, a.port, a.protocol);
  // An IP given by the user fixes the family; two IPs must agree.
  const fams = [src, dst].flatMap((e) => (e.kind === 'ip' ? [familyOf(e.ip)!] : []));
  if (fams.length === 2 && fams[0] !== fams[1]) {
    throw new UsageError(`--from ${a.from} and --to ${a.to} are of different address families`);
  }
  return { src, dst, port, protocol: a.protocol, ...(fams[0] !== undefined ? { family: fams[0] } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Text.

function networkPolicyLines(s: SideExplanation): string[] {
  const out: string[] = [];
  const peerWord = s.direction === 'ingress' ? 'from' : 'to';
  for (const pa of s.policies) {
    out.push(`  NetworkPolicy ${refText(pa.policy)}:`);
    if (pa.rules.length === 0) out.push(`    no ${s.direction} rules: isolates only`);
    for (const r of pa.rules) {
      out.push(
        `    ${s.direction}[${r.rule}]: ${r.matched ? `admits (${ruleName(s.direction, r)})` : 'does not admit'}`,
      );
      if (r.peers === undefined)
        out.push(`      ${peerWord}: all ${s.direction === 'ingress' ? 'sources' : 'destinations'}`);
      for (const p of r.peers ?? []) {
        out.push(
          `      ${peerWord}[${p.index}] ${p.peer}: ${p.matched ? 'matches' : `no: ${p.reason ?? ''}`}`,
        );
      }
      if (r.ports === undefined) out.push(`      ports: all`);
      for (const p of r.ports ?? []) {
        out.push(`      ports[${p.index}] ${p.port}: ${p.matched ? 'matches' : `no: ${p.reason ?? ''}`}`);
      }
    }
  }
  if (s.closest !== undefined) {
    out.push(`  closest rule: ${refText(s.closest.policy)} ${s.direction}[${s.closest.rule}]`);
  }
  for (const n of s.notSelecting)
    out.push(`  (NetworkPolicy ${refText(n.policy)} does not apply: ${n.reason})`);
  return out;
}

function adminRuleLines(direction: Direction, r: AdminRuleTrace): string[] {
  const peerWord = direction === 'ingress' ? 'from' : 'to';
  const verdict = r.matched
    ? `matches → ${r.applied ?? r.action}${r.denyAll === true ? ' (Deny all: an unknown peer)' : ''}`
    : 'no match';
  const out = [`      ${adminRuleLabel(direction, r.rule, r.name)} ${r.action}: ${verdict}`];
  for (const p of r.peers) {
    out.push(`        ${peerWord}[${p.index}] ${p.peer}: ${p.matched ? 'matches' : `no: ${p.reason ?? ''}`}`);
  }
  if (r.ports === undefined) out.push(`        ports: all`);
  for (const p of r.ports ?? []) {
    out.push(`        ports[${p.index}] ${p.port}: ${p.matched ? 'matches' : `no: ${p.reason ?? ''}`}`);
  }
  // A rule whose peers and ports fit but that does not match: an Accept made inert by an unknown peer.
  const fits = r.peers.some((p) => p.matched) && (r.ports?.some((p) => p.matched) ?? true);
  if (!r.matched && fits) for (const why of r.reasons) out.push(`        ${why}`);
  return out;
}

/** Equal priorities are undefined upstream; compareAdminPolicies' order, in words. */
const ORDER: Readonly<Record<string, string>> = {
  Admin:
    'lower priority first; at equal priority ClusterNetworkPolicy before AdminNetworkPolicy, then by name',
  Baseline:
    'lower priority first; at equal priority ClusterNetworkPolicy before BaselineAdminNetworkPolicy, then by name',
};

function adminTierLines(s: SideExplanation, t: TierStep, subject: string): string[] {
  const ps = t.policies ?? [];
  const out = [
    `  [${t.tier}] ${ps.length} ${ps.length === 1 ? 'policy' : 'policies'} (${ORDER[t.tier] ?? ''}):`,
  ];
  for (const p of ps) {
    const head = `    ${p.kind} ${p.name} (priority ${p.priority})`;
    switch (p.status) {
      case 'not-selecting':
        out.push(`${head}: does not select ${subject}: ${p.reason ?? ''}`);
        break;
      case 'no-rules':
        out.push(`${head}: selects ${subject}, ${p.reason ?? ''}`);
        break;
      case 'not-consulted':
        out.push(`${head}: not consulted: ${p.reason ?? ''}`);
        break;
      case 'checked':
        out.push(`${head}: selects ${subject}`);
        for (const r of p.rules) out.push(...adminRuleLines(s.direction, r));
        break;
    }
  }
  return out;
}

function formatSide(s: SideExplanation, who: string): string[] {
  const title = s.direction === 'egress' ? 'Egress' : 'Ingress';
  const out = [`${title} of ${who}: ${s.allowed ? 'allowed' : 'DENIED'} (${s.reason})`, `  ${s.summary}`];
  if (s.tiers === undefined) return [...out, ...networkPolicyLines(s)];
  for (const t of s.tiers) {
    if (t.policies !== undefined) out.push(...adminTierLines(s, t, s.subject ?? ''));
    else out.push(`  [${t.tier}] ${t.summary}:`, ...networkPolicyLines(s));
  }
  return out;
}

export function formatExplanation(e: Explanation): string {
  const f = e.flow;
  const lines = [
    `${f.src} -> ${f.dst} ${f.protocol}/${f.port} (IPv${f.family}): ${e.verdict.allowed ? 'ALLOWED' : 'DENIED'}`,
    '',
    ...formatSide(e.egress, `source ${f.src}`),
    '',
    ...formatSide(e.ingress, `destination ${f.dst}`),
  ];
  return lines.join('\n') + '\n';
}
