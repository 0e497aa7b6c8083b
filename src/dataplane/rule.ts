// The backend-neutral rule model (pure): what a rule matches and what it does, by meaning, in the
// spirit of Calico felix's Rule{Match, Action}. The compiler builds these; renderers print them for
// a backend (nft text here); the simulator, the flow-log rewriter and the diff read the structure
// instead of parsing text. Matches are ANDed, in order; a rule without an action only counts.
import type { Family } from '../model/cidr.js';

export type AddrField = 'saddr' | 'daddr';
/** Transport protocols a port match names; `ipv6-icmp` only as a protocol match. */
export type L4 = 'tcp' | 'udp' | 'sctp';
export type CtState = 'established' | 'related' | 'invalid' | 'new' | 'untracked';

export type Match =
  /** The address is (not) in a set of addresses: `ip saddr @peer_x_v4`. */
  | {
      readonly m: 'addr';
      readonly family: Family;
      readonly field: AddrField;
      readonly set: string;
      readonly neg?: true;
    }
  /** The address is (not) in a prefix, or is one address: `ip saddr 10.0.0.0/8`, `ip6 saddr ::`. */
  | {
      readonly m: 'cidr';
      readonly family: Family;
      readonly field: AddrField;
      readonly cidr: string;
      readonly neg?: true;
    }
  /** The packet is of this address family: `meta nfproto ipv4` (a /0 ipBlock). */
  | { readonly m: 'family'; readonly family: Family }
  /** `meta l4proto tcp`. */
  | { readonly m: 'proto'; readonly proto: L4 | 'ipv6-icmp' }
  /** The destination port of this protocol, one or a range: `tcp dport 80`, `tcp dport 80-90`. */
  | { readonly m: 'port'; readonly proto: L4; readonly from: number; readonly to?: number }
  /** A named port: (daddr, protocol, port) in the destination pods' named-port set. */
  | { readonly m: 'namedPort'; readonly family: Family; readonly set: string }
  /** (first address, the other address) in a set of pairs: a pod reaching itself. */
  | { readonly m: 'pair'; readonly family: Family; readonly first: AddrField; readonly set: string }
  | { readonly m: 'ct'; readonly states: readonly CtState[] }
  /** A TCP packet whose SYN/FIN/RST/ACK flags are not exactly SYN. */
  | { readonly m: 'tcpNotSyn' }
  /** The source is an address of this host (`fib saddr type local`). */
  | { readonly m: 'srcLocal' }
  /** Strict reverse-path check fails: no route back to the source through the input interface. */
  | { readonly m: 'rpfMissing' }
  /** The input interface matches a glob ("moat*"). */
  | { readonly m: 'iif'; readonly glob: string }
  /** ICMPv6 of these types: names (`nd-router-advert`) or one numeric range ("133-137"). */
  | { readonly m: 'icmpv6'; readonly types: readonly string[] }
  | { readonly m: 'hoplimit'; readonly value: number }
  // The bridge family (the source check of bridged pod ports).
  | { readonly m: 'etherType'; readonly type: 'ip' | 'arp' | 'ip6' }
  /** The input port is in a set of interface names. */
  | { readonly m: 'iifIn'; readonly set: string }
  /** (input port, the frame's source MAC / IPv4 / ARP sender / IPv6) is (not) in a binding set. */
  | {
      readonly m: 'bind';
      readonly what: 'mac' | 'v4' | 'arp' | 'v6';
      readonly set: string;
      readonly neg?: true;
    }
  /** The ARP sender address is this one (0.0.0.0: an RFC 5227 probe). */
  | { readonly m: 'arpSender'; readonly ip: string };

export type Action =
  | { readonly a: 'accept' }
  | { readonly a: 'drop' }
  /** Back to the calling chain (bridge: the frame goes on). */
  | { readonly a: 'return' }
  | { readonly a: 'jump'; readonly chain: string }
  | { readonly a: 'goto'; readonly chain: string }
  /** Look the address up in a verdict map; no element: the next rule. */
  | { readonly a: 'dispatch'; readonly family: Family; readonly field: AddrField; readonly map: string };

export interface FlowLogStmt {
  /** The shared rate limit; over it, the rule does not match. */
  readonly limit: string;
  readonly prefix: string;
  readonly group: number;
}

export interface Rule {
  readonly match: readonly Match[];
  /** A named counter the rule counts into (per policy rule, for metrics and flow-log ids). */
  readonly counter?: string;
  readonly log?: FlowLogStmt;
  readonly action?: Action;
}

