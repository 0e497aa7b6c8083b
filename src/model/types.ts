// Projections of Kubernetes objects. moat never passes the client library's types around:
// everything downstream of loading sees these plain, validated, defaulted shapes.

export type Labels = Readonly<Record<string, string>>;

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface Requirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  readonly values: readonly string[];
}

/** metav1.LabelSelector. "An empty label selector matches all objects." */
export interface LabelSelector {
  readonly matchLabels: Labels;
  readonly matchExpressions: readonly Requirement[];
}

/** Where an object came from, for messages: FILE:LINE. */
export interface Origin {
  readonly file: string;
  readonly line: number;
}

export interface Namespace {
  readonly name: string;
  readonly labels: Labels;
  readonly origin?: Origin;
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: Protocol;
}

/** The controllers whose pod templates analysis reads as pods. */
export type WorkloadKind =
  'Deployment' | 'StatefulSet' | 'DaemonSet' | 'ReplicaSet' | 'Job' | 'CronJob' | 'ReplicationController';

export interface Pod {
  readonly namespace: string;
  /** A workload pod is named `SHORT/NAME` (deploy/web, sts/db-0, ...; see docs/inputs.md). */
  readonly name: string;
  /** Set on a pod made from a workload's pod template (analysis only; it has no addresses). */
  readonly workload?: { readonly kind: WorkloadKind; readonly name: string };
  readonly labels: Labels;
  readonly nodeName?: string;
  /** "hostNetwork pods ... are not selected by NetworkPolicy": never a policy subject. */
  readonly hostNetwork: boolean;
  /** status.podIPs (or status.podIP); for hostNetwork pods, the node's addresses. May be empty. */
  readonly ips: readonly string[];
  /** containerPorts of all containers (and init containers that restart, i.e. sidecars). */
  readonly ports: readonly ContainerPort[];
  readonly origin?: Origin;
}

export interface Node {
  readonly name: string;
  readonly labels: Labels;
  /**
   * status.addresses of type InternalIP: the node's own addresses, which its hostNetwork pods share.
   * ExternalIP is kept apart: on cloud nodes it is not on the node (it is NATed to it), so a packet
   * from it is not "the node", and a pod that spoofed it would otherwise pass as the node.
   */
  readonly addresses: readonly string[];
  /** status.addresses of type ExternalIP (for the admin tiers' `nodes` peers). */
  readonly externalAddresses?: readonly string[];
  readonly podCIDRs: readonly string[];
  readonly origin?: Origin;
}

export type PolicyType = 'Ingress' | 'Egress';

/** NetworkPolicyPort, defaulted: protocol is always set ("If not specified, this field defaults to TCP"). */
export interface PolicyPort {
  readonly protocol: Protocol;
  /** Missing port: "this matches all port names and numbers". A string is a named port. */
  readonly port?: number | string;
  /** Only with a numeric port: the inclusive range port..endPort. */
  readonly endPort?: number;
}

export interface IPBlock {
  readonly cidr: string;
  readonly except: readonly string[];
}

/**
 * NetworkPolicyPeer. Either ipBlock, or pod/namespace selectors (at least one of them).
 * A missing selector is `undefined`; an empty one is a selector with no terms (matches all).
 */
export type Peer =
  | { readonly kind: 'ipBlock'; readonly ipBlock: IPBlock }
  | {
      readonly kind: 'selector';
      readonly podSelector?: LabelSelector;
      readonly namespaceSelector?: LabelSelector;
    };

/**
 * An ingress or egress rule. `peers` is `undefined` when from/to is missing or empty:
 * "If this field is empty or missing, this rule matches all sources/destinations".
 * `ports` likewise: "If this field is empty or missing, this rule matches all ports".
 */
export interface PolicyRule {
  readonly peers?: readonly Peer[];
  readonly ports?: readonly PolicyPort[];
}

export interface NetworkPolicy {
  readonly namespace: string;
  readonly name: string;
  readonly podSelector: LabelSelector;
  /** Defaulted as the API server does: Ingress, plus Egress when egress rules are present. */
  readonly policyTypes: readonly PolicyType[];
  readonly ingress: readonly PolicyRule[];
  readonly egress: readonly PolicyRule[];
  /**
   * What the API server defaulted rather than the manifest wrote (for `moat lint`; absent when
   * nothing was). Semantics never read it: the defaulted values are in policyTypes and ports.
   */
  readonly implicit?: {
    readonly policyTypes?: true;
    /** Field paths of ports without protocol, e.g. "spec.egress[0].ports[1]". */
    readonly protocols?: readonly string[];
  };
  /** Audit mode (annotation moat.dev/audit: "true"): would-be drops are accepted and logged. */
  readonly audit?: true;
  readonly origin?: Origin;
}

// ---------------------------------------------------------------------------------------------
// The admin tiers: ClusterNetworkPolicy (policy.networking.k8s.io v1beta1 and v1alpha2) and
// AdminNetworkPolicy / BaselineAdminNetworkPolicy (v1alpha1), projected onto one shape.

export type AdminKind = 'ClusterNetworkPolicy' | 'AdminNetworkPolicy' | 'BaselineAdminNetworkPolicy';

