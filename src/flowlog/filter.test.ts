import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../errors.js';
import {
  filterToParams,
  FlowFilterError,
  matchesFlow,
  paramsFromSearch,
  parseFlowFilter,
  type FlowFilterParams,
} from './filter.js';
import type { FlowEndpoint, FlowRecord, PolicyHit } from './record.js';

const NOW = new Date('2026-12-03T06:00:00.000Z');

const pod = (ns: string, name: string, ip: string, port?: number): FlowEndpoint => ({
  ip,
  ...(port !== undefined ? { port } : {}),
  namespace: ns,
  pod: name,
});
const np = (ns: string, name: string, action: PolicyHit['action'], rule?: number): PolicyHit => ({
  kind: 'NetworkPolicy',
  namespace: ns,
  name,
  tier: 'NetworkPolicy',
  ...(rule !== undefined ? { rule } : {}),
  action,
});

/** shop/web:41234 -> shop/db:5432 TCP, denied at ingress on node-b by shop/default-deny, at 05:55. */
function flow(over: Partial<FlowRecord> = {}): FlowRecord {
  return {
    time: '2026-12-03T05:55:00.000Z',
    node: 'node-b',
    verdict: 'denied',
    direction: 'ingress',
    protocol: 'TCP',
    family: 'ipv4',
    src: pod('shop', 'web-7d9f', '10.244.1.7', 41234),
    dst: pod('shop', 'db-0', '10.244.2.9', 5432),
    tcpFlags: 'SYN',
    policies: [np('shop', 'default-deny', 'deny')],
    reason: 'no-rule-matched',
    summary: 'isolated by shop/default-deny; no rule matched',
    ...over,
  };
}

const external = flow({
  verdict: 'allowed',
  direction: 'egress',
  protocol: 'UDP',
  node: 'node-a',
  src: pod('shop', 'web-7d9f', '10.244.1.7', 40001),
  dst: { ip: '8.8.8.8', port: 53 },
  policies: [
    {
      kind: 'AdminNetworkPolicy',
      name: 'dns',
      tier: 'Admin',
      rule: 0,
      ruleName: 'r1',
      action: 'allow',
    },
  ],
  reason: 'admin-accept',
});
const v6 = flow({
  family: 'ipv6',
  protocol: 'ICMPv6',
  verdict: 'audit',
  src: { ip: 'fd00::5' },
  dst: pod('monitoring', 'prom', 'fd00:244::3'),
  icmp: { type: 128, code: 0 },
  policies: [],
  reason: 'not-isolated',
});

const parse = (p: FlowFilterParams) => parseFlowFilter(p, NOW);
const matches = (p: FlowFilterParams, r: FlowRecord) => matchesFlow(parse(p), r);

