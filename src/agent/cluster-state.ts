// The decoded cluster the agent keeps (one map per kind, the objects that did not decode cleanly),
// and the snapshot made of it.
import type { Problem } from '../errors.js';
import type { NetworkPolicy, Namespace, Node, Snapshot } from '../model/types.js';
import type { PodEntry } from '../model/validate.js';
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
  readonly namespaces = new Map<string, Namespace>();
  readonly pods = new Map<string, PodEntry>();
  readonly nodes = new Map<string, Node>();
  readonly policies = new Map<string, NetworkPolicy>();
  /** kind/key -> problems, for objects that did not decode cleanly. */
  readonly invalid = new Map<string, readonly Problem[]>();

  private map(kind: WatchedKind): Map<string, unknown> {
    switch (kind) {
      case 'Namespace':
        return this.namespaces;
      case 'Pod':
        return this.pods;
      case 'Node':
        return this.nodes;
      case 'NetworkPolicy':
        return this.policies;
    }
  }

  /** Stores a decoded object; true when what moat enforces may have changed. */
  set(d: Decoded): boolean {
    const value = d.namespace ?? d.pod ?? d.node ?? d.policy;
    const ik = `${d.kind}/${d.key}`;
    if (d.problems.length > 0) this.invalid.set(ik, d.problems);
    else this.invalid.delete(ik);
    const m = this.map(d.kind);
    const old = m.get(d.key);
    if (value === undefined) return m.delete(d.key);
    if (old !== undefined && content(old) === content(value)) return false;
    m.set(d.key, value);
    return true;
  }

  delete(kind: WatchedKind, key: string): boolean {
    this.invalid.delete(`${kind}/${key}`);
    return this.map(kind).delete(key);
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
   * pod's or policy's namespace that is not (yet) known exists with just its name label.
   */
  snapshot(): Snapshot {
    return assembleSnapshot({
      namespaces: byKey(this.namespaces),
      pods: byKey(this.pods),
      nodes: byKey(this.nodes),
      policies: byKey(this.policies),
    });
  }
}
