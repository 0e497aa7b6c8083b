// `moat explain`: the evaluator's verdict for one flow, in words, policy by policy and rule by rule.
// Pure. The verdict is evaluate()'s own; the per-rule analysis re-runs the evaluator's exported
// matching primitives (ruleMatches, peerMatches, portMatches, ...) to say why each rule did or did
// not admit the flow, and, when a side denies, which rule came closest.
import { cidrContains, familyOf, formatAddress, parseIP, type Address, type Family } from '../model/cidr.js';
import { formatLabels, formatSelector, matchesSelector } from '../model/selector.js';
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
  Snapshot,
} from '../model/types.js';
import { podKey } from '../model/types.js';
import { conflictedAddresses } from '../model/conflicts.js';
import { UsageError } from '../errors.js';
import {
  demoteConflicted,
  endpointAddress,
  evaluate,
  flowFamily,
  indexOf,
  ipBlockMatches,
  portMatches,
  ruleMatches,
  selectorPeerMatches,
  type Direction,
  type Endpoint,
  type EvaluateOptions,
  type Flow,
  type PolicyRef,
  type SideReason,
  type SnapshotIndex,
  type Verdict,
} from '../policy/evaluate.js';
import { matchesRequirement } from '../model/selector.js';

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

/** One ingress[i] / egress[i] rule of a policy that isolates the subject. */
export interface RuleAnalysis {
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

export interface PolicyAnalysis {
  readonly policy: PolicyRef;
  readonly rules: readonly RuleAnalysis[];
}

/** A policy in the subject's namespace that does not isolate it for this direction, and why not. */
export interface NonSelecting {
  readonly policy: PolicyRef;
  readonly reason: string;
}

export interface RuleRef {
  readonly policy: PolicyRef;
  readonly direction: Direction;
  readonly rule: number;
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
  readonly policies: readonly PolicyAnalysis[];
  /** Policies of the subject's namespace that do not apply to it for this direction. */
  readonly notSelecting: readonly NonSelecting[];
  /** When this side denies: the rule that came closest (absent when no policy has a rule). */
  readonly closest?: RuleRef & { readonly reasons: readonly string[] };
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
function selectorMisses(s: LabelSelector, labels: Labels, what: string): string[] {
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

function ipBlockReason(
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

function selectorReason(
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

function portReason(
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
// Rules, policies, sides.

function analyzeRule(
  index: SnapshotIndex,
  policy: NetworkPolicy,
  rule: PolicyRule,
  r: number,
  direction: Direction,
  other: Endpoint,
  otherAddress: Address | undefined,
  flow: Flow,
  family: Family,
): RuleAnalysis {
  const m = ruleMatches(index, policy, rule, other, otherAddress, flow);
  const peerWord = direction === 'ingress' ? 'from' : 'to';
  const reasons: string[] = [];
  let peerScore = 1;
  let peers: PeerCheck[] | undefined;
  if (rule.peers !== undefined) {
    let best = 0;
    peers = rule.peers.map((pe, j) => {
      const peer = describePeer(pe);
      const ok =
        pe.kind === 'ipBlock'
          ? ipBlockMatches(index, pe, otherAddress)
          : selectorPeerMatches(index, policy.namespace, pe.podSelector, pe.namespaceSelector, other);
      if (ok) {
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

const dirType = (d: Direction): 'Ingress' | 'Egress' => (d === 'ingress' ? 'Ingress' : 'Egress');

function notSelecting(index: SnapshotIndex, subject: Pod, direction: Direction): NonSelecting[] {
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

function explainSide(
  index: SnapshotIndex,
  verdict: Verdict,
  direction: Direction,
  flow: Flow,
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
          : `${podKey(self.pod)} uses the host network: "hostNetwork pods are not selected by NetworkPolicy"`;
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
  const family = flowFamily(flow);
  // As evaluate() sees it: a pod at a shared address is only an address to policies.
  const other = demoteConflicted(otherEnd, family, conflictedAddresses(index.snapshot));
  if (other !== otherEnd) flow = direction === 'egress' ? { ...flow, dst: other } : { ...flow, src: other };
  const otherAddress = endpointAddress(other, family);
  const policies: PolicyAnalysis[] = side.isolatedBy.map((ref) => {
    const policy = index.snapshot.policies.find((p) => p.namespace === ref.namespace && p.name === ref.name)!;
    const rules = direction === 'ingress' ? policy.ingress : policy.egress;
    return {
      policy: ref,
      rules: rules.map((rule, r) =>
        analyzeRule(index, policy, rule, r, direction, other, otherAddress, flow, family),
      ),
    };
  });
  const others = notSelecting(index, subject, direction);
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
  const index = indexOf(snapshot);
  const verdict = evaluate(snapshot, flow, opts);
  return {
    flow: {
      src: describeEndpoint(flow.src),
      dst: describeEndpoint(flow.dst),
      protocol: flow.protocol,
      port: flow.port,
      family: flowFamily(flow),
    },
    verdict,
    egress: explainSide(index, verdict, 'egress', flow),
    ingress: explainSide(index, verdict, 'ingress', flow),
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
  const slash = text.indexOf('/');
  if (slash <= 0 || slash === text.length - 1 || text.indexOf('/', slash + 1) >= 0) {
    throw new UsageError(`${what} "${text}" is neither NAMESPACE/POD nor an IP address`);
  }
  const namespace = text.slice(0, slash);
  const name = text.slice(slash + 1);
  const pod = snapshot.pods.find((p) => p.namespace === namespace && p.name === name);
  if (!pod) throw new UsageError(`${what}: unknown pod ${text} (no such pod in the input)`);
  return { kind: 'pod', pod };
}

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

function formatSide(s: SideExplanation, who: string): string[] {
  const title = s.direction === 'egress' ? 'Egress' : 'Ingress';
  const out = [`${title} of ${who}: ${s.allowed ? 'allowed' : 'DENIED'} (${s.reason})`, `  ${s.summary}`];
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