test('parseFlowFilter + matchesFlow: each parameter', () => {
  const cases: [string, FlowFilterParams, FlowRecord, boolean][] = [
    ['no filter', {}, flow(), true],
    ['verdict', { verdict: 'denied' }, flow(), true],
    ['verdict other', { verdict: 'allowed' }, flow(), false],
    ['verdict any case', { verdict: 'DENIED' }, flow(), true],
    ['verdict audit', { verdict: 'audit' }, v6, true],
    ['direction', { direction: 'ingress' }, flow(), true],
    ['direction other', { direction: 'egress' }, flow(), false],
    ['namespace: source', { namespace: 'shop' }, external, true],
    ['namespace: destination', { namespace: 'monitoring' }, v6, true],
    ['namespace: neither', { namespace: 'kube-system' }, flow(), false],
    ['namespace: prefix', { namespace: 'mon*' }, v6, true],
    ['pod: name in any namespace', { pod: 'db-0' }, flow(), true],
    ['pod: ns/name', { pod: 'shop/web-7d9f' }, flow(), true],
    ['pod: other namespace', { pod: 'other/web-7d9f' }, flow(), false],
    ['pod: prefix', { pod: 'shop/web-*' }, flow(), true],
    ['pod: prefix, any namespace', { pod: 'db*' }, flow(), true],
    ['pod: a name is not a prefix', { pod: 'web' }, flow(), false],
    ['pod: ns/* is every pod of ns', { pod: 'monitoring/*' }, v6, true],
    ['pod: not a pod end', { pod: '*' }, { ...v6, dst: { ip: 'fd00::6' } }, false],
    ['from: ns/pod', { from: 'shop/web-7d9f' }, flow(), true],
    ['from: is the source only', { from: 'shop/db-0' }, flow(), false],
    ['from: ns/', { from: 'shop/' }, flow(), true],
    ['from: ns/ other', { from: 'monitoring/' }, v6, false],
    ['from: ns/prefix*', { from: 'shop/web*' }, flow(), true],
    ['from: IPv4', { from: '10.244.1.7' }, flow(), true],
    ['from: IPv4 other', { from: '10.244.1.8' }, flow(), false],
    ['from: CIDR v4', { from: '10.244.0.0/16' }, flow(), true],
    ['from: CIDR v4, host bits set', { from: '10.244.1.99/24' }, flow(), true],
    ['from: CIDR v4 outside', { from: '10.245.0.0/16' }, flow(), false],
    ['from: IPv6, another spelling', { from: 'fd00:0::5' }, v6, true],
    ['from: CIDR v6', { from: 'fd00::/64' }, v6, true],
    ['from: CIDR v6 does not hold v4', { from: '::/0' }, flow(), false],
    ['from: a namespace of digits', { from: '123/' }, flow({ src: pod('123', 'x', '10.0.0.1') }), true],
    ['to: ns/pod', { to: 'shop/db-0' }, flow(), true],
    ['to: is the destination only', { to: 'shop/web-7d9f' }, flow(), false],
    ['to: a non-pod by IP', { to: '8.8.8.8' }, external, true],
    ['to: a non-pod is in no namespace', { to: 'shop/' }, external, false],
    ['port: destination', { port: '5432' }, flow(), true],
    ['port: source', { port: '41234' }, flow(), true],
    ['port: neither', { port: '80' }, flow(), false],
    ['port: ICMP has none', { port: '80' }, v6, false],
    ['protocol', { protocol: 'tcp' }, flow(), true],
    ['protocol any case', { protocol: 'Udp' }, external, true],
    ['protocol other', { protocol: 'udp' }, flow(), false],
    ['protocol icmpv6', { protocol: 'ICMPV6' }, v6, true],
    ['protocol icmp is not icmpv6', { protocol: 'icmp' }, v6, false],
    ['protocol by number', { protocol: '6' }, flow(), true],
    ['protocol number record', { protocol: '47' }, flow({ protocol: '47' }), true],
    ['protocol name matches a numbered record', { protocol: 'sctp' }, flow({ protocol: '132' }), true],
    ['policy: name', { policy: 'default-deny' }, flow(), true],
    ['policy: ns/name', { policy: 'shop/default-deny' }, flow(), true],
    ['policy: ns/name other namespace', { policy: 'other/default-deny' }, flow(), false],
    ['policy: Kind/name', { policy: 'AdminNetworkPolicy/dns' }, external, true],
    ['policy: short kind', { policy: 'anp/dns' }, external, true],
    ['policy: kind any case', { policy: 'adminnetworkpolicy/dns' }, external, true],
    ['policy: other kind', { policy: 'BaselineAdminNetworkPolicy/dns' }, external, false],
    ['policy: NetworkPolicy/name, any namespace', { policy: 'NetworkPolicy/default-deny' }, flow(), true],
    ['policy: NetworkPolicy/ns/name', { policy: 'np/shop/default-deny' }, flow(), true],
    ['policy: prefix', { policy: 'default-*' }, flow(), true],
    ['policy: no hits', { policy: 'default-deny' }, v6, false],
    [
      'policy: any hit',
      { policy: 'shop/allow-web' },
      flow({ policies: [np('shop', 'default-deny', 'deny'), np('shop', 'allow-web', 'allow', 0)] }),
      true,
    ],
    ['node', { node: 'node-b' }, flow(), true],
    ['node other', { node: 'node-a' }, flow(), false],
    [
      'node is the logging node, not an end',
      { node: 'node-a' },
      flow({ src: { ...flow().src, node: 'node-a' } }),
      false,
    ],
    ['node prefix', { node: 'node-*' }, flow(), true],
    ['since: duration', { since: '5m' }, flow(), true],
    ['since: duration, older', { since: '4m' }, flow(), false],
    ['since: exactly then', { since: '5m' }, flow({ time: '2026-12-03T05:55:00Z' }), true],
    ['since: 1h30m', { since: '1h30m' }, flow({ time: '2026-12-03T04:30:00.001Z' }), true],
    ['since: 500ms', { since: '500ms' }, flow({ time: '2026-12-03T05:59:59.499Z' }), false],
    ['since: 0 is now', { since: '0' }, flow({ time: NOW.toISOString() }), true],
    ['since: RFC 3339', { since: '2026-12-03T05:54:59Z' }, flow(), true],
    ['since: RFC 3339 with an offset', { since: '2026-12-03T06:55:01+01:00' }, flow(), false],
    ['since: a record without a time never matches', { since: '1h' }, flow({ time: 'garbage' }), false],
  ];
  for (const [name, params, r, want] of cases) {
    assert.equal(matches(params, r), want, `${name}: ${JSON.stringify(params)}`);
  }
});

