// The conformance cases: policies against the x/y/z model (model.ts) and, per probe, the full 9x9
// truth written by hand from the NetworkPolicy API reference and concepts page. Never computed by
// the evaluator: these are what the evaluator and the dataplane are checked against.
//
// Truths read as edits on an all-allowed matrix: deny(from, to) / allow(from, to) with patterns
// "x/a", "x/*", "*/b", "*"; later edits win; the diagonal (a pod to itself) is always allowed.
import { ipPeer, netpol, podPeer, pport, rule, sel } from '../../src/model/build.js';
import type { NetworkPolicy, Protocol, Requirement, SelectorOperator } from '../../src/model/types.js';
import {
  allow,
  deny,
  grid,
  truth,
  type ConformanceCase,
  type Family,
  type Probe,
  type Truth,
} from './model.js';

const req = (key: string, operator: SelectorOperator, values: string[] = []): Requirement => ({
  key,
  operator,
  values,
});

/** The probes most cases use: ports 80 and 81 on TCP and UDP. */
const TCP_UDP: readonly [number, Protocol][] = [
  [80, 'TCP'],
  [81, 'TCP'],
  [80, 'UDP'],
  [81, 'UDP'],
];
const SCTP: readonly [number, Protocol][] = [
  [80, 'SCTP'],
  [81, 'SCTP'],
];

/** The same truth on each of the given (port, protocol) pairs. */
function on(t: Truth, pairs: readonly (readonly [number, Protocol])[] = TCP_UDP): Probe[] {
  return pairs.map(([port, protocol]) => ({ port, protocol, expected: t }));
}

function at(port: number, protocol: Protocol, expected: Truth): Probe {
  return { port, protocol, expected };
}

interface CaseInput {
  name: string;
  description: string;
  policies: NetworkPolicy[];
  probes: Probe[];
  /** Defaults to both: a case without ipBlock peers holds for IPv4 and IPv6 alike. */
  families?: Family[];
}

function kase(c: CaseInput): ConformanceCase {
  return { ...c, families: c.families ?? [4, 6] };
}

// Shorthands for the policies most cases are made of.
const podA = sel({ pod: 'a' });
const fromPods = (labels: Record<string, string>) => podPeer(sel(labels));
const fromNamespaces = (labels: Record<string, string>) => podPeer(undefined, sel(labels));
const denyIngressX = netpol('x', 'default-deny-ingress');

