// The rule model printed for iptables + ipset (pure, deterministic): an `ipset restore` input that
// fills new sets and swaps them in, and `iptables-restore --noflush` / `ip6tables-restore --noflush`
// inputs that declare (and so flush) moat's own chains only. Rules grow with policies as in nft:
// pod addresses live in ipsets, and a verdict map becomes one set and one rule per target chain.
//
// Where the hooks go (all after kube-proxy's DNAT and before its SNAT): the pod-interface guard in
// raw PREROUTING (rpfilter lives there), the forward guard and egress in mangle FORWARD, ingress
// in mangle POSTROUTING, the node-egress check in mangle INPUT. moat's rules never end a built-in
// chain for others: an nft `accept` ends only moat's chain for that hook, so here an accept sets a
// mark bit and returns; each jump is followed by a return while the bit is set, and the hook's
// entry chain clears the bit before it goes on (as Calico and kube-router do with their marks).
import type { Family } from '../model/cidr.js';
import { shortHash } from './compile-common.js';
import type { NftChain, NftSet, Ruleset } from './model.js';
import type { Action, Rule } from './rule.js';

export interface IptablesOptions {
  /** The packet mark bit moat may use while it judges a packet (cleared before it leaves). */
  readonly markBit?: number;
  /**
   * "A pod reaching itself": `set` matches (source, destination) in a hash:net,net set; `rules`
   * writes one rule per local pod instead, for kernels without hash:net,net (the doctor probes it).
   */
  readonly selfPairs?: 'set' | 'rules';
}

export const DEFAULT_MARK_BIT = 0x40000;

/** A jump from a built-in chain to moat's entry chain; the applier inserts each once, first. */
export interface HookJump {
  readonly table: 'raw' | 'mangle';
  readonly builtin: 'PREROUTING' | 'FORWARD' | 'INPUT' | 'POSTROUTING';
  readonly target: string;
}

export interface IpsetDef {
  readonly name: string;
  /** "hash:ip family inet" and so on. */
  readonly type: string;
  readonly elements: readonly string[];
}

export interface IptablesRuleset {
  readonly sets: readonly IpsetDef[];
  /** iptables-restore inputs per family. */
  readonly v4: string;
  readonly v6: string;
  readonly hooks: readonly HookJump[];
  /** moat's chain names, per table (every one declared in both families). */
  readonly chains: Readonly<Record<'raw' | 'mangle', readonly string[]>>;
}

/** Which built-in hook each nft base chain becomes. */
const BASE: Record<string, { table: 'raw' | 'mangle'; builtin: HookJump['builtin'] }> = {
  guard: { table: 'raw', builtin: 'PREROUTING' },
  forward_guard: { table: 'mangle', builtin: 'FORWARD' },
  egress: { table: 'mangle', builtin: 'FORWARD' },
  ingress: { table: 'mangle', builtin: 'POSTROUTING' },
  egress_node: { table: 'mangle', builtin: 'INPUT' },
};

export const ACCEPT_CHAIN = 'MOAT-ACCEPT';

export class IptablesRenderError extends Error {
  override readonly name = 'IptablesRenderError';
}

/** moat's name for a chain: MOAT-<nft name>, hashed to fit iptables' 28 characters. */
export function iptChain(name: string): string {
  const full = `MOAT-${name}`;
  return full.length <= 28 ? full : `MOAT-${name.slice(0, 10)}-${shortHash(name).slice(0, 12)}`;
}

/** moat's name for a set: moat-<nft name>, hashed to fit ipset's 31 characters. */
export function ipsetName(name: string): string {
  const full = `moat-${name}`;
  return full.length <= 31 ? full : `moat-${name.slice(0, 12)}-${shortHash(name).slice(0, 12)}`;
}