test('parseFlowFilter: repeating a parameter is OR, different parameters AND', () => {
  const cases: [string, FlowFilterParams, FlowRecord, boolean][] = [
    ['repeated', { verdict: ['allowed', 'denied'] }, flow(), true],
    ['comma list', { verdict: 'allowed,denied' }, flow(), true],
    ['comma list with spaces', { verdict: 'allowed , denied' }, flow(), true],
    ['repeated, none', { verdict: ['allowed', 'audit'] }, flow(), false],
    ['repeated and comma', { port: ['80', '443,5432'] }, flow(), true],
    ['from: any of', { from: ['monitoring/', '10.244.1.0/24'] }, flow(), true],
    ['AND: both match', { verdict: 'denied', namespace: 'shop' }, flow(), true],
    ['AND: one fails', { verdict: 'denied', namespace: 'monitoring' }, flow(), false],
    ['AND of ORs', { verdict: 'allowed,denied', direction: 'egress,ingress', port: '5432,1' }, flow(), true],
    ['AND of ORs, one fails', { verdict: 'allowed,denied', direction: 'egress' }, flow(), false],
    ['from and to', { from: 'shop/web*', to: 'shop/db-0' }, flow(), true],
    ['from and to swapped', { from: 'shop/db-0', to: 'shop/web*' }, flow(), false],
    ['undefined is absent', { verdict: undefined, namespace: 'shop' }, flow(), true],
    ['since: repeated, the earliest', { since: ['1m', '10m'] }, flow(), true],
  ];
  for (const [name, params, r, want] of cases) {
    assert.equal(matches(params, r), want, `${name}: ${JSON.stringify(params)}`);
  }
});

