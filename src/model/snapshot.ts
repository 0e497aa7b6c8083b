import { formatAddress, parseIP } from './cidr.js';
import type { PodEntry } from './validate.js';
import type { AdminPolicy, Namespace, NetworkPolicy, Node, Pod, Service, Snapshot } from './types.js';

export interface SnapshotParts {
  readonly namespaces: readonly Namespace[];
  readonly pods: readonly PodEntry[];
  readonly nodes: readonly Node[];
  readonly policies: readonly NetworkPolicy[];
  readonly adminPolicies?: readonly AdminPolicy[];
  readonly services?: readonly Service[];
}

function canonical(ip: string): string {
  const a = parseIP(ip);
  return a ? formatAddress(a) : ip;
}

/**
 * Completes a snapshot from decoded objects (the YAML loader and the Kubernetes source both end
 * here):
 * - pods in phase Succeeded or Failed are left out: "all containers in the Pod have terminated",
 *   their addresses are free for reuse, and a reused address must not get a finished pod's rules;
 * - a terminating pod (deletionTimestamp set) loses an address that a pod not being deleted also
 *   has: the address can only have been handed out again after the old pod's network was torn
 *   down, so it is the new pod's (two such pods that are both alive are a conflict, conflicts.ts);
 * - hostNetwork pods get their node's addresses;
 * - every namespace a pod or policy lives in exists (as the API server requires), synthesized with
 *   just its name label.
 */
export function assembleSnapshot(parts: SnapshotParts): Snapshot {
  const nodes = new Map(parts.nodes.map((n) => [n.name, n]));
  const live = parts.pods.filter((e) => !e.finished);
  const heldByCurrent = new Set<string>();
  for (const e of live) {
    if (e.terminating || e.pod.hostNetwork) continue;
    for (const ip of e.pod.ips) heldByCurrent.add(canonical(ip));
  }
  const pods: Pod[] = live.map(({ pod, hostIPs, terminating }) => {
    if (!pod.hostNetwork) {
      if (!terminating || !pod.ips.some((ip) => heldByCurrent.has(canonical(ip)))) return pod;
      return { ...pod, ips: pod.ips.filter((ip) => !heldByCurrent.has(canonical(ip))) };
    }
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
  const admin = parts.adminPolicies ?? [];
  const services = parts.services ?? [];
  return {
    namespaces,
    pods,
    nodes: [...parts.nodes],
    policies: [...parts.policies],
    ...(admin.length > 0 ? { adminPolicies: [...admin] } : {}),
    ...(services.length > 0 ? { services: [...services] } : {}),
  };
}
