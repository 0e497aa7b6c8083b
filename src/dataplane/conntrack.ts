// Conntrack cleanup, planned in memory: the table is listed once (`conntrack -L`: one walk of the
// kernel's hash table, this netns's entries only), every entry of an address the change touched is
// judged like a NEW packet against the NEW ruleset, and only the entries it would drop are deleted.
// Each `conntrack -D` walks the whole hash table (~10 ms with 262,144 buckets, whatever the filter),
// so the plan uses as few filters as keep every admitted listed flow alive. Pure.
import { formatAddress, parseIP } from '../model/cidr.js';
import type { ConntrackTarget } from './diff.js';
import type { Ruleset } from './model.js';
import { simulator, type SimPacket } from './simulate.js';

export interface CtTuple {
  readonly src: string;
  readonly dst: string;
  readonly sport?: number;
  readonly dport?: number;
  /** ICMP and ICMPv6 (ctnetlink listings only): what identifies the flow instead of ports. */
  readonly icmp?: { readonly type: number; readonly code: number; readonly id: number };
}

/** One line of `conntrack -L`, or one entry of a ctnetlink dump (ctnetlink.ts). */
export interface CtEntry {
  readonly family: 4 | 6;
  /** Protocol name as conntrack prints it: tcp, udp, sctp, icmp, icmpv6, unknown, ... */
  readonly proto: string;
  readonly protonum: number;
  readonly orig: CtTuple;
  readonly reply: CtTuple;
  /** The conntrack zone, when not 0 (ctnetlink listings only). */
  readonly zone?: number;
  /** The kernel's id of the entry (ctnetlink listings only): a delete with it spares a successor. */
  readonly id?: number;
}

/** One `conntrack -D` filter, with the listed entries it deletes. */
export interface CtDeletion {
  /** Arguments after `conntrack`. */
  readonly args: readonly string[];
  /** e.g. "tcp 10.0.0.3 -> 10.0.0.2 port 80 (2 flows)". */
  readonly label: string;
  readonly entries: number;
}

export interface CtPlan {
  /** Entries whose original source or reply source is a target address. */
  readonly candidates: number;
  /** Candidates the new ruleset still admits: kept. */
  readonly kept: number;
  readonly deletions: readonly CtDeletion[];
  /** The candidates the new ruleset drops, each once: what an exact-tuple delete removes. */
  readonly dropped: readonly CtEntry[];
}

const v6canon = new Map<string, string>();

/** conntrack prints IPv4 canonically; IPv6 goes through the model's formatting (memoized). */
function canon(addr: string): string {
  if (!addr.includes(':')) return addr;
  let c = v6canon.get(addr);
  if (c === undefined) {
    const a = parseIP(addr);
    c = a ? formatAddress(a) : addr;
    if (v6canon.size > 100_000) v6canon.clear();
    v6canon.set(addr, c);
  }
  return c;
}

const KEYS = ['src=', 'dst=', 'sport=', 'dport='] as const;

/**
 * Parses `conntrack -L` output (default format); lines it cannot read are skipped. Written for
 * speed (a busy node lists 10^5 entries): a scan for the four keys, no regular expressions.
 */
export function parseConntrackList(text: string): CtEntry[] {
  const out: CtEntry[] = [];
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end);
    pos = end + 1;
    const e = parseLine(line);
    if (e !== undefined) out.push(e);
  }
  return out;
}

function parseLine(line: string): CtEntry | undefined {
  const m = /^(\S+)\s+(\d+)\s/.exec(line);
  if (m === null) return undefined;
  // The first src/dst/sport/dport are the original direction, the second ones the reply.
  const vals: [string[], string[], string[], string[]] = [[], [], [], []];
  let i = m[0].length;
  while (i < line.length) {
    let j = line.indexOf(' ', i);
    if (j < 0) j = line.length;
    if (j > i) {
      for (let k = 0; k < KEYS.length; k++) {
        if (line.startsWith(KEYS[k]!, i)) {
          vals[k]!.push(line.slice(i + KEYS[k]!.length, j));
          break;
        }
      }
    }
    i = j + 1;
  }
  const tuple = (n: number): CtTuple | undefined => {
    const src = vals[0][n];
    const dst = vals[1][n];
    if (src === undefined || dst === undefined) return undefined;
    const sport = vals[2][n];
    const dport = vals[3][n];
    return {
      src: canon(src),
      dst: canon(dst),
      ...(sport !== undefined ? { sport: Number(sport) } : {}),
      ...(dport !== undefined ? { dport: Number(dport) } : {}),
    };
  };
  const orig = tuple(0);
  const reply = tuple(1);
  if (orig === undefined || reply === undefined) return undefined;
  const family = orig.src.includes(':') ? 6 : /^\d+\.\d+\.\d+\.\d+$/.test(orig.src) ? 4 : undefined;
  if (family === undefined) return undefined;
  return { family, proto: m[1]!, protonum: Number(m[2]), orig, reply };
}

