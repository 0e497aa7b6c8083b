// NetworkPolicies, valid and invalid, one per validation rule of the API server
// (pkg/apis/networking/validation ValidateNetworkPolicy, apimachinery ValidateLabelSelector,
// ValidateObjectMeta), plus tricky valid ones. `intent` says what the case is meant to exercise;
// the test takes the API server's verdict as the truth and checks it matches the intent.

export interface CorpusCase {
  /** File name and test label. */
  readonly id: string;
  /** metadata.name (valid unless the case is about names). */
  readonly name: string;
  readonly metadata?: Record<string, unknown>;
  readonly spec: Record<string, unknown>;
  readonly intent: 'accept' | 'reject';
  readonly why: string;
}

const sel = (s: Record<string, unknown>) => ({ podSelector: s });
const from = (...peers: Record<string, unknown>[]) => ({ podSelector: {}, ingress: [{ from: peers }] });
const to = (...peers: Record<string, unknown>[]) => ({ podSelector: {}, egress: [{ to: peers }] });
const ports = (...p: Record<string, unknown>[]) => ({ podSelector: {}, ingress: [{ ports: p }] });
const ip = (cidr: string, except?: string[]) => ({ ipBlock: { cidr, ...(except ? { except } : {}) } });
const expr = (key: string, operator: string, values?: string[]) =>
  sel({ matchExpressions: [{ key, operator, ...(values ? { values } : {}) }] });

