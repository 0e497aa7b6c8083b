import type { LabelSelector, Labels, Requirement } from './types.js';

export const everything: LabelSelector = { matchLabels: {}, matchExpressions: [] };

export function isEmptySelector(s: LabelSelector): boolean {
  return Object.keys(s.matchLabels).length === 0 && s.matchExpressions.length === 0;
}

/** "The requirements are ANDed." matchLabels entries are In requirements with one value. */
export function matchesSelector(s: LabelSelector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(s.matchLabels)) {
    if (labels[k] !== v) return false;
  }
  for (const r of s.matchExpressions) {
    if (!matchesRequirement(r, labels)) return false;
  }
  return true;
}

export function matchesRequirement(r: Requirement, labels: Labels): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = labels[r.key];
  switch (r.operator) {
    case 'In':
      return has && v !== undefined && r.values.includes(v);
    case 'NotIn':
      // NotIn matches objects without the key as well.
      return !has || v === undefined || !r.values.includes(v);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
  }
}

/** Canonical text of a selector: equal selectors print equally (used for set sharing and messages). */
export function selectorKey(s: LabelSelector): string {
  const parts: string[] = [];
  for (const k of Object.keys(s.matchLabels).sort()) parts.push(`${k}=${s.matchLabels[k] ?? ''}`);
  const exprs = s.matchExpressions.map((r) => {
    const vals = [...r.values].sort().join(',');
    switch (r.operator) {
      case 'In':
        return `${r.key} in (${vals})`;
      case 'NotIn':
        return `${r.key} notin (${vals})`;
      case 'Exists':
        return r.key;
      case 'DoesNotExist':
        return `!${r.key}`;
    }
  });
  parts.push(...exprs.sort());
  return parts.join(',');
}

/** Human form, kubectl style; "<all>" for the empty selector. */
export function formatSelector(s: LabelSelector): string {
  const k = selectorKey(s);
  return k === '' ? '<all>' : k;
}

export function formatLabels(l: Labels): string {
  const keys = Object.keys(l).sort();
  return keys.length === 0 ? '<none>' : keys.map((k) => `${k}=${l[k] ?? ''}`).join(',');
}
