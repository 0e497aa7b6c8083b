// From a logged packet to a flow record (pure): the NFLOG prefix names a counter of the ruleset
// generation that was live (flowPrefix in src/dataplane/flowlog.ts), whose CounterMeta says which
// direction, tier, policy and rule decided; the snapshot says whose addresses the packet carries.
import { parseFlowPrefix, type FlowClass } from '../dataplane/flowlog.js';
import type { CounterMeta, Ruleset } from '../dataplane/model.js';
import { formatAddress, parseIP } from '../model/cidr.js';
import type { Snapshot } from '../model/types.js';
import type {
  FlowDirection,
  FlowEndpoint,
  FlowReason,
  FlowRecord,
  FlowVerdict,
  PolicyHit,
} from './record.js';

/** What one log message of one packet says, before the packet's addresses are read. */
export interface Decision {
  readonly direction: FlowDirection;
  readonly cls: FlowClass;
  readonly hits: readonly PolicyHit[];
  /** Undefined for a Pass: the next decision for the packet tells the reason. */
  readonly reason?: FlowReason;
}

/** The counters of one ruleset generation, by name. */
export type CounterIndex = ReadonlyMap<string, CounterMeta>;

export function counterIndex(rs: Ruleset): CounterIndex {
  return new Map(rs.counters.map((c) => [c.name, c.meta]));
}

/** The decision a counter's meta records; undefined for a counter that is not a decision. */
export function decisionOf(cls: FlowClass, meta: CounterMeta): Decision | undefined {
  const direction = meta.direction;
  if (meta.open !== undefined) return { direction, cls, hits: [], reason: meta.open };
  if (meta.admin !== undefined) {
    const a = meta.admin;
    const action = a.action === 'Accept' ? 'allow' : a.action === 'Deny' ? 'deny' : 'pass';
    const hit: PolicyHit = {
      kind: a.kind,
      name: a.name,
      tier: a.tier,
      rule: a.rule,
      ...(a.ruleName !== '' ? { ruleName: a.ruleName } : {}),
      action,
    };
    // Admin: the next tier decides (and logs). Baseline: only the default allow follows.
    if (action === 'pass') {
      return a.tier === 'Admin'
        ? { direction, cls, hits: [hit] }
        : { direction, cls, hits: [hit], reason: 'not-isolated' };
    }
    const reason: FlowReason =
      a.tier === 'Admin'
        ? action === 'allow'
          ? 'admin-accept'
          : 'admin-deny'
        : action === 'allow'
          ? 'baseline-accept'
          : 'baseline-deny';
    return { direction, cls, hits: [hit], reason };
  }
  if (meta.kind === 'accept' && meta.policy !== undefined) {
    return {
      direction,
      cls,
      hits: [
        {
          kind: 'NetworkPolicy',
          namespace: meta.policy.namespace,
          name: meta.policy.name,
          tier: 'NetworkPolicy',
          ...(meta.rule !== undefined ? { rule: meta.rule } : {}),
          action: 'allow',
        },
      ],
      reason: 'rule-matched',
    };
  }
  if (meta.kind === 'drop' && meta.policies !== undefined) {
    return {
      direction,
      cls,
      hits: meta.policies.map((p) => ({
        kind: 'NetworkPolicy' as const,
        namespace: p.namespace,
        name: p.name,
        tier: 'NetworkPolicy' as const,
        action: 'deny' as const,
      })),
      reason: 'no-rule-matched',
    };
  }
  return undefined;
}

/**
 * The decision behind an NFLOG prefix, looked up in the generations given (newest first: a record
 * logged just before an apply names a counter of the previous one). Undefined for a prefix that is
 * not moat's or a counter no generation knows.
 */
export function decide(prefix: string, generations: readonly CounterIndex[]): Decision | undefined {
  const p = parseFlowPrefix(prefix);
  if (p === undefined) return undefined;
  for (const g of generations) {
    const meta = g.get(p.counter);
    if (meta !== undefined) return decisionOf(p.cls, meta);
  }
  return undefined;
}

/** Who owns an address: pods (not hostNetwork: those are the node's) and nodes. */
export interface AddressBook {
  lookup(ip: string): Omit<FlowEndpoint, 'ip' | 'port'> | undefined;
}

