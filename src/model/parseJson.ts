// A JSON text -> Tree in one pass, with the same lines the YAML path gives (parseYaml.ts), ~10x
// faster than parsing JSON as YAML: a `kubectl get -o json` dump of 50,000 objects is one
// document. Anything it does not accept (a syntax error, a duplicate key, YAML that merely starts
// with "{") returns undefined and goes the YAML way, which reports the error.
import type { Tree } from './parseYaml.js';

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Fail extends Error {}

export function parseJsonTree(text: string): Tree | undefined {
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
  const value = (at: number): Tree => {
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
        entries.set(key, value(keyLine));
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
    const root = value(line);
    ws();
    return i === n ? root : undefined;
  } catch (e) {
    if (e instanceof Fail || e instanceof SyntaxError) return undefined;
    throw e;
  }
}
