// Ruleset diffs: the incremental nft transaction between what the kernel holds and what it should
// hold, and the addresses whose conntrack entries a change may have invalidated. Pure.
import { parseIP } from '../model/cidr.js';
import { setDelta } from './delta.js';
import { setsOf, targetOf } from './rule.js';
import type { NftChain, NftSet, Ruleset } from './model.js';
import { renderAddElements, renderChainHeader, tableRef } from './render.js';

export interface Transaction {
  /** nft script; empty when nothing changed. */
  readonly script: string;
  /** Number of nft commands in the script. */
  readonly commands: number;
}

/**
 * Full replacement is required when the shape of base chains or the type of a set changes, or the
 * bridge table comes or goes.
 */
export function needsFullReplace(from: Ruleset, to: Ruleset): boolean {
  if ((from.bridge === undefined) !== (to.bridge === undefined)) return true;
  if (from.bridge !== undefined && to.bridge !== undefined && needsFullReplace(from.bridge, to.bridge)) {
    return true;
  }
  if (from.table !== to.table || from.family !== to.family) return true;
  // Limits (the flow log's) are created with the table; a changed rate or burst is rare.
  const limits = (rs: Ruleset) => JSON.stringify(rs.limits ?? []);
  if (limits(from) !== limits(to)) return true;
  const hooks = (rs: Ruleset) =>
    rs.chains
      .filter((c) => c.base !== undefined)
      .map((c) => `${c.name}:${c.base!.hook}:${c.base!.priority}`)
      .join(',');
  if (hooks(from) !== hooks(to)) return true;
  const fromSets = new Map(from.sets.map((s) => [s.name, s]));
  for (const s of to.sets) {
    const o = fromSets.get(s.name);
    if (o && (o.type !== s.type || o.valueType !== s.valueType || o.flags.join(',') !== s.flags.join(','))) {
      return true;
    }
  }
  return false;
}

function sameRules(a: NftChain, b: NftChain): boolean {
  if (a === b || a.rules === b.rules) return true;
  return a.rules.length === b.rules.length && a.rules.every((r, i) => r === b.rules[i]);
}

/** Chunked `delete element` by key (a map element is deleted by its key alone). */
function renderDeleteKeys(rs: Ruleset, set: string, keys: readonly string[]): string {
  return renderAddElements(
    rs,
    set,
    keys.map((key) => ({ key })),
    'delete',
  );
}

function count(script: string): number {
  let n = 0;
  for (const line of script.split('\n')) if (line.trim() !== '') n++;
  return n;
}

function setDecl(rs: Ruleset, s: NftSet): string {
  const kind = s.valueType === undefined ? 'set' : 'map';
  const type = s.valueType === undefined ? s.type : `${s.type} : ${s.valueType}`;
  const flags = s.flags.length > 0 ? ` flags ${s.flags.join(',')};` : '';
  const comment = s.comment !== undefined ? ` comment "${s.comment}";` : '';
  return `add ${kind} ${tableRef(rs)} ${s.name} { type ${type};${flags}${comment} }\n`;
}

function chainRules(rs: Ruleset, ch: NftChain): string {
  let out = '';
  for (const r of ch.rules) out += `add rule ${tableRef(rs)} ${ch.name} ${r}\n`;
  return out;
}

/**
 * The incremental transaction from `from` (in the kernel) to `to`. Order matters inside the one
 * transaction: create what is new, rewrite what changed, then drop references before deleting the
 * objects they referred to.
 */
export function diffRulesets(from: Ruleset, to: Ruleset): Transaction {
  let out = diffTable(from, to);
  // Both tables in one transaction (needsFullReplace covers a bridge table that comes or goes).
  if (from.bridge !== undefined && to.bridge !== undefined) out += diffTable(from.bridge, to.bridge);
  return { script: out, commands: count(out) };
}

function diffTable(from: Ruleset, to: Ruleset): string {
  const t = tableRef(to);
  let out = '';
  const fromCounters = new Set(from.counters.map((c) => c.name));
  const toCounters = new Set(to.counters.map((c) => c.name));
  const fromSets = new Map(from.sets.map((s) => [s.name, s]));
  const toSets = new Map(to.sets.map((s) => [s.name, s]));
  const fromChains = new Map(from.chains.map((c) => [c.name, c]));
  const toChains = new Map(to.chains.map((c) => [c.name, c]));

  for (const c of to.counters) if (!fromCounters.has(c.name)) out += `add counter ${t} ${c.name}\n`;
  for (const s of to.sets) if (!fromSets.has(s.name)) out += setDecl(to, s);
  // Chains first empty, so rules may jump between new chains in any order.
  for (const ch of to.chains) {
    if (fromChains.has(ch.name)) continue;
    const comment = ch.comment !== undefined ? ` comment "${ch.comment}";` : '';
    const header = ch.base !== undefined ? ` ${renderChainHeader(ch)}` : '';
    out += `add chain ${t} ${ch.name} {${header}${comment} }\n`;
  }
  for (const ch of to.chains) if (!fromChains.has(ch.name)) out += chainRules(to, ch);
  for (const ch of to.chains) {
    const old = fromChains.get(ch.name);
    if (old && !sameRules(old, ch)) out += `flush chain ${t} ${ch.name}\n${chainRules(to, ch)}`;
  }
  // Elements: deletions before additions, so a map element whose verdict changed is replaced.
  for (const s of to.sets) {
    const old = fromSets.get(s.name);
    if (!old) {
      out += renderAddElements(to, s.name, s.elements);
      continue;
    }
    const { del, add } = setDelta(old, s);
    out += renderDeleteKeys(to, s.name, del);
    out += renderAddElements(to, s.name, add);
  }
  // Removed chains: drop their rules (and so their references), then the chains themselves.
  const gone = from.chains.filter((c) => !toChains.has(c.name));
  for (const ch of gone) if (ch.rules.length > 0) out += `flush chain ${t} ${ch.name}\n`;
  for (const ch of gone) out += `delete chain ${t} ${ch.name}\n`;
  for (const s of from.sets) {
    if (!toSets.has(s.name)) out += `delete ${s.valueType === undefined ? 'set' : 'map'} ${t} ${s.name}\n`;
  }
  for (const c of from.counters) if (!toCounters.has(c.name)) out += `delete counter ${t} ${c.name}\n`;
  return out;
}

