// The decoded cluster the agent keeps (one map per kind, the objects that did not decode cleanly),
// and the snapshot made of it.
import type { Problem } from '../errors.js';
import { emptyCollector, type Collector, type Decoding } from '../model/load.js';
import type { Snapshot } from '../model/types.js';
import { assembleSnapshot } from '../model/snapshot.js';
import type { Decoded, WatchedKind } from './k8s-decode.js';

/** The model of an object without its origin: what decides whether an update changes anything. */
function content(v: unknown): string {
  return JSON.stringify(v, (k, x: unknown) => (k === 'origin' ? undefined : x));
}

function byKey<T>(m: ReadonlyMap<string, T>): T[] {
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
}

export class ClusterState {
  /** kind -> key -> what is enforced for that object. */
  private readonly objects = new Map<WatchedKind, Map<string, Decoding>>();
  /** kind/key -> problems, for objects that did not decode cleanly. */
  readonly invalid = new Map<string, readonly Problem[]>();

  private map(kind: WatchedKind): Map<string, Decoding> {
    let m = this.objects.get(kind);
    if (m === undefined) this.objects.set(kind, (m = new Map<string, Decoding>()));
    return m;
  }

  /** Stores a decoded object; true when what moat enforces may have changed. */
  set(d: Decoded): boolean {
    const ik = `${d.kind}/${d.key}`;
    if (d.problems.length > 0) this.invalid.set(ik, d.problems);
    else this.invalid.delete(ik);
    const m = this.map(d.kind);
    const old = m.get(d.key);
    if (d.decoded === undefined) return m.delete(d.key);
    if (old !== undefined && content(old.object) === content(d.decoded.object)) return false;
    m.set(d.key, d.decoded);
    return true;
  }

  delete(kind: WatchedKind, key: string): boolean {
    this.invalid.delete(`${kind}/${key}`);
    return this.map(kind).delete(key);
  }

  /** Drops every object of a kind (its CRD was removed); true when there were any. */
  deleteKind(kind: WatchedKind): boolean {
    for (const k of [...this.invalid.keys()]) if (k.startsWith(`${kind}/`)) this.invalid.delete(k);
    const had = this.map(kind).size > 0;
    this.objects.delete(kind);
    return had;
  }

  /** The keys held of a kind. */
  keys(kind: WatchedKind): string[] {
    return [...this.map(kind).keys()];
  }

  count(kind: WatchedKind): number {
    return this.map(kind).size;
  }

  invalidCount(kind: WatchedKind): number {
    let n = 0;
    for (const k of this.invalid.keys()) if (k.startsWith(`${kind}/`)) n++;
    return n;
  }

  /**
   * The snapshot, as the loader finishes one: hostNetwork pods get their node's addresses, and a
   * pod's or policy's namespace that is not (yet) known exists with just its name label. Objects
   * are collected in key order within each kind, so the snapshot does not depend on arrival order.
   */
  snapshot(): Snapshot {
    const c: Collector = emptyCollector();
    for (const kind of [...this.objects.keys()].sort()) {
      for (const d of byKey(this.map(kind))) d.collect(c);
    }
    return assembleSnapshot(c);
  }
}
