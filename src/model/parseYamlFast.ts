// YAML text -> Trees from js-yaml's flat event stream (offsets into the text), ~10x faster than
// the `yaml` library's document model for large manifests, with the same trees and lines
// (parseYamlFast.test.ts checks that against parseYamlText). Plain scalars are resolved by the
// YAML 1.2 core schema exactly as the `yaml` library resolves them. Anything unusual (a syntax
// error, a tag, a duplicate key, a key that is not a scalar) returns undefined: the caller parses
// the text the precise way, which also reports errors with its own messages.
import {
  EVENT_ID,
  getScalarValue,
  parseEvents,
  SCALAR_STYLE_FOLDED_BLOCK,
  SCALAR_STYLE_LITERAL_BLOCK,
  SCALAR_STYLE_PLAIN,
  type Event,
} from 'js-yaml';
import type { ParsedDoc, Tree } from './parseYaml.js';

class Bail extends Error {}

const CORE_FIRST = new Set([...'0123456789+-.~nNtTfF'].map((c) => c.charCodeAt(0)));

/** A plain scalar as the YAML 1.2 core schema resolves it (the `yaml` library's regexes). */
function resolvePlain(s: string, line: number): Tree {
  // Every core-schema form starts with one of these (or is empty): most strings end here.
  if (s !== '' && !CORE_FIRST.has(s.charCodeAt(0))) return { t: 'str', line, v: s };
  if (/^(?:~|[Nn]ull|NULL)?$/.test(s)) return { t: 'null', line };
  if (/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/.test(s))
    return { t: 'bool', line, v: s[0] === 't' || s[0] === 'T' };
  if (/^0o[0-7]+$/.test(s)) return { t: 'num', line, v: parseInt(s.substring(2), 8) };
  if (/^[-+]?[0-9]+$/.test(s)) return { t: 'num', line, v: parseInt(s, 10) };
  if (/^0x[0-9a-fA-F]+$/.test(s)) return { t: 'num', line, v: parseInt(s.substring(2), 16) };
  if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)) {
    const v = s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? -Infinity : Infinity;
    return { t: 'num', line, v };
  }
  if (
    /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s) ||
    /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)
  )
    return { t: 'num', line, v: parseFloat(s) };
  return { t: 'str', line, v: s };
}

function keyText(t: Tree): string {
  switch (t.t) {
    case 'str':
      return t.v;
    case 'num':
    case 'bool':
      return String(t.v);
    case 'null':
      return '';
    default:
      throw new Bail(); // a collection as a key
  }
}

export function parseYamlFast(text: string): ParsedDoc[] | undefined {
  const docs: ParsedDoc[] = [];
  return streamYamlFast(text, (d) => docs.push(d)) ? docs : undefined;
}

/**
 * parseYamlFast one document at a time: each document is handed over as soon as its tree is
 * built, so the trees die young (with every tree alive at once, a large load spent most of its
 * time in the GC). js-yaml reads the whole stream in one call: cut at the `---` markers and read
 * piece by piece it took twice as long. False, perhaps after some documents, when the text needs
 * the precise way.
 */
export function streamYamlFast(text: string, each: (d: ParsedDoc) => void): boolean {
  let events: Event[];
  try {
    events = parseEvents(text, {});
  } catch {
    return false;
  }
  // Offsets grow through the stream, so one cursor counts the lines.
  let pos = 0;
  let line = 1;
  const lineAt = (offset: number): number => {
    for (; pos < offset && pos < text.length; pos++) if (text.charCodeAt(pos) === 10) line++;
    return line;
  };
  // A block scalar's node starts at its `|` or `>` header, the content on the lines after it: the
  // last non-blank character before the content is on the header's line.
  const headerOf = (ev: { valueStart: number; style: number }): number => {
    if (ev.style !== SCALAR_STYLE_LITERAL_BLOCK && ev.style !== SCALAR_STYLE_FOLDED_BLOCK)
      return ev.valueStart;
    let j = ev.valueStart - 1;
    while (j > pos && /\s/.test(text[j]!)) j--;
    // An explicit indentation indicator (`|2`): parsers differ on it at the top level.
    const header = text.slice(text.lastIndexOf('\n', j) + 1, j + 1);
    if (/[|>][-+]?[0-9]/.test(header)) throw new Bail();
    return j;
  };
  let k = 0;
  const anchors = new Map<string, Tree>();
  const name = (s: number, e: number) => text.slice(s, e);
  // One node from events[k] on; `at` is the line the Tree semantics give it (key or item line).
  const node = (at: number | undefined): Tree => {
    const ev = events[k++];
    if (ev === undefined) throw new Bail();
    let out: Tree;
    switch (ev.type) {
      case EVENT_ID.SCALAR: {
        if (ev.tagStart !== -1) throw new Bail();
        const l = at ?? lineAt(ev.style === SCALAR_STYLE_PLAIN ? ev.valueStart : headerOf(ev));
        const v = getScalarValue(text, ev);
        out = ev.style === SCALAR_STYLE_PLAIN ? resolvePlain(v, l) : { t: 'str', line: l, v };
        break;
      }
      case EVENT_ID.MAPPING: {
        if (ev.tagStart !== -1) throw new Bail();
        const l = at ?? lineAt(ev.start);
        const entries = new Map<string, Tree>();
        while (events[k]?.type !== EVENT_ID.POP) {
          const first = events[k];
          const kl = lineAt(
            first?.type === EVENT_ID.SCALAR
              ? first.valueStart
              : first?.type === EVENT_ID.MAPPING || first?.type === EVENT_ID.SEQUENCE
                ? first.start
                : pos,
          );
          const key = keyText(node(kl));
          if (entries.has(key)) throw new Bail();
          entries.set(key, node(kl));
        }
        k++;
        out = { t: 'map', line: l, entries };
        break;
      }
      case EVENT_ID.SEQUENCE: {
        if (ev.tagStart !== -1) throw new Bail();
        const l = at ?? lineAt(ev.start);
        const items: Tree[] = [];
        while (events[k]?.type !== EVENT_ID.POP) {
          // An empty item has no offset to take its line from.
          const next = events[k];
          if (next?.type === EVENT_ID.SCALAR && next.valueStart === -1) throw new Bail();
          items.push(node(undefined));
        }
        k++;
        out = { t: 'seq', line: l, items };
        break;
      }
      case EVENT_ID.ALIAS: {
        const target = anchors.get(name(ev.anchorStart, ev.anchorEnd));
        if (target === undefined) throw new Bail();
        return { ...target, line: at ?? line };
      }
      default:
        throw new Bail();
    }
    if (ev.anchorStart !== -1) anchors.set(name(ev.anchorStart, ev.anchorEnd), out);
    return out;
  };
  try {
    while (k < events.length) {
      const ev = events[k++]!;
      if (ev.type !== EVENT_ID.DOCUMENT) throw new Bail();
      anchors.clear();
      if (events[k]?.type === EVENT_ID.POP) {
        k++; // an empty document
        continue;
      }
      // A document that is only null (`---` and nothing) holds no object: left out, as the
      // loader leaves it out.
      const root = node(undefined);
      if (events[k++]?.type !== EVENT_ID.POP) throw new Bail();
      if (root.t !== 'null') each({ root });
    }
    return true;
  } catch (e) {
    if (e instanceof Bail) return false;
    throw e;
  }
}