test('parseFlowFilter: bad values are usage errors naming the parameter and the value', () => {
  const cases: [FlowFilterParams, string][] = [
    [{ verdict: 'deny' }, 'verdict "deny": must be one of allowed, denied, audit'],
    [{ verdict: ['allowed', 'maybe'] }, 'verdict "maybe": must be one of allowed, denied, audit'],
    [{ verdict: 'allowed,' }, 'verdict "": empty value'],
    [{ verdict: '' }, 'verdict "": empty value'],
    [{ direction: 'in' }, 'direction "in": must be one of ingress, egress'],
    [{ namespace: 'Shop' }, 'namespace "Shop": must be a namespace name (a trailing * is a prefix)'],
    [{ namespace: 'a/b' }, 'namespace "a/b": must be a namespace name (a trailing * is a prefix)'],
    [{ pod: 'a/b/c' }, 'pod "a/b/c": expected NAME or NAMESPACE/NAME (a trailing * is a prefix)'],
    [{ pod: 'w*b' }, 'pod "w*b": expected NAME or NAMESPACE/NAME (a trailing * is a prefix)'],
    [{ pod: 'sh*p/web' }, 'pod "sh*p/web": expected NAME or NAMESPACE/NAME (a trailing * is a prefix)'],
    [
      { from: 'shop' },
      'from "shop": expected NAMESPACE/POD, NAMESPACE/ (every pod of the namespace), an IP, or a CIDR; for the namespace shop write shop/',
    ],
    [
      { to: 'a/b/c' },
      'to "a/b/c": expected NAMESPACE/POD, NAMESPACE/ (every pod of the namespace), an IP, or a CIDR',
    ],
    [{ to: '10.0.0.0/33' }, 'to "10.0.0.0/33": prefix length "33" is out of range for IPv4'],
    [{ from: '10.0.0.300' }, 'from "10.0.0.300": not an IP address'],
    [{ from: 'fd00::g' }, 'from "fd00::g": not an IP address'],
    [{ from: 'fd00::g/64' }, 'from "fd00::g/64": "fd00::g" is not an IP address'],
    [{ from: '10.0.0.300/24' }, 'from "10.0.0.300/24": "10.0.0.300" is not an IP address'],
    [{ port: 'http' }, 'port "http": must be a port number between 1 and 65535'],
    [{ port: '0' }, 'port "0": must be a port number between 1 and 65535'],
    [{ port: '65536' }, 'port "65536": must be a port number between 1 and 65535'],
    [
      { protocol: 'gre' },
      'protocol "gre": must be one of tcp, udp, sctp, icmp, icmpv6 (any case) or an IP protocol number',
    ],
    [
      { protocol: '256' },
      'protocol "256": must be one of tcp, udp, sctp, icmp, icmpv6 (any case) or an IP protocol number',
    ],
    [{ policy: 'Foo/x' }, 'policy "Foo/x": unknown kind "Foo"; expected NAME, NAMESPACE/NAME, KIND/NAME'],
    [
      { policy: 'anp/ns/x' },
      'policy "anp/ns/x": AdminNetworkPolicy is cluster-scoped (no namespace): write anp/x',
    ],
    [{ policy: 'a/b/c' }, 'policy "a/b/c": expected NAME, NAMESPACE/NAME'],
    [{ node: 'Node_1' }, 'node "Node_1": must be a node name (a trailing * is a prefix)'],
    [
      { since: '5 minutes' },
      'since "5 minutes": expected a duration such as 500ms, 30s, 5m, 2h or 1h30m, or an RFC 3339 time',
    ],
    [{ since: '5d' }, 'since "5d": expected a duration'],
    [{ since: '-5m' }, 'since "-5m": expected a duration'],
    [{ since: '2026-12-03' }, 'since "2026-12-03": expected a duration'],
    [{ since: '2026-13-03T00:00:00Z' }, 'since "2026-13-03T00:00:00Z": expected a duration'],
    [{ verdit: 'denied' }, 'verdit "denied": unknown filter; expected one of verdict, direction, namespace,'],
  ];
  for (const [params, message] of cases) {
    assert.throws(
      () => parse(params),
      (e: unknown) => {
        assert.ok(e instanceof FlowFilterError && e instanceof UsageError, String(e));
        assert.ok(e.message.startsWith(message), `${JSON.stringify(params)}: got ${e.message}`);
        assert.equal(e.exitCode, 2);
        return true;
      },
    );
  }
});

test('parseFlowFilter: the CLI names its flags; the agent ignores its own parameters', () => {
  assert.throws(() => parseFlowFilter({ port: 'x' }, NOW, { flagPrefix: '--' }), /^UsageError: --port "x": /);
  const e = (() => {
    try {
      parse({ verdict: ['denied', 'nope'] });
    } catch (err) {
      return err as FlowFilterError;
    }
    return undefined;
  })();
  assert.deepEqual([e?.param, e?.value], ['verdict', 'nope']);
  assert.throws(() => parse({ follow: '1' }), /follow "1": unknown filter/);
  assert.deepEqual(parseFlowFilter({ follow: '1', verdict: 'denied' }, NOW, { ignore: ['follow'] }), {
    verdict: ['denied'],
  });
});