const FAMILY = { 4: 'inet', 6: 'inet6' } as const;
const CT = {
  established: 'ESTABLISHED',
  related: 'RELATED',
  invalid: 'INVALID',
  new: 'NEW',
  untracked: 'UNTRACKED',
};
const ICMPV6_NAMES: Record<string, string> = {
  'nd-router-solicit': 'router-solicitation',
  'nd-router-advert': 'router-advertisement',
  'nd-neighbor-solicit': 'neighbour-solicitation',
  'nd-neighbor-advert': 'neighbour-advertisement',
  'nd-redirect': 'redirect',
};

function setType(s: NftSet): { type: string; convert: (key: string) => string } {
  const fam = s.type.startsWith('ipv6') ? 6 : 4;
  switch (s.type) {
    case 'ipv4_addr':
    case 'ipv6_addr':
      return {
        type: `hash:${s.flags.includes('interval') ? 'net' : 'ip'} family ${FAMILY[fam]}`,
        convert: (k) => k,
      };
    case 'ipv4_addr . inet_proto . inet_service':
    case 'ipv6_addr . inet_proto . inet_service':
      return {
        type: `hash:ip,port family ${FAMILY[fam]}`,
        convert: (k) => {
          const [a, p, port] = k.split(' . ');
          return `${a!},${p!}:${port!}`;
        },
      };
    case 'ipv4_addr . ipv4_addr':
    case 'ipv6_addr . ipv6_addr':
      return { type: `hash:net,net family ${FAMILY[fam]}`, convert: (k) => k.split(' . ').join(',') };
    default:
      throw new IptablesRenderError(`set ${s.name}: type "${s.type}" has no ipset form`);
  }
}

function withPrefix(cidr: string, f: Family): string {
  return cidr.includes('/') ? cidr : `${cidr}/${f === 4 ? 32 : 128}`;
}

function iface(glob: string): string {
  const star = glob.indexOf('*');
  if (star === -1) return glob;
  if (star !== glob.length - 1)
    throw new IptablesRenderError(`interface glob "${glob}": iptables matches only a trailing wildcard`);
  return `${glob.slice(0, -1)}+`;
}