const SIM_PROTO: Record<string, SimPacket['l4proto']> = {
  tcp: 'tcp',
  udp: 'udp',
  sctp: 'sctp',
  icmp: 'icmp',
  icmpv6: 'icmp',
};

/**
 * What moat's postrouting chains see of the flow's original direction: the source before SNAT
 * (moat runs before srcnat) and the destination after DNAT, i.e. the reply's source and source port.
 * undefined for protocols the simulator does not model.
 */
function firstPacket(e: CtEntry, hook: SimPacket['hook'], saddrLocal: boolean): SimPacket | undefined {
  const l4proto = SIM_PROTO[e.proto];
  if (l4proto === undefined) return undefined;
  return {
    family: e.family,
    saddr: e.orig.src,
    daddr: e.reply.src,
    l4proto,
    ...(l4proto !== 'icmp' && e.reply.sport !== undefined ? { dport: e.reply.sport } : {}),
    hook,
    saddrLocal,
  };
}

/** The addresses of `ip -j address show` (canonical), or undefined when it cannot be read. */
export function parseIpAddrJson(text: string): Set<string> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(doc)) return undefined;
  const out = new Set<string>();
  for (const link of doc as { addr_info?: { local?: unknown }[] }[]) {
    for (const a of link.addr_info ?? []) {
      if (typeof a.local === 'string') out.add(canon(a.local));
    }
  }
  return out;
}

/** Addresses as text (rtnetlink's), canonical like parseIpAddrJson's. */
export function parseAddressList(addrs: readonly string[]): Set<string> {
  return new Set(addrs.map(canon));
}

interface Judged {
  readonly e: CtEntry;
  readonly drop: boolean;
}

/** Filters from coarse to fine for one target; the finest is a whole flow key. */
const LEVELS = 4;

/**
 * The `conntrack -D` filter (arguments after -D) of entry `e` for target `t` at `level`:
 *   0: every entry of the address;  1: + protocol;
 *   2: reply-src: + port after DNAT / src: + destination after DNAT;
 *   3: the flow key: every field moat's rules look at (and the original destination), so every
 *      entry it matches, listed or not, gets the same verdict.
 */
function filterOf(t: ConntrackTarget, e: CtEntry, level: number): { args: string[]; label: string } {
  const fam = ['-f', e.family === 4 ? 'ipv4' : 'ipv6'];
  const modelled = SIM_PROTO[e.proto] !== undefined;
  const proto = ['-p', modelled ? e.proto : String(e.protonum)];
  const ports = modelled && e.orig.dport !== undefined && e.reply.sport !== undefined;
  const port = ports ? ['--reply-port-src', String(e.reply.sport)] : [];
  const exact = ['-d', e.orig.dst, ...(ports ? ['--dport', String(e.orig.dport)] : [])];
  const via =
    e.orig.dst === e.reply.src && e.orig.dport === e.reply.sport
      ? ''
      : ` via ${e.orig.dst}${ports ? `:${e.orig.dport}` : ''}`;
  const pp = ports ? ` port ${e.reply.sport}` : '';
  if (t.field === 'reply-src') {
    const base = [...fam, '-r', e.reply.src];
    if (level === 0) return { args: base, label: `to ${e.reply.src}` };
    if (level === 1) return { args: [...base, ...proto], label: `${e.proto} to ${e.reply.src}` };
    if (level === 2)
      return { args: [...base, ...proto, ...port], label: `${e.proto} to ${e.reply.src}${pp}` };
    return {
      args: [...base, ...proto, ...port, '-s', e.orig.src, ...exact],
      label: `${e.proto} ${e.orig.src} -> ${e.reply.src}${pp}${via}`,
    };
  }
  const base = [...fam, '-s', e.orig.src];
  if (level === 0) return { args: base, label: `from ${e.orig.src}` };
  if (level === 1) return { args: [...base, ...proto], label: `${e.proto} from ${e.orig.src}` };
  if (level === 2)
    return {
      args: [...base, ...proto, '-r', e.reply.src],
      label: `${e.proto} ${e.orig.src} -> ${e.reply.src}`,
    };
  return {
    args: [...base, ...proto, '-r', e.reply.src, ...port, ...exact],
    label: `${e.proto} ${e.orig.src} -> ${e.reply.src}${pp}${via}`,
  };
}

/**
 * The deletions that leave no listed entry the new ruleset would drop, and delete no listed entry
 * it admits. Only entries of the targets are judged ("an established connection does not outlive
 * its permission"; the targets are every address whose permissions the change may have narrowed,
 * see conntrackTargets). An entry is dropped when a NEW packet of it would be dropped at either
 * hook moat uses (postrouting for forwarded and local-out traffic, input for pod -> own node).
 *
 * Each filter costs a walk of the kernel's table, so for each target the coarsest filter that
 * matches no admitted listed entry is used: one filter per address when all its flows go (as
 * before this planner), a flow key only where admitted and dropped flows share an address and
 * port. A coarse filter also matches flows opened between the listing and the deletion (a few ms
 * after the commit); a flow key matches only flows the new rules drop.
 */
