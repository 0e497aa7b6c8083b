// fast-check generators of small random clusters: a few namespaces, pods and policies drawn from
// small alphabets, so that labels, selectors, ipBlocks and named ports collide often.
import fc from 'fast-check';
import {
  cport,
  ipPeer,
  netpol,
  node,
  ns,
  pod,
  podPeer,
  pport,
  rule,
  sel,
  snapshot,
} from '../../src/model/build.js';
import type {
  LabelSelector,
  Labels,
  NetworkPolicy,
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

type Stack = 'v4' | 'dual' | 'v6first' | 'none';
const STACKS: Stack[] = ['v4', 'v4', 'v4', 'dual', 'v6first', 'none'];

const podArb = (i: number, o: SnapshotShape): fc.Arbitrary<Pod> =>
  fc
    .record({
      namespace: fc.constantFrom(...NAMESPACES),
      labels: labelsArb,
      node: fc.constantFrom(0, 1, -1),
      hostNetwork: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
      stack: fc.constantFrom(...(o.stacks ?? STACKS)),
      subnet: fc.constantFrom(0, 1, 2),
      ports: fc.subarray([
        cport(80, 'TCP', 'http'),
        cport(53, 'UDP', 'dns'),
        cport(81, 'TCP', 'http'),
        cport(8080),
      ]),
    })
    .map((r) => {
      const nodeName = r.node >= 0 ? NODES[r.node]!.name : undefined;
      const v4 = r.hostNetwork && r.node >= 0 ? NODES[r.node]!.addresses[0]! : `10.0.${r.subnet}.${i + 1}`;
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

export const snapshotArb = (o: SnapshotShape = {}): fc.Arbitrary<Snapshot> =>
  fc
    .record({
      nsTeams: fc.tuple(...NAMESPACES.map(() => fc.constantFrom(undefined, 't1', 't2'))),
      numPods: fc.integer({ min: 1, max: o.maxPods ?? 7 }),
      numPolicies: fc.integer({ min: 0, max: o.maxPolicies ?? 4 }),
    })
    .chain((r) =>
      fc
        .tuple(
          fc.tuple(...Array.from({ length: r.numPods }, (_, i) => podArb(i, o))),
          fc.tuple(...Array.from({ length: r.numPolicies }, (_, i) => policyArb(`pol${i}`, o))),
        )
        .map(([pods, policies]) =>
          snapshot({
            namespaces: NAMESPACES.map((n, k) => {
              const team = r.nsTeams[k];
              return ns(n, team !== undefined ? { team } : {});
            }),
            nodes: NODES,
            pods,
            policies,
          }),
        ),
    );

/** A random flow between pods of the snapshot (or a few fixed IPs). */
export const flowArb = (s: Snapshot): fc.Arbitrary<Flow> => {
  const endpoints: Endpoint[] = [
    ...s.pods.map((p): Endpoint => ({ kind: 'pod', pod: p })),
    ...EXTRA_IPS.map((ip): Endpoint => ({ kind: 'ip', ip })),
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
