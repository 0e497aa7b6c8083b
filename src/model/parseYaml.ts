// YAML/JSON text -> plain trees that remember the line of every value, so a problem found anywhere
// in an object can be reported as FILE:LINE. JSON is YAML (1.2 is a superset) but has a faster
// parser of its own (parseJson.ts) giving the same trees.
import {
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  type Document,
  type Node as YNode,
} from 'yaml';
import { parseJsonTree, streamJson } from './parseJson.js';
import { parseYamlFast, streamYamlFast } from './parseYamlFast.js';

/**
 * A parsed value. `line` is where the value is introduced: the key's line for a mapping value,
 * the item's line for a sequence item, the node's line for a document root.
 */
export type Tree =
  | { readonly t: 'map'; readonly line: number; readonly entries: ReadonlyMap<string, Tree> }
  | { readonly t: 'seq'; readonly line: number; readonly items: readonly Tree[] }
  | { readonly t: 'str'; readonly line: number; readonly v: string }
  | { readonly t: 'num'; readonly line: number; readonly v: number }
  | { readonly t: 'bool'; readonly line: number; readonly v: boolean }
  | { readonly t: 'null'; readonly line: number };

export type MapTree = Extract<Tree, { t: 'map' }>;

export interface ParsedDoc {
  readonly root: Tree;
}

/**
 * A document handed over on its own. `items`, on a JSON List, parses the list's items one at a
 * time (the root holds an empty `items` list in their place); it throws NotFastJson when one is
 * not JSON the fast way reads.
 */
export interface StreamedDoc extends ParsedDoc {
  readonly items?: (each: (item: Tree) => void) => void;
}

export interface SyntaxError {
  readonly line: number;
  readonly message: string;
}

export interface ParsedText {
  readonly docs: readonly ParsedDoc[];
  readonly errors: readonly SyntaxError[];
}

/** Human name of a tree's type, for "expected a list, got a string". */
export function typeName(t: Tree): string {
  switch (t.t) {
    case 'map':
      return 'an object';
    case 'seq':
      return 'a list';
    case 'str':
      return 'a string';
    case 'num':
      return 'a number';
    case 'bool':
      return 'a boolean';
    case 'null':
      return 'null';
  }
}

/** Parses a multi-document YAML stream. Documents with syntax errors are dropped (and reported). */
export function parseText(text: string): ParsedText {
  // JSON (a `kubectl get -o json` dump) the fast way; what that does not accept goes on as YAML.
  if (JSON_START.test(text)) {
    const root = parseJsonTree(text);
    if (root !== undefined) return { docs: [{ root }], errors: [] };
  }
  // YAML from js-yaml's event stream when it can say it the same way; else the precise parser,
  // whose errors are the ones reported.
  const docs = parseYamlFast(text);
  if (docs !== undefined) return { docs, errors: [] };
  return parseYamlText(text);
}

/**
 * parseText's fast ways (JSON, then YAML from js-yaml's events) one document at a time, for
 * loading large inputs without keeping every tree alive. False, perhaps after some documents,
 * when both gave up: the caller undoes what it did with those documents and calls parseYamlText.
 */
export function streamText(text: string, each: (d: StreamedDoc) => void): boolean {
  if (JSON_START.test(text)) {
    const d = streamJson(text);
    if (d !== undefined) {
      each(d);
      return true;
    }
  }
  return streamYamlFast(text, each);
}

const JSON_START = /^\uFEFF?\s*[[{]/;

/** parseText without the JSON fast path. */
export function parseYamlText(text: string): ParsedText {
  const lc = new LineCounter();
  const docs: ParsedDoc[] = [];
  const errors: SyntaxError[] = [];
  const all = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false });
  const list: Document.Parsed[] = Array.isArray(all) ? all : [];
  // An error at end of input would point past the last line; report it on the last line instead.
  const lastLine = Math.max(1, text.endsWith('\n') ? text.split('\n').length - 1 : text.split('\n').length);
  if (!Array.isArray(all)) {
    for (const e of (all as { errors?: readonly Error[] }).errors ?? []) {
      errors.push({ line: 1, message: firstLine(e.message) });
    }
  }
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
        errors.push({ line: Math.min(lastLine, Math.max(1, pos.line)), message: firstLine(e.message) });
      }
      continue;
    }
    const contents = doc.contents as YNode | null;
    if (contents === null) continue; // empty document (e.g. a trailing ---)
    const line = (n: YNode | null | undefined, fallback: number): number =>
      n?.range ? Math.max(1, lc.linePos(n.range[0]).line) : fallback;
    const seen = new Set<YNode>();
    const convert = (n: unknown, at: number): Tree => {
      if (isAlias(n)) {
        const target = n.resolve(doc) as YNode | undefined;
        // An alias cycle cannot come out of the parser for plain data, but guard anyway.
        if (target === undefined || seen.has(target)) return { t: 'null', line: at };
        seen.add(target);
        const out = convert(target, at);
        seen.delete(target);
        return out;
      }
      if (isMap(n)) {
        const entries = new Map<string, Tree>();
        for (const item of n.items) {
          if (!isPair(item)) continue;
          const k = item.key as YNode | null;
          const keyText = isScalar(k) ? scalarText(k.value) : '';
          const kl = line(k, at);
          entries.set(keyText, convert(item.value, kl));
        }
        return { t: 'map', line: at, entries };
      }
      if (isSeq(n)) {
        return { t: 'seq', line: at, items: n.items.map((i) => convert(i, line(i as YNode, at))) };
      }
      if (isScalar(n)) {
        const v = n.value;
        if (typeof v === 'string') return { t: 'str', line: at, v };
        if (typeof v === 'number') return { t: 'num', line: at, v };
        if (typeof v === 'bigint') return { t: 'num', line: at, v: Number(v) };
        if (typeof v === 'boolean') return { t: 'bool', line: at, v };
        if (v === null || v === undefined) return { t: 'null', line: at };
        return { t: 'str', line: at, v: scalarText(v) };
      }
      return { t: 'null', line: at };
    };
    docs.push({ root: convert(contents, line(contents, 1)) });
  }
  return { docs, errors };
}

/** A scalar as JSON would make it a key: "1", "true", "" for null. */
function scalarText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return '';
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? s).trim();
}
