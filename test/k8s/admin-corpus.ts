// ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy objects, valid and
// invalid, at least one per rule of the upstream CRDs (sigs.k8s.io/network-policy-api: OpenAPI
// schema and CEL), mostly small mutations of one valid base object per kind. `intent` is what the
// case is meant to exercise on the experimental channel (the test takes the API server's verdict as
// the truth and checks it matches the intent). Whether a case uses experimental-only fields is not
// written here: the test derives it from the two channels' schemas.

export type AdminKindName = 'ClusterNetworkPolicy' | 'AdminNetworkPolicy' | 'BaselineAdminNetworkPolicy';

export interface AdminCase {
  /** Unique; file name and test label. */
  readonly id: string;
  readonly kind: AdminKindName;
  /** metadata.name (BANP: `default` unless the case is about the name). */
  readonly name: string;
  readonly spec: unknown;
  readonly intent: 'accept' | 'reject';
  readonly why: string;
}

/**
 * The cases where moat is deliberately stricter than the CRD (see src/model/validateAdmin.ts):
 * the API server accepts them, moat rejects them blaming exactly `moat`. The test asserts that the
 * disagreements are exactly these.
 */
export interface KnownDifference {
  readonly id: string;
  readonly moat: readonly string[];
  readonly why: string;
}

type J = Record<string, unknown>;

// ---- builders
const CNP_BASE: J = { tier: 'Admin', priority: 10, subject: { namespaces: {} } };
const ANP_BASE: J = { priority: 10, subject: { namespaces: {} } };
const BANP_BASE: J = { subject: { namespaces: {} } };

const pods = (podSelector: J = {}, namespaceSelector?: J): J => ({
  pods: { ...(namespaceSelector ? { namespaceSelector } : {}), podSelector },
});
const anpPods = (podSelector: J = {}, namespaceSelector: J = {}): J => ({
  pods: { namespaceSelector, podSelector },
});
const ns = (s: J = {}): J => ({ namespaces: s });
const nets = (...n: string[]): J => ({ networks: n });
const nodes = (s: J = {}): J => ({ nodes: s });
const domains = (...d: string[]): J => ({ domainNames: d });

const tcp = (number: number): J => ({ tcp: { destinationPort: { number } } });
const udp = (number: number): J => ({ udp: { destinationPort: { number } } });
const sctp = (number: number): J => ({ sctp: { destinationPort: { number } } });
const tcpRange = (start: number, end: number): J => ({ tcp: { destinationPort: { range: { start, end } } } });
const named = (n: string): J => ({ destinationNamedPort: n });

const portNumber = (port: number, protocol?: string): J => ({
  portNumber: { port, ...(protocol !== undefined ? { protocol } : {}) },
});
const portRange = (start: number, end: number, protocol?: string): J => ({
  portRange: { start, end, ...(protocol !== undefined ? { protocol } : {}) },
});
const namedPort = (n: string): J => ({ namedPort: n });

const times = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

type Half = Omit<AdminCase, 'kind' | 'name'> & { name?: string };

/** CNP cases: a spec (merged over the base) or a full spec via `replace`. */
function cnp(id: string, intent: AdminCase['intent'], why: string, over: J, replace = false): Half {
  return { id, intent, why, spec: replace ? over : { ...CNP_BASE, ...over } };
}
const cnpIn = (id: string, intent: AdminCase['intent'], why: string, rule: J): Half =>
  cnp(id, intent, why, { ingress: [rule] });
const cnpEg = (id: string, intent: AdminCase['intent'], why: string, rule: J): Half =>
  cnp(id, intent, why, { egress: [rule] });

