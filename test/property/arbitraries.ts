// fast-check generators of small random clusters: a few namespaces, pods and policies drawn from
// small alphabets, so that labels, selectors, ipBlocks and named ports collide often.
import fc from 'fast-check';
import {
  adminRule,
  aport,
  cnp,
  cport,
  ipPeer,
  netpol,
  networksPeer,
  node,
  nodesPeer,
  ns,
  nsSubject,
  pod,
  podPeer,
  podSubject,
  pport,
  rule,
  sel,
  snapshot,
} from '../../src/model/build.js';
import type {
  AdminAction,
  AdminKind,
  AdminPeer,
  AdminPolicy,
  AdminPort,
  AdminRule,
  AdminTier,
  LabelSelector,
  Labels,
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
} from '../../src/model/types.js';
import type { Endpoint, Flow } from '../../src/policy/evaluate.js';

export interface SnapshotShape {
  readonly maxPods?: number;
  readonly maxPolicies?: number;
  /** Address stacks to draw pods from (repeat one to weight it). */
  readonly stacks?: readonly ('v4' | 'dual' | 'v6first' | 'none')[];
  /** Draw peers from ipBlocks only (to stress address classes). */
  readonly ipBlocksOnly?: boolean;
  /** Up to this many admin policies (both kinds families, both tiers); default none. */
  readonly maxAdminPolicies?: number;
  /**
   * Pods alike but for their addresses, nodes and hostNetwork (two namespaces, two label sets, the
   * same ports), so that classes that only addresses or nodes should split are put to the test.
   */
  readonly alikePods?: boolean;
}

export const NAMESPACES = ['a', 'b', 'c'] as const;
export const NODES = [node('n1', ['192.168.0.1']), node('n2', ['192.168.0.2'])];
export const EXTRA_IPS = ['10.0.0.1', '10.9.9.9', '192.168.0.1', '192.168.0.77', 'fd00::9'];
export const PORTS = [53, 80, 81, 8080] as const;

export const labelsArb: fc.Arbitrary<Labels> = fc.dictionary(
  fc.constantFrom('app', 'tier'),
  fc.constantFrom('x', 'y'),
  { maxKeys: 2 },
);

const requirementArb: fc.Arbitrary<Requirement> = fc.oneof(
  fc.record({
    key: fc.constantFrom('app', 'tier', 'team'),
    operator: fc.constantFrom('In' as const, 'NotIn' as const),
    values: fc.subarray(['x', 'y', 't1'], { minLength: 1 }),
  }),
  fc.record({
    key: fc.constantFrom('app', 'tier', 'team'),
    operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
    values: fc.constant([] as string[]),
  }),
);

export const selectorArb: fc.Arbitrary<LabelSelector> = fc
  .tuple(
    fc.dictionary(fc.constantFrom('app', 'tier'), fc.constantFrom('x', 'y'), { maxKeys: 1 }),
    fc.array(requirementArb, { maxLength: 1 }),
  )
  .map(([l, e]) => sel(l, e));

const nsSelectorArb: fc.Arbitrary<LabelSelector> = fc.oneof(
  fc.constant(sel()),
  fc.constantFrom('t1', 't2').map((t) => sel({ team: t })),
  fc.constantFrom(...NAMESPACES).map((n) => sel({ 'kubernetes.io/metadata.name': n })),
  requirementArb.map((r) => sel({}, [r])),
);

const IP_BLOCKS: [string, string[]][] = [
  ['10.0.0.0/8', []],
  ['10.0.0.0/16', ['10.0.1.0/24']],
  ['192.168.0.0/24', []],
  ['0.0.0.0/0', ['10.0.2.0/24', '192.168.0.2/32']],
  ['fd00::/8', []],
  ['fd00::/64', ['fd00::4/126']],
];

export const peerArb: fc.Arbitrary<Peer> = fc.oneof(
  fc.tuple(selectorArb, fc.option(nsSelectorArb, { nil: undefined })).map(([p, n]) => podPeer(p, n)),
  nsSelectorArb.map((n) => podPeer(undefined, n)),
  fc.constantFrom(...IP_BLOCKS).map(([c, e]) => ipPeer(c, e)),
);

