// A small interpreter for the rules moat generates: what the kernel would do with a NEW packet.
// It understands exactly the statement forms compile.ts emits (and throws on anything else), so
// tests can compare the compiled ruleset with the reference evaluator flow by flow.
import { cidrContains, formatAddress, parseCidr, parseIP } from '../model/cidr.js';
import type { NftChain, NftHook, NftSet, Ruleset } from './model.js';

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

type Verdict = { kind: 'accept' } | { kind: 'drop' } | { kind: 'jump' | 'goto'; chain: string } | undefined;

const FIELDS = new Set([
  'saddr',
  'daddr',
  'l4proto',
  'nfproto',
  'dport',
  'type',
  'state',
  'hoplimit',
  'flags',
]);

function canon(tok: string): string {
  const a = parseIP(tok);
  return a ? formatAddress(a) : tok;
}

/** Memoised per literal (rules repeat a few hundred of them): the conntrack planner judges many packets. */
const literals = new Map<string, string | ReturnType<typeof parseCidr>>();
function literal<T extends string | ReturnType<typeof parseCidr>>(lit: string, make: (l: string) => T): T {
  let v = literals.get(lit);
  if (v === undefined) {
    if (literals.size > 50_000) literals.clear();
    v = make(lit);
    literals.set(lit, v);
  }
  return v as T;
}

/** A rule's tokens, memoised: the same rule strings are judged packet after packet. */
const tokenized = new Map<string, readonly string[]>();
function tokens(rule: string): readonly string[] {
  let t = tokenized.get(rule);
  if (t === undefined) {
    if (tokenized.size > 100_000) tokenized.clear();
    t = rule.split(' ');
    tokenized.set(rule, t);
  }
  return t;
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

  const field = (proto: string, name: string): string | undefined => {
    if (!FIELDS.has(name)) throw new Error(`simulate: unknown field ${proto} ${name}`);
    switch (proto) {
      case 'ip':
      case 'ip6':
        if ((proto === 'ip') !== (pkt.family === 4)) return undefined;
        if (name === 'hoplimit') return String(pkt.hoplimit ?? 64);
        return name === 'saddr' ? saddr : daddr;
      case 'meta':
        return name === 'l4proto'
          ? pkt.l4proto === 'icmp'
            ? pkt.family === 6
              ? 'ipv6-icmp'
              : 'icmp'
            : pkt.l4proto
          : pkt.family === 4
            ? 'ipv4'
            : 'ipv6';
      case 'ct':
        return pkt.ctState ?? 'new';
      case 'icmpv6':
        return undefined; // moat's test packets are never ND
      case 'th':
      case 'tcp':
      case 'udp':
      case 'sctp':
        if (proto !== 'th' && proto !== pkt.l4proto) return undefined;
        if (name === 'flags') return [...(pkt.tcpFlags ?? ['syn'])].sort().join('|');
        return pkt.dport === undefined ? undefined : String(pkt.dport);
      default:
        throw new Error(`simulate: unknown expression ${proto} ${name}`);
    }
  };

  const matchValue = (value: string, lit: string): boolean => {
    if (lit.includes(',')) return lit.split(',').some((l) => matchValue(value, l));
    if (lit.includes('/')) {
      const c = literal(`/${lit}`, () => parseCidr(lit));
      const a = parseIP(value);
      return typeof c !== 'string' && a !== undefined && cidrContains(c, a);
    }
    const range = /^(\d+)-(\d+)$/.exec(lit);
    if (range) return Number(value) >= Number(range[1]) && Number(value) <= Number(range[2]);
    return literal(lit, canon) === value;
  };

  /** Runs one rule: undefined when a match failed or the rule has no verdict. */
  const runRule = (rule: string): Verdict => {
    const t = tokens(rule);
    let i = 0;
    const hits: string[] = [];
    const logHits: string[] = [];
    const done = () => {
      counters.push(...hits);
      logs.push(...logHits);
    };
    while (i < t.length) {
      const tok = t[i]!;
      if (tok === 'accept' || tok === 'drop') {
        done();
        return { kind: tok };
      }
      if (tok === 'jump' || tok === 'goto') {
        done();
        return { kind: tok, chain: t[i + 1]! };
      }
      if (tok === 'counter' && t[i + 1] === 'name') {
        hits.push(t[i + 2]!);
        i += 3;
        continue;
      }
      if (tok === 'limit' && t[i + 1] === 'name') {
        // The flow log's rate limit: over it, the packet is not logged (same verdict either way).
        if (pkt.overLimit === true) return undefined;
        i += 3;
        continue;
      }
      if (tok === 'log' && t[i + 1] === 'prefix' && t[i + 3] === 'group') {
        logHits.push(t[i + 2]!.replace(/^"|"$/g, ''));
        i += 5;
        continue;
      }
      if (tok === 'fib') {
        // Only the node check's form: fib saddr type local.
        if (t.slice(i, i + 4).join(' ') !== 'fib saddr type local') {
          throw new Error(`simulate: unsupported fib expression in ${rule}`);
        }
        if (pkt.saddrLocal !== true) return undefined;
        i += 4;
        continue;
      }
      // expr [. expr]* [!=] (value | @set | vmap @map)
      const keys: (string | undefined)[] = [];
      for (;;) {
        let v = field(t[i]!, t[i + 1]!);
        i += 2;
        if (t[i] === '&') {
          // tcp flags & (a|b|...): the packet's flags within the mask.
          const mask = new Set(t[i + 1]!.replace(/[()]/g, '').split('|'));
          v =
            v === undefined
              ? undefined
              : v
                  .split('|')
                  .filter((x) => mask.has(x))
                  .sort()
                  .join('|');
          i += 2;
        }
        keys.push(v);
        if (t[i] !== '.') break;
        i++;
      }
      let negate = false;
      if (t[i] === '!=') {
        negate = true;
        i++;
      }
      const vtok = t[i++];
      if (vtok === undefined) throw new Error(`simulate: truncated rule: ${rule}`);
      if (keys.some((k) => k === undefined)) return undefined;
      const key = keys.join(' . ');
      if (vtok === 'vmap') {
        const m = sets.get(t[i++]!.slice(1));
        if (!m) throw new Error(`simulate: unknown map in ${rule}`);
        const v = m.get(key);
        if (v === undefined) return undefined;
        const [kind, chain] = v.split(' ');
        done();
        return kind === 'goto' || kind === 'jump'
          ? { kind, chain: chain! }
          : { kind: kind as 'accept' | 'drop' };
      }
      let ok: boolean;
      if (vtok.startsWith('@')) {
        const s = sets.get(vtok.slice(1));
        if (!s) throw new Error(`simulate: unknown set in ${rule}`);
        ok = s.has(key);
      } else {
        ok = matchValue(key, vtok);
      }
      if (ok === negate) return undefined;
    }
    done();
    return undefined;
  };

  /** Runs a chain; returns accept/drop, or undefined when it falls through (return). */
  const runChain = (name: string, depth: number): 'accept' | 'drop' | undefined => {
    const ch = chains.get(name);
    if (!ch) throw new Error(`simulate: unknown chain ${name}`);
    if (depth > 16) throw new Error('simulate: chain depth');
    for (const r of ch.rules) {
      const v = runRule(r);
      if (v === undefined) continue;
      if (v.kind === 'accept' || v.kind === 'drop') return v.kind;
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
