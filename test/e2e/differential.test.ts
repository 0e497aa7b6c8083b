// Differential test: random clusters (namespaces, pods, NetworkPolicies and admin-tier policies
// from a seeded generator) enforced in one lab through the agent's DataplaneApplier, incrementally from
// round to round, and every pod pair probed with real packets on every port, TCP and UDP, IPv4 and IPv6. What the kernel
// lets through must be what the reference evaluator says, cell for cell.
//
// Replay a failure: MOAT_DIFF_SEED=<seed> MOAT_DIFF_ROUNDS=<n> node --test dist/test/e2e/differential.test.js
// (the failing round's manifests are also written to a file named in the failure message).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeMatrix, matrixToJson } from '../../src/analysis/matrix.js';
import type { DataplaneApplier } from '../../src/dataplane/index.js';
import { labApplier } from '../../src/lab/enforce.js';
import { Lab } from '../../src/lab/lab.js';
import { loadText } from '../../src/model/load.js';
import type { Protocol, Snapshot } from '../../src/model/types.js';
import { podKey } from '../../src/model/types.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { needsRoot, uniquePrefix } from './lab-util.js';
import {
  allCells,
  cellLabel,
  evaluateCell,
  flushConntrack,
  probeCells,
  seconds,
  type Cell,
} from './probe-util.js';
import { generateRound, POD_CIDRS, PORTS, Rng } from './random-cluster.js';

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${v}: want a non-negative integer`);
  return n;
}

const PROBES: readonly { port: number; protocol: Protocol }[] = PORTS.flatMap((port) =>
  (['TCP', 'UDP'] as const).map((protocol) => ({ port, protocol })),
);

/** Why the evaluator decided a cell as it did, for failure messages. */
function explain(snap: Snapshot, c: Cell): string {
  const pod = (k: string) => snap.pods.find((p) => podKey(p) === k)!;
  const v = evaluate(snap, {
    src: { kind: 'pod', pod: pod(c.from) },
    dst: { kind: 'pod', pod: pod(c.to) },
    port: c.port,
    protocol: c.protocol,
    family: c.family,
  });
  const side = (s: typeof v.egress) =>
    `${s.direction} ${s.allowed ? 'allowed' : 'denied'} (${s.reason}` +
    `${s.isolatedBy.length > 0 ? `; isolated by ${s.isolatedBy.map((p) => `${p.namespace}/${p.name}`).join(', ')}` : ''})`;
  return `${side(v.egress)}, ${side(v.ingress)}`;
}

for (const backend of ['nftables', 'iptables'] as const)
  test(
    `differential: random clusters in the lab, packets agree with the evaluator (${backend})`,
    { skip: needsRoot },
    async (t) => {
      const seed = envInt('MOAT_DIFF_SEED', (Date.now() ^ (process.pid << 16)) >>> 0);
      const rounds = envInt('MOAT_DIFF_ROUNDS', 6);
      const replay = `MOAT_DIFF_SEED=${seed} MOAT_DIFF_ROUNDS=${rounds}`;
      t.diagnostic(`seed ${seed}, ${rounds} rounds (replay with ${replay})`);
      const rng = new Rng(seed);
      const t0 = Date.now();
      let lab: Lab | undefined;
      let applier: DataplaneApplier | undefined;
      let cellsProbed = 0;
      const flipped: string[] = [];
      try {
        for (let round = 0; round < rounds; round++) {
          // Generate first, always: round N of a seed is the same cluster whatever failed before.
          const gen = generateRound(rng, true);
          await t.test(`round ${round}`, async (rt) => {
            const file = `differential-seed-${seed}-round-${round}.yaml`;
            const loaded = loadText(gen.yaml, file);
            assert.deepEqual(
              loaded.problems.map((p) => `${p.line}: ${p.object} ${p.field}: ${p.message}`),
              [],
              `the generator wrote invalid manifests:\n${gen.yaml}`,
            );
            if (lab === undefined) {
              lab = await Lab.create(loaded.snapshot, {
                prefix: uniquePrefix(),
                probeTimeoutMs: 1000,
                podCidrs: POD_CIDRS,
              });
              applier = labApplier(lab, undefined, 0, backend);
            }
            const snap = (await lab.update(loaded.snapshot)).snapshot;
            const applied = await applier!.apply(snap);
            const ctOther = applied.conntrackErrors.filter((e) => !/such conntrack doesn't exist/.test(e));
            assert.deepEqual(ctOther, [], 'conntrack cleanup');
            await flushConntrack(lab);

            const pods = snap.pods.map(podKey).sort();
            const cells = allCells(pods, PROBES, [4, 6]);
            const want = new Map(cells.map((c) => [c, evaluateCell(snap, c)]));
            // The matrix the CLI prints is the evaluator's too (computeMatrix uses IPv4 for these pods),
            // with admin policies too: its classes take every tier's inputs into account.
            const matrix = matrixToJson(computeMatrix(snap, { ports: PROBES }));
            for (const c of cells) {
              if (c.family !== 4) continue;
              const m = matrix.probes.find((p) => p.port === c.port && p.protocol === c.protocol);
              assert.equal(
                m?.allowed[c.from]?.[c.to],
                want.get(c),
                `computeMatrix vs evaluate: ${cellLabel(c)}`,
              );
            }

            const obs = await probeCells(lab, cells, { shouldPass: (c) => want.get(c) === true });
            cellsProbed += obs.length;
            for (const o of obs) if (o.flipped) flipped.push(`round ${round}: ${cellLabel(o.cell)}`);
            const wrong = obs.filter((o) => o.allowed !== want.get(o.cell));
            const allowedCount = obs.filter((o) => o.allowed).length;
            rt.diagnostic(
              `${pods.length} pods, ${snap.policies.length} policies, ` +
                `${snap.adminPolicies?.length ?? 0} admin policies, apply ${applied.mode} ` +
                `(${applied.commands} commands), ${obs.length} cells (${allowedCount} allowed), ` +
                `${wrong.length} disagreements`,
            );
            if (wrong.length === 0) return;
            const path = join(tmpdir(), file);
            await writeFile(path, gen.yaml);
            assert.fail(
              [
                `round ${round} of seed ${seed}: the lab disagrees with the evaluator on ${wrong.length} of ${obs.length} cells`,
                `replay: ${replay}; manifests written to ${path}`,
                ...wrong
                  .slice(0, 40)
                  .map(
                    (o) =>
                      `  ${cellLabel(o.cell)}: evaluator ${want.get(o.cell) ? 'allowed' : 'denied'}, lab ${
                        o.allowed ? 'allowed' : 'denied'
                      } (${o.detail}); evaluator: ${explain(snap, o.cell)}`,
                  ),
                ...(wrong.length > 40 ? [`  ... and ${wrong.length - 40} more`] : []),
                'manifests:',
                gen.yaml,
              ].join('\n'),
            );
          });
        }
      } finally {
        await lab?.destroy();
        t.diagnostic(
          `${cellsProbed} cells probed in ${rounds} rounds, ${flipped.length} passed only on retry, ${seconds(t0)}`,
        );
        for (const f of flipped) t.diagnostic(`passed on retry: ${f}`);
      }
    },
  );