export const ACCEPT: Action = { a: 'accept' };
export const DROP: Action = { a: 'drop' };
export const RETURN: Action = { a: 'return' };
export const jumpTo = (chain: string): Action => ({ a: 'jump', chain });
export const gotoChain = (chain: string): Action => ({ a: 'goto', chain });

export function rule(match: readonly Match[], action?: Action, counter?: string): Rule {
  return {
    match,
    ...(counter !== undefined ? { counter } : {}),
    ...(action !== undefined ? { action } : {}),
  };
}

/** The chain a rule continues in (jump or goto); undefined for any other action. */
export function targetOf(r: Rule): string | undefined {
  return r.action?.a === 'jump' || r.action?.a === 'goto' ? r.action.chain : undefined;
}

/** Every set or map a rule reads. */
export function setsOf(r: Rule): string[] {
  const out: string[] = [];
  for (const m of r.match) {
    if ('set' in m) out.push(m.set);
  }
  if (r.action?.a === 'dispatch') out.push(r.action.map);
  return out;
}

const IP = { 4: 'ip', 6: 'ip6' } as const;
const NFPROTO = { 4: 'ipv4', 6: 'ipv6' } as const;
const OTHER: Record<AddrField, AddrField> = { saddr: 'daddr', daddr: 'saddr' };

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '')}"`;
}

function nftMatch(m: Match): string {
  switch (m.m) {
    case 'addr':
      return `${IP[m.family]} ${m.field} ${m.neg === true ? '!= ' : ''}@${m.set}`;
    case 'cidr':
      return `${IP[m.family]} ${m.field} ${m.neg === true ? '!= ' : ''}${m.cidr}`;
    case 'family':
      return `meta nfproto ${NFPROTO[m.family]}`;
    case 'proto':
      return `meta l4proto ${m.proto}`;
    case 'port':
      return `${m.proto} dport ${m.from}${m.to !== undefined ? `-${m.to}` : ''}`;
    case 'namedPort':
      return `${IP[m.family]} daddr . meta l4proto . th dport @${m.set}`;
    case 'pair':
      return `${IP[m.family]} ${m.first} . ${IP[m.family]} ${OTHER[m.first]} @${m.set}`;
    case 'ct':
      return `ct state ${m.states.join(',')}`;
    case 'tcpNotSyn':
      return 'tcp flags & (fin|syn|rst|ack) != syn';
    case 'srcLocal':
      return 'fib saddr type local';
    case 'rpfMissing':
      return 'fib saddr . iif oif missing';
    case 'iif':
      return `iifname ${quote(m.glob)}`;
    case 'icmpv6':
      return `icmpv6 type ${m.types.length === 1 ? m.types[0]! : `{ ${m.types.join(', ')} }`}`;
    case 'hoplimit':
      return `ip6 hoplimit ${m.value}`;
    case 'etherType':
      return `ether type ${m.type}`;
    case 'iifIn':
      return `iifname @${m.set}`;
    case 'bind': {
      const field = { mac: 'ether saddr', v4: 'ip saddr', arp: 'arp saddr ip', v6: 'ip6 saddr' }[m.what];
      return `iifname . ${field} ${m.neg === true ? '!= ' : ''}@${m.set}`;
    }
    case 'arpSender':
      return `arp saddr ip ${m.ip}`;
  }
}

function nftAction(a: Action): string {
  switch (a.a) {
    case 'accept':
    case 'drop':
    case 'return':
      return a.a;
    case 'jump':
    case 'goto':
      return `${a.a} ${a.chain}`;
    case 'dispatch':
      return `${IP[a.family]} ${a.field} vmap @${a.map}`;
  }
}

const rendered = new WeakMap<Rule, string>();

/** One rule as an nft statement list, exactly as `nft list` prints it back (memoised per rule). */
export function nftRule(r: Rule): string {
  let s = rendered.get(r);
  if (s === undefined) {
    const parts = r.match.map(nftMatch);
    if (r.counter !== undefined) parts.push(`counter name ${r.counter}`);
    if (r.log !== undefined)
      parts.push(`limit name ${quote(r.log.limit)} log prefix ${quote(r.log.prefix)} group ${r.log.group}`);
    if (r.action !== undefined) parts.push(nftAction(r.action));
    s = parts.join(' ');
    rendered.set(r, s);
  }
  return s;
}