export function renderIptables(rs: Ruleset, opts: IptablesOptions = {}): IptablesRuleset {
  if (rs.family !== 'inet')
    throw new IptablesRenderError(`table ${rs.table}: only the inet table has an iptables form`);
  const mark = `0x${(opts.markBit ?? DEFAULT_MARK_BIT).toString(16)}`;
  const defs = new Map(rs.sets.map((s) => [s.name, s]));
  const ipsets = new Map<string, IpsetDef>();
  const limits = new Map((rs.limits ?? []).map((l) => [l.name, l]));
  const setRef = (name: string): string => {
    const d = defs.get(name);
    if (d === undefined) throw new IptablesRenderError(`a rule reads set ${name}, which the ruleset lacks`);
    if (d.valueType === 'verdict') throw new IptablesRenderError(`map ${name} is read as a set`);
    const real = ipsetName(name);
    if (!ipsets.has(real)) {
      const t = setType(d);
      ipsets.set(real, { name: real, type: t.type, elements: d.elements.map((e) => t.convert(e.key)) });
    }
    return real;
  };
  // A set named by a hash of `key`. Dispatch sets are keyed by what they are for (map and target),
  // not by their members: a member joining or leaving is then an ipset add/del, not a new set and
  // a rewritten rule. Except sets are keyed by their contents (`generated`).
  const keyed = (kind: string, f: Family, type: string, key: string, elements: string[]): string => {
    const name = `moat-${kind}-${shortHash(`${f}\n${type}\n${key}`).slice(0, 16)}`;
    ipsets.set(name, { name, type: `${type} family ${FAMILY[f]}`, elements });
    return name;
  };
  const generated = (kind: string, f: Family, type: string, elements: string[]): string =>
    keyed(kind, f, type, elements.join('\n'), elements);
  const actionText = (a: Action): string => {
    switch (a.a) {
      case 'accept':
        return `-g ${ACCEPT_CHAIN}`;
      case 'drop':
        return '-j DROP';
      case 'return':
        return '-j RETURN';
      case 'jump':
        return `-j ${iptChain(a.chain)}`;
      case 'goto':
        return `-g ${iptChain(a.chain)}`;
      case 'dispatch':
        throw new IptablesRenderError('dispatch is rendered per target');
    }
  };
  /** While the accept bit is set after a jump, return to the caller. */
  const propagate = `-m mark --mark ${mark}/${mark} -j RETURN`;

  /** One rule for one family: its argument lists (ICMPv6 types expand), or [] when it cannot match. */
  const renderRule = (r: Rule, f: Family): string[][] => {
    const args: string[] = [];
    let proto: string | undefined;
    const needProto = (p: string): boolean => {
      if (proto === undefined) {
        proto = p;
        args.push('-p', p);
        return true;
      }
      return proto === p;
    };
    const cidrs: Record<'saddr' | 'daddr', { pos: string[]; neg: string[] }> = {
      saddr: { pos: [], neg: [] },
      daddr: { pos: [], neg: [] },
    };
    let icmpTypes: string[] | undefined;
    let pairs: string[] | undefined;
    for (const m of r.match) {
      switch (m.m) {
        case 'addr':
          if (m.family !== f) return [];
          args.push(
            '-m',
            'set',
            ...(m.neg === true ? ['!'] : []),
            '--match-set',
            setRef(m.set),
            m.field === 'saddr' ? 'src' : 'dst',
          );
          break;
        case 'cidr':
          if (m.family !== f) return [];
          cidrs[m.field][m.neg === true ? 'neg' : 'pos'].push(withPrefix(m.cidr, f));
          break;
        case 'family':
          if (m.family !== f) return [];
          break;
        case 'proto':
          if (m.proto === 'ipv6-icmp' && f === 4) return [];
          if (!needProto(m.proto)) return [];
          break;
        case 'port':
          if (!needProto(m.proto)) return [];
          args.push('--dport', m.to !== undefined ? `${m.from}:${m.to}` : String(m.from));
          break;
        case 'namedPort':
          if (m.family !== f) return [];
          args.push('-m', 'set', '--match-set', setRef(m.set), 'dst,dst');
          break;
        case 'pair':
          if (m.family !== f) return [];
          if (opts.selfPairs === 'rules') {
            const d = defs.get(m.set);
            if (d === undefined)
              throw new IptablesRenderError(`a rule reads set ${m.set}, which the ruleset lacks`);
            pairs = d.elements.map((e) => e.key.split(' . ')[0]!);
            break;
          }
          args.push('-m', 'set', '--match-set', setRef(m.set), m.first === 'saddr' ? 'src,dst' : 'dst,src');
          break;
        case 'ct':
          args.push('-m', 'conntrack', '--ctstate', m.states.map((s) => CT[s]).join(','));
          break;
        case 'tcpNotSyn':
          if (!needProto('tcp')) return [];
          args.push('!', '--syn');
          break;
        case 'srcLocal':
          args.push('-m', 'addrtype', '--src-type', 'LOCAL');
          break;
        case 'rpfMissing':
          args.push('-m', 'rpfilter', '--invert');
          break;
        case 'iif':
          args.push('-i', iface(m.glob));
          break;
        case 'icmpv6': {
          if (f === 4) return [];
          if (!needProto('ipv6-icmp')) return [];
          icmpTypes = m.types.flatMap((t) => {
            const range = /^(\d+)-(\d+)$/.exec(t);
            if (range === null) return [ICMPV6_NAMES[t] ?? t];
            const out: string[] = [];
            for (let n = Number(range[1]); n <= Number(range[2]); n++) out.push(String(n));
            return out;
          });
          break;
        }
        case 'hoplimit':
          if (f === 4) return [];
          args.push('-m', 'hl', '--hl-eq', String(m.value));
          break;
        case 'etherType':
        case 'iifIn':
        case 'bind':
        case 'arpSender':
          throw new IptablesRenderError(
            `a ${m.m} match belongs to the bridge table (ebtables), not iptables`,
          );
      }
    }
    for (const field of ['saddr', 'daddr'] as const) {
      const { pos, neg } = cidrs[field];
      const flag = field === 'saddr' ? '-s' : '-d';
      const dir = field === 'saddr' ? 'src' : 'dst';
      if (pos.length > 1)
        throw new IptablesRenderError(`a rule matches ${pos.length} prefixes of one address`);
      if (pos.length === 1 && neg.length === 0) args.push(flag, pos[0]!);
      else if (pos.length === 0 && neg.length === 1) args.push('!', flag, neg[0]!);
      else if (pos.length === 0 && neg.length > 1)
        args.push('-m', 'set', '!', '--match-set', generated('c', f, 'hash:net', [...neg].sort()), dir);
      else if (pos.length === 1)
        // "except": the block, minus the exceptions (ipset's most specific entry wins).
        args.push(
          '-m',
          'set',
          '--match-set',
          generated('c', f, 'hash:net', [pos[0]!, ...[...neg].sort().map((n) => `${n} nomatch`)]),
          dir,
        );
    }
    if (r.counter !== undefined) args.push('-m', 'comment', '--comment', `moat:${r.counter}`);
    if (r.log !== undefined) throw new IptablesRenderError('a log statement outside a flow-log chain');
    let variants = icmpTypes === undefined ? [args] : icmpTypes.map((t) => [...args, '--icmpv6-type', t]);
    if (pairs !== undefined) {
      const width = f === 4 ? 32 : 128;
      variants = pairs.flatMap((a) =>
        variants.map((v) => [...v, '-s', `${a}/${width}`, '-d', `${a}/${width}`]),
      );
    }
    return variants;
  };

  const lines = (ch: NftChain, f: Family): string[] => {
    const name = iptChain(ch.name);
    const out: string[] = [];
    const first = ch.body[0];
    if (first?.log !== undefined) {
      // fl_<counter>: [limit + log + verdict, count suppressed + verdict]. The limit is consulted
      // once per packet: over it the first rule counts and decides, else NFLOG and the verdict.
      const sup = ch.body[1];
      const limit = limits.get(first.log.limit);
      if (
        ch.body.length !== 2 ||
        sup?.counter === undefined ||
        sup.action === undefined ||
        first.action === undefined ||
        limit === undefined
      )
        throw new IptablesRenderError(`chain ${ch.name}: not a flow-log chain of two rules`);
      out.push(
        `-A ${name} -m hashlimit --hashlimit-above ${limit.rate}/sec --hashlimit-burst ${limit.burst} --hashlimit-name moat-${limit.name} -m comment --comment moat:${sup.counter} ${actionText(sup.action)}`,
        `-A ${name} -j NFLOG --nflog-group ${first.log.group} --nflog-prefix ${first.log.prefix}`,
        `-A ${name} ${actionText(first.action)}`,
      );
      return out;
    }
    for (const r of ch.body) {
      const a = r.action;
      if (a?.a === 'dispatch') {
        if (a.family !== f || r.match.length > 0) continue;
        const map = defs.get(a.map);
        if (map === undefined) throw new IptablesRenderError(`map ${a.map} is missing`);
        const byTarget = new Map<string, string[]>();
        for (const e of map.elements) {
          const v = e.value ?? '';
          byTarget.set(v, [...(byTarget.get(v) ?? []), e.key]);
        }
        for (const [v, keys] of [...byTarget].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
          const m = /^(jump|goto) (\S+)$/.exec(v);
          if (m === null) throw new IptablesRenderError(`map ${a.map}: element value "${v}"`);
          const set = keyed('d', f, 'hash:ip', `${a.map}\n${v}`, keys);
          out.push(
            `-A ${name} -m set --match-set ${set} ${a.field === 'saddr' ? 'src' : 'dst'} ${m[1] === 'jump' ? '-j' : '-g'} ${iptChain(m[2]!)}`,
          );
          if (m[1] === 'jump') out.push(`-A ${name} ${propagate}`);
        }
        continue;
      }
      for (const args of renderRule(r, f)) {
        const tail = a !== undefined ? ` ${actionText(a)}` : '';
        out.push(`-A ${name}${args.length > 0 ? ` ${args.join(' ')}` : ''}${tail}`);
        if (a?.a === 'jump') out.push(`-A ${name} ${propagate}`);
      }
    }
    return out;
  };

  const bases = rs.chains.filter((c) => c.base !== undefined);
  const hooks: HookJump[] = [];
  const entries = new Map<string, { table: 'raw' | 'mangle'; chains: NftChain[] }>();
  for (const b of [...bases].sort((x, y) => x.base!.priority - y.base!.priority)) {
    const h = BASE[b.name];
    if (h === undefined) throw new IptablesRenderError(`base chain ${b.name}: no iptables hook for it`);
    const target = `MOAT-${h.builtin}`;
    if (!entries.has(target)) {
      entries.set(target, { table: h.table, chains: [] });
      hooks.push({ table: h.table, builtin: h.builtin, target });
    }
    entries.get(target)!.chains.push(b);
  }
  const tableOf = (ch: NftChain) => (ch.base !== undefined ? BASE[ch.name]!.table : 'mangle');
  const chainsByTable: Record<'raw' | 'mangle', string[]> = { raw: [], mangle: [ACCEPT_CHAIN] };
  for (const [target, e] of entries) chainsByTable[e.table].push(target);
  for (const ch of rs.chains) chainsByTable[tableOf(ch)].push(iptChain(ch.name));

  const script = (f: Family): string => {
    const body: Record<'raw' | 'mangle', string[]> = { raw: [], mangle: [] };
    body.mangle.push(`-A ${ACCEPT_CHAIN} -j MARK --set-xmark ${mark}/${mark}`);
    for (const [target, e] of entries) {
      // An accept ends moat's chain of that hook only: clear the bit, and the next one judges.
      body[e.table].push(`-A ${target} -j MARK --set-xmark 0x0/${mark}`);
      for (const b of e.chains) {
        body[e.table].push(`-A ${target} -j ${iptChain(b.name)}`);
        body[e.table].push(`-A ${target} -m mark --mark ${mark}/${mark} -j MARK --set-xmark 0x0/${mark}`);
      }
    }
    for (const ch of rs.chains) body[tableOf(ch)].push(...lines(ch, f));
    let out = '';
    for (const t of ['raw', 'mangle'] as const) {
      if (chainsByTable[t].length === 0) continue;
      out += `*${t}\n`;
      for (const c of chainsByTable[t]) out += `:${c} - [0:0]\n`;
      for (const l of body[t]) out += `${l}\n`;
      out += 'COMMIT\n';
    }
    return out;
  };
  const v4 = script(4);
  const v6 = script(6);
  return {
    sets: [...ipsets.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    v4,
    v6,
    hooks,
    chains: chainsByTable,
  };
}

/**
 * The `ipset restore` input: every set is filled under a temporary name and swapped in, so a set
 * changes atomically; the real set is created first where it is missing.
 */
/** A set's capacity: room to grow, at least ipset's default. */
export function ipsetMaxElem(n: number): number {
  return Math.max(65536, 2 ** Math.ceil(Math.log2(n + 1)));
}

/**
 * `ipset restore` input that fills each set aside and swaps it in. A set in `existing` is not
 * created again: `create -exist` fails when its size differs, and the swap brings the new size.
 */
export function renderIpsetRestore(sets: readonly IpsetDef[], existing?: ReadonlySet<string>): string {
  let out = '';
  for (const s of sets) {
    const tmp = `moat-t-${shortHash(s.name).slice(0, 12)}`;
    const max = ipsetMaxElem(s.elements.length);
    if (existing?.has(s.name) !== true) out += `create ${s.name} ${s.type} maxelem ${max} -exist\n`;
    out += `create ${tmp} ${s.type} maxelem ${max} -exist\n`;
    out += `flush ${tmp}\n`;
    for (const e of s.elements) out += `add ${tmp} ${e}\n`;
    out += `swap ${tmp} ${s.name}\n`;
    out += `destroy ${tmp}\n`;
  }
  return out;
}