export function planConntrackCleanup(
  entries: readonly CtEntry[],
  targets: readonly ConntrackTarget[],
  next: Ruleset,
  local?: ReadonlySet<string>,
): CtPlan {
  const sim = simulator(next);
  // A NEW packet's verdict depends on its addresses, protocol, port and hook, not on its source
  // port: flows of one client to one server (a connection pool) are judged once.
  const byKey = new Map<string, 'accept' | 'drop'>();
  const judge = (pkt: SimPacket): 'accept' | 'drop' => {
    const key = `${pkt.hook} ${pkt.saddrLocal === true ? 'l' : '-'} ${pkt.saddr} ${pkt.daddr} ${pkt.l4proto} ${pkt.dport ?? ''}`;
    let v = byKey.get(key);
    if (v === undefined) {
      v = sim(pkt).verdict;
      byKey.set(key, v);
    }
    return v;
  };
  const drops = (e: CtEntry): boolean => {
    try {
      // With the node's own addresses known, a flow to one of them was delivered locally (input);
      // one from one of them is the node's (`fib saddr type local`). Without, both hooks judge.
      const hooks =
        local === undefined
          ? (['postrouting', 'input'] as const)
          : local.has(e.reply.src)
            ? (['input'] as const)
            : (['postrouting'] as const);
      for (const hook of hooks) {
        const pkt = firstPacket(e, hook, local?.has(e.orig.src) === true);
        if (pkt === undefined || judge(pkt) === 'drop') return true;
      }
      return false;
    } catch {
      return true; // a rule the simulator cannot read: delete, as before this planner existed
    }
  };
  const bySrc = new Map<string, CtEntry[]>();
  const byReplySrc = new Map<string, CtEntry[]>();
  for (const e of entries) {
    for (const [m, a] of [
      [bySrc, e.orig.src],
      [byReplySrc, e.reply.src],
    ] as const) {
      const l = m.get(a);
      if (l === undefined) m.set(a, [e]);
      else l.push(e);
    }
  }
  const judged = new Map<CtEntry, Judged>();
  const verdict = (e: CtEntry): Judged => {
    let j = judged.get(e);
    if (j === undefined) {
      j = { e, drop: drops(e) };
      judged.set(e, j);
    }
    return j;
  };
  const covered = new Set<CtEntry>();
  const deletions: CtDeletion[] = [];
  const cover = (t: ConntrackTarget, group: readonly Judged[], level: number): void => {
    if (!group.some((j) => j.drop && !covered.has(j.e))) return;
    if (level === LEVELS - 1 || group.every((j) => j.drop)) {
      const f = filterOf(t, group[0]!.e, level);
      let n = 0;
      for (const j of group) {
        if (!covered.has(j.e)) n++;
        covered.add(j.e);
      }
      deletions.push({
        args: ['-D', ...f.args],
        label: `${f.label} (${n} flow${n === 1 ? '' : 's'})`,
        entries: n,
      });
      return;
    }
    const sub = new Map<string, Judged[]>();
    for (const j of group) {
      const k = filterOf(t, j.e, level + 1).args.join(' ');
      const l = sub.get(k);
      if (l === undefined) sub.set(k, [j]);
      else l.push(j);
    }
    for (const g of sub.values()) cover(t, g, level + 1);
  };
  const seen = new Set<string>();
  for (const t of targets) {
    const a = canon(t.address);
    if (seen.has(`${t.field} ${a}`)) continue;
    seen.add(`${t.field} ${a}`);
    const list = (t.field === 'src' ? bySrc : byReplySrc).get(a) ?? [];
    // Both families of a dual-stack address list never mix: an address has one family.
    cover(t, list.map(verdict), 0);
  }
  const candidates = judged.size;
  let kept = 0;
  const dropped: CtEntry[] = [];
  for (const j of judged.values()) {
    if (j.drop) dropped.push(j.e);
    else kept++;
  }
  deletions.sort((x, y) => (x.label < y.label ? -1 : x.label > y.label ? 1 : 0));
  return { candidates, kept, deletions, dropped };
}

/**
 * The label of an exact-tuple deletion, grouped like the flow-key filter's: "tcp 10.0.0.3 ->
 * 10.0.0.1 port 80" (plus " via ADDR:PORT" when DNAT changed the destination).
 */
export function flowLabel(e: CtEntry): string {
  const ports = SIM_PROTO[e.proto] !== undefined && e.orig.dport !== undefined && e.reply.sport !== undefined;
  const via =
    e.orig.dst === e.reply.src && e.orig.dport === e.reply.sport
      ? ''
      : ` via ${e.orig.dst}${ports ? `:${e.orig.dport}` : ''}`;
  return `${e.proto} ${e.orig.src} -> ${e.reply.src}${ports ? ` port ${e.reply.sport}` : ''}${via}`;
}
