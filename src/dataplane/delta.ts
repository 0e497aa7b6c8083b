// Element deltas between two versions of one set, attached by the incremental compiler to the sets
// it produces, so that diffRulesets and conntrackTargets need not compare 10^4..10^5 elements per
// pod churn. A hint is only valid against the exact set object it was computed from (`base`).
import type { NftElement, NftSet } from './model.js';

export interface SetDelta {
  /** The previous version of the set the delta starts from. */
  readonly base: NftSet;
  /** Keys to delete (elements removed, or map elements whose value changed). */
  readonly del: readonly string[];
  /** Elements to add (new, or map elements with a new value). */
  readonly add: readonly NftElement[];
}

const hints = new WeakMap<NftSet, SetDelta>();

export function setDeltaHint(set: NftSet, delta: SetDelta): void {
  hints.set(set, delta);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sorted(xs: readonly NftElement[]): boolean {
  for (let i = 1; i < xs.length; i++) if (cmp(xs[i - 1]!.key, xs[i]!.key) >= 0) return false;
  return true;
}

/** The element delta from `from` to `to` (same set name): a hint when present, else a sorted merge. */
export function setDelta(from: NftSet, to: NftSet): { del: string[]; add: NftElement[] } {
  if (from === to || from.elements === to.elements) return { del: [], add: [] };
  const h = hints.get(to);
  if (h !== undefined && h.base === from) return { del: [...h.del], add: [...h.add] };
  const a = from.elements;
  const b = to.elements;
  const del: string[] = [];
  const add: NftElement[] = [];
  if (!sorted(a) || !sorted(b)) {
    const before = new Map(a.map((e) => [e.key, e.value]));
    const after = new Map(b.map((e) => [e.key, e.value]));
    for (const [k, v] of before) if (!after.has(k) || after.get(k) !== v) del.push(k);
    for (const e of b) if (!before.has(e.key) || before.get(e.key) !== e.value) add.push(e);
    return { del, add };
  }
  // Both element lists are sorted by key (the Ruleset's contract): one merge pass.
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && cmp(x.key, y.key) < 0)) {
      del.push(x!.key);
      i++;
    } else if (x === undefined || cmp(x.key, y.key) > 0) {
      add.push(y);
      j++;
    } else {
      if (x.value !== y.value) {
        del.push(x.key);
        add.push(y);
      }
      i++;
      j++;
    }
  }
  return { del, add };
}
