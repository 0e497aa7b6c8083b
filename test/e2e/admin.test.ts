// The admin tiers with real packets: cases written from the API docs (ClusterNetworkPolicy v1beta1
// of sigs.k8s.io/network-policy-api v0.3.0, AdminNetworkPolicy / BaselineAdminNetworkPolicy
// v1alpha1 of v0.1.7; each case quotes the sentence it checks), applied by the production applier
// on both nodes of a two-node lab, one case after the other (incrementally). Every check of a case
// is probed and must equal the value written in the case AND the evaluator's verdict (so the
// evaluator is checked too); then every pod -> pod cell on the ports the case checks is probed and
// must equal the evaluator.
//
// The lab: node n1 (zone z1) and node n2 (zone z2, role infra); tenants ta and tb, a monitoring
// namespace, and a hostNetwork agent on n2 (it has n2's address and serves from n2's namespace).
// OFF_CLUSTER is an address on n2's loopback that n1 routes to n2: to the pods of n1 an address
// outside the cluster (neither a pod nor a node address).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { labApplier } from '../../src/lab/enforce.js';
import { mapLimit, run } from '../../src/lab/exec.js';
import { Lab } from '../../src/lab/lab.js';
import { FABRIC_LINK, fabricAddress } from '../../src/lab/plan.js';
import { matrixPods } from '../../src/analysis/matrix.js';
import { DEFAULT_TABLE, type DataplaneApplier } from '../../src/dataplane/index.js';
import {
  adminRule,
  aport,
  cnp,
  cport,
  netpol,
  networksPeer,
  nodesPeer,
  ns,
  nsSubject,
  pod,
  podPeer,
  podSubject,
  rule,
  sel,
  snapshot,
} from '../../src/model/build.js';
import type {
  AdminPeer,
  AdminPolicy,
  AdminPort,
  NetworkPolicy,
  Node,
  Protocol,
  Snapshot,
} from '../../src/model/types.js';
import { podKey } from '../../src/model/types.js';
import { evaluate, type Endpoint } from '../../src/policy/evaluate.js';
import { needsRoot, uniquePrefix } from './lab-util.js';
import { seconds } from './probe-util.js';

const NODES: readonly Node[] = [
  { name: 'n1', labels: { zone: 'z1' }, addresses: [], podCIDRs: [] },
  { name: 'n2', labels: { zone: 'z2', role: 'infra' }, addresses: [], podCIDRs: [] },
];
const OFF_CLUSTER = '192.0.2.10';

const WEB = 'ta/web'; // n1: 80 http, 8080 admin, 53/UDP dns, 7000/SCTP sig
const DB = 'ta/db'; // n2: 5432 pg
const TB_WEB = 'tb/web'; // n1: 80 plain, 8080 http
const CLIENT = 'tb/client'; // n2: no ports
const PROM = 'mon/prom'; // n1: 9090 metrics
const AGENT = 'kube-system/agent'; // n2, hostNetwork: 9100 metrics

function cluster(): Snapshot {
  return snapshot({
    nodes: [...NODES],
    namespaces: [
      ns('ta', { tenant: 'a' }),
      ns('tb', { tenant: 'b' }),
      ns('mon', { purpose: 'monitoring' }),
      ns('kube-system'),
    ],
    pods: [
      pod('ta', 'web', {
        nodeName: 'n1',
        labels: { app: 'web' },
        ports: [
          cport(80, 'TCP', 'http'),
          cport(8080, 'TCP', 'admin'),
          cport(53, 'UDP', 'dns'),
          cport(7000, 'SCTP', 'sig'),
        ],
      }),
      pod('ta', 'db', { nodeName: 'n2', labels: { app: 'db' }, ports: [cport(5432, 'TCP', 'pg')] }),
      pod('tb', 'web', {
        nodeName: 'n1',
        labels: { app: 'web' },
        ports: [cport(80, 'TCP', 'plain'), cport(8080, 'TCP', 'http')],
      }),
      pod('tb', 'client', { nodeName: 'n2', labels: { app: 'client' } }),
      pod('mon', 'prom', { nodeName: 'n1', labels: { app: 'prom' }, ports: [cport(9090, 'TCP', 'metrics')] }),
      pod('kube-system', 'agent', {
        nodeName: 'n2',
        hostNetwork: true,
        labels: { app: 'agent' },
        ports: [cport(9100, 'TCP', 'metrics')],
      }),
    ],
  });
}