const cases: Omit<CorpusCase, 'name'>[] = [
  // ---- label selectors
  {
    id: 'sel-key-space',
    intent: 'reject',
    why: 'label key with a space',
    spec: sel({ matchLabels: { 'bad key': 'x' } }),
  },
  {
    id: 'sel-key-prefix-upper',
    intent: 'reject',
    why: 'key prefix must be a lowercase DNS subdomain',
    spec: sel({ matchLabels: { 'Example.com/app': 'x' } }),
  },
  {
    id: 'sel-key-prefixed',
    intent: 'accept',
    why: 'prefixed key',
    spec: sel({ matchLabels: { 'example.com/app': 'web' } }),
  },
  {
    id: 'sel-key-63',
    intent: 'accept',
    why: 'name part of 63 characters',
    spec: sel({ matchLabels: { ['k'.repeat(63)]: 'v' } }),
  },
  {
    id: 'sel-key-64',
    intent: 'reject',
    why: 'name part of 64 characters',
    spec: sel({ matchLabels: { ['k'.repeat(64)]: 'v' } }),
  },
  { id: 'sel-key-two-slashes', intent: 'reject', why: 'a/b/c', spec: sel({ matchLabels: { 'a/b/c': 'v' } }) },
  {
    id: 'sel-key-empty-prefix',
    intent: 'reject',
    why: '/name',
    spec: sel({ matchLabels: { '/name': 'v' } }),
  },
  {
    id: 'sel-value-empty',
    intent: 'accept',
    why: 'empty label value',
    spec: sel({ matchLabels: { app: '' } }),
  },
  {
    id: 'sel-value-64',
    intent: 'reject',
    why: 'label value of 64 characters',
    spec: sel({ matchLabels: { app: 'v'.repeat(64) } }),
  },
  {
    id: 'sel-value-dash',
    intent: 'reject',
    why: 'label value starting with -',
    spec: sel({ matchLabels: { app: '-web' } }),
  },
  {
    id: 'sel-value-underscore-dot',
    intent: 'accept',
    why: 'label value with _ and . inside',
    spec: sel({ matchLabels: { app: 'a_b.c-d' } }),
  },
  { id: 'sel-op-unknown', intent: 'reject', why: 'operator Equals', spec: expr('app', 'Equals', ['x']) },
  {
    id: 'sel-op-lowercase',
    intent: 'reject',
    why: 'operator in (lowercase)',
    spec: expr('app', 'in', ['x']),
  },
  { id: 'sel-in-no-values', intent: 'reject', why: 'In without values', spec: expr('app', 'In') },
  { id: 'sel-notin-empty-values', intent: 'reject', why: 'NotIn with []', spec: expr('app', 'NotIn', []) },
  {
    id: 'sel-exists-values',
    intent: 'reject',
    why: 'Exists with values',
    spec: expr('app', 'Exists', ['x']),
  },
  {
    id: 'sel-doesnotexist',
    intent: 'accept',
    why: 'DoesNotExist without values',
    spec: expr('example.com/app', 'DoesNotExist'),
  },
  {
    id: 'sel-in-bad-value',
    intent: 'reject',
    why: 'In with an invalid value',
    spec: expr('app', 'In', ['a b']),
  },
  { id: 'sel-expr-empty-key', intent: 'reject', why: 'expression with key ""', spec: expr('', 'Exists') },
  {
    id: 'sel-ns-and-pod',
    intent: 'accept',
    why: 'namespaceSelector and podSelector in one peer',
    spec: from({
      namespaceSelector: { matchLabels: { team: 'a' } },
      podSelector: { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db', 'cache'] }] },
    }),
  },
  {
    id: 'sel-peer-bad-key',
    intent: 'reject',
    why: 'peer namespaceSelector with an invalid key',
    spec: from({ namespaceSelector: { matchLabels: { 'team!': 'a' } } }),
  },

  // ---- ipBlock
  { id: 'cidr-33', intent: 'reject', why: 'prefix longer than 32', spec: to(ip('10.0.0.0/33')) },
  { id: 'cidr-no-prefix', intent: 'reject', why: 'an address, not a CIDR', spec: to(ip('10.0.0.1')) },
  { id: 'cidr-empty', intent: 'reject', why: 'cidr ""', spec: to(ip('')) },
  { id: 'cidr-missing', intent: 'reject', why: 'ipBlock without cidr', spec: to({ ipBlock: {} }) },
  { id: 'cidr-garbage', intent: 'reject', why: 'not an address', spec: to(ip('ten.0.0.0/8')) },
  {
    id: 'cidr-host-bits',
    intent: 'accept',
    why: 'host bits set (non-canonical, a warning)',
    spec: to(ip('10.1.2.3/8')),
  },
  {
    id: 'cidr-leading-zeros',
    intent: 'accept',
    why: 'IPv4 with leading zeros (legacy parsing, a warning)',
    spec: to(ip('010.001.0.0/16')),
  },
  { id: 'cidr-prefix-leading-zero', intent: 'accept', why: 'prefix length 08', spec: to(ip('10.0.0.0/08')) },
  {
    id: 'cidr-v4-mapped',
    intent: 'accept',
    why: 'IPv4-mapped IPv6 CIDR',
    spec: to(ip('::ffff:10.0.0.0/104')),
  },
  {
    id: 'cidr-v6-upper',
    intent: 'accept',
    why: 'IPv6 in upper case (a warning)',
    spec: to(ip('2001:DB8::/32')),
  },
  { id: 'cidr-v6-129', intent: 'reject', why: 'IPv6 prefix 129', spec: to(ip('2001:db8::/129')) },
  { id: 'cidr-v6-zone', intent: 'reject', why: 'IPv6 with a zone', spec: to(ip('fe80::%eth0/64')) },
  {
    id: 'cidr-all',
    intent: 'accept',
    why: '0.0.0.0/0 except 10/8',
    spec: from(ip('0.0.0.0/0', ['10.0.0.0/8'])),
  },
  {
    id: 'except-outside',
    intent: 'reject',
    why: 'except outside cidr',
    spec: from(ip('10.0.0.0/16', ['10.1.0.0/24'])),
  },
  {
    id: 'except-equal',
    intent: 'reject',
    why: 'except equal to cidr (not a strict subset)',
    spec: from(ip('10.0.0.0/16', ['10.0.0.0/16'])),
  },
  {
    id: 'except-larger',
    intent: 'reject',
    why: 'except larger than cidr',
    spec: from(ip('10.0.0.0/16', ['10.0.0.0/8'])),
  },
  {
    id: 'except-other-family',
    intent: 'reject',
    why: 'IPv6 except in an IPv4 cidr',
    spec: from(ip('10.0.0.0/8', ['2001:db8::/64'])),
  },
  {
    id: 'except-host-bits',
    intent: 'accept',
    why: 'except with host bits set',
    spec: from(ip('10.0.0.0/8', ['10.1.2.3/16'])),
  },
  {
    id: 'except-equal-noncanon',
    intent: 'reject',
    why: 'except 10.0.0.5/16 is the same network as cidr 10.0.0.0/16',
    spec: from(ip('10.0.0.0/16', ['10.0.0.5/16'])),
  },
  {
    id: 'except-invalid',
    intent: 'reject',
    why: 'except not a CIDR',
    spec: from(ip('10.0.0.0/8', ['10.1.0.0'])),
  },
  {
    id: 'except-v6',
    intent: 'accept',
    why: 'IPv6 except',
    spec: from(ip('2001:db8::/32', ['2001:db8:1::/48'])),
  },
  {
    id: 'except-cidr-host-bits',
    intent: 'accept',
    why: 'cidr with host bits, except inside its network',
    spec: from(ip('10.0.0.7/16', ['10.0.1.0/24'])),
  },

  // ---- peers
  {
    id: 'peer-ipblock-and-pod',
    intent: 'reject',
    why: 'ipBlock and podSelector in one peer',
    spec: from({ ...ip('10.0.0.0/8'), podSelector: {} }),
  },
  {
    id: 'peer-ipblock-and-ns',
    intent: 'reject',
    why: 'ipBlock and namespaceSelector in one peer',
    spec: from({ ...ip('10.0.0.0/8'), namespaceSelector: {} }),
  },
  { id: 'peer-empty', intent: 'reject', why: 'empty peer {}', spec: from({}) },
  {
    id: 'peer-ns-only-empty',
    intent: 'accept',
    why: 'namespaceSelector {} (all namespaces)',
    spec: from({ namespaceSelector: {} }),
  },
  {
    id: 'peer-unknown-field',
    intent: 'reject',
    why: 'unknown field in a peer (strict field validation)',
    spec: from({ podSelector: {}, serviceAccount: 'x' }),
  },

  // ---- ports
  { id: 'port-0', intent: 'reject', why: 'port 0', spec: ports({ port: 0 }) },
  { id: 'port-65536', intent: 'reject', why: 'port 65536', spec: ports({ port: 65536 }) },
  { id: 'port-negative', intent: 'reject', why: 'port -1', spec: ports({ port: -1 }) },
  { id: 'port-65535', intent: 'accept', why: 'port 65535', spec: ports({ port: 65535 }) },
  { id: 'port-name-upper', intent: 'reject', why: 'port name HTTP', spec: ports({ port: 'HTTP' }) },
  { id: 'port-name-double-dash', intent: 'reject', why: 'port name a--b', spec: ports({ port: 'a--b' }) },
  {
    id: 'port-name-digits',
    intent: 'reject',
    why: 'port name "8080" (a string: must contain a letter)',
    spec: ports({ port: '8080' }),
  },
  {
    id: 'port-name-16',
    intent: 'reject',
    why: 'port name of 16 characters',
    spec: ports({ port: 'abcdefghijklmnop' }),
  },
  {
    id: 'port-name-15',
    intent: 'accept',
    why: 'port name of 15 characters',
    spec: ports({ port: 'abcdefghijklmno' }),
  },
  {
    id: 'port-name-trailing-dash',
    intent: 'reject',
    why: 'port name ending in -',
    spec: ports({ port: 'http-' }),
  },
  {
    id: 'port-name-ok',
    intent: 'accept',
    why: 'port name web-8080',
    spec: ports({ port: 'web-8080', protocol: 'UDP' }),
  },
  { id: 'port-name-empty', intent: 'reject', why: 'port name ""', spec: ports({ port: '' }) },
  { id: 'endport-no-port', intent: 'reject', why: 'endPort without port', spec: ports({ endPort: 90 }) },
  {
    id: 'endport-named',
    intent: 'reject',
    why: 'endPort with a named port',
    spec: ports({ port: 'http', endPort: 90 }),
  },
  { id: 'endport-below', intent: 'reject', why: 'endPort < port', spec: ports({ port: 90, endPort: 80 }) },
  { id: 'endport-equal', intent: 'accept', why: 'endPort == port', spec: ports({ port: 80, endPort: 80 }) },
  {
    id: 'endport-range',
    intent: 'accept',
    why: 'a range, SCTP',
    spec: ports({ port: 32000, endPort: 32768, protocol: 'SCTP' }),
  },
  { id: 'endport-65536', intent: 'reject', why: 'endPort 65536', spec: ports({ port: 80, endPort: 65536 }) },
  { id: 'endport-0-no-port', intent: 'reject', why: 'endPort 0 without port', spec: ports({ endPort: 0 }) },
  { id: 'port-empty-entry', intent: 'accept', why: 'ports: [{}] (all ports, TCP)', spec: ports({}) },
  {
    id: 'port-protocol-only',
    intent: 'accept',
    why: 'protocol without port',
    spec: ports({ protocol: 'UDP' }),
  },

  // ---- protocols
  { id: 'proto-icmp', intent: 'reject', why: 'protocol ICMP', spec: ports({ port: 80, protocol: 'ICMP' }) },
  {
    id: 'proto-lowercase',
    intent: 'reject',
    why: 'protocol tcp (lowercase)',
    spec: ports({ port: 80, protocol: 'tcp' }),
  },
  { id: 'proto-empty', intent: 'reject', why: 'protocol ""', spec: ports({ port: 80, protocol: '' }) },
  { id: 'proto-sctp', intent: 'accept', why: 'protocol SCTP', spec: ports({ port: 80, protocol: 'SCTP' }) },

  // ---- policyTypes and defaulting
  {
    id: 'types-sideways',
    intent: 'reject',
    why: 'policyTypes [Sideways]',
    spec: { podSelector: {}, policyTypes: ['Sideways'] },
  },
  {
    id: 'types-lowercase',
    intent: 'reject',
    why: 'policyTypes [ingress]',
    spec: { podSelector: {}, policyTypes: ['ingress'] },
  },
  {
    id: 'types-three',
    intent: 'reject',
    why: 'three policyTypes',
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress', 'Ingress'] },
  },
  {
    id: 'types-repeated',
    intent: 'accept',
    why: 'policyTypes [Ingress, Ingress]',
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Ingress'] },
  },
  {
    id: 'types-egress-only',
    intent: 'accept',
    why: 'policyTypes [Egress] with ingress rules (ignored)',
    spec: { podSelector: {}, policyTypes: ['Egress'], ingress: [{}] },
  },
  {
    id: 'types-reversed',
    intent: 'accept',
    why: 'policyTypes [Egress, Ingress]',
    spec: { podSelector: {}, policyTypes: ['Egress', 'Ingress'] },
  },
  {
    id: 'types-empty-list-egress',
    intent: 'accept',
    why: 'policyTypes [] with egress: defaulted',
    spec: { podSelector: {}, policyTypes: [], egress: [{}] },
  },
  {
    id: 'default-egress-empty-list',
    intent: 'accept',
    why: 'egress: [] does not add Egress',
    spec: { podSelector: {}, egress: [] },
  },
  {
    id: 'default-ingress-and-egress',
    intent: 'accept',
    why: 'both rule lists: [Ingress, Egress]',
    spec: {
      podSelector: {},
      ingress: [{}],
      egress: [{ ports: [{ port: 53, protocol: 'UDP' }, { port: 53 }] }],
    },
  },
  {
    id: 'default-no-podselector',
    intent: 'accept',
    why: 'podSelector omitted',
    spec: { ingress: [{ from: [{ podSelector: {} }] }] },
  },
  {
    id: 'spec-unknown-field',
    intent: 'reject',
    why: 'unknown spec field',
    spec: { podSelector: {}, ingres: [] },
  },
  {
    id: 'rule-empty-from',
    intent: 'accept',
    why: 'from: [] and ports: []',
    spec: { podSelector: {}, ingress: [{ from: [], ports: [] }] },
  },

  // ---- names and metadata
  {
    id: 'name-underscore',
    intent: 'reject',
    why: 'name with _',
    spec: { podSelector: {} },
    metadata: { name: 'bad_name' },
  },
  {
    id: 'name-upper',
    intent: 'reject',
    why: 'name with upper case',
    spec: { podSelector: {} },
    metadata: { name: 'Web' },
  },
  {
    id: 'name-dots',
    intent: 'accept',
    why: 'name with dots (a DNS subdomain)',
    spec: { podSelector: {} },
    metadata: { name: 'allow.web.v1' },
  },
  {
    id: 'name-254',
    intent: 'reject',
    why: 'name of 254 characters',
    spec: { podSelector: {} },
    metadata: { name: 'a'.repeat(254) },
  },
  {
    id: 'name-253',
    intent: 'accept',
    why: 'name of 253 characters',
    spec: { podSelector: {} },
    metadata: { name: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}` },
  },
  {
    id: 'labels-invalid',
    intent: 'reject',
    why: 'invalid metadata.labels value',
    spec: { podSelector: {} },
    metadata: { labels: { app: 'a b' } },
  },
  // ---- legacy (sloppy) IP parsing and IPv4-mapped IPv6: where moat's CIDR code meets Go's net
  {
    id: 'cidr-prefix-many-zeros',
    intent: 'accept',
    why: 'prefix length with 12 leading zeros',
    spec: to(ip('10.0.0.0/0000000000008')),
  },
  {
    id: 'cidr-octet-many-zeros',
    intent: 'accept',
    why: 'an octet with 12 leading zeros',
    spec: to(ip('0000000000010.0.0.0/8')),
  },
  { id: 'cidr-space', intent: 'reject', why: 'leading space', spec: to(ip(' 10.0.0.0/8')) },
  { id: 'cidr-two-slashes', intent: 'reject', why: '10.0.0.0/8/1', spec: to(ip('10.0.0.0/8/1')) },
  { id: 'cidr-hex-octet', intent: 'reject', why: 'hexadecimal octet', spec: to(ip('0x0a.0.0.0/8')) },
  {
    id: 'cidr-v6-leading-zeros',
    intent: 'accept',
    why: 'IPv6 group with leading zeros',
    spec: to(ip('2001:0db8::/32')),
  },
  {
    id: 'cidr-v6-5-digits',
    intent: 'accept',
    why: 'IPv6 group of 5 hex digits, value below 0x10000 (Go 1.16 parser)',
    spec: to(ip('2001:0db80::/32')),
  },
  {
    id: 'cidr-v4-compatible',
    intent: 'accept',
    why: '::1.2.3.4/128 (IPv4-compatible IPv6)',
    spec: to(ip('::1.2.3.4/128')),
  },
  { id: 'cidr-v4-mapped-96', intent: 'accept', why: '::ffff:0.0.0.0/96', spec: to(ip('::ffff:0.0.0.0/96')) },
  {
    id: 'cidr-v4-mapped-short',
    intent: 'accept',
    why: '::ffff:10.0.0.0/80 (mapped, prefix below 96)',
    spec: to(ip('::ffff:10.0.0.0/80')),
  },
  {
    id: 'mapped-cidr-v4-except',
    intent: 'reject',
    why: 'mapped cidr /104 with a plain IPv4 except /16: mask lengths compared as written (104 >= 16)',
    spec: from(ip('::ffff:10.0.0.0/104', ['10.1.0.0/16'])),
  },
  {
    id: 'v4-cidr-mapped-except',
    intent: 'accept',
    why: 'IPv4 cidr /8 with the same network as a mapped except /104',
    spec: from(ip('10.0.0.0/8', ['::ffff:10.0.0.0/104'])),
  },
  {
    id: 'v4-cidr-mapped-except-112',
    intent: 'accept',
    why: 'IPv4 cidr /8 with a mapped except /112 inside',
    spec: from(ip('10.0.0.0/8', ['::ffff:10.1.0.0/112'])),
  },
  {
    id: 'v4-all-mapped-except-short',
    intent: 'accept',
    why: '0.0.0.0/0 with a mapped except /100',
    spec: from(ip('0.0.0.0/0', ['::ffff:0.0.0.0/100'])),
  },
  {
    id: 'mapped-cidr-mapped-except',
    intent: 'accept',
    why: 'mapped cidr and mapped except',
    spec: from(ip('::ffff:10.0.0.0/104', ['::ffff:10.1.0.0/112'])),
  },
  {
    id: 'cidr-v6-group-too-big',
    intent: 'reject',
    why: 'IPv6 group 0x10000',
    spec: to(ip('2001:10000::/32')),
  },
  {
    id: 'cidr-v6-many-zeros',
    intent: 'accept',
    why: 'IPv6 group 000000000001',
    spec: to(ip('2001:000000000001::/32')),
  },
  {
    id: 'cidr-v6-ellipsis-9-groups',
    intent: 'reject',
    why: ':: standing for no group',
    spec: to(ip('1:2:3:4::5:6:7:8/64')),
  },
  {
    id: 'cidr-v6-tail-misplaced',
    intent: 'reject',
    why: 'IPv4 tail not in the last 32 bits',
    spec: to(ip('1:2:3:4:5:1.2.3.4/64')),
  },
  {
    id: 'cidr-v6-tail-after-ellipsis',
    intent: 'accept',
    why: 'IPv4 tail after ::',
    spec: to(ip('64:ff9b::10.0.0.0/120')),
  },
  {
    id: 'v6-all-v4-except',
    intent: 'reject',
    why: '::/0 with an IPv4 except',
    spec: from(ip('::/0', ['10.0.0.0/8'])),
  },

  // ---- types and JSON nulls (a null decodes to the zero value)
  { id: 'port-float', intent: 'reject', why: 'port 80.5', spec: ports({ port: 80.5 }) },
  { id: 'port-bool', intent: 'reject', why: 'port true', spec: ports({ port: true }) },
  { id: 'port-huge', intent: 'reject', why: 'port 1e10 (int32 overflow)', spec: ports({ port: 1e10 }) },
  { id: 'endport-string', intent: 'reject', why: 'endPort "90"', spec: ports({ port: 80, endPort: '90' }) },
  {
    id: 'null-label-value',
    intent: 'accept',
    why: 'matchLabels {app: null}',
    spec: sel({ matchLabels: { app: null } }),
  },
  { id: 'null-rule', intent: 'accept', why: 'ingress: [null]', spec: { podSelector: {}, ingress: [null] } },
  {
    id: 'null-peer',
    intent: 'reject',
    why: 'from: [null] (an empty peer)',
    spec: { podSelector: {}, ingress: [{ from: [null] }] },
  },
  {
    id: 'null-port',
    intent: 'accept',
    why: 'ports: [null] (all ports, TCP)',
    spec: { podSelector: {}, ingress: [{ ports: [null] }] },
  },
  {
    id: 'null-expr',
    intent: 'reject',
    why: 'matchExpressions: [null]',
    spec: sel({ matchExpressions: [null] }),
  },
  {
    id: 'null-except',
    intent: 'reject',
    why: 'except: [null]',
    spec: from({ ipBlock: { cidr: '10.0.0.0/8', except: [null] } }),
  },
  {
    id: 'null-type',
    intent: 'reject',
    why: 'policyTypes: [null]',
    spec: { podSelector: {}, policyTypes: [null] },
  },
  { id: 'null-podselector', intent: 'accept', why: 'podSelector: null', spec: { podSelector: null } },
  {
    id: 'null-value-in',
    intent: 'accept',
    why: 'In with values [null]: the value ""',
    spec: expr('app', 'In', [null as unknown as string]),
  },
  {
    id: 'meta-unknown-field',
    intent: 'reject',
    why: 'unknown metadata field',
    spec: { podSelector: {} },
    metadata: { colour: 'red' },
  },
];

export const CORPUS: readonly CorpusCase[] = cases.map((c) => ({ ...c, name: c.id }));