export function addressBook(s: Snapshot): AddressBook {
  const m = new Map<string, Omit<FlowEndpoint, 'ip' | 'port'>>();
  const key = (ip: string) => {
    const a = parseIP(ip);
    return a ? formatAddress(a) : ip;
  };
  for (const n of s.nodes) {
    for (const ip of [...n.addresses, ...(n.externalAddresses ?? [])]) m.set(key(ip), { node: n.name });
  }
  for (const p of s.pods) {
    if (p.hostNetwork) continue;
    for (const ip of p.ips) {
      m.set(key(ip), {
        namespace: p.namespace,
        pod: p.name,
        labels: p.labels,
        ...(p.nodeName !== undefined ? { node: p.nodeName } : {}),
      });
    }
  }
  return { lookup: (ip) => m.get(key(ip)) };
}

function hitName(h: PolicyHit): string {
  if (h.kind === 'NetworkPolicy') return `${h.namespace ?? ''}/${h.name}`;
  return `${h.kind} ${h.name}`;
}

function ruleText(h: PolicyHit, direction: FlowDirection): string {
  if (h.rule === undefined) return '';
  return h.ruleName !== undefined ? ` rule "${h.ruleName}"` : ` ${direction}[${h.rule}]`;
}

/** The record's one-line explanation. */
export function summarize(
  verdict: FlowVerdict,
  reason: FlowReason,
  direction: FlowDirection,
  hits: readonly PolicyHit[],
): string {
  const passes = hits.filter((h) => h.action === 'pass');
  const deciding = hits.filter((h) => h.action !== 'pass');
  const pre = passes.map((h) => `passed by ${hitName(h)}${ruleText(h, direction)}; `).join('');
  let body: string;
  switch (reason) {
    case 'rule-matched':
      body = `allowed by ${deciding.map((h) => `${hitName(h)}${ruleText(h, direction)}`).join(', ')}`;
      break;
    case 'no-rule-matched':
      body = `isolated by ${deciding.map(hitName).join(', ')}; no rule matched`;
      break;
    case 'admin-accept':
    case 'baseline-accept':
      body = `accepted by ${deciding.map((h) => `${hitName(h)}${ruleText(h, direction)}`).join(', ')}`;
      break;
    case 'admin-deny':
    case 'baseline-deny':
      body = `denied by ${deciding.map((h) => `${hitName(h)}${ruleText(h, direction)}`).join(', ')}`;
      break;
    case 'not-isolated':
      body = `no policy isolates the pod for ${direction}`;
      break;
    case 'own-node':
      body = "from the pod's own node (always allowed)";
      break;
  }
  return verdict === 'audit' ? `audit: would be dropped: ${pre}${body}` : `${pre}${body}`;
}

function verdictOf(cls: FlowClass): FlowVerdict {
  return cls === 'D' ? 'denied' : cls === 'U' ? 'audit' : 'allowed';
}

/** The addresses and ports of a logged packet (decodeIpPacket's output, in short). */
export interface PacketEnds {
  readonly family: 'ipv4' | 'ipv6';
  readonly protocol: string;
  readonly src: string;
  readonly dst: string;
  readonly srcPort?: number;
  readonly dstPort?: number;
  readonly icmp?: { readonly type: number; readonly code: number };
  readonly tcpFlags?: string;
}

/**
 * The record of one side of one packet: its decisions in order (a Pass, then what decided), the
 * packet's ends and who owns them.
 */
export function buildRecord(
  decisions: readonly Decision[],
  pkt: PacketEnds,
  book: AddressBook,
  node: string,
  time: Date,
): FlowRecord | undefined {
  const last = decisions[decisions.length - 1];
  // A Pass alone does not say what decided (the logger counts it as incomplete).
  if (last?.reason === undefined) return undefined;
  const hits = decisions.flatMap((d) => d.hits);
  const reason: FlowReason = last.reason;
  const verdict = verdictOf(last.cls);
  const end = (ip: string, port: number | undefined): FlowEndpoint => ({
    ip,
    ...(port !== undefined ? { port } : {}),
    ...book.lookup(ip),
  });
  return {
    time: time.toISOString(),
    node,
    verdict,
    direction: last.direction,
    protocol: pkt.protocol,
    family: pkt.family,
    src: end(pkt.src, pkt.srcPort),
    dst: end(pkt.dst, pkt.dstPort),
    ...(pkt.icmp !== undefined ? { icmp: pkt.icmp } : {}),
    ...(pkt.tcpFlags !== undefined ? { tcpFlags: pkt.tcpFlags } : {}),
    policies: hits,
    reason,
    summary: summarize(verdict, reason, last.direction, hits),
  };
}