const CNP_CASES: Half[] = [
  // ---- spec: tier, priority, subject
  cnp('min', 'accept', 'the base object', {}),
  cnp('tier-baseline', 'accept', 'tier Baseline', { tier: 'Baseline' }),
  cnp('tier-missing', 'reject', 'tier is required', { priority: 1, subject: { namespaces: {} } }, true),
  cnp('tier-unknown', 'reject', 'tier enum Admin|Baseline', { tier: 'Middle' }),
  cnp('tier-lowercase', 'reject', 'the enum is case-sensitive', { tier: 'admin' }),
  cnp('prio-0', 'accept', 'priority minimum 0', { priority: 0 }),
  cnp('prio-1000', 'accept', 'priority maximum 1000', { priority: 1000 }),
  cnp('prio-1001', 'reject', 'priority above 1000', { priority: 1001 }),
  cnp('prio-neg', 'reject', 'priority below 0', { priority: -1 }),
  cnp('prio-missing', 'reject', 'priority is required', { tier: 'Admin', subject: { namespaces: {} } }, true),
  cnp('prio-string', 'reject', 'priority is an integer, not a string', { priority: '5' }),
  cnp('prio-float', 'reject', 'priority is an integer', { priority: 1.5 }),
  cnp('subject-missing', 'reject', 'subject is required', { tier: 'Admin', priority: 1 }, true),
  cnp('subject-empty', 'reject', 'subject: minProperties 1', { subject: {} }),
  cnp('subject-both', 'reject', 'subject: maxProperties 1', { subject: { ...ns(), ...pods() } }),
  cnp('subject-pods', 'accept', 'subject pods with podSelector only', {
    subject: pods({ matchLabels: { a: 'b' } }),
  }),
  cnp('subject-pods-ns', 'accept', 'subject pods with both selectors', {
    subject: pods({}, { matchLabels: { t: 'x' } }),
  }),
  cnp('subject-pods-no-podsel', 'reject', 'NamespacedPod requires podSelector', {
    subject: { pods: { namespaceSelector: {} } },
  }),
  cnp('subject-unknown', 'reject', 'subject has no field nodes', { subject: nodes() }),
  cnp('spec-unknown', 'reject', 'unknown spec field', { foo: 1 }),
  cnp('no-spec', 'reject', 'spec is required', undefined as unknown as J, true),
  cnp('sel-expr', 'accept', 'a valid matchExpressions selector', {
    subject: ns({ matchExpressions: [{ key: 'env', operator: 'In', values: ['a', 'b'] }] }),
  }),
  cnp('sel-expr-no-operator', 'reject', 'requirement requires operator', {
    subject: ns({ matchExpressions: [{ key: 'env' }] }),
  }),
  cnp('sel-bad-operator', 'accept', 'the CRD does not check selector operators', {
    subject: ns({ matchExpressions: [{ key: 'env', operator: 'Like', values: ['a'] }] }),
  }),
  cnp('sel-bad-key', 'accept', 'the CRD does not check label keys', {
    subject: ns({ matchLabels: { 'a b': 'x' } }),
  }),
  cnp('sel-in-no-values', 'accept', 'the CRD does not check In without values', {
    subject: ns({ matchExpressions: [{ key: 'env', operator: 'In' }] }),
  }),
  // ---- rules: counts, names, actions, peers
  cnpIn('in-accept-ns', 'accept', 'ingress Accept from namespaces', { action: 'Accept', from: [ns()] }),
  cnpIn('in-pass-pods', 'accept', 'ingress Pass from pods', { name: 'p', action: 'Pass', from: [pods()] }),
  cnpIn('in-deny-both-peers', 'accept', 'ingress Deny, two peers', { action: 'Deny', from: [ns(), pods()] }),
  cnpIn('in-action-allow', 'reject', 'Allow is the v1alpha1 spelling', { action: 'Allow', from: [ns()] }),
  cnpIn('in-action-lower', 'reject', 'action enum is case-sensitive', { action: 'deny', from: [ns()] }),
  cnpIn('in-action-missing', 'reject', 'action is required', { from: [ns()] }),
  cnpIn('in-from-missing', 'reject', 'from is required', { action: 'Deny' }),
  cnpIn('in-from-empty', 'reject', 'from: minItems 1', { action: 'Deny', from: [] }),
  cnpIn('in-peer-networks', 'reject', 'ingress peers are only namespaces/pods', {
    action: 'Deny',
    from: [nets('10.0.0.0/8')],
  }),
  cnpIn('in-peer-nodes', 'reject', 'ingress peers are only namespaces/pods', {
    action: 'Deny',
    from: [nodes()],
  }),
  cnpIn('in-peer-empty', 'reject', 'peer: minProperties 1', { action: 'Deny', from: [{}] }),
  cnpIn('in-peer-two', 'reject', 'peer: maxProperties 1', { action: 'Deny', from: [{ ...ns(), ...pods() }] }),
  cnpIn('in-peer-pods-no-podsel', 'reject', 'peer pods requires podSelector', {
    action: 'Deny',
    from: [{ pods: { namespaceSelector: {} } }],
  }),
  cnpIn('in-rule-unknown', 'reject', 'unknown rule field', { action: 'Deny', from: [ns()], ports: [] }),
  cnpIn('name-100', 'accept', 'rule name of 100 characters', {
    name: 'n'.repeat(100),
    action: 'Deny',
    from: [ns()],
  }),
  cnpIn('name-101', 'reject', 'rule name maxLength 100', {
    name: 'n'.repeat(101),
    action: 'Deny',
    from: [ns()],
  }),
  cnp('in-25-rules', 'accept', '25 ingress rules', {
    ingress: times(25, () => ({ action: 'Deny', from: [ns()] })),
  }),
  cnp('in-26-rules', 'reject', 'ingress maxItems 25', {
    ingress: times(26, () => ({ action: 'Deny', from: [ns()] })),
  }),
  cnp('eg-26-rules', 'reject', 'egress maxItems 25', {
    egress: times(26, () => ({ action: 'Deny', to: [ns()] })),
  }),
  cnpIn('in-25-peers', 'accept', '25 peers', {
    action: 'Deny',
    from: times(25, (i) => ns({ matchLabels: { i: `${i}` } })),
  }),
  cnpIn('in-26-peers', 'reject', 'from maxItems 25', {
    action: 'Deny',
    from: times(26, (i) => ns({ matchLabels: { i: `${i}` } })),
  }),
  cnpEg('eg-26-peers', 'reject', 'to maxItems 25', {
    action: 'Deny',
    to: times(26, (i) => nets(`10.${i}.0.0/16`)),
  }),
  // ---- egress peers
  cnpEg('eg-to-missing', 'reject', 'to is required', { action: 'Deny' }),
  cnpEg('eg-networks', 'accept', 'canonical IPv4 and IPv6 networks', {
    action: 'Deny',
    to: [nets('10.0.0.0/8', 'fd00::/8', '192.168.1.1/32')],
  }),
  cnpEg('eg-networks-noncanon', 'reject', 'cidr(self) == cidr(self).masked()', {
    action: 'Deny',
    to: [nets('10.1.0.0/8')],
  }),
  cnpEg('eg-networks-noncanon-v6', 'reject', 'cidr(self) == cidr(self).masked() (IPv6)', {
    action: 'Deny',
    to: [nets('fd00::1/64')],
  }),
  cnpEg('eg-networks-garbage', 'reject', 'isCIDR', { action: 'Deny', to: [nets('not-a-cidr')] }),
  cnpEg('eg-networks-no-prefix', 'reject', 'an address is not a CIDR', {
    action: 'Deny',
    to: [nets('10.0.0.1')],
  }),
  cnpEg('eg-networks-33', 'reject', 'prefix length above 32', { action: 'Deny', to: [nets('10.0.0.0/33')] }),
  cnpEg('eg-networks-empty', 'reject', 'networks: minItems 1', { action: 'Deny', to: [nets()] }),
  cnpEg('eg-networks-dup', 'reject', 'networks: list-type set', {
    action: 'Deny',
    to: [nets('10.0.0.0/8', '10.0.0.0/8')],
  }),
  cnpEg('eg-networks-25', 'accept', 'networks: 25 items', {
    action: 'Deny',
    to: [nets(...times(25, (i) => `10.${i}.0.0/16`))],
  }),
  cnpEg('eg-networks-26', 'reject', 'networks: maxItems 25', {
    action: 'Deny',
    to: [nets(...times(26, (i) => `10.${i}.0.0/16`))],
  }),
  cnpEg('eg-networks-long', 'reject', 'network maxLength 43', { action: 'Deny', to: [nets('1'.repeat(44))] }),
  cnpEg('eg-nodes', 'accept', 'egress nodes (experimental)', {
    action: 'Deny',
    to: [nodes({ matchLabels: { role: 'cp' } })],
  }),
  cnpEg('eg-domains', 'accept', 'domainNames, exact, wildcard, trailing dot (experimental)', {
    action: 'Accept',
    to: [domains('kubernetes.io', '*.example.com', 'a_b.example.org.')],
  }),
  cnpEg('eg-domain-mid-wildcard', 'reject', "'*' only as a prefix", {
    action: 'Accept',
    to: [domains('a.*.example.com')],
  }),
  cnpEg('eg-domain-single-label', 'reject', 'at least two labels', {
    action: 'Accept',
    to: [domains('localhost')],
  }),
  cnpEg('eg-domain-underscore-first', 'reject', 'a label starts with [a-zA-Z0-9]', {
    action: 'Accept',
    to: [domains('_sip.example.com')],
  }),
  cnpEg('eg-domain-dup', 'reject', 'domainNames: list-type set', {
    action: 'Accept',
    to: [domains('a.io', 'a.io')],
  }),
  cnpEg('eg-domain-empty', 'reject', 'domainNames: minItems 1', { action: 'Accept', to: [domains()] }),
  cnpEg('eg-domain-26', 'reject', 'domainNames: maxItems 25', {
    action: 'Accept',
    to: [domains(...times(26, (i) => `h${i}.example.com`))],
  }),
  // ---- protocols
  cnpIn('proto-tcp', 'accept', 'tcp number', { action: 'Deny', from: [ns()], protocols: [tcp(80)] }),
  cnpIn('proto-mix', 'accept', 'udp, sctp, tcp range', {
    action: 'Deny',
    from: [ns()],
    protocols: [udp(53), sctp(9), tcpRange(8000, 8080)],
  }),
  cnpIn('proto-1-65535', 'accept', 'port bounds', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcp(1), udp(65535)],
  }),
  cnpIn('proto-0', 'reject', 'port minimum 1', { action: 'Deny', from: [ns()], protocols: [tcp(0)] }),
  cnpIn('proto-65536', 'reject', 'port maximum 65535', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcp(65536)],
  }),
  cnpIn('proto-empty-list', 'reject', 'protocols: minItems 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [],
  }),
  cnpIn('proto-26', 'reject', 'protocols: maxItems 25', {
    action: 'Deny',
    from: [ns()],
    protocols: times(26, (i) => tcp(i + 1)),
  }),
  cnpIn('proto-entry-empty', 'reject', 'protocol: minProperties 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [{}],
  }),
  cnpIn('proto-entry-two', 'reject', 'protocol: maxProperties 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ ...tcp(80), ...udp(53) }],
  }),
  cnpIn('proto-tcp-empty', 'reject', 'tcp: minProperties 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ tcp: {} }],
  }),
  cnpIn('proto-dport-empty', 'reject', 'destinationPort: minProperties 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ tcp: { destinationPort: {} } }],
  }),
  cnpIn('proto-dport-both', 'reject', 'destinationPort: maxProperties 1', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ tcp: { destinationPort: { number: 80, range: { start: 1, end: 2 } } } }],
  }),
  cnpIn('proto-range-equal', 'reject', 'self.start < self.end', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcpRange(80, 80)],
  }),
  cnpIn('proto-range-reversed', 'reject', 'self.start < self.end', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcpRange(90, 80)],
  }),
  cnpIn('proto-range-zero', 'reject', 'minimum 1 on both ends, and start < end', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcpRange(0, 0)],
  }),
  cnpIn('proto-range-no-end', 'reject', 'range requires end', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ udp: { destinationPort: { range: { start: 1 } } } }],
  }),
  cnpIn('proto-tcp-port-field', 'reject', 'tcp has destinationPort, not port', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ tcp: { port: 80 } }],
  }),
  cnpIn('proto-icmp', 'reject', 'no icmp protocol', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ icmp: {} }],
  }),
  cnpIn('proto-port-string', 'reject', 'number is an integer', {
    action: 'Deny',
    from: [ns()],
    protocols: [{ tcp: { destinationPort: { number: '80' } } }],
  }),
  // ---- named ports (experimental)
  cnpIn('named-in', 'accept', 'destinationNamedPort on ingress', {
    action: 'Deny',
    from: [ns()],
    protocols: [named('http')],
  }),
  cnpEg('named-eg-pods', 'accept', 'named port with a pods peer', {
    action: 'Accept',
    to: [pods()],
    protocols: [named('http')],
  }),
  cnpEg('named-eg-networks', 'reject', 'no named ports with networks', {
    action: 'Deny',
    to: [nets('10.0.0.0/8')],
    protocols: [named('http')],
  }),
  cnpEg('named-eg-nodes', 'reject', 'no named ports with nodes', {
    action: 'Deny',
    to: [ns(), nodes()],
    protocols: [tcp(1), named('http')],
  }),
  cnpEg('named-eg-domains', 'reject', 'no named ports with domainNames', {
    action: 'Accept',
    to: [domains('a.io')],
    protocols: [named('dns')],
  }),
  cnp('named-other-rule', 'accept', 'the named-port rule is per rule', {
    egress: [
      { action: 'Deny', to: [nets('10.0.0.0/8')], protocols: [tcp(80)] },
      { action: 'Deny', to: [pods()], protocols: [named('http')] },
    ],
  }),
  cnpEg('named-and-too-long', 'reject', 'a blocking error (maxLength) leaves the CEL rules unchecked', {
    action: 'Deny',
    to: [nets('1'.repeat(44))],
    protocols: [named('http')],
  }),
  // ---- unknown fields together with other problems (strict decoding stops at the first kind)
  cnp('unknown-and-prio', 'reject', 'an unknown field and priority out of bounds', {
    foo: 1,
    priority: 2000,
  }),
  cnpIn('peer-extra-unknown', 'reject', 'an unknown field beside a peer does not count as a second one', {
    action: 'Deny',
    from: [{ ...ns(), bar: {} }],
  }),
  cnpEg('named-and-two-fields', 'reject', 'maxProperties (Too many) blocks the named-port rule', {
    action: 'Deny',
    to: [nets('10.0.0.0/8')],
    protocols: [{ ...tcp(80), ...named('http') }],
  }),
  cnpEg('named-and-bad-network', 'reject', 'the named-port rule holds beside a bad network', {
    action: 'Deny',
    to: [nets('10.1.0.0/8')],
    protocols: [named('http')],
  }),
  cnpIn('range-reversed-out-of-bounds', 'reject', 'start < end is checked beside the bounds', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcpRange(70000, 5)],
  }),
  // ---- metadata
  {
    id: 'meta-bad-name',
    name: 'Bad_Name',
    intent: 'reject',
    why: 'metadata.name is a DNS subdomain',
    spec: CNP_BASE,
  },
];

