// A small interpreter of moat's rule model (rule.ts): what the kernel would do with a packet. It
// reads the structure the compiler built (never nft text), so tests can compare the compiled
// ruleset with the reference evaluator flow by flow, and the conntrack planner can judge flows.
import { cidrContains, formatAddress, parseCidr, parseIP } from '../model/cidr.js';
import type { NftChain, NftHook, NftSet, Ruleset } from './model.js';
import type { AddrField, Match, Rule } from './rule.js';

export interface SimPacket {
  readonly family: 4 | 6;
  readonly saddr: string;
  readonly daddr: string;
  readonly l4proto: 'tcp' | 'udp' | 'sctp' | 'icmp';
  readonly dport?: number;
  /** Which hook sees the packet: postrouting (forwarded, locally generated) or input (to the node). */
  readonly hook: NftHook;
  /** Conntrack state of the packet; default 'new'. */
  readonly ctState?: 'new' | 'established' | 'related' | 'invalid' | 'untracked';
  /** Whether saddr is an address of the node that judges the packet (`fib saddr type local`). */
  readonly saddrLocal?: boolean;
  /** TCP flags of the packet; default ['syn'] (the first packet of a connection). */
  readonly tcpFlags?: readonly ('fin' | 'syn' | 'rst' | 'psh' | 'ack' | 'urg')[];
  /** IPv6 hop limit as the hook sees it; default 64. */
  readonly hoplimit?: number;
  /** The flow log's rate limit is exhausted (`limit name` does not match). */
  readonly overLimit?: boolean;
}

export interface SimResult {
  readonly verdict: 'accept' | 'drop';
  /** Named counters the packet incremented, in order. */
  readonly counters: readonly string[];
  /** NFLOG prefixes the packet was logged with, in order (the flow log). */
  readonly logs: readonly string[];
}

type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'return' }
  | { kind: 'jump' | 'goto'; chain: string }
  | undefined;

function canon(tok: string): string {
  const a = parseIP(tok);
  return a ? formatAddress(a) : tok;
}

/** Memoised per literal (rules repeat a few hundred of them): the conntrack planner judges many packets. */
const literals = new Map<string, ReturnType<typeof parseCidr>>();
function cidrOf(lit: string): ReturnType<typeof parseCidr> {
  let v = literals.get(lit);
  if (v === undefined) {
    if (literals.size > 50_000) literals.clear();
    v = parseCidr(lit.includes('/') ? lit : `${lit}/${lit.includes(':') ? 128 : 32}`);
    literals.set(lit, v);
  }
  return v;
}

const indexed = new WeakMap<NftSet, ReadonlyMap<string, string | undefined>>();

export function simulate(rs: Ruleset, pkt: SimPacket): SimResult {
  return simulator(rs)(pkt);
}

/**
 * A simulator for one Ruleset: the sets and chains are indexed once, so judging many packets (e.g.
 * every conntrack entry a change may affect) costs a lookup per rule, not a copy of every set.
 */
export function simulator(rs: Ruleset): (pkt: SimPacket) => SimResult {
  // Indexed on first use (a packet meets few of a node's sets), and once per set object: the
  // incremental compiler hands out the same object while a set is unchanged.
  const defs = new Map(rs.sets.map((s) => [s.name, s]));
  const sets = {
    get(name: string): ReadonlyMap<string, string | undefined> | undefined {
      const d = defs.get(name);
      if (d === undefined) return undefined;
      let m = indexed.get(d);
      if (m === undefined) {
        m = new Map(d.elements.map((e) => [e.key, e.value]));
        indexed.set(d, m);
      }
      return m;
    },
  };
  const chains = new Map(rs.chains.map((c) => [c.name, c]));
  const bases = new Map<NftHook, NftChain[]>();
  for (const c of rs.chains) {
    if (c.base === undefined) continue;
    bases.set(c.base.hook, [...(bases.get(c.base.hook) ?? []), c]);
  }
  for (const list of bases.values()) list.sort((a, b) => a.base!.priority - b.base!.priority);
  return (pkt) => run(sets, chains, bases.get(pkt.hook) ?? [], pkt);
}

