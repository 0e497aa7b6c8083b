// Enforcement in the lab is the agent's own code: NftApplier through a runner that executes inside
// the node namespace, driven by the same reconcile loop the DaemonSet runs.
import { DEFAULT_TABLE, NftApplier, netnsRunner } from '../dataplane/index.js';
import { Reconciler, type ReconcilerOptions, type SnapshotSource } from '../agent/reconcile.js';
import type { Snapshot } from '../model/types.js';
import type { Lab } from './lab.js';

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