function anp(id: string, intent: AdminCase['intent'], why: string, over: J, replace = false): Half {
  return { id, intent, why, spec: replace ? over : { ...ANP_BASE, ...over } };
}
const anpIn = (id: string, intent: AdminCase['intent'], why: string, rule: J): Half =>
  anp(id, intent, why, { ingress: [rule] });
const anpEg = (id: string, intent: AdminCase['intent'], why: string, rule: J): Half =>
  anp(id, intent, why, { egress: [rule] });

const ANP_CASES: Half[] = [
  anp('min', 'accept', 'the base object', {}),
  anp('prio-0', 'accept', 'priority minimum 0', { priority: 0 }),
  anp('prio-1000', 'accept', 'priority maximum 1000', { priority: 1000 }),
  anp('prio-1001', 'reject', 'priority above 1000', { priority: 1001 }),
  anp('prio-neg', 'reject', 'priority below 0', { priority: -1 }),
  anp('prio-missing', 'reject', 'priority is required', { subject: { namespaces: {} } }, true),
  anp('tier', 'reject', 'ANP has no tier', { tier: 'Admin' }),
  anp('subject-empty', 'reject', 'subject: minProperties 1', { subject: {} }),
  anp('subject-both', 'reject', 'subject: maxProperties 1', { subject: { ...ns(), ...anpPods() } }),
  anp('subject-pods', 'accept', 'subject pods with both selectors', {
    subject: anpPods({ matchLabels: { a: 'b' } }),
  }),
  anp('subject-pods-no-nssel', 'reject', 'v1alpha1 NamespacedPod requires namespaceSelector', {
    subject: { pods: { podSelector: {} } },
  }),
  anpIn('in-allow', 'accept', 'Allow from namespaces', { action: 'Allow', from: [ns()] }),
  anpIn('in-pass', 'accept', 'Pass from pods', { name: 'x', action: 'Pass', from: [anpPods()] }),
  anpIn('in-accept', 'reject', 'Accept is the CNP spelling', { action: 'Accept', from: [ns()] }),
  anpIn('in-from-empty', 'reject', 'from: minItems 1', { action: 'Deny', from: [] }),
  anpIn('in-peer-pods-no-nssel', 'reject', 'peer pods requires namespaceSelector', {
    action: 'Deny',
    from: [{ pods: { podSelector: {} } }],
  }),
  anpIn('in-peer-networks', 'reject', 'ingress peers are only namespaces/pods', {
    action: 'Deny',
    from: [nets('10.0.0.0/8')],
  }),
  anpIn('in-rule-protocols', 'reject', 'ANP rules have ports, not protocols', {
    action: 'Deny',
    from: [ns()],
    protocols: [tcp(80)],
  }),
  anpIn('name-101', 'reject', 'rule name maxLength 100', {
    name: 'n'.repeat(101),
    action: 'Deny',
    from: [ns()],
  }),
  anp('in-100-rules', 'accept', '100 ingress rules', {
    ingress: times(100, () => ({ action: 'Deny', from: [ns()] })),
  }),
  anp('in-101-rules', 'reject', 'ingress maxItems 100', {
    ingress: times(101, () => ({ action: 'Deny', from: [ns()] })),
  }),
  anpIn('in-101-peers', 'reject', 'from maxItems 100', {
    action: 'Deny',
    from: times(101, (i) => ns({ matchLabels: { i: `${i}` } })),
  }),
  anpEg('eg-100-peers', 'accept', 'to: 100 peers', {
    action: 'Deny',
    to: times(100, (i) => ns({ matchLabels: { i: `${i}` } })),
  }),
  // ---- ports
  anpIn('port-number', 'accept', 'portNumber with protocol', {
    action: 'Deny',
    from: [ns()],
    ports: [portNumber(80, 'TCP'), portNumber(53, 'UDP'), portNumber(9, 'SCTP')],
  }),
  anpIn('port-number-default', 'accept', 'protocol defaults to TCP', {
    action: 'Deny',
    from: [ns()],
    ports: [portNumber(80)],
  }),
  anpIn('port-number-0', 'reject', 'port minimum 1', {
    action: 'Deny',
    from: [ns()],
    ports: [portNumber(0)],
  }),
  anpIn('port-number-missing', 'reject', 'portNumber requires port', {
    action: 'Deny',
    from: [ns()],
    ports: [{ portNumber: { protocol: 'TCP' } }],
  }),
  anpIn('port-range', 'accept', 'portRange', {
    action: 'Deny',
    from: [ns()],
    ports: [portRange(1000, 2000, 'UDP')],
  }),
  anpIn('port-range-no-end', 'reject', 'portRange requires end', {
    action: 'Deny',
    from: [ns()],
    ports: [{ portRange: { start: 1 } }],
  }),
  anpIn('port-range-65536', 'reject', 'end maximum 65535', {
    action: 'Deny',
    from: [ns()],
    ports: [portRange(1, 65536)],
  }),
  anpIn('port-range-reversed', 'accept', 'v1alpha1 has no start < end rule', {
    action: 'Deny',
    from: [ns()],
    ports: [portRange(90, 80)],
  }),
  anpIn('port-protocol-icmp', 'accept', 'protocol is a free string in the CRD', {
    action: 'Deny',
    from: [ns()],
    ports: [portNumber(80, 'ICMP')],
  }),
  anpIn('port-protocol-lower', 'accept', 'protocol is a free string in the CRD', {
    action: 'Deny',
    from: [ns()],
    ports: [portRange(1, 2, 'tcp')],
  }),
  anpIn('port-entry-empty', 'reject', 'port: minProperties 1', { action: 'Deny', from: [ns()], ports: [{}] }),
  anpIn('port-entry-two', 'reject', 'port: maxProperties 1', {
    action: 'Deny',
    from: [ns()],
    ports: [{ ...portNumber(80), ...namedPort('http') }],
  }),
  anpIn('ports-empty', 'reject', 'ports: minItems 1', { action: 'Deny', from: [ns()], ports: [] }),
  anpIn('ports-101', 'reject', 'ports: maxItems 100', {
    action: 'Deny',
    from: [ns()],
    ports: times(101, (i) => portNumber(i + 1)),
  }),
  anpIn('named-in', 'accept', 'namedPort on ingress (experimental)', {
    action: 'Allow',
    from: [ns()],
    ports: [namedPort('http')],
  }),
  anpEg('named-eg-pods', 'accept', 'namedPort with a pods peer', {
    action: 'Allow',
    to: [anpPods()],
    ports: [namedPort('http')],
  }),
  anpEg('named-eg-networks', 'reject', 'no named ports with networks', {
    action: 'Deny',
    to: [nets('10.0.0.0/8')],
    ports: [namedPort('http')],
  }),
  anpEg('named-eg-nodes', 'reject', 'no named ports with nodes', {
    action: 'Deny',
    to: [nodes()],
    ports: [namedPort('http')],
  }),
  anpEg('named-eg-domains', 'reject', 'no named ports with domainNames', {
    action: 'Allow',
    to: [domains('a.io')],
    ports: [namedPort('http')],
  }),
  // ---- egress peers
  anpEg('eg-networks-noncanon', 'accept', 'v1alpha1 networks need only isCIDR', {
    action: 'Deny',
    to: [nets('10.1.0.0/8')],
  }),
  anpEg('eg-networks-garbage', 'reject', 'isCIDR', { action: 'Deny', to: [nets('10.0.0.0/40')] }),
  anpEg('eg-networks-dup', 'reject', 'networks: list-type set', {
    action: 'Deny',
    to: [nets('10.0.0.0/8', '10.0.0.0/8')],
  }),
  anpEg('eg-nodes', 'accept', 'egress nodes (experimental)', { action: 'Deny', to: [nodes()] }),
  anpEg('eg-domains', 'accept', 'domainNames (experimental)', {
    action: 'Allow',
    to: [domains('*.example.com')],
  }),
  anpEg('eg-domain-underscore-first', 'accept', 'v0.1.7 spells [a-zA-z0-9], which admits _', {
    action: 'Allow',
    to: [domains('_sip.example.com')],
  }),
  anpEg('eg-domain-bad', 'reject', 'domain pattern', { action: 'Allow', to: [domains('*.*')] }),
  anpEg('eg-peer-two', 'reject', 'peer: maxProperties 1', {
    action: 'Deny',
    to: [{ ...nodes(), ...nets('10.0.0.0/8') }],
  }),
];

