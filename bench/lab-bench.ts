// Lab timings (root): build 9 pods, enforce, probe 9 x 9 pods x ports 80,81 x TCP/UDP (324 probes),
// with no policy (all answer) and with deny-all (every probe between distinct pods waits out its
// timeout). Run: node dist/bench/lab-bench.js
import { computeMatrix, matrixToJson } from '../src/analysis/matrix.js';
import { compareMatrices } from '../src/lab/compare.js';
import { labApplier } from '../src/lab/enforce.js';
import { Lab } from '../src/lab/lab.js';
import { cport, netpol, ns, pod, sel, snapshot } from '../src/model/build.js';
import type { Snapshot } from '../src/model/types.js';

const ports = [cport(80), cport(80, 'UDP'), cport(81), cport(81, 'UDP')];
const pods = Array.from({ length: 9 }, (_, i) =>
  pod(`ns${i % 3}`, `p${i}`, { labels: { app: `a${i}` }, ports }),
);
const base = snapshot({ namespaces: [ns('ns0'), ns('ns1'), ns('ns2')], pods });
const denyAll: Snapshot = {
  ...base,
  policies: ['ns0', 'ns1', 'ns2'].map((n) => netpol(n, 'deny', { podSelector: sel() })),
};

async function main(): Promise<void> {
  for (const [name, s] of [
    ['no policy', base],
    ['deny-all', denyAll],
  ] as const) {
    const t0 = performance.now();
    const lab = await Lab.create(s, { prefix: 'moat-lab-bench' });
    const built = performance.now() - t0;
    try {
      const t1 = performance.now();
      await labApplier(lab).apply(lab.snapshot);
      const applied = performance.now() - t1;
      const m = await lab.probeMatrix();
      const cmp = compareMatrices(m.json, matrixToJson(computeMatrix(lab.snapshot)));
      console.log(
        `${name}: build ${built.toFixed(0)} ms, apply ${applied.toFixed(0)} ms, ` +
          `${m.outcomes.length} probes in ${m.elapsedMs} ms, ${cmp.agree}/${cmp.cells} cells agree`,
      );
    } finally {
      const t2 = performance.now();
      await lab.destroy();
      console.log(`${name}: teardown ${(performance.now() - t2).toFixed(0)} ms`);
    }
  }
}

await main();