export interface ConntrackTarget {
  /** 'src': entries whose original source is the address; 'reply-src': whose reply source is. */
  readonly field: 'src' | 'reply-src';
  readonly address: string;
}

/** Admin policy chains (compile-admin.ts), whose Deny and Pass rules may stop admitting a flow. */
const ADMIN_POLICY_CHAIN = /^a[ie]_/;

/** The chain a verdict map element sends to ("goto in_x", "jump bin_x"). */
function elementTarget(value: string | undefined): string | undefined {
  return value === undefined ? undefined : /^(?:jump|goto) (\S+)$/.exec(value)?.[1];
}

/**
 * Addresses whose established flows a change may have stopped allowing (conservative):
 * - a pod newly isolated, or dispatched to another isolation chain, or whose chain (or a policy
 *   chain it jumps to) changed rules: all its flows in that direction;
 * - an address removed from a peer or named-port set, or added to a set an admin Deny or Pass rule
 *   matches: all flows from/to that address.
 * Ingress flows of a pod P are found by reply source P (also after service DNAT); egress flows by
 * original source P.
 */
export function conntrackTargets(from: Ruleset, to: Ruleset): ConntrackTarget[] {
  const fromChains = new Map(from.chains.map((c) => [c.name, c]));
  const toChains = new Map(to.chains.map((c) => [c.name, c]));
  const fromSets = new Map(from.sets.map((s) => [s.name, s]));
  const dirty = new Map<string, boolean>();
  const isDirty = (name: string, depth = 0): boolean => {
    const cached = dirty.get(name);
    if (cached !== undefined) return cached;
    const a = fromChains.get(name);
    const b = toChains.get(name);
    let d = !a || !b || !sameRules(a, b);
    if (!d && depth < 8)
      d = b!.body.some((r) => {
        const t = targetOf(r);
        return t !== undefined && isDirty(t, depth + 1);
      });
    dirty.set(name, d);
    return d;
  };
  // Existing chains whose rules (or the rules of chains they jump to) changed: every pod
  // dispatched to them is affected, not only pods whose map element changed.
  const anyDirty = to.chains.some((c) => fromChains.has(c.name) && isDirty(c.name));
  const denySets = new Set<string>();
  for (const c of to.chains) {
    if (!ADMIN_POLICY_CHAIN.test(c.name)) continue;
    for (const r of c.body) if (r.action?.a !== 'accept') for (const n of setsOf(r)) denySets.add(n);
  }
  const out = new Map<string, ConntrackTarget>();
  const push = (field: ConntrackTarget['field'], address: string) =>
    out.set(`${field} ${address}`, { field, address });
  for (const s of to.sets) {
    const old = fromSets.get(s.name);
    if (s.valueType === 'verdict') {
      const field = s.name.startsWith('ingress') ? 'reply-src' : 'src';
      const changed = old === undefined ? s.elements : setDelta(old, s).add;
      for (const e of changed) if (elementTarget(e.value) !== undefined) push(field, e.key);
      if (anyDirty) {
        for (const e of s.elements) {
          const target = elementTarget(e.value);
          if (target !== undefined && isDirty(target)) push(field, e.key);
        }
      }
      continue;
    }
    // An address removed from a peer or named-port set: all its flows. Added to a set that an
    // admin Deny or Pass rule matches: all its flows too (it may now be denied).
    if (old === undefined || old.valueType !== undefined) continue;
    const { del, add } = setDelta(old, s);
    const keys = denySets.has(s.name) ? [...del, ...add.map((e) => e.key)] : del;
    for (const key of keys) {
      const addr = key.split(' . ')[0]!;
      push('src', addr);
      push('reply-src', addr);
    }
  }
  return [...out.values()].sort((a, b) =>
    a.address === b.address ? (a.field < b.field ? -1 : 1) : a.address < b.address ? -1 : 1,
  );
}

/** Set names that rules reference, for tests and drift messages. */
export function referencedSets(rs: Ruleset): Set<string> {
  const out = new Set<string>();
  for (const ch of rs.chains) for (const r of ch.body) for (const s of setsOf(r)) out.add(s);
  return out;
}

export function addressFamily(addr: string): 4 | 6 | undefined {
  return parseIP(addr)?.family;
}
