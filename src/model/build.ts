// Small builders for tests, benches and examples: model objects without YAML.
import type {
  AdminAction,
  AdminKind,
  AdminPeer,
  AdminPolicy,
  AdminPort,
  AdminRule,
  AdminSubject,
  AdminTier,
  ContainerPort,
  IPBlock,
  LabelSelector,
  Labels,
  Namespace,
  NetworkPolicy,
  Node,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  PolicyType,
  Protocol,
  Requirement,
  Snapshot,
} from './types.js';

export function sel(matchLabels: Labels = {}, matchExpressions: Requirement[] = []): LabelSelector {
  return { matchLabels, matchExpressions };
}

export function ns(name: string, labels: Labels = {}): Namespace {
  return { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } };
}

export interface PodOpts {
  labels?: Labels;
  ips?: string[];
  ports?: ContainerPort[];
  nodeName?: string;
  hostNetwork?: boolean;
}

export function pod(namespace: string, name: string, o: PodOpts = {}): Pod {
  return {
    namespace,
    name,
    labels: o.labels ?? {},
    ips: o.ips ?? [],
    ports: o.ports ?? [],
    hostNetwork: o.hostNetwork ?? false,
    ...(o.nodeName !== undefined ? { nodeName: o.nodeName } : {}),
  };
}

export function cport(containerPort: number, protocol: Protocol = 'TCP', name?: string): ContainerPort {
  return { containerPort, protocol, ...(name !== undefined ? { name } : {}) };
}

export function node(name: string, addresses: string[], podCIDRs: string[] = []): Node {
  return { name, labels: {}, addresses, podCIDRs };
}

export function podPeer(podSelector?: LabelSelector, namespaceSelector?: LabelSelector): Peer {
  return {
    kind: 'selector',
    ...(podSelector !== undefined ? { podSelector } : {}),
    ...(namespaceSelector !== undefined ? { namespaceSelector } : {}),
  };
}

export function ipPeer(cidr: string, except: string[] = []): Peer {
  const ipBlock: IPBlock = { cidr, except };
  return { kind: 'ipBlock', ipBlock };
}

export function pport(port?: number | string, protocol: Protocol = 'TCP', endPort?: number): PolicyPort {
  return {
    protocol,
    ...(port !== undefined ? { port } : {}),
    ...(endPort !== undefined ? { endPort } : {}),
  };
}

export function rule(peers?: Peer[], ports?: PolicyPort[]): PolicyRule {
  // Empty and missing mean the same ("matches all"); keep the model's canonical form: undefined.
  return {
    ...(peers !== undefined && peers.length > 0 ? { peers } : {}),
    ...(ports !== undefined && ports.length > 0 ? { ports } : {}),
  };
}

export interface PolicyOpts {
  podSelector?: LabelSelector;
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
  /** When omitted, defaulted as the API server does. */
  policyTypes?: PolicyType[];
}

export function netpol(namespace: string, name: string, o: PolicyOpts = {}): NetworkPolicy {
  const ingress = o.ingress ?? [];
  const egress = o.egress ?? [];
  return {
    namespace,
    name,
    podSelector: o.podSelector ?? sel(),
    policyTypes: o.policyTypes ?? defaultPolicyTypes(egress.length > 0),
    ingress,
    egress,
  };
}

/** "If this field is not specified, it will default based on the existence of ingress or egress rules". */
export function defaultPolicyTypes(hasEgressRules: boolean): PolicyType[] {
  return hasEgressRules ? ['Ingress', 'Egress'] : ['Ingress'];
}

export function snapshot(s: Partial<Snapshot>): Snapshot {
  return {
    namespaces: s.namespaces ?? [],
    pods: s.pods ?? [],
    nodes: s.nodes ?? [],
    policies: s.policies ?? [],
    ...(s.adminPolicies !== undefined ? { adminPolicies: s.adminPolicies } : {}),
    ...(s.services !== undefined ? { services: s.services } : {}),
  };
}

// Admin tiers.

export function nsSubject(namespaceSelector: LabelSelector = sel()): AdminSubject {
  return { kind: 'namespaces', namespaceSelector };
}

export function podSubject(
  podSelector: LabelSelector = sel(),
  namespaceSelector: LabelSelector = sel(),
): AdminSubject {
  return { kind: 'pods', namespaceSelector, podSelector };
}

export function nodesPeer(nodeSelector: LabelSelector = sel()): AdminPeer {
  return { kind: 'nodes', nodeSelector };
}

export function networksPeer(...networks: string[]): AdminPeer {
  return { kind: 'networks', networks };
}

export function adminRule(
  action: AdminAction,
  peers: AdminPeer[],
  ports?: AdminPort[],
  name = '',
): AdminRule {
  return { name, action, peers, ...(ports !== undefined ? { ports } : {}) };
}

export function aport(port: number, protocol: Protocol = 'TCP', end?: number): AdminPort {
  return end === undefined
    ? { kind: 'number', protocol, port }
    : { kind: 'range', protocol, start: port, end };
}

export interface AdminPolicyOpts {
  kind?: AdminKind;
  tier?: AdminTier;
  priority?: number;
  subject?: AdminSubject;
  ingress?: AdminRule[];
  egress?: AdminRule[];
}

/** A ClusterNetworkPolicy (Admin tier, priority 0, all pods) unless told otherwise. */
export function cnp(name: string, o: AdminPolicyOpts = {}): AdminPolicy {
  return {
    kind: o.kind ?? 'ClusterNetworkPolicy',
    name,
    tier: o.tier ?? (o.kind === 'BaselineAdminNetworkPolicy' ? 'Baseline' : 'Admin'),
    priority: o.priority ?? 0,
    subject: o.subject ?? nsSubject(),
    ingress: o.ingress ?? [],
    egress: o.egress ?? [],
  };
}
