// Ruleset -> nft script text. The full script replaces the table atomically: `table` creates it
// if missing, `delete table` removes it, and the definition recreates it, all in one transaction.
import type { NftChain, NftCounter, NftElement, NftSet, Ruleset } from './model.js';

/** Elements per `add element` command: keeps single commands reasonably sized. */
const CHUNK = 2000;

export function tableRef(rs: { family: string; table: string }): string {
  return `${rs.family} ${rs.table}`;
}

export function renderElement(e: NftElement): string {
  return e.value === undefined ? e.key : `${e.key} : ${e.value}`;
}

export function renderCounter(c: NftCounter): string {
  return `\tcounter ${c.name} {\n\t}\n`;
}

/** The set declaration without elements (elements are added separately, after the chains exist). */
export function renderSetDecl(s: NftSet): string {
  const kind = s.valueType === undefined ? 'set' : 'map';
  const type = s.valueType === undefined ? s.type : `${s.type} : ${s.valueType}`;
  let out = `\t${kind} ${s.name} {\n\t\ttype ${type}\n`;
  if (s.flags.length > 0) out += `\t\tflags ${s.flags.join(',')}\n`;
  if (s.comment !== undefined) out += `\t\tcomment "${s.comment}"\n`;
  return `${out}\t}\n`;
}

export function renderChainHeader(ch: NftChain): string {
  if (ch.base === undefined) return '';
  return `type filter hook ${ch.base.hook} priority ${ch.base.priority}; policy accept;`;
}

export function renderChain(ch: NftChain): string {
  let out = `\tchain ${ch.name} {\n`;
  if (ch.base !== undefined) out += `\t\t${renderChainHeader(ch)}\n`;
  if (ch.comment !== undefined) out += `\t\tcomment "${ch.comment}"\n`;
  for (const r of ch.rules) out += `\t\t${r}\n`;
  return `${out}\t}\n`;
}

/** `add element` commands for the given elements of a set, chunked. */
export function renderAddElements(
  rs: Ruleset,
  set: string,
  elems: readonly NftElement[],
  verb = 'add',
): string {
  let out = '';
  for (let i = 0; i < elems.length; i += CHUNK) {
    const chunk = elems.slice(i, i + CHUNK).map(renderElement);
    out += `${verb} element ${tableRef(rs)} ${set} { ${chunk.join(', ')} }\n`;
  }
  return out;
}

/** The table definition: counters, sets, chains (no elements). */
export function renderTableBody(rs: Ruleset): string {
  let out = `table ${tableRef(rs)} {\n`;
  for (const l of rs.limits ?? []) {
    out += `\tlimit ${l.name} {\n\t\trate ${l.rate}/second burst ${l.burst} packets\n\t}\n`;
  }
  for (const c of rs.counters) out += renderCounter(c);
  for (const s of rs.sets) out += renderSetDecl(s);
  for (const ch of rs.chains) out += renderChain(ch);
  out += '}\n';
  return out;
}

/** The tables a ruleset replaces: its own and the bridge table of the same name. */
export function ownedTables(rs: { table: string }): string[] {
  return [`inet ${rs.table}`, `bridge ${rs.table}`];
}

/**
 * The full replacement: both tables moat owns are created if missing and deleted, then what the
 * ruleset defines is created again, in one transaction (a bridge table it no longer has is gone).
 */
export function renderNft(rs: Ruleset): string {
  let out = '';
  for (const t of ownedTables(rs)) out += `table ${t} {}\ndelete table ${t}\n`;
  for (const t of rs.bridge !== undefined ? [rs, rs.bridge] : [rs]) {
    out += renderTableBody(t);
    // Elements last: verdict-map elements refer to chains, which now exist.
    for (const s of t.sets) out += renderAddElements(t, s.name, s.elements);
  }
  return out;
}
