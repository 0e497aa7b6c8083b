// Shared by the conformance, differential and update e2e tests: probing many cells at once with
// real packets, in either address family, and forgetting conntrack state between scenarios.
import type { Family } from '../../src/model/cidr.js';
import type { Protocol, Snapshot } from '../../src/model/types.js';
import { podKey } from '../../src/model/types.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { mapLimit, run } from '../../src/lab/exec.js';
import type { Lab } from '../../src/lab/lab.js';

export interface Cell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly family: Family;
}

export interface Observation {
  readonly cell: Cell;
  readonly allowed: boolean;
  /** What the prober saw (connected, echo, refused, timeout, ...); "A, then B" after a retry. */
  readonly detail: string;
  /** The first attempt said denied, the retry allowed: a lost packet, or a flaky dataplane. */
  readonly flipped: boolean;
}

export interface ProbeCellsOptions {
  /** Probes in flight at once. */
  readonly concurrency?: number;
  /**
   * Cells whose first probe came back denied although this says they should pass are probed once
   * more with `retryTimeoutMs`, so that a datagram lost on a loaded machine is not read as a drop.
   * A cell that passes only on retry is reported (`flipped`), never hidden.
   */
  readonly shouldPass?: (c: Cell) => boolean;
  readonly retryTimeoutMs?: number;
}

export function cellLabel(c: Cell): string {
  return `${c.protocol}/${c.port} IPv${c.family} ${c.from} -> ${c.to}`;
}

/** Probes every cell (SCTP cells must be filtered out by the caller: there is no SCTP prober). */
export async function probeCells(
  lab: Lab,
  cells: readonly Cell[],
  opts: ProbeCellsOptions = {},
): Promise<Observation[]> {
  const first = await mapLimit(cells, opts.concurrency ?? 1024, (c) =>
    lab.probe(c.from, c.to, c.port, c.protocol, { family: c.family }),
  );
  const out: Observation[] = first.map((o, i) => {
    if (o.allowed === undefined) throw new Error(`lab did not probe ${cellLabel(cells[i]!)}: ${o.detail}`);
    return { cell: cells[i]!, allowed: o.allowed, detail: o.detail, flipped: false };
  });
  const retry = out
    .map((o, i) => ({ o, i }))
    .filter(({ o }) => !o.allowed && opts.shouldPass?.(o.cell) === true);
  await mapLimit(retry, 64, async ({ o, i }) => {
    const c = o.cell;
    const again = await lab.probe(c.from, c.to, c.port, c.protocol, {
      family: c.family,
      timeoutMs: opts.retryTimeoutMs ?? 3000,
    });
    out[i] = {
      cell: c,
      allowed: again.allowed === true,
      detail: `${o.detail}, then ${again.detail}`,
      flipped: again.allowed === true,
    };
  });
  return out;
}

/**
 * Forgets every connection the lab's node tracks. Each scenario must be judged by its own rules
 * alone: a UDP probe that reuses a source port of an earlier, allowed probe would otherwise ride
 * on that probe's conntrack entry (established flows are accepted before any policy is looked at).
 */
export async function flushConntrack(lab: Lab): Promise<void> {
  await run(['ip', 'netns', 'exec', lab.nodeNetns, 'conntrack', '-F']);
}

/** The reference evaluator's verdict for one pod-to-pod cell of a snapshot. */
export function evaluateCell(snap: Snapshot, c: Cell): boolean {
  const src = snap.pods.find((p) => podKey(p) === c.from);
  const dst = snap.pods.find((p) => podKey(p) === c.to);
  if (!src || !dst) throw new Error(`snapshot has no pod ${src ? c.to : c.from}`);
  return evaluate(snap, {
    src: { kind: 'pod', pod: src },
    dst: { kind: 'pod', pod: dst },
    port: c.port,
    protocol: c.protocol,
    family: c.family,
  }).allowed;
}

/** Every (from, to) cell of the given pods, per (port, protocol, family). */
export function allCells(
  pods: readonly string[],
  probes: readonly { port: number; protocol: Protocol }[],
  families: readonly Family[],
): Cell[] {
  return families.flatMap((family) =>
    probes.flatMap(({ port, protocol }) =>
      pods.flatMap((from) => pods.map((to) => ({ from, to, port, protocol, family }))),
    ),
  );
}

/** Elapsed seconds since t0 (Date.now()), for diagnostics. */
export function seconds(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)} s`;
}