/** One probe a case checks: from a pod to a pod ("ns/name") or to an address. */
interface Check {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol?: Protocol;
  readonly allowed: boolean;
}

interface Ctx {
  /** The lab address of a pod (its first IPv4 address). */
  ip(key: string): string;
  /** Node i's InternalIP. */
  node(i: number): string;
}

interface AdminCase {
  readonly name: string;
  /** The sentence of the API docs the case checks. */
  readonly doc: string;
  readonly admin: (c: Ctx) => AdminPolicy[];
  readonly policies?: NetworkPolicy[];
  readonly checks: (c: Ctx) => Check[];
}

// Small builders in the docs' terms.
const nsSel = (name: string) => sel({ 'kubernetes.io/metadata.name': name });
const tenant = (t: string): AdminPeer => ({ kind: 'namespaces', namespaceSelector: sel({ tenant: t }) });
const allNamespaces: AdminPeer = { kind: 'namespaces', namespaceSelector: sel() };
const podsOf = (namespace: string, labels: Record<string, string>): AdminPeer => ({
  kind: 'pods',
  namespaceSelector: nsSel(namespace),
  podSelector: sel(labels),
});
const onPods = (namespace: string, labels: Record<string, string>) =>
  podSubject(sel(labels), nsSel(namespace));
const named = (name: string): AdminPort => ({ kind: 'named', name });
const anp = (name: string, priority: number, o: Parameters<typeof cnp>[1] = {}) =>
  cnp(name, { ...o, kind: 'AdminNetworkPolicy', priority });
const banp = (o: Parameters<typeof cnp>[1] = {}) =>
  cnp('default', { ...o, kind: 'BaselineAdminNetworkPolicy' });
const baseline = (name: string, o: Parameters<typeof cnp>[1] = {}) => cnp(name, { ...o, tier: 'Baseline' });
/** An isolating NetworkPolicy without rules: every pod it selects is denied in that direction. */
const denyAll = (namespace: string, app: string, types: ('Ingress' | 'Egress')[] = ['Ingress']) =>
  netpol(namespace, `deny-${app}`, { podSelector: sel({ app }), policyTypes: types });

