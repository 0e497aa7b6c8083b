import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { cport, ipPeer, netpol, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import { loadPaths } from '../model/load.js';
import type { NetworkPolicy, Pod, Service, Snapshot } from '../model/types.js';
import { repoRoot } from '../../test/support/cli.js';
import { atLeast, lint } from './lint.js';

const dnsPod = pod('kube-system', 'coredns', {
  labels: { 'k8s-app': 'kube-dns' },
  ips: ['10.0.0.53'],
  ports: [cport(53, 'UDP', 'dns'), cport(53, 'TCP', 'dns-tcp')],
});
const web = pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.1.1'], ports: [cport(80, 'TCP', 'http')] });
const db = pod('a', 'db', { labels: { app: 'db' }, ips: ['10.0.1.2'], ports: [cport(5432, 'TCP', 'pg')] });
const agent = pod('a', 'agent', { labels: { app: 'agent' }, ips: ['192.168.0.1'], hostNetwork: true });
const toDns = podPeer(sel({ 'k8s-app': 'kube-dns' }), sel({ 'kubernetes.io/metadata.name': 'kube-system' }));
const allowDns = netpol('a', 'allow-dns', {
  policyTypes: ['Egress'],
  egress: [rule([toDns], [pport(53, 'UDP'), pport(53, 'TCP')])],
});
const denyAll = netpol('a', 'deny', { policyTypes: ['Ingress', 'Egress'] });
const implicit = (p: NetworkPolicy, protocols: string[], policyTypes = false): NetworkPolicy => ({
  ...p,
  implicit: {
    ...(policyTypes ? { policyTypes: true as const } : {}),
    ...(protocols.length > 0 ? { protocols } : {}),
  },
});

const S = (
  policies: NetworkPolicy[],
  pods: Pod[] = [web, db, dnsPod],
  namespaces = [ns('a'), ns('kube-system')],
) => snapshot({ namespaces, pods, policies });

const svc = (
  name: string,
  selector: Record<string, string>,
  port: number,
  targetPort: number | string,
): Service => ({
  namespace: 'a',
  name,
  selector,
  ports: [{ port, targetPort, protocol: 'TCP' }],
});
const withSvc = (policies: NetworkPolicy[]) =>
  snapshot({
    namespaces: [ns('a'), ns('kube-system')],
    pods: [web, db, dnsPod],
    policies,
    services: [svc('web', { app: 'web' }, 8000, 80), svc('db', { app: 'db' }, 15432, 'pg')],
  });

/** "check object field" of every finding of the check. */
function found(s: Snapshot, check: string): string[] {
  return lint(s)
    .filter((f) => f.check === check)
    .map((f) => `${f.object.namespace ?? ''}/${f.object.name} ${f.field}`);
}

interface Case {
  readonly name: string;
  readonly check: string;
  readonly snapshot: Snapshot;
  readonly want: string[];
}

const cases: Case[] = [
  // dns-blocked
  {
    name: 'default-deny egress without allow-dns',
    check: 'dns-blocked',
    snapshot: S([denyAll]),
    want: ['a/db metadata.labels', 'a/web metadata.labels'],
  },
  {
    name: 'default-deny egress with allow-dns',
    check: 'dns-blocked',
    snapshot: S([denyAll, allowDns]),
    want: [],
  },
  {
    name: "the DNS pods' ingress denies it",
    check: 'dns-blocked',
    snapshot: S([allowDns, netpol('kube-system', 'deny')]),
    want: ['a/db metadata.labels', 'a/web metadata.labels'],
  },
  {
    name: 'no DNS pods in the input: any address on UDP 53 will do',
    check: 'dns-blocked',
    snapshot: S(
      [
        denyAll,
        netpol('a', 'ext', { egress: [rule([ipPeer('10.0.0.0/8', ['10.0.0.0/9'])], [pport(53, 'UDP')])] }),
      ],
      [web],
    ),
    want: [],
  },
  {
    name: 'no DNS pods, nothing open',
    check: 'dns-blocked',
    snapshot: S([denyAll], [web]),
    want: ['a/web metadata.labels'],
  },
  {
    name: 'allowed on TCP 53 only',
    check: 'dns-blocked',
    snapshot: S([denyAll, netpol('a', 'tcp', { egress: [rule([toDns], [pport(53, 'TCP')])] })]),
    want: ['a/db metadata.labels', 'a/web metadata.labels'],
  },
  // dns-unrestricted
  {
    name: 'port 53 to every destination',
    check: 'dns-unrestricted',
    snapshot: S([netpol('a', 'p', { egress: [rule(undefined, [pport(53, 'UDP')])] })]),
    want: ['a/p spec.egress[0]'],
  },
  {
    name: 'port 53 to 0.0.0.0/0',
    check: 'dns-unrestricted',
    snapshot: S([
      netpol('a', 'p', { egress: [rule([toDns, ipPeer('0.0.0.0/0', ['10.0.0.0/8'])], [pport(53, 'TCP')])] }),
    ]),
    want: ['a/p spec.egress[0].to[1]'],
  },
  {
    name: 'port 53 to the cluster DNS',
    check: 'dns-unrestricted',
    snapshot: S([denyAll, allowDns]),
    want: [],
  },
  {
    name: 'all ports everywhere is not a DNS rule',
    check: 'dns-unrestricted',
    snapshot: S([netpol('a', 'p', { egress: [rule()] })]),
    want: [],
  },
  // namespace-selector-matches-nothing
  {
    name: 'namespaceSelector on a label no namespace has',
    check: 'namespace-selector-matches-nothing',
    snapshot: S([netpol('a', 'p', { egress: [rule([podPeer(undefined, sel({ name: 'kube-system' }))])] })]),
    want: ['a/p spec.egress[0].to[0].namespaceSelector'],
  },
  {
    name: 'namespaceSelector on kubernetes.io/metadata.name',
    check: 'namespace-selector-matches-nothing',
    snapshot: S([denyAll, allowDns]),
    want: [],
  },
  {
    name: 'no namespaces in the input: no judgement',
    check: 'namespace-selector-matches-nothing',
    snapshot: S(
      [netpol('a', 'p', { egress: [rule([podPeer(undefined, sel({ name: 'kube-system' }))])] })],
      [],
      [],
    ),
    want: [],
  },
  // pod-selector-matches-nothing
  {
    name: 'podSelector on labels no pod has',
    check: 'pod-selector-matches-nothing',
    snapshot: S([netpol('a', 'p', { ingress: [rule([podPeer(sel({ app: 'front' }))])] })]),
    want: ['a/p spec.ingress[0].from[0].podSelector'],
  },
  {
    name: 'podSelector on labels a pod has',
    check: 'pod-selector-matches-nothing',
    snapshot: S([netpol('a', 'p', { ingress: [rule([podPeer(sel({ app: 'web' }))])] })]),
    want: [],
  },
  {
    name: 'podSelector for the pods of another namespace, without namespaceSelector',
    check: 'pod-selector-matches-nothing',
    snapshot: S([netpol('a', 'p', { egress: [rule([podPeer(sel({ 'k8s-app': 'kube-dns' }))])] })]),
    want: ['a/p spec.egress[0].to[0].podSelector'],
  },
  // selects-nothing
  {
    name: 'podSelector selects no pod',
    check: 'selects-nothing',
    snapshot: S([netpol('a', 'p', { podSelector: sel({ app: 'gone' }) })]),
    want: ['a/p spec.podSelector'],
  },
  {
    name: 'podSelector selects a pod',
    check: 'selects-nothing',
    snapshot: S([netpol('a', 'p', { podSelector: sel({ app: 'db' }) })]),
    want: [],
  },
  {
    name: 'no pods of the namespace in the input',
    check: 'selects-nothing',
    snapshot: S([netpol('b', 'p', { podSelector: sel({ app: 'gone' }) })]),
    want: [],
  },
  // peer-or-maybe-and
  {
    name: 'namespaceSelector-only next to podSelector-only',
    check: 'peer-or-maybe-and',
    snapshot: S([
      netpol('a', 'p', {
        ingress: [
          rule([
            podPeer(undefined, sel({ 'kubernetes.io/metadata.name': 'kube-system' })),
            podPeer(sel({ app: 'web' })),
          ]),
        ],
      }),
    ]),
    want: ['a/p spec.ingress[0].from'],
  },
  {
    name: 'one peer with both selectors',
    check: 'peer-or-maybe-and',
    snapshot: S([
      denyAll,
      allowDns,
      netpol('a', 'p', { ingress: [rule([podPeer(sel({ app: 'web' })), toDns])] }),
    ]),
    want: [],
  },
  // named-port-undeclared
  {
    name: 'ingress named port the selected pods do not declare',
    check: 'named-port-undeclared',
    snapshot: S([
      netpol('a', 'p', { podSelector: sel({ app: 'db' }), ingress: [rule(undefined, [pport('postgres')])] }),
    ]),
    want: ['a/p spec.ingress[0].ports[0].port'],
  },
  {
    name: 'ingress named port declared',
    check: 'named-port-undeclared',
    snapshot: S([
      netpol('a', 'p', { podSelector: sel({ app: 'db' }), ingress: [rule(undefined, [pport('pg')])] }),
    ]),
    want: [],
  },
  {
    name: 'egress named port declared by the destination pods only for UDP',
    check: 'named-port-undeclared',
    snapshot: S([netpol('a', 'p', { egress: [rule([toDns], [pport('dns', 'TCP')])] })]),
    want: ['a/p spec.egress[0].ports[0].port'],
  },
  // port-protocol-defaulted
  {
    name: 'port 53 without protocol to pods that serve it on UDP only',
    check: 'port-protocol-defaulted',
    snapshot: S([
      implicit(netpol('a', 'p', { egress: [rule([toDns], [pport('dns')])] }), ['spec.egress[0].ports[0]']),
    ]),
    want: ['a/p spec.egress[0].ports[0].protocol'],
  },
  {
    name: 'port 53 without protocol where the pods serve TCP 53 too',
    check: 'port-protocol-defaulted',
    snapshot: S([
      implicit(netpol('a', 'p', { egress: [rule([toDns], [pport(53)])] }), ['spec.egress[0].ports[0]']),
    ]),
    want: [],
  },
  {
    name: 'protocol TCP written: a choice, not a default',
    check: 'port-protocol-defaulted',
    snapshot: S([netpol('a', 'p', { egress: [rule([toDns], [pport('dns')])] })]),
    want: [],
  },
  // service-port-not-target-port
  {
    name: 'the Service port where the targetPort was meant',
    check: 'service-port-not-target-port',
    snapshot: withSvc([
      netpol('a', 'p', { podSelector: sel({ app: 'web' }), ingress: [rule(undefined, [pport(8000)])] }),
    ]),
    want: ['a/p spec.ingress[0].ports[0].port'],
  },
  {
    name: 'egress to the Service port of a named targetPort',
    check: 'service-port-not-target-port',
    snapshot: withSvc([netpol('a', 'p', { egress: [rule([podPeer(sel({ app: 'db' }))], [pport(15432)])] })]),
    want: ['a/p spec.egress[0].ports[0].port'],
  },
  {
    name: 'the targetPort written',
    check: 'service-port-not-target-port',
    snapshot: withSvc([
      netpol('a', 'p', { podSelector: sel({ app: 'web' }), ingress: [rule(undefined, [pport(80)])] }),
    ]),
    want: [],
  },
  {
    name: 'the port of a Service that does not select the guarded pods',
    check: 'service-port-not-target-port',
    snapshot: withSvc([
      netpol('a', 'p', { podSelector: sel({ app: 'db' }), ingress: [rule(undefined, [pport(8000)])] }),
    ]),
    want: [],
  },
  // hostnetwork-selected, hostnetwork-peer
  {
    name: 'a policy selecting a hostNetwork pod',
    check: 'hostnetwork-selected',
    snapshot: S([denyAll, allowDns], [web, agent, dnsPod]),
    want: ['a/deny spec.podSelector', 'a/allow-dns spec.podSelector'],
  },
  {
    name: 'no hostNetwork pod selected',
    check: 'hostnetwork-selected',
    snapshot: S([netpol('a', 'p', { podSelector: sel({ app: 'web' }) })], [web, agent, dnsPod]),
    want: [],
  },
  {
    name: 'a pod peer naming a hostNetwork pod',
    check: 'hostnetwork-peer',
    snapshot: S(
      [
        netpol('a', 'p', {
          podSelector: sel({ app: 'web' }),
          ingress: [rule([podPeer(sel({ app: 'agent' }))])],
        }),
      ],
      [web, agent],
    ),
    want: ['a/p spec.ingress[0].from[0].podSelector'],
  },
  {
    name: 'a pod peer naming pod-network pods',
    check: 'hostnetwork-peer',
    snapshot: S([netpol('a', 'p', { ingress: [rule([podPeer(sel({ app: 'web' }))])] })], [web, agent]),
    want: [],
  },
  // ipblock-includes-pods
  {
    name: 'ipBlock over pod addresses',
    check: 'ipblock-includes-pods',
    snapshot: S([netpol('a', 'p', { ingress: [rule([ipPeer('10.0.0.0/16')])] })]),
    want: ['a/p spec.ingress[0].from[0].ipBlock'],
  },
  {
    name: 'ipBlock excepting the pod network',
    check: 'ipblock-includes-pods',
    snapshot: S([netpol('a', 'p', { ingress: [rule([ipPeer('10.0.0.0/8', ['10.0.0.0/16'])])] })]),
    want: [],
  },
  // policytypes-implicit
  {
    name: 'policyTypes defaulted',
    check: 'policytypes-implicit',
    snapshot: S([implicit(netpol('a', 'p'), [], true)]),
    want: ['a/p spec.policyTypes'],
  },
  { name: 'policyTypes written', check: 'policytypes-implicit', snapshot: S([netpol('a', 'p')]), want: [] },
];

describe('lint: the NetworkPolicy checks, each with positive and negative cases', () => {
  for (const c of cases) {
    it(`${c.check}: ${c.name}`, () => {
      assert.deepEqual(found(c.snapshot, c.check).sort(), [...c.want].sort());
    });
  }
  it('every check has a positive and a negative case', () => {
    const checks = new Set(cases.map((c) => c.check));
    for (const ch of checks) {
      assert.ok(
        cases.some((c) => c.check === ch && c.want.length > 0),
        `${ch}: no positive case`,
      );
      assert.ok(
        cases.some((c) => c.check === ch && c.want.length === 0),
        `${ch}: no negative case`,
      );
    }
  });
});

describe('lint: messages, hints and related objects', () => {
  it('service-port-not-target-port names the Service and the targetPort to write', () => {
    const [f] = lint(
      withSvc([netpol('a', 'p', { egress: [rule([podPeer(sel({ app: 'db' }))], [pport(15432)])] })]),
    ).filter((x) => x.check === 'service-port-not-target-port');
    assert.deepEqual(f?.related[0], { kind: 'Service', namespace: 'a', name: 'db' });
    assert.match(f?.message ?? '', /targetPort is pg \(5432\)/);
    assert.equal(f?.fix, 'write port: pg (or 5432)');
  });
  it('a workload pod is reported as its workload', () => {
    const w: Pod = { ...web, name: 'deploy/web', ips: [], workload: { kind: 'Deployment', name: 'web' } };
    const [f] = lint(S([denyAll], [w, dnsPod])).filter((x) => x.check === 'dns-blocked');
    assert.deepEqual(f?.object, { kind: 'Deployment', namespace: 'a', name: 'web' });
  });
  it('dns-blocked names the isolating policies and the fix', () => {
    const [f] = lint(S([denyAll], [web, dnsPod])).filter((x) => x.check === 'dns-blocked');
    assert.deepEqual(f?.related, [{ kind: 'NetworkPolicy', namespace: 'a', name: 'deny' }]);
    assert.deepEqual(f?.object, { kind: 'Pod', namespace: 'a', name: 'web' });
    assert.match(f?.message ?? '', /cannot reach the cluster DNS \(kube-system\/coredns\) on UDP\/53/);
    assert.match(f?.fix ?? '', /k8s-app: kube-dns/);
  });
  it('namespace-selector-matches-nothing suggests kubernetes.io/metadata.name when the key looks like a name', () => {
    const bad = (s: ReturnType<typeof sel>) =>
      lint(S([netpol('a', 'p', { egress: [rule([podPeer(undefined, s)])] })])).find(
        (x) => x.check === 'namespace-selector-matches-nothing',
      )?.fix ?? '';
    assert.match(bad(sel({ name: 'kube-system' })), /kubernetes\.io\/metadata\.name: kube-system/);
    assert.match(bad(sel({ team: 'kube-system' })), /kubernetes\.io\/metadata\.name: kube-system/);
    assert.doesNotMatch(bad(sel({ team: 'x' })), /metadata\.name: x/);
  });
  it('pod-selector-matches-nothing: a namespace name in a podSelector gets the namespaceSelector hint', () => {
    const f = lint(S([netpol('a', 'p', { egress: [rule([podPeer(sel({ name: 'kube-system' }))])] })])).find(
      (x) => x.check === 'pod-selector-matches-nothing',
    );
    assert.match(
      f?.fix ?? '',
      /a podSelector does not select namespaces: write namespaceSelector: \{matchLabels: \{kubernetes\.io\/metadata\.name: kube-system\}\}/,
    );
  });
});

describe('lint: correct policies produce no warning', () => {
  const load = async (...p: string[]) => {
    const res = await loadPaths(p.map((x) => join(repoRoot(), x)));
    assert.deepEqual(res.problems, []);
    return lint(res.snapshot);
  };
  it('examples/shop: its DNS trap (data/db), nothing else at warning or above', async () => {
    const f = (await load('examples/shop')).filter((x) => atLeast(x, 'warning'));
    assert.deepEqual(
      f.map((x) => `${x.severity} ${x.check} ${x.object.namespace ?? ''}/${x.object.name}`),
      ['error dns-blocked data/db'],
    );
  });
  it('examples/tenants: only the intentional priority ties', async () => {
    const f = (await load('examples/tenants')).filter((x) => atLeast(x, 'warning'));
    assert.deepEqual([...new Set(f.map((x) => x.check))], ['admin-priority-tie']);
  });
  it('test/fixtures/workloads (Deployments, a StatefulSet, Services with named targetPorts)', async () => {
    assert.deepEqual(
      (await load('test/fixtures/workloads')).filter((x) => atLeast(x, 'warning')),
      [],
    );
  });
  it('examples/admin: nothing', async () => {
    assert.deepEqual(
      (await load('examples/admin')).filter((x) => atLeast(x, 'warning')),
      [],
    );
  });
  it('a realistic set (ingress controller, DNS, monitoring, a database, workloads in three namespaces)', async () => {
    assert.deepEqual(
      (await load('test/fixtures/lint/realistic.yaml'))
        .filter((x) => atLeast(x, 'warning'))
        .map((x) => x.message),
      [],
    );
  });
  it('the same set with the classic mistakes finds each of them', async () => {
    const f = await load('test/fixtures/lint/mistakes.yaml');
    assert.deepEqual([...new Set(f.filter((x) => atLeast(x, 'warning')).map((x) => x.check))].sort(), [
      'dns-blocked',
      'dns-unrestricted',
      'named-port-undeclared',
      'namespace-selector-matches-nothing',
      'peer-or-maybe-and',
      // the podSelector-only peer (the dash) looks for the controller in the policy's namespace
      'pod-selector-matches-nothing',
      'port-protocol-defaulted',
      'selects-nothing',
    ]);
  });
});