function run(
  sets: { get(name: string): ReadonlyMap<string, string | undefined> | undefined },
  chains: ReadonlyMap<string, NftChain>,
  bases: readonly NftChain[],
  pkt: SimPacket,
): SimResult {
  const counters: string[] = [];
  const logs: string[] = [];
  const saddr = canon(pkt.saddr);
  const daddr = canon(pkt.daddr);
  const saddrIP = parseIP(saddr);
  const daddrIP = parseIP(daddr);
  const l4proto = pkt.l4proto === 'icmp' ? (pkt.family === 6 ? 'ipv6-icmp' : 'icmp') : pkt.l4proto;
  const addrOf = (f: AddrField) => (f === 'saddr' ? saddr : daddr);
  const set = (name: string) => {
    const m = sets.get(name);
    if (!m) throw new Error(`simulate: unknown set ${name}`);
    return m;
  };

  const matches = (m: Match): boolean => {
    switch (m.m) {
      case 'addr':
        return m.family === pkt.family && set(m.set).has(addrOf(m.field)) !== (m.neg === true);
      case 'cidr': {
        if (m.family !== pkt.family) return false;
        const c = cidrOf(m.cidr);
        const a = m.field === 'saddr' ? saddrIP : daddrIP;
        if (typeof c === 'string') throw new Error(`simulate: bad prefix ${m.cidr}`);
        return (a !== undefined && cidrContains(c, a)) !== (m.neg === true);
      }
      case 'family':
        return m.family === pkt.family;
      case 'proto':
        return m.proto === l4proto;
      case 'port':
        return (
          m.proto === pkt.l4proto &&
          pkt.dport !== undefined &&
          pkt.dport >= m.from &&
          pkt.dport <= (m.to ?? m.from)
        );
      case 'namedPort':
        return (
          m.family === pkt.family &&
          pkt.dport !== undefined &&
          set(m.set).has(`${daddr} . ${l4proto} . ${pkt.dport}`)
        );
      case 'pair': {
        if (m.family !== pkt.family) return false;
        const [a, b] = m.first === 'saddr' ? [saddr, daddr] : [daddr, saddr];
        return set(m.set).has(`${a} . ${b}`);
      }
      case 'ct':
        return m.states.includes(pkt.ctState ?? 'new');
      case 'tcpNotSyn': {
        if (pkt.l4proto !== 'tcp') return false;
        const f = new Set(pkt.tcpFlags ?? ['syn']);
        return !(f.has('syn') && !f.has('fin') && !f.has('rst') && !f.has('ack'));
      }
      case 'srcLocal':
        return pkt.saddrLocal === true;
      case 'icmpv6':
        return false; // moat's test packets are never ND
      case 'hoplimit':
        return pkt.family === 6 && (pkt.hoplimit ?? 64) === m.value;
      case 'rpfMissing':
      case 'iif':
      case 'iifIn':
      case 'bind':
      case 'etherType':
      case 'arpSender':
        throw new Error(`simulate: ${m.m} matches are not simulated (prerouting and bridge guards)`);
    }
  };

  /** Runs one rule: undefined when a match failed or the rule has no verdict. */
  const runRule = (r: Rule): Verdict => {
    for (const m of r.match) if (!matches(m)) return undefined;
    // The flow log's rate limit: over it, the rule does not match (same verdict either way).
    if (r.log !== undefined && pkt.overLimit === true) return undefined;
    if (r.counter !== undefined) counters.push(r.counter);
    if (r.log !== undefined) logs.push(r.log.prefix);
    const a = r.action;
    if (a === undefined) return undefined;
    switch (a.a) {
      case 'accept':
      case 'drop':
      case 'return':
        return { kind: a.a };
      case 'jump':
      case 'goto':
        return { kind: a.a, chain: a.chain };
      case 'dispatch': {
        if (a.family !== pkt.family) return undefined;
        const v = set(a.map).get(addrOf(a.field));
        if (v === undefined) return undefined;
        const [kind, chain] = v.split(' ');
        if ((kind !== 'goto' && kind !== 'jump') || chain === undefined)
          throw new Error(`simulate: map ${a.map}: unsupported element value "${v}"`);
        return { kind, chain };
      }
    }
  };

  /** Runs a chain; returns accept/drop, or undefined when it falls through (return). */
  const runChain = (name: string, depth: number): 'accept' | 'drop' | undefined => {
    const ch = chains.get(name);
    if (!ch) throw new Error(`simulate: unknown chain ${name}`);
    if (depth > 16) throw new Error('simulate: chain depth');
    for (const r of ch.body) {
      const v = runRule(r);
      if (v === undefined) continue;
      if (v.kind === 'accept' || v.kind === 'drop') return v.kind;
      if (v.kind === 'return') return undefined;
      const sub = runChain(v.chain, depth + 1);
      if (sub !== undefined) return sub;
      if (v.kind === 'goto') return undefined;
    }
    return undefined;
  };

  for (const b of bases) {
    // "accept" ends one base chain; the next base chain still sees the packet. "drop" is final.
    if (runChain(b.name, 0) === 'drop') return { verdict: 'drop', counters, logs };
  }
  return { verdict: 'accept', counters, logs };
}