const cases: readonly AdminCase[] = [
  // --- actions ---------------------------------------------------------------------------------
  {
    name: 'Admin Accept overrides a NetworkPolicy deny',
    doc: 'ANP Allow: "allows the selected traffic (even if it would otherwise have been denied by NetworkPolicy)"; CNP Accept: "No further egress ClusterNetworkPolicy or NetworkPolicy rules will be processed"',
    admin: () => [
      cnp('accept-tb', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
    ],
    policies: [denyAll('ta', 'web')],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: true }, // across nodes
      { from: TB_WEB, to: WEB, port: 80, allowed: true }, // same node
      { from: PROM, to: WEB, port: 80, allowed: false }, // not accepted: the NetworkPolicy denies
    ],
  },
  {
    name: 'Admin Deny overrides a NetworkPolicy allow',
    doc: 'CNP Deny: "Drops the selected traffic. No further ClusterNetworkPolicy or NetworkPolicy rules will be processed."',
    admin: () => [
      cnp('deny-tb', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [tenant('b')])],
      }),
    ],
    policies: [netpol('ta', 'allow-all', { ingress: [rule()] })],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false },
      { from: TB_WEB, to: DB, port: 5432, allowed: false },
      { from: PROM, to: WEB, port: 80, allowed: true },
    ],
  },
  {
    name: 'Pass hands the flow to the NetworkPolicy tier, which allows or denies',
    doc: 'CNP Pass: "Skips all further ClusterNetworkPolicy rules in the current tier for the selected traffic, and passes evaluation to the next tier"; "v1.NetworkPolicy always makes a final decision for selected pods"',
    admin: () => [
      cnp('pass-tb', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Pass', [tenant('b')]), adminRule('Deny', [allNamespaces])],
      }),
    ],
    policies: [
      netpol('ta', 'web-from-clients', {
        podSelector: sel({ app: 'web' }),
        ingress: [rule([podPeer(sel({ app: 'client' }), sel({ tenant: 'b' }))])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: true }, // Pass, then the NetworkPolicy allows
      { from: TB_WEB, to: WEB, port: 80, allowed: false }, // Pass, then isolated and no rule matches
      { from: PROM, to: WEB, port: 80, allowed: false }, // not passed: the Deny rule after it
    ],
  },
  {
    name: 'Pass with no NetworkPolicy: the Baseline tier decides',
    doc: 'ANP Pass: "If the pod is not selected by any NetworkPolicies then execution is passed to any BaselineAdminNetworkPolicies that select the pod."',
    admin: () => [
      anp('pass-all', 10, {
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Pass', [allNamespaces])],
      }),
      banp({ subject: nsSubject(sel({ tenant: 'a' })), ingress: [adminRule('Deny', [tenant('b')])] }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false }, // Baseline Deny
      { from: TB_WEB, to: DB, port: 5432, allowed: false },
      { from: PROM, to: WEB, port: 80, allowed: true }, // no Baseline rule: the default allow
    ],
  },
  {
    name: 'Baseline Deny applies where no NetworkPolicy selects the pod; NetworkPolicy isolation overrides it',
    doc: '"Baseline tier is a cluster-wide policy that can be overridden by the v1.NetworkPolicy"; "Further evaluation only happens for Pods not selected by a v1.NetworkPolicy."',
    admin: () => [
      baseline('baseline-deny', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [allNamespaces])],
      }),
    ],
    policies: [
      netpol('ta', 'db-from-clients', {
        podSelector: sel({ app: 'db' }),
        ingress: [rule([podPeer(sel({ app: 'client' }), sel())])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false }, // no NetworkPolicy selects web: Baseline Deny
      { from: CLIENT, to: DB, port: 5432, allowed: true }, // the NetworkPolicy allows, Baseline not consulted
      { from: PROM, to: DB, port: 5432, allowed: false }, // the NetworkPolicy denies
    ],
  },
  {
    name: 'NetworkPolicy isolation overrides a Baseline Accept',
    doc: '"v1.NetworkPolicy always makes a final decision for selected pods. Further evaluation only happens for Pods not selected by a v1.NetworkPolicy."',
    admin: () => [
      baseline('baseline-accept', {
        priority: 5,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Accept', [allNamespaces])],
      }),
      baseline('baseline-deny', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [allNamespaces])],
      }),
    ],
    policies: [denyAll('ta', 'web')],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false }, // isolated by the NetworkPolicy
      { from: CLIENT, to: DB, port: 5432, allowed: true }, // Baseline Accept (priority 5) before its Deny
    ],
  },
  // --- order -----------------------------------------------------------------------------------
  {
    name: 'priority: the lower number is consulted first, whatever the kind',
    doc: '"Policies with lower priority values have higher precedence, and are checked before policies with higher priority values in the same tier."',
    admin: () => [
      cnp('deny-50', {
        priority: 50,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [tenant('b')])],
      }),
      cnp('accept-5', {
        priority: 5,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
      anp('deny-3', 3, { subject: onPods('ta', { app: 'db' }), ingress: [adminRule('Deny', [tenant('b')])] }),
      cnp('accept-4', {
        priority: 4,
        subject: onPods('ta', { app: 'db' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: true }, // accept-5 before deny-50
      { from: CLIENT, to: DB, port: 5432, allowed: false }, // ANP deny-3 before CNP accept-4
    ],
  },
  {
    name: "equal priority: ClusterNetworkPolicy before AdminNetworkPolicy, then by name (moat's order)",
    doc: '"If two (or more) policies in the same tier with the same priority could match a connection, then the implementation can apply any of the matching policies"; moat: priority, then ClusterNetworkPolicy before AdminNetworkPolicy, then name',
    admin: () => [
      anp('a-deny', 10, {
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('b')])],
      }),
      cnp('z-accept', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
      cnp('b-accept', {
        priority: 10,
        subject: onPods('ta', { app: 'db' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
      cnp('a-deny', {
        priority: 10,
        subject: onPods('ta', { app: 'db' }),
        ingress: [adminRule('Deny', [tenant('b')])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: true }, // CNP z-accept before ANP a-deny
      { from: CLIENT, to: DB, port: 5432, allowed: false }, // CNP a-deny before CNP b-accept
    ],
  },
  {
    name: 'rule order within a policy: the first matching rule decides',
    doc: '"The relative precedence of ingress rules within a single CNP object (all of which share the priority) will be determined by the order in which the rule is written."',
    admin: () => [
      cnp('web', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('b')], [aport(80)]), adminRule('Accept', [tenant('b')])],
      }),
      cnp('db', {
        priority: 10,
        subject: onPods('ta', { app: 'db' }),
        ingress: [adminRule('Accept', [tenant('b')]), adminRule('Deny', [tenant('b')], [aport(5432)])],
      }),
      // So that an Accept is visible: everything else is denied at the Baseline.
      banp({ subject: nsSubject(sel({ tenant: 'a' })), ingress: [adminRule('Deny', [allNamespaces])] }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false },
      { from: CLIENT, to: WEB, port: 8080, allowed: true },
      { from: CLIENT, to: DB, port: 5432, allowed: true },
      { from: PROM, to: WEB, port: 8080, allowed: false }, // no rule: Baseline Deny
    ],
  },
  // --- directions ------------------------------------------------------------------------------
  {
    name: 'an egress Accept does not override the ingress rules at the destination',
    doc: 'CNP Accept: "No further egress ClusterNetworkPolicy or NetworkPolicy rules will be processed but any ingress rules at the destination do apply."',
    admin: () => [
      cnp('client-egress', {
        priority: 10,
        subject: onPods('tb', { app: 'client' }),
        egress: [adminRule('Accept', [tenant('a')])],
      }),
    ],
    policies: [denyAll('ta', 'web'), denyAll('tb', 'client', ['Egress'])],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false }, // egress accepted, ingress isolated
      { from: CLIENT, to: DB, port: 5432, allowed: true }, // egress Accept beats the egress deny-all
      { from: CLIENT, to: TB_WEB, port: 80, allowed: false }, // the egress NetworkPolicy denies
    ],
  },
  {
    name: 'an ingress Accept does not override the egress rules at the source',
    doc: '"Ingress is the list of Ingress rules to be applied to the selected pods"; "Egress is the list of Egress rules to be applied to the selected pods"',
    admin: () => [
      cnp('web-ingress', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Accept', [tenant('b')])],
      }),
      cnp('web-egress', {
        priority: 11,
        subject: onPods('tb', { app: 'web' }),
        egress: [adminRule('Deny', [tenant('a')])],
      }),
    ],
    checks: () => [
      { from: TB_WEB, to: WEB, port: 80, allowed: false }, // ingress Accept, egress Deny at the source
      { from: CLIENT, to: WEB, port: 80, allowed: true },
    ],
  },
  // --- peers -----------------------------------------------------------------------------------
  {
    name: 'pods peer: a namespace selector and a pod selector',
    doc: '"Pods defines a way to select a set of pods in a set of namespaces."',
    admin: () => [
      cnp('no-client', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [podsOf('tb', { app: 'client' })])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false },
      { from: CLIENT, to: DB, port: 5432, allowed: false },
      { from: TB_WEB, to: WEB, port: 80, allowed: true },
    ],
  },
  {
    name: 'nodes peer: egress to a node address and to a hostNetwork pod on the node',
    doc: '"Nodes defines a way to select a set of nodes in the cluster (based on the node\'s labels). It selects the nodeIPs as the peer type by matching on the IPs present in the node.Status.Addresses field of the node."',
    admin: () => [
      cnp('no-infra-nodes', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        egress: [adminRule('Deny', [nodesPeer(sel({ role: 'infra' }))])],
      }),
      anp('prom-to-z2', 10, {
        subject: onPods('mon', { app: 'prom' }),
        egress: [adminRule('Accept', [nodesPeer(sel({ zone: 'z2' }))])],
      }),
      baseline('prom-nothing-else', {
        priority: 10,
        subject: onPods('mon', { app: 'prom' }),
        egress: [adminRule('Deny', [networksPeer('0.0.0.0/0')])],
      }),
      // db's own egress to its node's address is the node: never a policy's business.
      cnp('db-no-nodes', {
        priority: 12,
        subject: onPods('ta', { app: 'db' }),
        egress: [adminRule('Deny', [nodesPeer()])],
      }),
    ],
    checks: (c) => [
      { from: WEB, to: AGENT, port: 9100, allowed: false },
      { from: WEB, to: c.node(1), port: 9100, allowed: false },
      { from: WEB, to: c.node(1), port: 9100, protocol: 'UDP', allowed: false },
      { from: WEB, to: DB, port: 5432, allowed: true },
      { from: PROM, to: AGENT, port: 9100, allowed: true }, // Accept to nodes in zone z2
      { from: PROM, to: DB, port: 5432, allowed: false }, // Baseline Deny
      { from: DB, to: AGENT, port: 9100, allowed: true }, // same node
      { from: TB_WEB, to: c.node(1), port: 9100, allowed: true },
    ],
  },
  {
    name: 'networks peer: pod addresses, node addresses and an off-cluster address',
    doc: '"Networks defines a way to select peers via CIDR blocks. This is intended for representing entities that live outside the cluster, ... but note that cluster-internal traffic will be checked against the rule as well."',
    admin: (c) => [
      cnp('web-egress', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        egress: [
          adminRule('Deny', [networksPeer(`${c.ip(DB)}/32`)]),
          adminRule('Deny', [networksPeer(`${OFF_CLUSTER}/32`)], [aport(80)]),
          adminRule('Accept', [networksPeer('192.0.2.0/24')]),
        ],
      }),
      cnp('prom-egress', {
        priority: 10,
        subject: onPods('mon', { app: 'prom' }),
        egress: [adminRule('Deny', [networksPeer('10.244.1.0/24')])],
      }),
      baseline('web-nothing-else', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        egress: [adminRule('Deny', [networksPeer('0.0.0.0/0')])],
      }),
    ],
    checks: (c) => [
      { from: WEB, to: DB, port: 5432, allowed: false }, // a pod address in a network
      { from: WEB, to: CLIENT, port: 80, allowed: false }, // Baseline Deny 0.0.0.0/0
      { from: WEB, to: OFF_CLUSTER, port: 80, allowed: false },
      { from: WEB, to: OFF_CLUSTER, port: 8080, allowed: true }, // Accept 192.0.2.0/24
      { from: WEB, to: OFF_CLUSTER, port: 53, protocol: 'UDP', allowed: true },
      { from: PROM, to: AGENT, port: 9100, allowed: false }, // n2's address is in n2's slice
      { from: PROM, to: c.node(1), port: 80, allowed: false },
      { from: PROM, to: TB_WEB, port: 80, allowed: true }, // n1's slice
      { from: TB_WEB, to: OFF_CLUSTER, port: 80, allowed: true },
    ],
  },
  {
    name: 'domainNames peer: not enforced, an Accept on it admits nothing',
    doc: '"DomainNames is only supported for Accept rules. In order to control access, DomainNames Accept rules should be used with a lower precedence egress deny"; moat does not resolve domain names (docs/dataplane.md)',
    admin: () => [
      cnp('allow-example', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        egress: [
          adminRule('Accept', [{ kind: 'domainNames', domainNames: ['example.com', '*.example.org'] }]),
        ],
      }),
      cnp('deny-rest', {
        priority: 20,
        subject: onPods('ta', { app: 'web' }),
        egress: [adminRule('Deny', [networksPeer('0.0.0.0/0')])],
      }),
    ],
    checks: () => [
      { from: WEB, to: OFF_CLUSTER, port: 80, allowed: false },
      { from: WEB, to: DB, port: 5432, allowed: false },
      { from: TB_WEB, to: OFF_CLUSTER, port: 80, allowed: true },
    ],
  },
  {
    name: 'hostNetwork pods are never subjects, and namespaces and pods peers never select them',
    doc: 'ANP subject: "Note that host-networked pods are not included in subject selection."; CNP namespaces peer: "Note that host-networked pods are not included in this type of peer."',
    admin: () => [
      cnp('kube-system-lockdown', {
        priority: 10,
        subject: nsSubject(nsSel('kube-system')),
        ingress: [adminRule('Deny', [allNamespaces])],
        egress: [adminRule('Deny', [networksPeer('0.0.0.0/0')])],
      }),
      cnp('ta-no-kube-system', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [{ kind: 'namespaces', namespaceSelector: nsSel('kube-system') }])],
      }),
    ],
    checks: () => [
      { from: WEB, to: AGENT, port: 9100, allowed: true }, // the agent is not a subject
      { from: AGENT, to: WEB, port: 80, allowed: true }, // not a subject of egress; no peer selects it
      { from: AGENT, to: DB, port: 5432, allowed: true }, // and its own node anyway
    ],
  },
  // --- ports -----------------------------------------------------------------------------------
  {
    name: 'ports: no protocols means every port and protocol; a number; a range',
    doc: '"Protocols allows for more fine-grain matching of traffic on protocol-specific attributes such as the port. If unspecified, protocol-specific attributes will not be used to match traffic."',
    admin: () => [
      cnp('web', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('b')], [aport(8000, 'TCP', 8100)])],
      }),
      cnp('db', {
        priority: 10,
        subject: onPods('ta', { app: 'db' }),
        ingress: [adminRule('Deny', [tenant('b')], [aport(5432)])],
      }),
      cnp('tb-web', {
        priority: 10,
        subject: onPods('tb', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('a')])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 8080, allowed: false }, // 8000-8100
      { from: CLIENT, to: WEB, port: 80, allowed: true },
      { from: CLIENT, to: WEB, port: 8080, protocol: 'UDP', allowed: true }, // the range is TCP
      { from: CLIENT, to: DB, port: 5432, allowed: false },
      { from: CLIENT, to: DB, port: 5432, protocol: 'UDP', allowed: true },
      { from: WEB, to: TB_WEB, port: 80, allowed: false }, // no protocols: all of them
      { from: WEB, to: TB_WEB, port: 53, protocol: 'UDP', allowed: false },
    ],
  },
  {
    name: "ports: a named port (CNP destinationNamedPort, ANP namedPort) is the destination pod's",
    doc: 'CNP: "DestinationNamedPort selects a destination port on a pod based on the ContainerPort name."; ANP: "NamedPort selects a port on a pod(s) based on name."',
    admin: () => [
      cnp('no-http', {
        priority: 10,
        subject: nsSubject(sel({ tenant: 'a' })),
        ingress: [adminRule('Deny', [tenant('b')], [named('http')])],
      }),
      anp('no-http', 10, {
        subject: nsSubject(sel({ tenant: 'b' })),
        ingress: [adminRule('Deny', [tenant('a')], [named('http')])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 80, allowed: false }, // http is 80 on ta/web
      { from: CLIENT, to: WEB, port: 8080, allowed: true },
      { from: WEB, to: TB_WEB, port: 8080, allowed: false }, // http is 8080 on tb/web
      { from: WEB, to: TB_WEB, port: 80, allowed: true },
      { from: CLIENT, to: WEB, port: 80, protocol: 'UDP', allowed: true }, // http is a TCP port
    ],
  },
  {
    name: 'ports: UDP and SCTP',
    doc: '"UDP specific protocol matches."; "SCTP specific protocol matches."',
    admin: () => [
      cnp('web', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('b')], [aport(53, 'UDP'), aport(7000, 'SCTP')])],
      }),
    ],
    checks: () => [
      { from: CLIENT, to: WEB, port: 53, protocol: 'UDP', allowed: false },
      { from: CLIENT, to: WEB, port: 53, allowed: true },
      { from: CLIENT, to: WEB, port: 7000, protocol: 'SCTP', allowed: false },
      { from: CLIENT, to: WEB, port: 7000, allowed: true },
      { from: DB, to: WEB, port: 7000, protocol: 'SCTP', allowed: true },
      { from: TB_WEB, to: WEB, port: 7000, protocol: 'SCTP', allowed: false }, // same node
    ],
  },
];

