// The agent's flow logger: logged packets in, flow records out. It knows the ruleset generations
// that were live (a record logged just before an apply names the previous one's counter) and the
// snapshot's owners of addresses; it merges an admin Pass with the decision logged after it for the
// same packet; it keeps recent records for /flows and hands each to the sinks. No sockets here.
import type { Ruleset } from '../dataplane/model.js';
import type { Snapshot } from '../model/types.js';
import {
  addressBook,
  buildRecord,
  counterIndex,
  decide,
  type AddressBook,
  type CounterIndex,
  type Decision,
  type PacketEnds,
} from './attribute.js';
import type { FlowRecord } from './record.js';
import { parseFlowPrefix } from '../dataplane/flowlog.js';

export interface LoggedPacket {
  readonly prefix: string;
  readonly packet: PacketEnds;
  /** The packet's bytes as logged (identifies the same packet logged twice: a Pass, then more). */
  readonly key: string;
  readonly time: Date;
}

export interface FlowLoggerOptions {
  readonly node: string;
  /** Records kept for /flows' replay. Default 10,000. */
  readonly recent?: number;
  /** How long a packet naming an unknown counter waits for the next generation. Default 1 s. */
  readonly earlyWaitMs?: number;
  /** How long a Pass waits for the next decision on the same packet. Default 200 ms. */
  readonly passWaitMs?: number;
}

export interface FlowLoggerStats {
  /** Records by verdict and direction ("allowed/ingress"). */
  readonly records: ReadonlyMap<string, number>;
  /** Logged packets whose prefix no live generation knows (or not moat's). */
  readonly unattributed: number;
  /**
   * Admin Passes whose next decision was not logged: the rate limit suppressed it (every path after
   * a logged Pass logs its decision), so no record is made rather than a wrong one.
   */
  readonly incomplete: number;
}

type Listener = (r: FlowRecord) => void;

const GENERATIONS = 3;
const MAX_PENDING = 4096;

export class FlowLogger {
  private gens: CounterIndex[] = [];
  private book: AddressBook = { lookup: () => undefined };
  private readonly ring: FlowRecord[] = [];
  private ringStart = 0;
  private readonly listeners = new Set<Listener>();
  private readonly counts = new Map<string, number>();
  private unattributed = 0;
  private incomplete = 0;
  private early: LoggedPacket[] = [];
  private earlyTimer: NodeJS.Timeout | undefined;
  /**
   * Passes waiting for the next decision on their packet, by direction and packet bytes. Messages
   * of one packet arrive in order, but another CPU's packets may come between them.
   */
  private readonly pending = new Map<
    string,
    { decisions: Decision[]; pkt: LoggedPacket; timer: NodeJS.Timeout }
  >();

  constructor(readonly opts: FlowLoggerOptions) {}

  /** After each apply: the generation now live and whose addresses are whose. */
  setGeneration(rs: Ruleset, snapshot: Snapshot): void {
    const idx = counterIndex(rs);
    this.gens = [idx, ...this.gens].slice(0, GENERATIONS);
    this.book = addressBook(snapshot);
    // Packets logged between the commit and this call name counters only this generation knows.
    const early = this.early;
    this.early = [];
    if (this.earlyTimer !== undefined) clearTimeout(this.earlyTimer);
    this.earlyTimer = undefined;
    for (const p of early) this.ingest(p, false);
  }

  /** Every record, as it is made. Returns the unsubscribe function. */
  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** The records kept, oldest first. */
  recent(): FlowRecord[] {
    return [...this.ring.slice(this.ringStart), ...this.ring.slice(0, this.ringStart)];
  }

  stats(): FlowLoggerStats {
    return {
      records: new Map(this.counts),
      unattributed: this.unattributed,
      incomplete: this.incomplete,
    };
  }

  /**
   * One logged packet. A moat prefix no generation knows may be from a ruleset committed just now
   * (the agent learns the generation once the apply returns): it waits for the next generation,
   * for a second at most, before it counts as unattributed.
   */
  ingest(p: LoggedPacket, wait = true): void {
    const d = decide(p.prefix, this.gens);
    if (d === undefined) {
      if (wait && parseFlowPrefix(p.prefix) !== undefined && this.early.length < MAX_PENDING) {
        this.early.push(p);
        this.earlyTimer ??= setTimeout(() => {
          this.earlyTimer = undefined;
          this.unattributed += this.early.length;
          this.early = [];
        }, this.opts.earlyWaitMs ?? 1000);
        this.earlyTimer.unref();
        return;
      }
      this.unattributed++;
      return;
    }
    const key = `${d.direction}\u0000${p.key}`;
    const pend = this.pending.get(key);
    if (pend !== undefined) {
      pend.decisions.push(d);
      if (d.reason === undefined) return; // a Baseline-tier Pass after an Admin one: still waiting
      this.settle(key);
      return;
    }
    if (d.reason === undefined) {
      if (this.pending.size >= MAX_PENDING) this.settle(this.pending.keys().next().value!);
      const timer = setTimeout(() => this.settle(key), this.opts.passWaitMs ?? 200);
      timer.unref();
      this.pending.set(key, { decisions: [d], pkt: p, timer });
      return;
    }
    this.emit([d], p);
  }

  /** Settles every Pass still waiting (as incomplete: nothing was logged after it). */
  flush(): void {
    for (const key of [...this.pending.keys()]) this.settle(key);
  }

  private settle(key: string): void {
    const pend = this.pending.get(key);
    if (pend === undefined) return;
    this.pending.delete(key);
    clearTimeout(pend.timer);
    if (pend.decisions[pend.decisions.length - 1]?.reason === undefined) this.incomplete++;
    else this.emit(pend.decisions, pend.pkt);
  }

  private emit(decisions: readonly Decision[], p: LoggedPacket): void {
    const r = buildRecord(decisions, p.packet, this.book, this.opts.node, p.time);
    if (r === undefined) return;
    const k = `${r.verdict}/${r.direction}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    const max = this.opts.recent ?? 10_000;
    if (max > 0) {
      if (this.ring.length < max) this.ring.push(r);
      else {
        this.ring[this.ringStart] = r;
        this.ringStart = (this.ringStart + 1) % max;
      }
    }
    for (const l of this.listeners) l(r);
  }
}