const POLICY_PORTS: PolicyPort[] = [
  pport(80),
  pport('http'),
  pport(53, 'UDP'),
  pport('dns', 'UDP'),
  pport(79, 'TCP', 81),
  pport(undefined, 'UDP'),
  pport(8080, 'SCTP'),
];

// "If this field is empty or missing": the model represents both as undefined.
const ipPeerArb: fc.Arbitrary<Peer> = fc.constantFrom(...IP_BLOCKS).map(([c, e]) => ipPeer(c, e));

export const ruleArb = (o: SnapshotShape = {}): fc.Arbitrary<PolicyRule> =>
  fc
    .tuple(
      fc.option(fc.array(o.ipBlocksOnly === true ? ipPeerArb : peerArb, { minLength: 1, maxLength: 2 }), {
        nil: undefined,
      }),
      fc.option(fc.subarray(POLICY_PORTS, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    )
    .map(([peers, ports]) => rule(peers, ports));

const policyTypesArb: fc.Arbitrary<PolicyType[] | undefined> = fc.constantFrom(
  undefined,
  ['Ingress'] as PolicyType[],
  ['Egress'] as PolicyType[],
  ['Ingress', 'Egress'] as PolicyType[],
);

export const policyArb = (name: string, o: SnapshotShape = {}): fc.Arbitrary<NetworkPolicy> =>
  fc
    .record({
      namespace: fc.constantFrom(...NAMESPACES),
      podSelector: fc.oneof(fc.constant(sel()), selectorArb),
      ingress: fc.array(ruleArb(o), { maxLength: 2 }),
      egress: fc.array(ruleArb(o), { maxLength: 2 }),
      policyTypes: policyTypesArb,
    })
    .map((r) =>
      netpol(r.namespace, name, {
        podSelector: r.podSelector,
        ingress: r.ingress,
        egress: r.egress,
        ...(r.policyTypes !== undefined ? { policyTypes: r.policyTypes } : {}),
      }),
    );

// ---------------------------------------------------------------------------------------------
// Admin policies: ClusterNetworkPolicy (Admin and Baseline), AdminNetworkPolicy and the
// BaselineAdminNetworkPolicy; every action, every peer type, every port form; priorities from a
// small set so that equal priorities (the documented tie order) occur.

/** Nodes with labels (for nodeSelectors) and an ExternalIP (nodes peers match it too). */
export const ADMIN_NODES = [
  { ...node('n1', ['192.168.0.1']), labels: { role: 'x' }, externalAddresses: ['203.0.113.1'] },
  { ...node('n2', ['192.168.0.2']), labels: { role: 'y' } },
];

const NETWORKS: string[][] = [
  ['10.0.0.0/8'],
  ['10.0.1.0/24'],
  ['192.168.0.0/24'],
  ['192.168.0.2/32', '203.0.113.0/24'],
  ['fd00::/8'],
  ['10.0.2.0/24', 'fd00::/126'],
  ['0.0.0.0/0', '::/0'],
];

const ADMIN_PORTS: AdminPort[] = [
  aport(80),
  aport(53, 'UDP'),
  aport(79, 'TCP', 81),
  aport(8080, 'SCTP'),
  { kind: 'named', name: 'http' },
  { kind: 'named', name: 'dns' },
];

const adminSubjectArb = fc.oneof(
  nsSelectorArb.map((n) => nsSubject(n)),
  fc.tuple(selectorArb, nsSelectorArb).map(([p, n]) => podSubject(p, n)),
);

const nodeSelectorArb: fc.Arbitrary<LabelSelector> = fc.oneof(
  fc.constant(sel()),
  fc.constantFrom('x', 'y').map((r) => sel({ role: r })),
  fc.constant(sel({}, [{ key: 'role', operator: 'NotIn', values: ['x'] }])),
);

// Ingress peers: namespaces and pods only; egress also nodes, networks, domainNames. Unknown peers
// (a newer CRD's field) are rare: they make a rule Deny all or inert.
const ingressPeerArb: fc.Arbitrary<AdminPeer> = fc.oneof(
  { weight: 4, arbitrary: adminSubjectArb },
  { weight: 1, arbitrary: fc.constant<AdminPeer>({ kind: 'unknown', fields: ['future'] }) },
);
const egressPeerArb: fc.Arbitrary<AdminPeer> = fc.oneof(
  { weight: 4, arbitrary: adminSubjectArb },
  { weight: 2, arbitrary: nodeSelectorArb.map((n) => nodesPeer(n)) },
  { weight: 3, arbitrary: fc.constantFrom(...NETWORKS).map((n) => networksPeer(...n)) },
  { weight: 1, arbitrary: fc.constant<AdminPeer>({ kind: 'domainNames', domainNames: ['example.com'] }) },
  { weight: 1, arbitrary: fc.constant<AdminPeer>({ kind: 'unknown', fields: ['future'] }) },
);

// With ipBlocksOnly: egress peers that match by address only (to stress address classes).
const addressPeerArb: fc.Arbitrary<AdminPeer> = fc.oneof(
  { weight: 1, arbitrary: nodeSelectorArb.map((n) => nodesPeer(n)) },
  { weight: 3, arbitrary: fc.constantFrom(...NETWORKS).map((n) => networksPeer(...n)) },
);

const adminRuleArb = (peers: fc.Arbitrary<AdminPeer>): fc.Arbitrary<AdminRule> =>
  fc
    .record({
      action: fc.constantFrom<AdminAction>('Accept', 'Deny', 'Pass'),
      peers: fc.array(peers, { minLength: 1, maxLength: 2 }),
      ports: fc.option(fc.subarray(ADMIN_PORTS, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      name: fc.constantFrom('', 'r'),
    })
    .map((r) => adminRule(r.action, r.peers, r.ports, r.name));

const ADMIN_KINDS: [AdminKind, AdminTier][] = [
  ['ClusterNetworkPolicy', 'Admin'],
  ['ClusterNetworkPolicy', 'Baseline'],
  ['AdminNetworkPolicy', 'Admin'],
  ['BaselineAdminNetworkPolicy', 'Baseline'],
];

export const adminPolicyArb = (name: string, o: SnapshotShape = {}): fc.Arbitrary<AdminPolicy> =>
  fc
    .record({
      kind: fc.constantFrom(...ADMIN_KINDS),
      priority: fc.constantFrom(0, 1, 1, 5),
      // Often every pod: so that the rules, not the subjects, decide.
      subject: fc.oneof(adminSubjectArb, fc.constant(nsSubject())),
      ingress: fc.array(adminRuleArb(ingressPeerArb), { maxLength: 2 }),
      egress: fc.array(adminRuleArb(o.ipBlocksOnly === true ? addressPeerArb : egressPeerArb), {
        maxLength: 2,
      }),
    })
    .map((r) => {
      const [kind, tier] = r.kind;
      // The BaselineAdminNetworkPolicy is a singleton named default, without a priority.
      const banp = kind === 'BaselineAdminNetworkPolicy';
      return cnp(banp ? 'default' : name, {
        kind,
        tier,
        priority: banp ? 0 : r.priority,
        subject: r.subject,
        ingress: r.ingress,
        egress: r.egress,
      });
    });

/** Admin policies, at most one BaselineAdminNetworkPolicy (names ap0, ap1, ... or default). */
const adminPoliciesArb = (max: number, o: SnapshotShape): fc.Arbitrary<AdminPolicy[]> =>
  fc
    .integer({ min: 0, max })
    .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => adminPolicyArb(`ap${i}`, o))))
    .map((ps) =>
      ps.filter(
        (p, i) => p.kind !== 'BaselineAdminNetworkPolicy' || ps.findIndex((q) => q.kind === p.kind) === i,
      ),
    );

type Stack = 'v4' | 'dual' | 'v6first' | 'none';
const STACKS: Stack[] = ['v4', 'v4', 'v4', 'dual', 'v6first', 'none'];

const podArb = (i: number, o: SnapshotShape, nodes: readonly Node[]): fc.Arbitrary<Pod> =>
  fc
    .record({
      namespace: o.alikePods === true ? fc.constantFrom('a', 'b') : fc.constantFrom(...NAMESPACES),
      labels: o.alikePods === true ? fc.constantFrom<Labels>({}, { app: 'x' }) : labelsArb,
      node: fc.constantFrom(0, 1, -1),
      hostNetwork: fc.integer({ min: 0, max: o.alikePods === true ? 3 : 7 }).map((x) => x === 0),
      stack: fc.constantFrom(...(o.stacks ?? STACKS)),
      subnet: fc.constantFrom(0, 1, 2),
      ports: (o.alikePods === true ? fc.constant : fc.subarray)([
        cport(80, 'TCP', 'http'),
        cport(53, 'UDP', 'dns'),
        cport(81, 'TCP', 'http'),
        cport(8080),
      ]),
    })
    .map((r) => {
      const nodeName = r.node >= 0 ? nodes[r.node]!.name : undefined;
      const v4 = r.hostNetwork && r.node >= 0 ? nodes[r.node]!.addresses[0]! : `10.0.${r.subnet}.${i + 1}`;
      const v6 = `fd00::${i + 1}`;
      const ips = { v4: [v4], dual: [v4, v6], v6first: [v6, v4], none: [] as string[] }[r.stack];
      // A pod may not declare the same (port, protocol) twice; keep the first.
      const ports = r.ports.filter(
        (p, k) =>
          r.ports.findIndex((q) => q.containerPort === p.containerPort && q.protocol === p.protocol) === k,
      );
      return pod(r.namespace, `p${i}`, {
        labels: r.labels,
        ips,
        ports,
        hostNetwork: r.hostNetwork,
        ...(nodeName !== undefined ? { nodeName } : {}),
      });
    });

export const snapshotArb = (o: SnapshotShape = {}): fc.Arbitrary<Snapshot> => {
  const admin = (o.maxAdminPolicies ?? 0) > 0;
  const nodes = admin ? ADMIN_NODES : NODES;
  return fc
    .record({
      nsTeams: fc.tuple(...NAMESPACES.map(() => fc.constantFrom(undefined, 't1', 't2'))),
      numPods: fc.integer({ min: 1, max: o.maxPods ?? 7 }),
      numPolicies: fc.integer({ min: 0, max: o.maxPolicies ?? 4 }),
    })
    .chain((r) =>
      fc
        .tuple(
          fc.tuple(...Array.from({ length: r.numPods }, (_, i) => podArb(i, o, nodes))),
          fc.tuple(...Array.from({ length: r.numPolicies }, (_, i) => policyArb(`pol${i}`, o))),
          admin ? adminPoliciesArb(o.maxAdminPolicies ?? 0, o) : fc.constant([]),
        )
        .map(([pods, policies, adminPolicies]) =>
          snapshot({
            namespaces: NAMESPACES.map((n, k) => {
              const team = r.nsTeams[k];
              return ns(n, team !== undefined ? { team } : {});
            }),
            nodes,
            pods,
            policies,
            ...(admin ? { adminPolicies } : {}),
          }),
        ),
    );
};

/** A random flow between pods of the snapshot (or a few fixed IPs). */
export const flowArb = (s: Snapshot): fc.Arbitrary<Flow> => {
  // Nodes' ExternalIPs too (admin nodes peers match them), when the nodes have any.
  const external = s.nodes.flatMap((n) => n.externalAddresses ?? []).filter((ip) => !EXTRA_IPS.includes(ip));
  const endpoints: Endpoint[] = [
    ...s.pods.map((p): Endpoint => ({ kind: 'pod', pod: p })),
    ...[...EXTRA_IPS, ...external].map((ip): Endpoint => ({ kind: 'ip', ip })),
  ];
  return fc
    .record({
      src: fc.constantFrom(...endpoints),
      dst: fc.constantFrom(...endpoints),
      port: fc.constantFrom(...PORTS),
      protocol: fc.constantFrom<Protocol>('TCP', 'UDP', 'SCTP'),
      family: fc.constantFrom(undefined, 4 as const, 6 as const),
    })
    .map((r) => ({
      src: r.src,
      dst: r.dst,
      port: r.port,
      protocol: r.protocol,
      ...(r.family !== undefined ? { family: r.family } : {}),
    }));
};