function banp(id: string, intent: AdminCase['intent'], why: string, over: J, name = 'default'): Half {
  return { id, name, intent, why, spec: { ...BANP_BASE, ...over } };
}
const banpEg = (id: string, intent: AdminCase['intent'], why: string, rule: J): Half =>
  banp(id, intent, why, { egress: [rule] });

const BANP_CASES: Half[] = [
  banp('min', 'accept', 'the base object, named default', {}),
  banp('name-other', 'reject', "self.metadata.name == 'default'", {}, 'other'),
  banp('priority', 'reject', 'BANP has no priority', { priority: 1 }),
  banp('subject-missing', 'reject', 'subject is required', { subject: undefined }),
  banp('subject-pods', 'accept', 'subject pods', { subject: anpPods() }),
  banp('in-allow', 'accept', 'Allow', { ingress: [{ action: 'Allow', from: [ns()] }] }),
  banp('in-pass', 'reject', 'BANP has no Pass', { ingress: [{ action: 'Pass', from: [ns()] }] }),
  banp('in-101-rules', 'reject', 'ingress maxItems 100', {
    ingress: times(101, () => ({ action: 'Deny', from: [ns()] })),
  }),
  banpEg('eg-nodes', 'accept', 'egress nodes (experimental)', { action: 'Deny', to: [nodes()] }),
  banpEg('eg-domains', 'reject', 'BANP has no domainNames', { action: 'Allow', to: [domains('a.io')] }),
  banpEg('eg-networks', 'accept', 'networks', { action: 'Deny', to: [nets('0.0.0.0/0', '::/0')] }),
  banpEg('named-eg-networks', 'reject', 'no named ports with networks', {
    action: 'Deny',
    to: [nets('10.0.0.0/8')],
    ports: [namedPort('http')],
  }),
  banpEg('named-eg-nodes', 'reject', 'no named ports with nodes', {
    action: 'Deny',
    to: [nodes()],
    ports: [namedPort('http')],
  }),
  banpEg('named-eg-pods', 'accept', 'namedPort with pods', {
    action: 'Deny',
    to: [anpPods()],
    ports: [namedPort('http')],
  }),
  banpEg('port-range', 'accept', 'portRange', { action: 'Deny', to: [ns()], ports: [portRange(1, 1024)] }),
  banp('name-and-too-many', 'reject', 'a blocking error (maxItems) leaves the name rule unchecked', {
    ingress: times(101, () => ({ action: 'Deny', from: [ns()] })),
  }),
];

