import type { PodEntry } from './validate.js';
import type { Namespace, NetworkPolicy, Node, Pod, Snapshot } from './types.js';

export interface SnapshotParts {
  readonly namespaces: readonly Namespace[];
  readonly pods: readonly PodEntry[];
  readonly nodes: readonly Node[];
  readonly policies: readonly NetworkPolicy[];
}

/**
 * Completes a snapshot from decoded objects (the YAML loader and the Kubernetes source both end
 * here): hostNetwork pods get their node's addresses, and every namespace a pod or policy lives in
 * exists (as the API server requires), synthesized with just its name label.
 */
export function assembleSnapshot(parts: SnapshotParts): Snapshot {
  const nodes = new Map(parts.nodes.map((n) => [n.name, n]));
  const pods: Pod[] = parts.pods.map(({ pod, hostIPs }) => {
    if (!pod.hostNetwork) return pod;
    const node = pod.nodeName !== undefined ? nodes.get(pod.nodeName) : undefined;
    // "hostNetwork pods ... have the node's IPs": from the Node when loaded, else the pod's status.
    const ips =
      node !== undefined && node.addresses.length > 0
        ? node.addresses
        : pod.ips.length > 0
          ? pod.ips
          : hostIPs;
    return { ...pod, ips: [...ips] };
  });
  const namespaces = [...parts.namespaces];
  const known = new Set(namespaces.map((n) => n.name));
  for (const o of [...pods, ...parts.policies]) {
    if (known.has(o.namespace)) continue;
    known.add(o.namespace);
    namespaces.push({ name: o.namespace, labels: { 'kubernetes.io/metadata.name': o.namespace } });
  }
  return { namespaces, pods, nodes: [...parts.nodes], policies: [...parts.policies] };
}