function endpoint(snap: Snapshot, key: string): Endpoint {
  const p = snap.pods.find((x) => podKey(x) === key);
  return p ? { kind: 'pod', pod: p } : { kind: 'ip', ip: key };
}

function evaluateCheck(snap: Snapshot, c: Check): boolean {
  return evaluate(snap, {
    src: endpoint(snap, c.from),
    dst: endpoint(snap, c.to),
    port: c.port,
    protocol: c.protocol ?? 'TCP',
    family: 4,
  }).allowed;
}

function label(c: Check): string {
  return `${c.protocol ?? 'TCP'}/${c.port} ${c.from} -> ${c.to}`;
}

describe('admin tiers with real packets (two nodes, a hostNetwork pod)', { skip: needsRoot }, () => {
  let lab: Lab | undefined;
  let appliers: DataplaneApplier[] = [];
  let offCluster: { stop(): Promise<void> } | undefined;
  const t0 = Date.now();
  const stats = { checks: 0, cells: 0, retried: [] as string[] };

  before(async () => {
    lab = await Lab.create(cluster(), {
      prefix: uniquePrefix(),
      nodeNames: NODES.map((n) => n.name),
      probeTimeoutMs: 1000,
    });
    const l = lab;
    assert.deepEqual(
      l.plan.nodes.map((n) => [n.name, n.labels.role ?? '', n.addresses]),
      [
        ['n1', '', ['10.244.0.1']],
        ['n2', 'infra', ['10.244.1.1']],
      ],
    );
    assert.deepEqual(l.snapshot.pods.find((p) => p.name === 'agent')?.ips, ['10.244.1.1']);
    // The off-cluster address: on n2's loopback, routed there by n1.
    await run(['ip', '-n', l.nodes[1]!.netns, 'address', 'add', `${OFF_CLUSTER}/32`, 'dev', 'lo']);
    await run([
      'ip',
      '-n',
      l.nodes[0]!.netns,
      'route',
      'add',
      `${OFF_CLUSTER}/32`,
      'via',
      fabricAddress(1, 4),
      'dev',
      FABRIC_LINK,
    ]);
    offCluster = await l.startNodeServer(1, [53, 80, 8080], [OFF_CLUSTER]);
    appliers = l.nodes.map((_, i) => labApplier(l, DEFAULT_TABLE, i));
  });

  after(async () => {
    await offCluster?.stop();
    await Promise.all(appliers.map((a) => a.remove().catch(() => undefined)));
    await lab?.destroy();
    console.log(
      `# admin lab: ${cases.length} cases, ${stats.checks} written checks and ${stats.cells} matrix cells ` +
        `probed with real packets, ${stats.retried.length} passed only on retry, total ${seconds(t0)}`,
    );
    for (const r of stats.retried) console.log(`#   passed on retry: ${r}`);
  });

  /** Applies a snapshot on every node (each with its CNI attachments), checks for drift, flushes conntrack. */
  async function enforce(l: Lab, snap: Snapshot): Promise<void> {
    await Promise.all(
      appliers.map(async (a, i) => {
        const r = await a.apply({ ...snap, attachments: l.attachments(i) });
        assert.deepEqual(
          r.conntrackErrors.filter((e) => !/such conntrack doesn't exist/.test(e)),
          [],
          'conntrack cleanup',
        );
        const drift = await a.checkDrift();
        assert.deepEqual(
          drift.differences,
          [],
          `node ${l.nodes[i]!.name}: kernel table equals the compiled ruleset`,
        );
      }),
    );
    await Promise.all(l.nodes.map((n) => run(['ip', 'netns', 'exec', n.netns, 'conntrack', '-F'])));
  }

  /** Probes a check; one more, longer try when it should pass (a lost datagram is not a drop). */
  async function probe(l: Lab, snap: Snapshot, c: Check, shouldPass: boolean) {
    const protocol = c.protocol ?? 'TCP';
    const once = (timeoutMs?: number) =>
      snap.pods.some((p) => podKey(p) === c.to)
        ? l.probe(c.from, c.to, c.port, protocol, {
            family: 4,
            ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          })
        : l.probeAddress(c.from, c.to, c.port, protocol as 'TCP' | 'UDP');
    const first = await once();
    if (first.allowed === undefined) throw new Error(`not probed: ${label(c)}: ${first.detail}`);
    if (first.allowed || !shouldPass) return { allowed: first.allowed, detail: first.detail };
    const again = await once(3000);
    if (again.allowed === true) stats.retried.push(label(c));
    return { allowed: again.allowed === true, detail: `${first.detail}, then ${again.detail}` };
  }

  for (const k of cases) {
    it(k.name, async () => {
      const l = lab!;
      const ctx: Ctx = {
        ip: (key) => l.snapshot.pods.find((p) => podKey(p) === key)!.ips[0]!,
        node: (i) => l.plan.nodes[i]!.addresses[0]!,
      };
      const snap: Snapshot = { ...l.snapshot, policies: k.policies ?? [], adminPolicies: k.admin(ctx) };
      await enforce(l, snap);

      const checks = k.checks(ctx);
      const failures: string[] = [];
      const observed = await mapLimit(checks, 64, (c) =>
        probe(l, snap, c, c.allowed || evaluateCheck(snap, c)),
      );
      stats.checks += checks.length;
      checks.forEach((c, i) => {
        const o = observed[i]!;
        const ev = evaluateCheck(snap, c);
        if (ev !== c.allowed) failures.push(`evaluator: ${label(c)}: written ${c.allowed}, evaluator ${ev}`);
        if (o.allowed !== c.allowed)
          failures.push(`kernel: ${label(c)}: written ${c.allowed}, observed ${o.allowed} (${o.detail})`);
      });

      // Every pod -> pod cell on the ports the case checks, against the evaluator.
      const pods = matrixPods(snap).map(podKey);
      const probes = [...new Map(checks.map((c) => [`${c.protocol ?? 'TCP'}/${c.port}`, c])).values()];
      const cells = probes.flatMap((p) =>
        pods.flatMap((from) =>
          pods.map((to): Check => {
            const c = { from, to, port: p.port, protocol: p.protocol ?? 'TCP', allowed: false };
            return { ...c, allowed: evaluateCheck(snap, c) };
          }),
        ),
      );
      const seen = await mapLimit(cells, 512, (c) => probe(l, snap, c, c.allowed));
      stats.cells += cells.length;
      cells.forEach((c, i) => {
        const o = seen[i]!;
        if (o.allowed !== c.allowed)
          failures.push(`matrix: ${label(c)}: evaluator ${c.allowed}, observed ${o.allowed} (${o.detail})`);
      });
      assert.deepEqual(failures, [], `${k.name}\n  ${k.doc}`);
    });
  }

  it('an established connection is cut when a new admin Deny forbids it (ingress and egress)', async () => {
    // "Deny: Drops the selected traffic": established flows included, so the appliers delete the
    // conntrack entries of flows a new Deny matches (on the node that enforces that side).
    const l = lab!;
    await enforce(l, { ...l.snapshot, adminPolicies: [] });
    const byIngress = await l.connect(CLIENT, WEB, 80); // n2 -> n1: cut by web's ingress on n1
    const byEgress = await l.connect(TB_WEB, DB, 5432); // n1 -> n2: cut by tb/web's egress on n1
    const kept = await l.connect(CLIENT, DB, 5432);
    assert.ok(byIngress && byEgress && kept, 'connections open');
    for (const c of [byIngress, byEgress, kept]) assert.equal(await c.send(), true, 'echo before the Deny');
    const deny: AdminPolicy[] = [
      cnp('no-tb-to-web', {
        priority: 10,
        subject: onPods('ta', { app: 'web' }),
        ingress: [adminRule('Deny', [tenant('b')])],
      }),
      anp('tb-web-no-db', 10, {
        subject: onPods('tb', { app: 'web' }),
        egress: [adminRule('Deny', [podsOf('ta', { app: 'db' })])],
      }),
    ];
    const snap = { ...l.snapshot, adminPolicies: deny };
    const results = await Promise.all(
      appliers.map((a, i) => a.apply({ ...snap, attachments: l.attachments(i) })),
    );
    for (const r of results) {
      assert.deepEqual(
        r.conntrackErrors.filter((e) => !/such conntrack doesn't exist/.test(e)),
        [],
      );
    }
    assert.ok(
      results.some((r) => r.conntrackDeleted.length > 0),
      `some node deleted conntrack entries: ${results.map((r) => r.conntrackDeleted.join(',')).join(' / ')}`,
    );
    assert.equal(await byIngress.send(1500), false, 'client -> web is cut (ingress Deny)');
    assert.equal(await byEgress.send(1500), false, 'tb/web -> db is cut (egress Deny)');
    assert.equal(await kept.send(), true, 'client -> db, still allowed, survives');
    assert.equal(evaluateCheck(snap, { from: CLIENT, to: WEB, port: 80, allowed: false }), false);
    assert.equal(evaluateCheck(snap, { from: TB_WEB, to: DB, port: 5432, allowed: false }), false);
    assert.equal(evaluateCheck(snap, { from: CLIENT, to: DB, port: 5432, allowed: true }), true);
    await Promise.all([byIngress, byEgress, kept].map((c) => c.close()));
  });
});