const mk = (kind: AdminKindName, prefix: string, hs: Half[]): AdminCase[] =>
  hs.map(({ name, ...h }) => ({
    ...h,
    id: `${prefix}-${h.id}`,
    kind,
    // BANP names come from the builder; others are named after the case.
    name: name ?? `${prefix}-${h.id}`,
    // Drop undefined (JSON has no such thing).
    spec: JSON.parse(JSON.stringify(h.spec ?? null)) as unknown,
  }));

export const CORPUS: readonly AdminCase[] = [
  ...mk('ClusterNetworkPolicy', 'cnp', CNP_CASES),
  ...mk('AdminNetworkPolicy', 'anp', ANP_CASES),
  ...mk('BaselineAdminNetworkPolicy', 'banp', BANP_CASES),
];

const SUBJECT_NS = 'spec.subject.namespaces';
const ANP_PORT = 'spec.ingress[0].ports[0]';
export const KNOWN_DIFFERENCES: readonly KnownDifference[] = [
  // Label selectors: the CRDs declare LabelSelector's shape only; moat must evaluate selectors, so
  // it applies ValidateLabelSelector as for NetworkPolicy (an unknown operator, a key that is no
  // label key, or In without values would otherwise be read as something else or fail open).
  {
    id: 'cnp-sel-bad-operator',
    moat: [`${SUBJECT_NS}.matchExpressions[0].operator`],
    why: 'selector operator not In/NotIn/Exists/DoesNotExist',
  },
  { id: 'cnp-sel-bad-key', moat: [`${SUBJECT_NS}.matchLabels`], why: 'label key with a space' },
  {
    id: 'cnp-sel-in-no-values',
    moat: [`${SUBJECT_NS}.matchExpressions[0].values`],
    why: 'In requires values',
  },
  // ANP/BANP ports: the v1alpha1 CRD has `protocol` as a free string and no start < end rule for
  // portRange; moat can only enforce TCP, UDP and SCTP, and an empty range would match nothing.
  {
    id: 'anp-port-range-reversed',
    moat: [`${ANP_PORT}.portRange`],
    why: 'portRange start > end ("the Start value must be less than End", the API docs)',
  },
  { id: 'anp-port-protocol-icmp', moat: [`${ANP_PORT}.portNumber.protocol`], why: 'protocol ICMP' },
  {
    id: 'anp-port-protocol-lower',
    moat: [`${ANP_PORT}.portRange.protocol`],
    why: 'protocol tcp (the values are TCP, UDP, SCTP)',
  },
];