export const cases: readonly ConformanceCase[] = [
  // --- Isolation and defaults -----------------------------------------------------------------
  kase({
    name: 'default-allow',
    description:
      '"By default, a pod is non-isolated for ingress; all inbound connections are allowed." and ' +
      '"By default, a pod is non-isolated for egress; all outbound connections are allowed."',
    policies: [],
    probes: on(truth(), [...TCP_UDP, ...SCTP]),
  }),
  kase({
    name: 'deny-all-ingress',
    description:
      'spec.ingress: "If this field is empty then this NetworkPolicy does not allow any traffic (and serves ' +
      'solely to ensure that the pods it selects are isolated by default)"; spec.podSelector: "An empty ' +
      'selector matches all pods in the policy\'s namespace."',
    policies: [denyIngressX],
    probes: on(truth(deny('*', 'x/*')), [...TCP_UDP, ...SCTP]),
  }),
  kase({
    name: 'allow-all-ingress',
    description:
      'NetworkPolicyIngressRule.from: "If this field is empty or missing, this rule matches all sources"; ' +
      '.ports: "If this field is empty or missing, this rule matches all ports".',
    policies: [netpol('x', 'allow-all-ingress', { ingress: [rule()] })],
    probes: on(truth(), [...TCP_UDP, ...SCTP]),
  }),
  kase({
    name: 'deny-all-egress',
    description:
      'spec.policyTypes: "if you want to write a policy that specifies that no egress is allowed, you must ' +
      'specify a policyTypes value that include "Egress""; spec.egress: "If this field is empty then this ' +
      'NetworkPolicy limits all outgoing traffic".',
    policies: [netpol('x', 'default-deny-egress', { policyTypes: ['Egress'] })],
    probes: on(truth(deny('x/*', '*')), [...TCP_UDP, ...SCTP]),
  }),
  kase({
    name: 'allow-all-egress',
    description:
      'NetworkPolicyEgressRule.to: "If this field is empty or missing, this rule matches all destinations"; ' +
      'with policyTypes [Egress] the pods stay non-isolated for ingress.',
    policies: [netpol('x', 'allow-all-egress', { policyTypes: ['Egress'], egress: [rule()] })],
    probes: on(truth()),
  }),
  kase({
    name: 'policytypes-default-egress-rules-imply-ingress-too',
    description:
      'spec.policyTypes: "policies that contain an egress section are assumed to affect egress, and all ' +
      'policies (whether or not they contain an ingress section) are assumed to affect ingress. If you want ' +
      'to write an egress-only policy, you must explicitly specify policyTypes [ "Egress" ]." An allow-all ' +
      'egress policy without policyTypes therefore denies all ingress.',
    policies: [netpol('x', 'allow-egress-without-policytypes', { egress: [rule()] })],
    probes: on(truth(deny('*', 'x/*'))),
  }),
  kase({
    name: 'policytypes-default-without-egress-rules-is-ingress-only',
    description:
      'spec.policyTypes defaults to ["Ingress"] when there is no egress section ("would otherwise default ' +
      'to just [ "Ingress" ]"): x/a is isolated for ingress but its egress is untouched.',
    policies: [
      netpol('x', 'a-from-y', { podSelector: podA, ingress: [rule([fromNamespaces({ ns: 'y' })])] }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('y/*', 'x/a'))),
  }),
  kase({
    name: 'policytypes-egress-ignores-ingress-rules',
    description:
      'spec.policyTypes: "List of rule types that the NetworkPolicy relates to." With explicit [Egress] and ' +
      'no egress rules, x/a may send nothing; its ingress rules are not in effect, so x/a stays open for ' +
      'ingress.',
    policies: [
      netpol('x', 'egress-only', {
        podSelector: podA,
        policyTypes: ['Egress'],
        ingress: [rule([fromPods({ pod: 'nobody' })])],
      }),
    ],
    probes: on(truth(deny('x/a', '*'))),
  }),
  kase({
    name: 'policy-selecting-no-pods',
    description:
      '"Traffic is allowed to a pod if there are no NetworkPolicies selecting the pod": a policy whose ' +
      'podSelector matches nothing isolates nothing.',
    policies: [
      netpol('x', 'selects-nobody', {
        podSelector: sel({ pod: 'nobody' }),
        policyTypes: ['Ingress', 'Egress'],
      }),
    ],
    probes: on(truth()),
  }),
  kase({
    name: 'policy-podselector-does-not-match-namespace-labels',
    description:
      'spec.podSelector "selects the pods to which this NetworkPolicy object applies": it is matched against ' +
      'pod labels only, so {ns: x} (a namespace label) selects no pod.',
    policies: [netpol('x', 'ns-label-as-pod-selector', { podSelector: sel({ ns: 'x' }) })],
    probes: on(truth()),
  }),
  kase({
    name: 'policy-in-other-namespace-does-not-affect-x',
    description:
      'spec.podSelector: "An empty selector matches all pods in the policy\'s namespace." A deny-all in y ' +
      'isolates y only; x and z keep talking to each other.',
    policies: [netpol('y', 'deny-all', { policyTypes: ['Ingress', 'Egress'] })],
    probes: on(truth(deny('*', 'y/*'), deny('y/*', '*'))),
  }),
  kase({
    name: 'policy-podselector-is-namespace-scoped',
    description:
      'spec.podSelector "selects the pods to which this NetworkPolicy object applies" and "An empty selector ' +
      "matches all pods in the policy's namespace\": y's policy on pod=a isolates y/a, not x/a or z/a.",
    policies: [netpol('y', 'deny-a', { podSelector: podA })],
    probes: on(truth(deny('*', 'y/a'))),
  }),

  // --- Peers ------------------------------------------------------------------------------------
  kase({
    name: 'pod-selector-peer-is-namespace-local',
    description:
      'NetworkPolicyPeer.podSelector: "Otherwise it selects the pods matching podSelector in the policy\'s own ' +
      'namespace." y/b and z/b carry pod=b but are in other namespaces.',
    policies: [netpol('x', 'a-from-b', { podSelector: podA, ingress: [rule([fromPods({ pod: 'b' })])] })],
    probes: on(truth(deny('*', 'x/a'), allow('x/b', 'x/a'))),
  }),
  kase({
    name: 'namespace-selector-peer',
    description:
      'NetworkPolicyPeer.namespaceSelector: "Otherwise it selects all pods in the namespaces selected by ' +
      'namespaceSelector." The policy\'s own namespace is not implicitly included.',
    policies: [netpol('x', 'from-z', { ingress: [rule([fromNamespaces({ ns: 'z' })])] })],
    probes: on(truth(deny('*', 'x/*'), allow('z/*', 'x/*'))),
  }),
  kase({
    name: 'namespace-and-pod-selector-in-one-peer',
    description:
      'NetworkPolicyPeer.namespaceSelector: "If podSelector is also set, then the NetworkPolicyPeer as a whole ' +
      'selects the pods matching podSelector in the namespaces selected by namespaceSelector." Only y/b.',
    policies: [
      netpol('x', 'a-from-y-b', {
        podSelector: podA,
        ingress: [rule([podPeer(sel({ pod: 'b' }), sel({ ns: 'y' }))])],
      }),
    ],
    probes: on(
      grid(`
             x/a x/b x/c y/a y/b y/c z/a z/b z/c
        x/a   .   .   .   .   .   .   .   .   .
        x/b   X   .   .   .   .   .   .   .   .
        x/c   X   .   .   .   .   .   .   .   .
        y/a   X   .   .   .   .   .   .   .   .
        y/b   .   .   .   .   .   .   .   .   .
        y/c   X   .   .   .   .   .   .   .   .
        z/a   X   .   .   .   .   .   .   .   .
        z/b   X   .   .   .   .   .   .   .   .
        z/c   X   .   .   .   .   .   .   .   .
      `),
    ),
  }),
  kase({
    name: 'namespace-or-pod-selector-as-two-peers',
    description:
      'NetworkPolicyIngressRule.from: "Items in this list are combined using a logical OR operation." The same ' +
      'two selectors as separate peers admit all of y plus x/b (the classic trap against the previous case).',
    policies: [
      netpol('x', 'a-from-y-or-b', {
        podSelector: podA,
        ingress: [rule([fromNamespaces({ ns: 'y' }), fromPods({ pod: 'b' })])],
      }),
    ],
    probes: on(
      grid(`
             x/a x/b x/c y/a y/b y/c z/a z/b z/c
        x/a   .   .   .   .   .   .   .   .   .
        x/b   .   .   .   .   .   .   .   .   .
        x/c   X   .   .   .   .   .   .   .   .
        y/a   .   .   .   .   .   .   .   .   .
        y/b   .   .   .   .   .   .   .   .   .
        y/c   .   .   .   .   .   .   .   .   .
        z/a   X   .   .   .   .   .   .   .   .
        z/b   X   .   .   .   .   .   .   .   .
        z/c   X   .   .   .   .   .   .   .   .
      `),
    ),
  }),
  kase({
    name: 'empty-namespace-selector-selects-all-namespaces',
    description:
      'NetworkPolicyPeer.namespaceSelector: "if present but empty, it selects all namespaces." With podSelector ' +
      'pod=b: every b, in every namespace (missing namespaceSelector would mean x only).',
    policies: [
      netpol('x', 'a-from-any-b', {
        podSelector: podA,
        ingress: [rule([podPeer(sel({ pod: 'b' }), sel())])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('*/b', 'x/a'))),
  }),
  kase({
    name: 'empty-pod-selector-peer',
    description:
      'NetworkPolicyPeer.podSelector: "if present but empty, it selects all pods" ... "in the policy\'s own ' +
      'namespace" when namespaceSelector is missing.',
    policies: [netpol('x', 'a-from-x', { podSelector: podA, ingress: [rule([podPeer(sel())])] })],
    probes: on(truth(deny('*', 'x/a'), allow('x/*', 'x/a'))),
  }),
  kase({
    name: 'empty-pod-and-namespace-selector-peer',
    description:
      'Both selectors present and empty select all pods in all namespaces; with a namespace-wide deny-all ' +
      'only x/a is reachable (upstream "should enforce policy to allow ingress traffic for a target").',
    policies: [
      denyIngressX,
      netpol('x', 'a-from-everyone', { podSelector: podA, ingress: [rule([podPeer(sel(), sel())])] }),
    ],
    probes: on(truth(deny('*', ['x/b', 'x/c']))),
  }),
  kase({
    name: 'namespace-selector-by-metadata-name',
    description:
      'Concepts, targeting a namespace by its name: "The Kubernetes control plane sets an immutable label ' +
      'kubernetes.io/metadata.name on all namespaces, the value of the label is the namespace name."',
    policies: [
      netpol('x', 'a-from-z', {
        podSelector: podA,
        ingress: [rule([fromNamespaces({ 'kubernetes.io/metadata.name': 'z' })])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('z/*', 'x/a'))),
  }),
  kase({
    name: 'namespace-selector-does-not-match-pod-labels',
    description:
      'NetworkPolicyPeer.namespaceSelector "selects namespaces using cluster-scoped labels": pod=b is a pod ' +
      'label, no namespace carries it, so the peer matches nothing.',
    policies: [
      netpol('x', 'a-from-ns-pod-b', { podSelector: podA, ingress: [rule([fromNamespaces({ pod: 'b' })])] }),
    ],
    probes: on(truth(deny('*', 'x/a'))),
  }),
  kase({
    name: 'allow-from-pod-that-does-not-exist',
    description:
      'from: "this rule allows traffic only if the traffic matches at least one item in the from list": a ' +
      'peer matching no pod admits nothing, yet x/a is isolated.',
    policies: [
      netpol('x', 'a-from-nobody', { podSelector: podA, ingress: [rule([fromPods({ pod: 'nobody' })])] }),
    ],
    probes: on(truth(deny('*', 'x/a'))),
  }),

  // --- Label selector operators -----------------------------------------------------------------
  kase({
    name: 'match-expressions-in',
    description:
      'Labels concepts: "environment in (production, qa) selects all resources with key equal to environment ' +
      'and value equal to production or qa". Policy selects pod In (a, b); peer namespaces ns In (y).',
    policies: [
      netpol('x', 'ab-from-y', {
        podSelector: sel({}, [req('pod', 'In', ['a', 'b'])]),
        ingress: [rule([podPeer(undefined, sel({}, [req('ns', 'In', ['y'])]))])],
      }),
    ],
    probes: on(truth(deny('*', ['x/a', 'x/b']), allow('y/*', ['x/a', 'x/b']))),
  }),
  kase({
    name: 'match-expressions-notin',
    description:
      'Labels concepts: "tier notin (frontend, backend) selects all resources with key equal to tier and values ' +
      'other than frontend and backend". x/a admits namespaces ns NotIn (y), i.e. x and z.',
    policies: [
      netpol('x', 'a-not-from-y', {
        podSelector: podA,
        ingress: [rule([podPeer(undefined, sel({}, [req('ns', 'NotIn', ['y'])]))])],
      }),
    ],
    probes: on(truth(deny('y/*', 'x/a'))),
  }),
  kase({
    name: 'match-expressions-notin-matches-missing-key',
    description:
      'Labels concepts: "notin" selects resources whose value is not in the set "and all resources with no ' +
      'labels with the" key. team NotIn (red) selects every x pod (none has team).',
    policies: [
      netpol('x', 'x-from-x', {
        podSelector: sel({}, [req('team', 'NotIn', ['red'])]),
        ingress: [rule([podPeer(sel())])],
      }),
    ],
    probes: on(truth(deny('*', 'x/*'), allow('x/*', 'x/*'))),
  }),
  kase({
    name: 'match-expressions-exists',
    description:
      'Labels concepts: "partition selects all resources including a label with key partition; no values are ' +
      'checked." pod Exists selects all x pods; the peer team Exists (in all namespaces) matches no pod.',
    policies: [
      netpol('x', 'from-team', {
        podSelector: sel({}, [req('pod', 'Exists')]),
        ingress: [rule([podPeer(sel({}, [req('team', 'Exists')]), sel())])],
      }),
    ],
    probes: on(truth(deny('*', 'x/*'))),
  }),
  kase({
    name: 'match-expressions-does-not-exist',
    description:
      'Labels concepts: "!partition selects all resources without a label with key partition". team ' +
      'DoesNotExist matches every pod of x.',
    policies: [
      netpol('x', 'a-from-untagged', {
        podSelector: podA,
        ingress: [rule([podPeer(sel({}, [req('team', 'DoesNotExist')]))])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('x/*', 'x/a'))),
  }),

  // --- Several policies -------------------------------------------------------------------------
  kase({
    name: 'several-policies-union',
    description:
      'Concepts: "Network policies do not conflict; they are additive. ... the connections allowed in that ' +
      'direction from that pod is the union of what the applicable policies allow."',
    policies: [
      netpol('x', 'a-from-b', { podSelector: podA, ingress: [rule([fromPods({ pod: 'b' })])] }),
      netpol('x', 'a-from-y-81', {
        podSelector: podA,
        ingress: [rule([fromNamespaces({ ns: 'y' })], [pport(81)])],
      }),
    ],
    probes: [
      at(80, 'TCP', truth(deny('*', 'x/a'), allow('x/b', 'x/a'))),
      at(81, 'TCP', truth(deny('*', 'x/a'), allow(['x/b', 'y/*'], 'x/a'))),
      at(81, 'UDP', truth(deny('*', 'x/a'), allow('x/b', 'x/a'))),
    ],
  }),
  kase({
    name: 'deny-all-and-allow-all-ingress-union',
    description:
      'Upstream "should enforce multiple ingress policies with ingress allow-all policy taking precedence": ' +
      'a deny-all adds no allow, the allow-all admits everything.',
    policies: [denyIngressX, netpol('x', 'allow-all-ingress', { ingress: [rule()] })],
    probes: on(truth()),
  }),
  kase({
    name: 'deny-all-and-allow-all-egress-union',
    description:
      'spec.egress: "Outgoing traffic is allowed if ... the traffic matches at least one egress rule across all ' +
      'of the NetworkPolicy objects whose podSelector matches the pod." x has a deny-all egress, x/a also an ' +
      'allow-all egress.',
    policies: [
      netpol('x', 'default-deny-egress', { policyTypes: ['Egress'] }),
      netpol('x', 'a-allow-all-egress', { podSelector: podA, policyTypes: ['Egress'], egress: [rule()] }),
    ],
    probes: on(truth(deny(['x/b', 'x/c'], '*'))),
  }),

  // --- ipBlock ----------------------------------------------------------------------------------
  kase({
    name: 'ipblock-with-except',
    description:
      'IPBlock: "a particular CIDR ... that is allowed to the pods matched by a NetworkPolicySpec\'s podSelector. ' +
      'The except entry describes CIDRs that should not be included within this rule." 10.244.0.0/16 except ' +
      "y's 10.244.2.0/24.",
    families: [4],
    policies: [
      netpol('x', 'a-from-cidr', {
        podSelector: podA,
        ingress: [rule([ipPeer('10.244.0.0/16', ['10.244.2.0/24'])])],
      }),
    ],
    probes: on(truth(deny('y/*', 'x/a'))),
  }),
  kase({
    name: 'ipblock-single-address',
    description:
      'IPBlock.cidr: "A string representing the IPBlock Valid examples are "192.168.1.0/24"": a /32 is one ' +
      'address, z/b (10.244.3.2).',
    families: [4],
    policies: [
      netpol('x', 'a-from-zb-ip', { podSelector: podA, ingress: [rule([ipPeer('10.244.3.2/32')])] }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('z/b', 'x/a'))),
  }),
  kase({
    name: 'ipblock-except-single-address',
    description:
      'IPBlock.except: "a slice of CIDRs that should not be included within an IPBlock". x\'s 10.244.1.0/24 ' +
      'except 10.244.1.2/32 (x/b): x/c may reach x/a, x/b may not.',
    families: [4],
    policies: [
      netpol('x', 'a-from-x-but-b', {
        podSelector: podA,
        ingress: [rule([ipPeer('10.244.1.0/24', ['10.244.1.2/32'])])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('x/c', 'x/a'))),
  }),
  kase({
    name: 'egress-to-ipblock',
    description:
      'NetworkPolicyEgressRule.to: "List of destinations for outgoing traffic"; an ipBlock of y\'s 10.244.2.0/24.',
    families: [4],
    policies: [
      netpol('x', 'a-to-y-cidr', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([ipPeer('10.244.2.0/24')])],
      }),
    ],
    probes: on(truth(deny('x/a', '*'), allow('x/a', 'y/*'))),
  }),
  kase({
    name: 'ipblock-except-overlap-is-union',
    description:
      'Upstream "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed": an address ' +
      'excepted by one policy and allowed by another is allowed (policies are additive). y/b is 10.244.2.2.',
    families: [4],
    policies: [
      netpol('x', 'a-to-all-but-y', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([ipPeer('10.244.0.0/16', ['10.244.2.0/24'])])],
      }),
      netpol('x', 'a-to-yb', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([ipPeer('10.244.2.2/32')])],
      }),
    ],
    probes: on(truth(deny('x/a', ['y/a', 'y/c']))),
  }),
  kase({
    name: 'ipblock-or-selector-peers',
    description:
      'from: "Items in this list are combined using a logical OR operation", across peer kinds: ipBlock ' +
      '10.244.3.0/24 (all of z) or podSelector pod=b (x/b).',
    families: [4],
    policies: [
      netpol('x', 'a-from-z-cidr-or-b', {
        podSelector: podA,
        ingress: [rule([ipPeer('10.244.3.0/24'), fromPods({ pod: 'b' })])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow(['z/*', 'x/b'], 'x/a'))),
  }),
  kase({
    name: 'ipv4-ipblock-does-not-match-ipv6',
    description:
      'IPBlock.cidr is one family ("192.168.1.0/24" or "2001:db8::/64"): over IPv6 no address is inside ' +
      '10.244.3.2/32, so x/a admits nobody.',
    families: [6],
    policies: [
      netpol('x', 'a-from-zb-ip', { podSelector: podA, ingress: [rule([ipPeer('10.244.3.2/32')])] }),
    ],
    probes: on(truth(deny('*', 'x/a'))),
  }),
  kase({
    name: 'ipv6-ipblock-with-except',
    description:
      'IPBlock with an IPv6 CIDR (valid examples include "2001:db8::/64"): z\'s fd00:10:244::3:0/112 except ' +
      'z/c (fd00:10:244::3:3/128).',
    families: [6],
    policies: [
      netpol('x', 'a-from-z-v6', {
        podSelector: podA,
        ingress: [rule([ipPeer('fd00:10:244::3:0/112', ['fd00:10:244::3:3/128'])])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow(['z/a', 'z/b'], 'x/a'))),
  }),
  kase({
    name: 'ipv6-ipblock-does-not-match-ipv4',
    description:
      'IPBlock "describes a particular CIDR (Ex. "192.168.1.0/24","2001:db8::/64")": the IPv6 block of the ' +
      'previous case over IPv4 matches nothing, x/a admits nobody.',
    families: [4],
    policies: [
      netpol('x', 'a-from-z-v6', {
        podSelector: podA,
        ingress: [rule([ipPeer('fd00:10:244::3:0/112', ['fd00:10:244::3:3/128'])])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'))),
  }),

  // --- Ports ------------------------------------------------------------------------------------
  kase({
    name: 'named-port-ingress',
    description:
      'NetworkPolicyPort.port: "This can either be a numerical or named port on a pod." ... "If present, only ' +
      'traffic on the specified protocol AND port will be matched." serve-80-tcp is 80/TCP only.',
    policies: [
      netpol('x', 'a-on-serve-80-tcp', {
        podSelector: podA,
        ingress: [rule(undefined, [pport('serve-80-tcp')])],
      }),
    ],
    probes: [
      at(80, 'TCP', truth()),
      ...on(truth(deny('*', 'x/a')), [
        [81, 'TCP'],
        [80, 'UDP'],
        [81, 'UDP'],
        [80, 'SCTP'],
      ]),
    ],
  }),
  kase({
    name: 'named-port-udp',
    description:
      'NetworkPolicyPort.port: "a numerical or named port on a pod"; with protocol UDP, serve-81-udp admits ' +
      '81/UDP only.',
    policies: [
      netpol('x', 'a-on-serve-81-udp', {
        podSelector: podA,
        ingress: [rule(undefined, [pport('serve-81-udp', 'UDP')])],
      }),
    ],
    probes: [
      at(81, 'UDP', truth()),
      ...on(truth(deny('*', 'x/a')), [
        [80, 'UDP'],
        [81, 'TCP'],
        [80, 'TCP'],
      ]),
    ],
  }),
  kase({
    name: 'named-port-protocol-must-match',
    description:
      '"only traffic on the specified protocol AND port will be matched": port serve-80-tcp with protocol UDP ' +
      'names no UDP container port, so it matches nothing on any protocol.',
    policies: [
      netpol('x', 'a-on-udp-serve-80-tcp', {
        podSelector: podA,
        ingress: [rule(undefined, [pport('serve-80-tcp', 'UDP')])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'))),
  }),
  kase({
    name: 'named-port-egress',
    description:
      'NetworkPolicyPort.port: "a numerical or named port on a pod"; in an egress rule the name is resolved ' +
      "against the destination pod's container ports: x/a may send to serve-81-tcp (81/TCP) of every pod only.",
    policies: [
      netpol('x', 'a-to-serve-81-tcp', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule(undefined, [pport('serve-81-tcp')])],
      }),
    ],
    probes: [
      at(81, 'TCP', truth()),
      ...on(truth(deny('x/a', '*')), [
        [80, 'TCP'],
        [80, 'UDP'],
        [81, 'UDP'],
      ]),
    ],
  }),
  kase({
    name: 'named-port-from-namespace',
    description:
      'Upstream "should allow ingress access from namespace on one named port": peers and ports of one rule ' +
      'must both match ("The traffic must match both ports and from").',
    policies: [
      netpol('x', 'from-y-on-serve-81-tcp', {
        ingress: [rule([fromNamespaces({ ns: 'y' })], [pport('serve-81-tcp')])],
      }),
    ],
    probes: [
      at(81, 'TCP', truth(deny('*', 'x/*'), allow('y/*', 'x/*'))),
      at(80, 'TCP', truth(deny('*', 'x/*'))),
      at(81, 'UDP', truth(deny('*', 'x/*'))),
    ],
  }),
  kase({
    name: 'port-range-with-endport',
    description:
      'NetworkPolicyPort.endPort: "indicates that the range of ports from port to endPort if set, inclusive, ' +
      'should be allowed by the policy." 80-81/TCP.',
    policies: [
      netpol('x', 'a-on-80-81', { podSelector: podA, ingress: [rule(undefined, [pport(80, 'TCP', 81)])] }),
    ],
    probes: [
      ...on(truth(), [
        [80, 'TCP'],
        [81, 'TCP'],
      ]),
      ...on(truth(deny('*', 'x/a')), [
        [80, 'UDP'],
        [81, 'UDP'],
      ]),
    ],
  }),
  kase({
    name: 'port-range-excludes-below-port',
    description:
      'endPort: "the range of ports from port to endPort ... inclusive": 81-65535/TCP leaves 80 outside.',
    policies: [
      netpol('x', 'a-on-81-up', { podSelector: podA, ingress: [rule(undefined, [pport(81, 'TCP', 65535)])] }),
    ],
    probes: [
      at(81, 'TCP', truth()),
      at(80, 'TCP', truth(deny('*', 'x/a'))),
      at(81, 'UDP', truth(deny('*', 'x/a'))),
    ],
  }),
  kase({
    name: 'port-without-protocol-defaults-to-tcp',
    description:
      'NetworkPolicyPort.protocol: "If not specified, this field defaults to TCP." port 80 is 80/TCP only.',
    policies: [netpol('x', 'a-on-80', { podSelector: podA, ingress: [rule(undefined, [pport(80)])] })],
    probes: [
      at(80, 'TCP', truth()),
      ...on(truth(deny('*', 'x/a')), [
        [80, 'UDP'],
        [80, 'SCTP'],
        [81, 'TCP'],
      ]),
    ],
  }),
  kase({
    name: 'protocol-only-port',
    description:
      'NetworkPolicyPort.port: "If this field is not provided, this matches all port names and numbers." ' +
      '{protocol: UDP} admits every UDP port and no TCP.',
    policies: [
      netpol('x', 'a-on-udp', { podSelector: podA, ingress: [rule(undefined, [pport(undefined, 'UDP')])] }),
    ],
    probes: [
      ...on(truth(), [
        [80, 'UDP'],
        [81, 'UDP'],
      ]),
      ...on(truth(deny('*', 'x/a')), [
        [80, 'TCP'],
        [81, 'TCP'],
        [80, 'SCTP'],
      ]),
    ],
  }),
  kase({
    name: 'sctp-rule',
    description:
      'NetworkPolicyPort.protocol: "The protocol (TCP, UDP, or SCTP) which traffic must match." Upstream: ' +
      "\"should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'\".",
    policies: [
      netpol('x', 'a-on-sctp-80', { podSelector: podA, ingress: [rule(undefined, [pport(80, 'SCTP')])] }),
    ],
    probes: [
      at(80, 'SCTP', truth()),
      ...on(truth(deny('*', 'x/a')), [
        [81, 'SCTP'],
        [80, 'TCP'],
        [80, 'UDP'],
      ]),
    ],
  }),
  kase({
    name: 'rule-pairs-its-own-peers-and-ports',
    description:
      'NetworkPolicyIngressRule: "The traffic must match both ports and from." Each rule pairs its own peers ' +
      'with its own ports: x/b on 80, y on 81, never x/b on 81 or y on 80.',
    policies: [
      netpol('x', 'a-two-rules', {
        podSelector: podA,
        ingress: [
          rule([fromPods({ pod: 'b' })], [pport(80)]),
          rule([fromNamespaces({ ns: 'y' })], [pport(81)]),
        ],
      }),
    ],
    probes: [
      at(80, 'TCP', truth(deny('*', 'x/a'), allow('x/b', 'x/a'))),
      at(81, 'TCP', truth(deny('*', 'x/a'), allow('y/*', 'x/a'))),
      ...on(truth(deny('*', 'x/a')), [
        [80, 'UDP'],
        [81, 'UDP'],
      ]),
    ],
  }),
  kase({
    name: 'rule-with-several-peers-and-ports',
    description:
      'from and ports are each ORed ("Items in this list are combined using a logical OR operation") and ' +
      'ANDed with each other: {x/b, y/c} x {80/TCP, 81/UDP}.',
    policies: [
      netpol('x', 'a-peers-ports', {
        podSelector: podA,
        ingress: [
          rule(
            [fromPods({ pod: 'b' }), podPeer(sel({ pod: 'c' }), sel({ ns: 'y' }))],
            [pport(80, 'TCP'), pport(81, 'UDP')],
          ),
        ],
      }),
    ],
    probes: [
      ...on(truth(deny('*', 'x/a'), allow(['x/b', 'y/c'], 'x/a')), [
        [80, 'TCP'],
        [81, 'UDP'],
      ]),
      ...on(truth(deny('*', 'x/a')), [
        [81, 'TCP'],
        [80, 'UDP'],
      ]),
    ],
  }),

  // --- Ingress and egress together --------------------------------------------------------------
  kase({
    name: 'ingress-and-egress-both-must-allow',
    description:
      'Concepts: "For a connection from a source pod to a destination pod to be allowed, both the egress policy ' +
      'on the source pod and the ingress policy on the destination pod need to allow the connection." x/a may ' +
      'send to y/b, but y/b admits only x/c.',
    policies: [
      netpol('x', 'a-to-yb', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([podPeer(sel({ pod: 'b' }), sel({ ns: 'y' }))])],
      }),
      netpol('y', 'b-from-xc', {
        podSelector: sel({ pod: 'b' }),
        ingress: [rule([podPeer(sel({ pod: 'c' }), sel({ ns: 'x' }))])],
      }),
    ],
    probes: on(truth(deny('x/a', '*'), deny('*', 'y/b'), allow('x/c', 'y/b'))),
  }),
  kase({
    name: 'ingress-and-egress-both-allow',
    description:
      'Concepts: "both the egress policy on the source pod and the ingress policy on the destination pod need ' +
      'to allow the connection": here both do for x/a -> y/b; other x/a egress and y/b ingress stay denied.',
    policies: [
      netpol('x', 'a-to-yb', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([podPeer(sel({ pod: 'b' }), sel({ ns: 'y' }))])],
      }),
      netpol('y', 'b-from-xa', {
        podSelector: sel({ pod: 'b' }),
        ingress: [rule([podPeer(podA, sel({ ns: 'x' }))])],
      }),
    ],
    probes: on(truth(deny('x/a', '*'), deny('*', 'y/b'), allow('x/a', 'y/b'))),
  }),
  kase({
    name: 'egress-deny-wins-over-ingress-allow',
    description:
      'Upstream "should support denying of egress traffic on the client side (even if the server explicitly ' +
      'allows this traffic)": y admits everything, x/a may send nothing.',
    policies: [
      netpol('x', 'a-deny-egress', { podSelector: podA, policyTypes: ['Egress'] }),
      netpol('y', 'allow-all-ingress', { ingress: [rule()] }),
    ],
    probes: on(truth(deny('x/a', '*'))),
  }),
  kase({
    name: 'egress-only-isolation-of-one-pod',
    description:
      'spec.egress: "Outgoing traffic is allowed if there are no NetworkPolicies selecting the pod ... OR if the ' +
      'traffic matches at least one egress rule". x/a may send to x/b only (podSelector is namespace-local); ' +
      'its ingress and every other pod are untouched.',
    policies: [
      netpol('x', 'a-to-b', {
        podSelector: podA,
        policyTypes: ['Egress'],
        egress: [rule([fromPods({ pod: 'b' })])],
      }),
    ],
    probes: on(truth(deny('x/a', '*'), allow('x/a', 'x/b'))),
  }),
  kase({
    name: 'ingress-and-egress-in-one-policy',
    description:
      'spec.policyTypes: "policies that contain an egress section are assumed to affect egress, and all ' +
      'policies ... are assumed to affect ingress": x/a admits y only and sends to z only.',
    policies: [
      netpol('x', 'a-from-y-to-z', {
        podSelector: podA,
        ingress: [rule([fromNamespaces({ ns: 'y' })])],
        egress: [rule([fromNamespaces({ ns: 'z' })])],
      }),
    ],
    probes: on(truth(deny('*', 'x/a'), allow('y/*', 'x/a'), deny('x/a', '*'), allow('x/a', 'z/*'))),
  }),
  kase({
    name: 'egress-to-pods-in-other-namespace',
    description:
      'Upstream "should enforce egress policy allowing traffic to a server in a different namespace based on ' +
      'PodSelector and NamespaceSelector": all of x may send to z/c only.',
    policies: [
      netpol('x', 'to-zc', {
        policyTypes: ['Egress'],
        egress: [rule([podPeer(sel({ pod: 'c' }), sel({ ns: 'z' }))])],
      }),
    ],
    probes: on(truth(deny('x/*', '*'), allow('x/*', 'z/c'))),
  }),
];
