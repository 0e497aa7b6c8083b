// Services as destinations (`--to web/svc/frontend`, `--to svc/frontend`): the pods a Service
// selects, and its port translated per pod as kube-proxy does (port -> targetPort, a name looked up
// in that pod's containerPorts). Policies see the packet after that translation, at the pod.
import { UsageError } from '../errors.js';
import { matchesSelector } from '../model/selector.js';
import type { Pod, Protocol, Service, ServicePort, Snapshot } from '../model/types.js';

/** `NS/svc/NAME`, `NS/service/NAME` or `svc/NAME` (unique across namespaces); undefined: not a Service word. */
export function resolveService(snapshot: Snapshot, text: string, what: string): Service | undefined {
  const parts = text.split('/');
  const kindAt = parts.length === 3 ? 1 : parts.length === 2 ? 0 : -1;
  if (kindAt < 0 || !['svc', 'service', 'services'].includes(parts[kindAt]!.toLowerCase())) return undefined;
  const name = parts[parts.length - 1]!;
  const services = snapshot.services ?? [];
  if (parts.length === 3) {
    const svc = services.find((s) => s.namespace === parts[0] && s.name === name);
    if (svc === undefined)
      throw new UsageError(`${what}: unknown Service ${text} (no such Service in the input)`);
    return svc;
  }
  const named = services.filter((s) => s.name === name);
  if (named.length === 0)
    throw new UsageError(`${what}: unknown Service ${text} (no such Service in the input)`);
  if (named.length > 1) {
    throw new UsageError(
      `${what}: Service ${name} exists in ${named.map((s) => s.namespace).join(', ')}: write NAMESPACE/svc/${name}`,
    );
  }
  return named[0];
}

/**
 * The pods behind a Service: "Route service traffic to pods with label keys and values matching
 * this selector", in the Service's namespace. A Service without a selector has endpoints managed
 * elsewhere: none known here.
 */
export function serviceEndpoints(snapshot: Snapshot, svc: Service): Pod[] {
  return snapshot.pods.filter((p) => serviceSelects(svc, p));
}

/** Whether `pod` is behind `svc`: in its namespace, matching its selector (it must have one). */
export function serviceSelects(svc: Service, pod: Pod): boolean {
  const selector = svc.selector;
  return (
    selector !== undefined &&
    pod.namespace === svc.namespace &&
    matchesSelector({ matchLabels: selector, matchExpressions: [] }, pod.labels)
  );
}

/** The Service port `port` names (its number or its name), with `protocol` when given. */
export function findServicePort(
  svc: Service,
  port: string,
  protocol: Protocol | undefined,
): ServicePort | undefined {
  const byNumber = /^\d+$/.test(port);
  return svc.ports.find(
    (sp) =>
      (byNumber ? sp.port === Number(port) : sp.name === port) &&
      (protocol === undefined || sp.protocol === protocol),
  );
}

/** The Service port a `--port` names; a usage error listing the ports it has when none. */
export function servicePort(svc: Service, port: string, protocol: Protocol | undefined): ServicePort {
  const found = findServicePort(svc, port, protocol);
  if (found === undefined) {
    const has = svc.ports
      .map((sp) => `${sp.name !== undefined ? `${sp.name} ` : ''}${sp.protocol}/${sp.port}`)
      .join(', ');
    throw new UsageError(
      `--port ${port}: Service ${svc.namespace}/${svc.name} has no ${protocol ?? ''}${protocol ? ' ' : ''}port ${port} (it has: ${has || 'none'})`,
    );
  }
  return found;
}

/**
 * "targetPort: Number or name of the port to access on the pods targeted by the service": the
 * pod's port for this Service port, or undefined when the pod has no containerPort of that name
 * (kube-proxy then sends it nothing).
 */
export function targetPortOn(sp: ServicePort, pod: Pod): number | undefined {
  if (typeof sp.targetPort === 'number') return sp.targetPort;
  return pod.ports.find((cp) => cp.name === sp.targetPort && cp.protocol === sp.protocol)?.containerPort;
}
