// The agent's reconcile loop: snapshots come in from a source (files now, the Kubernetes API later),
// bursts are coalesced, and the newest snapshot is applied to the kernel, one apply at a time.
// A periodic drift check repairs the table if something else changed it.
import type { ApplyResult, DriftResult } from '../dataplane/index.js';
import type { Snapshot } from '../model/types.js';

/** What the loop needs of the dataplane (DataplaneApplier satisfies it). */
export interface Applier {
  apply(snapshot: Snapshot): Promise<ApplyResult>;
  checkDrift(): Promise<DriftResult>;
}

export interface SourceSink {
  snapshot(s: Snapshot): void;
  error(err: unknown): void;
}

/** A producer of snapshots; it calls sink.snapshot with each new one, the first as soon as it can. */
export interface SnapshotSource {
  start(sink: SourceSink): Promise<void>;
  stop(): Promise<void>;
}

export type ReconcilePhase = 'source' | 'apply' | 'drift';

export interface Applied {
  /** 1 for the first apply, then counting. */
  readonly generation: number;
  /** The snapshot applied. */
  readonly snapshot: Snapshot;
  readonly result: ApplyResult;
  /** Submissions folded into this apply. */
  readonly coalesced: number;
  readonly elapsedMs: number;
}

export interface ReconcilerOptions {
  readonly applier: Applier;
  /** Submissions within this window are applied once, with the newest snapshot. Default 100 ms. */
  readonly coalesceMs?: number;
  /** Period of the drift check; 0 turns it off. Default 30 s. */
  readonly driftIntervalMs?: number;
  /** Retry delay after a failed apply (doubles up to 30 s). Default 1 s. */
  readonly retryMs?: number;
  /** An apply is about to start with this snapshot (every submission so far is in it). */
  readonly onDequeue?: (s: Snapshot) => void;
  readonly onApplied?: (a: Applied) => void | Promise<void>;
  readonly onDrift?: (d: DriftResult) => void;
  readonly onError?: (err: unknown, phase: ReconcilePhase) => void;
}

export class Reconciler {
  private pending: Snapshot | undefined;
  private pendingCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private driftTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private source: SnapshotSource | undefined;
  private stopped = false;
  private retryDelay: number;
  private last: Snapshot | undefined;
  private gen = 0;
  /** Applies and drift checks run one at a time, in order. */
  private chain: Promise<unknown> = Promise.resolve();
  private wakeRetry: (() => void) | undefined;

  constructor(private readonly opts: ReconcilerOptions) {
    this.retryDelay = opts.retryMs ?? 1000;
  }

  /** Number of applies done. */
  get generation(): number {
    return this.gen;
  }

  /** The last snapshot applied successfully. */
  get lastApplied(): Snapshot | undefined {
    return this.last;
  }

  /** Queues a snapshot; the newest one wins when several arrive within the coalescing window. */
  submit(s: Snapshot): void {
    if (this.stopped) return;
    this.pending = s;
    this.pendingCount++;
    this.schedule(this.opts.coalesceMs ?? 100);
  }

  private schedule(delayMs: number): void {
    if (this.timer !== undefined || this.running !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.exclusive(() => this.drain()).finally(() => {
        this.running = undefined;
        if (this.pending !== undefined && !this.stopped) this.schedule(this.opts.coalesceMs ?? 100);
        else if (this.timer === undefined) this.wakeIdle();
      });
    }, delayMs);
  }

  private async drain(): Promise<void> {
    const s = this.pending;
    const coalesced = this.pendingCount;
    if (s === undefined) return;
    this.pending = undefined;
    this.pendingCount = 0;
    const t0 = Date.now();
    this.opts.onDequeue?.(s);
    try {
      const result = await this.opts.applier.apply(s);
      this.last = s;
      this.gen++;
      this.retryDelay = this.opts.retryMs ?? 1000;
      await this.opts.onApplied?.({
        generation: this.gen,
        snapshot: s,
        result,
        coalesced,
        elapsedMs: Date.now() - t0,
      });
    } catch (e) {
      this.opts.onError?.(e, 'apply');
      // Try again later unless something newer came in meanwhile.
      if (this.pending === undefined && !this.stopped) {
        this.pending = s;
        this.pendingCount = coalesced;
        const delay = this.retryDelay;
        this.retryDelay = Math.min(this.retryDelay * 2, 30_000);
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          this.wakeRetry = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wakeRetry = undefined;
      }
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Resolves when nothing is pending and no apply is running. */
  idle(): Promise<void> {
    if (this.timer === undefined && this.running === undefined && this.pending === undefined) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** One drift check now (also what the periodic timer runs). */
  async checkDrift(): Promise<DriftResult | undefined> {
    if (this.last === undefined || this.stopped) return undefined;
    try {
      const d = await this.exclusive(() => this.opts.applier.checkDrift());
      if (d.drifted) {
        this.opts.onDrift?.(d);
        // The applier repairs what it can; if it could not, apply the last snapshot again.
        if (!d.repaired && this.pending === undefined) this.submit(this.last);
      }
      return d;
    } catch (e) {
      this.opts.onError?.(e, 'drift');
      return undefined;
    }
  }

  /** Starts the loop on a source (and the drift timer). */
  async start(source: SnapshotSource): Promise<void> {
    this.source = source;
    const every = this.opts.driftIntervalMs ?? 30_000;
    if (every > 0) {
      this.driftTimer = setInterval(() => void this.checkDrift(), every);
      this.driftTimer.unref();
    }
    await source.start({
      snapshot: (s) => this.submit(s),
      error: (e) => this.opts.onError?.(e, 'source'),
    });
  }

  /** Stops the source, the timers, and waits for a running apply to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.driftTimer) clearInterval(this.driftTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    this.wakeRetry?.();
    await this.source?.stop();
    await this.running;
    this.wakeIdle();
  }
}
