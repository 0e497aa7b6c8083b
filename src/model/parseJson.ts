// A JSON text -> Tree in one pass, with the same lines the YAML path gives (parseYaml.ts), ~10x
// faster than parsing JSON as YAML: a `kubectl get -o json` dump of 50,000 objects is one
// document. Anything it does not accept (a syntax error, a duplicate key, YAML that merely starts
// with "{") returns undefined and goes the YAML way, which reports the error.
import type { StreamedDoc, Tree } from './parseYaml.js';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Thrown when the text is not JSON the fast way accepts (also out of StreamedDoc.items). */
export class NotFastJson extends Error {}
const Fail = NotFastJson;

export function parseJsonTree(text: string): Tree | undefined {
  return parseJson(text, false)?.root;
}

/**
 * parseJsonTree for a List (`kind: List`, `PodList`, ...): its items are parsed one at a time when
 * the loader asks for them, so each item's tree dies young instead of the whole dump's trees
 * outliving a dozen scavenges (most of the time a 50,000-object dump took went to the GC).
 */
export function streamJson(text: string): StreamedDoc | undefined {
  return parseJson(text, true);
}

interface Span {
  start: number;
  line: number;
  /** Where its comma or closing bracket is. */
  end: number;
}

function parseJson(text: string, lazy: boolean): StreamedDoc | undefined {
  let i = 0;
  let line = 1;
  const n = text.length;
  const ws = (): void => {
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) line++;
      else if (c !== 32 && c !== 9 && c !== 13) return;
    }
  };
  const str = (): string => {
    // At the opening quote. JSON strings hold no raw control characters (so no newline).
    const start = i + 1;
    let j = start;
    let escaped = false;
    for (;;) {
      if (j >= n) throw new Fail();
      const c = text.charCodeAt(j);
      if (c === 34) break;
      if (c === 92) {
        escaped = true;
        j += 2;
        continue;
      }
      if (c < 32) throw new Fail();
      j++;
    }
    i = j + 1;
    if (!escaped) return text.slice(start, j);
    return JSON.parse(text.slice(start - 1, j + 1)) as string; // throws on a bad escape
  };
  // The top-level `items` list, when left for later: where each item starts, and the list's line.
  let spans: Span[] | undefined;
  let spansLine = 0;
  // From an opening bracket to past its closing one without building anything, noting where
  // each item starts. Strings hold no raw newlines, so every newline is a line.
  const skipList = (): Span[] => {
    const out: Span[] = [];
    i++;
    ws();
    if (text.charCodeAt(i) === 93) {
      i++;
      return out;
    }
    let depth = 0;
    out.push({ start: i, line, end: -1 });
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 34) {
        for (i++; i < n; i++) {
          const d = text.charCodeAt(i);
          if (d === 92) i++;
          else if (d === 34) break;
        }
      } else if (c === 123 || c === 91) depth++;
      else if (c === 125 || c === 93) {
        if (depth === 0) {
          out[out.length - 1]!.end = i++;
          return out;
        }
        depth--;
      } else if (c === 10) line++;
      else if (c === 44 && depth === 0) {
        out[out.length - 1]!.end = i++;
        ws();
        out.push({ start: i, line, end: -1 });
        i--;
      }
    }
    throw new Fail();
  };
  const value = (at: number, top = false): Tree => {
    const c = text.charCodeAt(i);
    if (c === 123) {
      i++;
      const entries = new Map<string, Tree>();
      ws();
      if (text.charCodeAt(i) === 125) {
        i++;
        return { t: 'map', line: at, entries };
      }
      for (;;) {
        if (text.charCodeAt(i) !== 34) throw new Fail();
        const keyLine = line;
        const key = str();
        if (entries.has(key)) throw new Fail(); // YAML reports duplicate keys
        ws();
        if (text.charCodeAt(i) !== 58) throw new Fail();
        i++;
        ws();
        if (top && key === 'items' && text.charCodeAt(i) === 91) {
          spansLine = keyLine;
          spans = skipList();
          entries.set(key, { t: 'seq', line: keyLine, items: [] });
        } else entries.set(key, value(keyLine));
        ws();
        const d = text.charCodeAt(i++);
        if (d === 125) return { t: 'map', line: at, entries };
        if (d !== 44) throw new Fail();
        ws();
      }
    }
    if (c === 91) {
      i++;
      const items: Tree[] = [];
      ws();
      if (text.charCodeAt(i) === 93) {
        i++;
        return { t: 'seq', line: at, items };
      }
      for (;;) {
        items.push(value(line));
        ws();
        const d = text.charCodeAt(i++);
        if (d === 93) return { t: 'seq', line: at, items };
        if (d !== 44) throw new Fail();
        ws();
      }
    }
    if (c === 34) return { t: 'str', line: at, v: str() };
    if (text.startsWith('true', i)) {
      i += 4;
      return { t: 'bool', line: at, v: true };
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return { t: 'bool', line: at, v: false };
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return { t: 'null', line: at };
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m === null) throw new Fail();
    i += m[0].length;
    return { t: 'num', line: at, v: Number(m[0]) };
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1;
    ws();
    const c = text.charCodeAt(i);
    if (c !== 123 && c !== 91) return undefined;
    const root = value(line, lazy);
    ws();
    if (i !== n) return undefined;
    if (spans === undefined || root.t !== 'map') return { root };
    const found = spans;
    // One item from its start: a value, then the comma or bracket skipList saw.
    const item = (s: Span): Tree => {
      i = s.start;
      line = s.line;
      try {
        const t = value(line);
        ws();
        if (i !== s.end) throw new Fail();
        return t;
      } catch (e) {
        throw e instanceof SyntaxError ? new Fail() : e;
      }
    };
    const kind = root.entries.get('kind');
    if (kind?.t === 'str' && kind.v.endsWith('List')) {
      return {
        root,
        items: (each) => {
          for (const s of found) each(item(s));
        },
      };
    }
    // Not a List: the items are part of the object after all.
    (root.entries as Map<string, Tree>).set('items', { t: 'seq', line: spansLine, items: found.map(item) });
    return { root };
  } catch (e) {
    if (e instanceof Fail || e instanceof SyntaxError) return undefined;
    throw e;
  }
}