/** "Policy tiers are evaluated in the following order: Admin tier, NetworkPolicy tier, Baseline tier". */
export type AdminTier = 'Admin' | 'Baseline';

/** CNP's actions; AdminNetworkPolicy's and BaselineAdminNetworkPolicy's "Allow" is Accept here. */
export type AdminAction = 'Accept' | 'Deny' | 'Pass';

/** Subject: "Exactly one field must be set"; "host-networked pods are not included". */
export type AdminSubject =
  | { readonly kind: 'namespaces'; readonly namespaceSelector: LabelSelector }
  | {
      readonly kind: 'pods';
      readonly namespaceSelector: LabelSelector;
      readonly podSelector: LabelSelector;
    };

/**
 * A peer: exactly one field. `unknown` is a peer that set no field moat knows (a newer CRD): the
 * API says to fail closed, "For Accept rules ... treat the rule as matching no traffic. For Deny
 * and Pass rules ... treat the rule as a 'Deny all' rule".
 */
export type AdminPeer =
  | AdminSubject
  | { readonly kind: 'nodes'; readonly nodeSelector: LabelSelector }
  | { readonly kind: 'networks'; readonly networks: readonly string[] }
  | { readonly kind: 'domainNames'; readonly domainNames: readonly string[] }
  | { readonly kind: 'unknown'; readonly fields: readonly string[] };

/** A destination port: a number, an inclusive range, or a container port name (any protocol). */
export type AdminPort =
  | { readonly kind: 'number'; readonly protocol: Protocol; readonly port: number }
  | { readonly kind: 'range'; readonly protocol: Protocol; readonly start: number; readonly end: number }
  | { readonly kind: 'named'; readonly name: string };

export interface AdminRule {
  /** The rule's name ("" when unset). */
  readonly name: string;
  readonly action: AdminAction;
  /** from/to: at least one peer. */
  readonly peers: readonly AdminPeer[];
  /** protocols/ports; undefined: "protocol-specific attributes will not be used to match traffic". */
  readonly ports?: readonly AdminPort[];
}

export interface AdminPolicy {
  readonly kind: AdminKind;
  readonly name: string;
  readonly tier: AdminTier;
  /** 0..1000, lower first. A BaselineAdminNetworkPolicy (a singleton) has none: 0. */
  readonly priority: number;
  readonly subject: AdminSubject;
  /** Rules in order: "a rule that appears at the top ... would take the highest precedence". */
  readonly ingress: readonly AdminRule[];
  readonly egress: readonly AdminRule[];
  /** Audit mode (annotation moat.dev/audit: "true"): its Deny rules accept and log instead. */
  readonly audit?: true;
  readonly origin?: Origin;
}

/**
 * A pod's network attachment on this node, as the container runtime's CNI library recorded it:
 * the host-side interfaces of the attachment and the addresses assigned to the pod. On a bridged
 * pod network the bridge port is the only thing that tells one pod's packets from another's.
 */
export interface Attachment {
  /** Host-side interfaces of the attachment (e.g. the veth and the bridge it is enslaved to). */
  readonly interfaces: readonly string[];
  /** Canonical addresses the attachment carries. */
  readonly ips: readonly string[];
  /** The MAC address of the pod's side (lower case), when the result records it. */
  readonly mac?: string;
  /** "ns/name" of the pod, when the runtime recorded it (K8S_POD_NAMESPACE/K8S_POD_NAME). */
  readonly pod?: string;
  /** Where it was read from, for messages. */
  readonly source?: string;
}

/** A ServicePort, defaulted: protocol TCP, targetPort the port ("defaults to the value of the 'port' field"). */
export interface ServicePort {
  /** Required when the Service has more than one port. */
  readonly name?: string;
  readonly port: number;
  /** A number, or the name of a containerPort of the selected pods (IANA_SVC_NAME). */
  readonly targetPort: number | string;
  readonly protocol: Protocol;
}

/** A Service, as analysis reads it (the agent does not watch Services: kube-proxy's job). */
export interface Service {
  readonly namespace: string;
  readonly name: string;
  /**
   * spec.selector: "Route service traffic to pods with label keys and values matching this
   * selector. If empty or not present, the service is assumed to have an external process managing
   * its endpoints". undefined: no selector (empty or absent); ExternalName Services have none.
   */
  readonly selector?: Labels;
  readonly ports: readonly ServicePort[];
  readonly origin?: Origin;
}

/** Everything the evaluator and the compiler need to know about the cluster. */
export interface Snapshot {
  readonly namespaces: readonly Namespace[];
  /** Live pods only: pods in phase Succeeded or Failed are left out when the snapshot is assembled. */
  readonly pods: readonly Pod[];
  readonly nodes: readonly Node[];
  readonly policies: readonly NetworkPolicy[];
  /** ClusterNetworkPolicies, AdminNetworkPolicies and BaselineAdminNetworkPolicies (absent: none). */
  readonly adminPolicies?: readonly AdminPolicy[];
  /** Services (analysis only: read from files, never watched by the agent; absent: none). */
  readonly services?: readonly Service[];
  /** This node's pod attachments (the agent's view of its own node); absent in analysis. */
  readonly attachments?: readonly Attachment[];
}

export const emptySnapshot: Snapshot = { namespaces: [], pods: [], nodes: [], policies: [] };

export function podKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}
