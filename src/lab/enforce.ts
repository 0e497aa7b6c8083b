// Enforcement in the lab is the agent's own code: NftApplier through a runner that executes inside
// a node namespace, driven by the same reconcile loop the DaemonSet runs; one per node.
import { DEFAULT_TABLE, NftApplier, netnsRunner, type DriftResult } from '../dataplane/index.js';
import {
  Reconciler,
  type Applied,
  type ReconcilePhase,
  type ReconcilerOptions,
  type SnapshotSource,
} from '../agent/reconcile.js';
import type { Snapshot } from '../model/types.js';
import type { Lab } from './lab.js';

/** The applier of the lab's first node (the only one in a one-node lab). */
export function labApplier(lab: Lab, table: string = DEFAULT_TABLE): NftApplier {
  return new NftApplier(netnsRunner(lab.nodeNetns), { table, nodeName: lab.nodeName });
}

export type LabReconcilerOptions = Omit<ReconcilerOptions, 'applier' | 'prepare'>;

/**
 * A reconcile loop for the lab: each source snapshot first updates the lab (pods that appeared or
 * went away), then the lab's view of it (addresses, node) is applied in the node namespace.
 */
export function labReconciler(lab: Lab, applier: NftApplier, opts: LabReconcilerOptions = {}): Reconciler {
  return new Reconciler({
    ...opts,
    applier,
    prepare: async (s: Snapshot) => (await lab.update(s)).snapshot,
  });
}

/** A source that hands over one snapshot and then stays quiet (`lab probe`, tests). */
export function staticSource(s: Snapshot): SnapshotSource {
  return {
    start: (sink) => {
      sink.snapshot(s);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
  };
}

/** One node's agent: its own applier (table in its node namespace) and its own reconcile loop. */
export interface NodeAgent {
  /** The Node it enforces for (DataplaneOptions.nodeName): its pods are the local subjects. */
  readonly node: string;
  readonly netns: string;
  readonly applier: NftApplier;
  readonly reconciler: Reconciler;
}

export interface LabAgentsOptions {
  /** nft table name in every node namespace. Default 'moat'. */
  readonly table?: string;
  /** Passed to every node's Reconciler. */
  readonly coalesceMs?: number;
  /** Period of each node's drift check; default 0 (off: call checkDrift()). */
  readonly driftIntervalMs?: number;
  readonly retryMs?: number;
  readonly onApplied?: (node: string, a: Applied) => void | Promise<void>;
  /** Every node's agent has applied the lab's view of the newest source snapshot. */
  readonly onSynced?: (snapshot: Snapshot, applied: readonly Applied[]) => void | Promise<void>;
  readonly onDrift?: (node: string, d: DriftResult) => void;
  /** `node` is undefined for the lab's own phase (building pods for a snapshot: 'prepare'). */
  readonly onError?: (node: string | undefined, err: unknown, phase: ReconcilePhase) => void;
}

/** A source that is fed by hand (Reconciler.submit): start() only starts the drift timer. */
const handFed: SnapshotSource = { start: () => Promise.resolve(), stop: () => Promise.resolve() };

/**
 * One agent per lab node, as a DaemonSet runs them: a source snapshot first updates the lab (the
 * CNI's part: pod namespaces, addresses, placement), then the SAME prepared snapshot goes to every
 * node's reconcile loop, and each applies it in its own namespace with DataplaneOptions.nodeName
 * set to its node. So every pod is a peer everywhere but a subject only on its own node, and a
 * cross-node flow is checked at egress on the source node and at ingress on the destination node.
 */
export class LabAgents {
  readonly agents: readonly NodeAgent[];
  private pending: Snapshot | undefined;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private source: SnapshotSource | undefined;
  private stopped = false;
  private readonly last = new Map<string, Applied>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly lab: Lab,
    private readonly opts: LabAgentsOptions = {},
  ) {
    const table = opts.table ?? DEFAULT_TABLE;
    this.agents = lab.nodes.map(({ name, netns }) => {
      const applier = new NftApplier(netnsRunner(netns), { table, nodeName: name });
      const reconciler = new Reconciler({
        applier,
        ...(opts.coalesceMs !== undefined ? { coalesceMs: opts.coalesceMs } : {}),
        ...(opts.retryMs !== undefined ? { retryMs: opts.retryMs } : {}),
        driftIntervalMs: opts.driftIntervalMs ?? 0,
        onApplied: async (a) => {
          this.last.set(name, a);
          await opts.onApplied?.(name, a);
        },
        onDrift: (d) => opts.onDrift?.(name, d),
        onError: (e, phase) => opts.onError?.(name, e, phase),
      });
      return { node: name, netns, applier, reconciler };
    });
  }

  /** The agent of a node (by Node name). */
  agent(node: string): NodeAgent {
    const a = this.agents.find((x) => x.node === node);
    if (!a) throw new Error(`lab: no node ${node}`);
    return a;
  }

  /** Starts every node's loop, then the source. */
  async start(source: SnapshotSource): Promise<void> {
    for (const a of this.agents) await a.reconciler.start(handFed);
    this.source = source;
    await source.start({
      snapshot: (s) => this.submit(s),
      error: (e) => this.opts.onError?.(undefined, e, 'source'),
    });
  }

  /** Queues a source snapshot; the newest wins while the lab is still busy with an older one. */
  submit(s: Snapshot): void {
    if (this.stopped) return;
    this.pending = s;
    this.wake?.();
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      this.wakeIdle();
    });
  }

  private async drain(): Promise<void> {
    while (this.pending !== undefined && !this.stopped) {
      const s = this.pending;
      this.pending = undefined;
      let prepared: Snapshot;
      try {
        prepared = (await this.lab.update(s)).snapshot;
      } catch (e) {
        this.opts.onError?.(undefined, e, 'prepare');
        continue;
      }
      for (const a of this.agents) a.reconciler.submit(prepared);
      // Wait for every agent, unless a newer snapshot arrives first (then it supersedes this one).
      const newer = new Promise<void>((r) => (this.wake = r));
      await Promise.race([Promise.all(this.agents.map((a) => a.reconciler.idle())), newer]);
      this.wake = undefined;
      if (this.pending !== undefined || this.stopped) continue;
      const applied = this.agents.map((a) => this.last.get(a.node));
      if (applied.every((a) => a?.snapshot === prepared)) {
        await this.opts.onSynced?.(prepared, applied as Applied[]);
      }
    }
  }

  /** Resolves when no snapshot is pending and every agent is idle. */
  async idle(): Promise<void> {
    while (this.running !== undefined || this.pending !== undefined) {
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
    await Promise.all(this.agents.map((a) => a.reconciler.idle()));
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** A drift check on every node now (each agent repairs its own table). */
  checkDrift(): Promise<(DriftResult | undefined)[]> {
    return Promise.all(this.agents.map((a) => a.reconciler.checkDrift()));
  }

  /** Stops the source and every node's loop. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    this.wake?.();
    await this.source?.stop();
    await this.running;
    await Promise.all(this.agents.map((a) => a.reconciler.stop()));
    this.wakeIdle();
  }

  /** Deletes every node's table. */
  async remove(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.applier.remove()));
  }
}
