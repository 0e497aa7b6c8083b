// Observed (lab) against expected (evaluator) matrices, cell by cell.
import type { MatrixJson } from '../analysis/matrix.js';
import type { Protocol } from '../model/types.js';

export interface Disagreement {
  readonly port: number;
  readonly protocol: Protocol;
  readonly from: string;
  readonly to: string;
  readonly expected: boolean;
  readonly observed: boolean;
}

export interface Comparison {
  /** Cells present in both matrices. */
  readonly cells: number;
  readonly agree: number;
  readonly disagreements: readonly Disagreement[];
  /** Probes ("PROTO/PORT") the expected matrix has and the observed one lacks (skipped). */
  readonly missing: readonly string[];
}

export function compareMatrices(observed: MatrixJson, expected: MatrixJson): Comparison {
  const disagreements: Disagreement[] = [];
  const missing: string[] = [];
  let cells = 0;
  for (const e of expected.probes) {
    const o = observed.probes.find((p) => p.port === e.port && p.protocol === e.protocol);
    if (!o) {
      missing.push(`${e.protocol}/${e.port}`);
      continue;
    }
    for (const from of expected.pods) {
      for (const to of expected.pods) {
        const want = e.allowed[from]?.[to];
        const got = o.allowed[from]?.[to];
        if (want === undefined || got === undefined) continue;
        cells++;
        if (want !== got) {
          disagreements.push({ port: e.port, protocol: e.protocol, from, to, expected: want, observed: got });
        }
      }
    }
  }
  return { cells, agree: cells - disagreements.length, disagreements, missing };
}

export function formatDisagreement(d: Disagreement): string {
  const word = (b: boolean): string => (b ? 'allowed' : 'denied');
  return `${d.protocol}/${d.port} ${d.from} -> ${d.to}: evaluator says ${word(d.expected)}, lab observed ${word(d.observed)}`;
}