test('parseFlowFilter: the parsed filter', () => {
  assert.deepEqual(parse({}), {});
  assert.deepEqual(
    parse({
      verdict: 'Denied,audit',
      pod: ['shop/web-*', 'db'],
      from: ['shop/', '10.0.0.1'],
      protocol: ['TCP', '17'],
      policy: ['shop/x', 'anp/y', 'z'],
      since: '5m',
    }),
    {
      verdict: ['denied', 'audit'],
      pod: [
        { namespace: 'shop', pod: { name: 'web-', prefix: true } },
        { pod: { name: 'db', prefix: false } },
      ],
      from: [
        { kind: 'pod', namespace: 'shop' },
        { kind: 'cidr', cidr: { family: 4, base: 0x0a000001n, prefix: 32, text: '10.0.0.1' } },
      ],
      protocol: ['tcp', 'udp'],
      policy: [
        { kind: 'NetworkPolicy', namespace: 'shop', name: { name: 'x', prefix: false } },
        { kind: 'AdminNetworkPolicy', name: { name: 'y', prefix: false } },
        { name: { name: 'z', prefix: false } },
      ],
      since: Date.parse('2026-12-03T05:55:00.000Z'),
    },
  );
});

test('filterToParams: forwards the filter; parsing it back gives the same filter, since as an instant', () => {
  const params: FlowFilterParams = {
    verdict: 'denied,audit',
    direction: 'ingress',
    namespace: ['shop', 'mon*'],
    pod: ['shop/web-*', 'db'],
    from: ['shop/', 'shop/web*', '10.0.0.1', 'fd00::/64'],
    to: 'monitoring/prom',
    port: ['53', '5432'],
    protocol: 'TCP,icmpv6',
    policy: ['shop/x', 'AdminNetworkPolicy/y', 'anp/z*', 'w', 'NetworkPolicy/v'],
    node: 'node-*',
    since: '5m',
  };
  const f = parse(params);
  const pairs = filterToParams(f);
  assert.deepEqual(pairs, [
    ['verdict', 'denied'],
    ['verdict', 'audit'],
    ['direction', 'ingress'],
    ['namespace', 'shop'],
    ['namespace', 'mon*'],
    ['pod', 'shop/web-*'],
    ['pod', 'db'],
    ['from', 'shop/'],
    ['from', 'shop/web*'],
    ['from', '10.0.0.1'],
    ['from', 'fd00::/64'],
    ['to', 'monitoring/prom'],
    ['port', '53'],
    ['port', '5432'],
    ['protocol', 'tcp'],
    ['protocol', 'icmpv6'],
    ['policy', 'shop/x'],
    ['policy', 'AdminNetworkPolicy/y'],
    ['policy', 'AdminNetworkPolicy/z*'],
    ['policy', 'w'],
    ['policy', 'NetworkPolicy/v'],
    ['node', 'node-*'],
    ['since', '2026-12-03T05:55:00.000Z'],
  ]);
  // Through a URL, as the agent receives it, and parsed an hour later: the same filter.
  const url = new URL(`http://agent:9809/flows?${new URLSearchParams(pairs).toString()}`);
  assert.deepEqual(
    parseFlowFilter(paramsFromSearch(url.searchParams), new Date(NOW.getTime() + 3_600_000)),
    f,
  );
  assert.deepEqual(filterToParams(parse({})), []);
});

test('paramsFromSearch: repeated keys are kept in order', () => {
  assert.deepEqual(
    paramsFromSearch(new URLSearchParams('verdict=denied&namespace=x&verdict=audit&follow=1')),
    {
      verdict: ['denied', 'audit'],
      namespace: ['x'],
      follow: ['1'],
    },
  );
});
