// `--kubeconfig PATH [--context NAME]` on the analysis commands: the live cluster instead of files.
// List only (get/list on what moat reads; nothing is watched or written): every kind of the loader's
// registry at a served version, decoded and validated as files are, so a cluster reads like a
// `kubectl get -o json` dump of it. Kinds served by a CRD the cluster does not have are left out.
import type { KubeConfig } from '@kubernetes/client-node';
import { InputError, UsageError } from '../errors.js';
import { KIND_NAMES, KINDS, loadText, type LoadResult } from '../model/load.js';

export interface ClusterInput {
  readonly kubeconfig: string;
  readonly context?: string | undefined;
}

/** The file name of objects read from the API server, in messages and origins. */
export const CLUSTER_ORIGIN = 'kube-apiserver';

async function kubeConfig(c: ClusterInput): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(c.kubeconfig);
  } catch (e) {
    throw new UsageError(
      `--kubeconfig ${c.kubeconfig}: cannot load it: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  if (c.context !== undefined) {
    if (!kc.getContexts().some((x) => x.name === c.context)) {
      throw new UsageError(
        `--context ${c.context}: not in ${c.kubeconfig} (it has: ${
          kc
            .getContexts()
            .map((x) => x.name)
            .join(', ') || 'none'
        })`,
      );
    }
    kc.setCurrentContext(c.context);
  }
  if (!kc.getCurrentCluster()) throw new UsageError(`--kubeconfig ${c.kubeconfig}: no current cluster`);
  return kc;
}

/** Lists every kind moat reads and loads them as one dump. */
export async function loadCluster(c: ClusterInput): Promise<LoadResult> {
  const kc = await kubeConfig(c);
  const { listRaw } = await import('../agent/k8s-source.js');
  const lists: unknown[] = [];
  const skipped: string[] = [];
  for (const kind of KIND_NAMES) {
    const spec = KINDS[kind];
    let served = false;
    for (const apiVersion of spec.apiVersions) {
      const path = `${apiVersion.includes('/') ? '/apis' : '/api'}/${apiVersion}/${spec.resource}`;
      try {
        const list = await listRaw(kc, path);
        lists.push({ apiVersion, kind: `${kind}List`, items: list.items });
        served = true;
        break;
      } catch (e) {
        const status = (e as { statusCode?: number }).statusCode;
        // Not served at this version (or the CRD is not installed): try the next, else leave it out.
        if (status === 404) continue;
        throw new InputError(
          [],
          `${CLUSTER_ORIGIN}: cannot list ${spec.resource} (${apiVersion}): ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
    if (!served && spec.crd === true) skipped.push(kind);
  }
  const res = loadText(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: lists }), CLUSTER_ORIGIN);
  return {
    ...res,
    notes: [
      ...(skipped.length > 0
        ? [`the cluster does not serve ${skipped.join(', ')} (their CRDs are not installed)`]
        : []),
      ...res.notes,
    ],
  };
}
