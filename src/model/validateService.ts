// Services (v1), as k8s.io/kubernetes pkg/apis/core/validation ValidateService checks them and
// pkg/apis/core/v1 SetDefaults_Service defaults them; only what analysis uses is projected and checked.
import { isDNS1123Label, isValidPortName, isValidPortNum } from './labels.js';
import type { MapTree } from './parseYaml.js';
import type { Protocol, Service, ServicePort } from './types.js';
import { PROTOCOLS } from './types.js';
import {
  checkFields,
  child,
  decodeLabels,
  expectInt,
  expectMap,
  expectSeq,
  expectStr,
  get,
  index,
  msg,
  type Meta,
  type Reporter,
} from './validate.js';

/** core/v1 ServiceSpec. */
const SPEC_FIELDS = [
  'ports',
  'selector',
  'clusterIP',
  'clusterIPs',
  'type',
  'externalIPs',
  'sessionAffinity',
  'loadBalancerIP',
  'loadBalancerSourceRanges',
  'externalName',
  'externalTrafficPolicy',
  'healthCheckNodePort',
  'publishNotReadyAddresses',
  'sessionAffinityConfig',
  'ipFamilies',
  'ipFamilyPolicy',
  'allocateLoadBalancerNodePorts',
  'loadBalancerClass',
  'internalTrafficPolicy',
  'trafficDistribution',
];

const PORT_FIELDS = ['name', 'protocol', 'appProtocol', 'port', 'targetPort', 'nodePort'];

const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

export function decodeService(r: Reporter, root: MapTree, meta: Meta, file: string): Service {
  const spec = expectMap(r, 'spec', get(root, 'spec'));
  if (spec) checkFields(r, 'spec', spec, SPEC_FIELDS);
  const typeTree = get(spec, 'type');
  const type = expectStr(r, 'spec.type', typeTree) ?? 'ClusterIP';
  if (!TYPES.includes(type)) r.add('spec.type', typeTree?.line ?? root.line, msg.notSupported(type, TYPES));
  const clusterIP = expectStr(r, 'spec.clusterIP', get(spec, 'clusterIP'));
  // `selector` is labels-shaped: ValidateLabels(service.Spec.Selector, specPath.Child("selector")).
  const selTree = get(spec, 'selector');
  const selector = decodeLabels(r, 'spec.selector', selTree);

  const portsTree = get(spec, 'ports');
  const items = expectSeq(r, 'spec.ports', portsTree) ?? [];
  // "if len(service.Spec.Ports) == 0 && !isHeadlessService(service) && service.Spec.Type != ExternalName".
  if (items.length === 0 && clusterIP !== 'None' && type !== 'ExternalName' && portsTree?.t !== 'map') {
    r.add('spec.ports', portsTree?.line ?? spec?.line ?? root.line, msg.required());
  }
  const ports: ServicePort[] = [];
  const names = new Set<string>();
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const p = index('spec.ports', i);
    const m = expectMap(r, p, item);
    if (!m) return;
    const before = r.problems.length;
    checkFields(r, p, m, PORT_FIELDS);
    const nameTree = get(m, 'name');
    const name = expectStr(r, child(p, 'name'), nameTree) ?? '';
    // "requireName := len(service.Spec.Ports) > 1"; names are DNS labels and unique.
    if (name === '') {
      if (items.length > 1 && (nameTree === undefined || nameTree.t === 'str'))
        r.add(child(p, 'name'), nameTree?.line ?? m.line, msg.required());
    } else {
      for (const e of isDNS1123Label(name))
        r.add(child(p, 'name'), nameTree?.line ?? m.line, msg.invalid(name, e));
      if (names.has(name)) r.add(child(p, 'name'), nameTree?.line ?? m.line, msg.duplicate(name));
      names.add(name);
    }
    const protoTree = get(m, 'protocol');
    const proto = expectStr(r, child(p, 'protocol'), protoTree) ?? 'TCP';
    if (!PROTOCOLS.includes(proto as Protocol))
      r.add(child(p, 'protocol'), protoTree?.line ?? m.line, msg.notSupported(proto, PROTOCOLS));
    const portTree = get(m, 'port');
    const port = expectInt(r, child(p, 'port'), portTree);
    if (portTree === undefined) r.add(child(p, 'port'), m.line, msg.required());
    else if (port !== undefined)
      for (const e of isValidPortNum(port)) r.add(child(p, 'port'), portTree.line, msg.invalid(port, e));
    // intstr.IntOrString; SetDefaults_Service: a zero or empty targetPort becomes the port.
    const tpTree = get(m, 'targetPort');
    const tpPath = child(p, 'targetPort');
    let targetPort: number | string | undefined;
    if (tpTree?.t === 'num') {
      targetPort = expectInt(r, tpPath, tpTree);
      if (targetPort === 0) targetPort = undefined;
      else if (targetPort !== undefined)
        for (const e of isValidPortNum(targetPort)) r.add(tpPath, tpTree.line, msg.invalid(targetPort, e));
    } else if (tpTree !== undefined) {
      targetPort = expectStr(r, tpPath, tpTree);
      if (targetPort === '') targetPort = undefined;
      else if (targetPort !== undefined)
        for (const e of isValidPortName(targetPort)) r.add(tpPath, tpTree.line, msg.invalid(targetPort, e));
    }
    if (port !== undefined) {
      // "ports[i]: Duplicate value: {port, protocol}": one Service port per (port, protocol).
      const k = `${port}/${proto}`;
      if (seen.has(k)) r.add(p, m.line, msg.duplicate(`${port}/${proto}`));
      seen.add(k);
    }
    if (r.problems.length !== before || port === undefined) return;
    ports.push({
      ...(name !== '' ? { name } : {}),
      port,
      targetPort: targetPort ?? port,
      protocol: proto as Protocol,
    });
  });
  // ExternalName Services have no endpoints; an empty selector selects nothing (no endpoints).
  const hasSelector = type !== 'ExternalName' && Object.keys(selector).length > 0;
  return {
    namespace: meta.namespace,
    name: meta.name,
    ...(hasSelector ? { selector } : {}),
    ports,
    origin: { file, line: root.line },
  };
}
