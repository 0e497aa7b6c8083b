// The agent against the Kubernetes API test server, through the real client library: what it
// applies (compiled as DataplaneApplier would, checked with packets on the simulator) follows the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, type AgentOptions } from '../../src/agent/agent.js';
import { decodeApiObject } from '../../src/agent/k8s-decode.js';
import { denyStandIn } from '../../src/model/standin.js';
import type { NetworkPolicy } from '../../src/model/types.js';
import { adminRulePackets, policyPackets, parseNftCounters } from '../../src/agent/metrics.js';
import { parseDuration } from '../../src/cli/commands/agent.js';
import { parseListenAddress } from '../../src/agent/server.js';
import { evaluate } from '../../src/policy/evaluate.js';
import type { Snapshot } from '../../src/model/types.js';
import {
  CRD_GROUP,
  cnpObj,
  FakeApiServer,
  nodeObj,
  nsObj,
  podObj,
  policyObj,
  type FakeOptions,
} from './fake-apiserver.js';
import { kubeconfigFor, MemoryLog, passes, RecordingApplier, sleep, waitFor } from './util.js';

const NODE = 'n1';
const WEB = '10.244.0.10';
const CLIENT = '10.244.0.11';
const PROBE = '10.244.0.12';
const LATE = '10.244.0.13';
const HTTP = [{ containerPort: 80, name: 'http' }];

function seed(s: FakeApiServer): void {
  s.put(nodeObj(NODE, ['10.0.0.1'], ['10.244.0.0/24']));
  s.put(nsObj('shop', { team: 'shop' }));
  s.put(nsObj('other'));
  s.put(podObj('shop', 'web', { labels: { app: 'web' }, ip: WEB, nodeName: NODE, ports: HTTP }));
  s.put(podObj('shop', 'client', { labels: { app: 'client' }, ip: CLIENT, nodeName: NODE }));
  s.put(podObj('other', 'probe', { labels: { app: 'probe' }, ip: PROBE, nodeName: 'n2' }));
}

interface Harness {
  server: FakeApiServer;
  agent: Agent;
  applier: RecordingApplier;
  log: MemoryLog;
  /** Is saddr -> daddr:80/TCP allowed by what the agent applied last? */
  reach(saddr: string, daddr: string): boolean;
  /** Waits until the agent has applied something where reach(...) === want. */
  until(saddr: string, daddr: string, want: boolean, what: string): Promise<void>;
  close(): Promise<void>;
}

async function harness(
  opts: FakeOptions = {},
  agentOpts: Partial<AgentOptions> = {},
  seedFn: (s: FakeApiServer) => void = seed,
): Promise<Harness> {
  const server = await FakeApiServer.start(opts);
  seedFn(server);
  const kc = await kubeconfigFor(server);
  const applier = new RecordingApplier(NODE);
  const log = new MemoryLog();
  const agent = await Agent.start({
    kubeConfig: kc.kc,
    nodeName: NODE,
    applier,
    log,
    driftIntervalMs: 0,
    retryMs: 50,
    ...agentOpts,
  });
  const reach = (s: string, d: string) => passes(applier.kernelView, s, d, 80);
  return {
    server,
    agent,
    applier,
    log,
    reach,
    until: (s, d, want, what) =>
      waitFor(() => applier.kernelView !== undefined && reach(s, d) === want, what),
    close: async () => {
      await agent.stop();
      await server.stop();
      await kc.done();
    },
  };
}

const denyWeb = () => policyObj('shop', 'web', { podSelector: { matchLabels: { app: 'web' } } });
const allowWebFrom = (from: Record<string, unknown>) =>
  policyObj('shop', 'web', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [from], ports: [{ port: 80 }] }],
  });

test('first sync: applied only once every resource is listed, then ready', async () => {
  const server = await FakeApiServer.start();
  seed(server);
  server.put(denyWeb());
  // Policies cannot be listed yet: applying pods without their policies would open web up.
  server.failing.add('networkpolicies');
  const kc = await kubeconfigFor(server);
  const applier = new RecordingApplier(NODE);
  const agent = await Agent.start({
    kubeConfig: kc.kc,
    nodeName: NODE,
    applier,
    driftIntervalMs: 0,
    retryMs: 20,
  });
  try {
    await waitFor(() => server.requests.some((r) => r.resource === 'pods' && r.watch), 'pods watched');
    await sleep(100);
    assert.equal(applier.applied.length, 0, 'nothing applied while a resource is not listed');
    assert.equal(agent.ready, false);
    server.failing.clear();
    await waitFor(() => applier.applied.length > 0, 'first apply');
    assert.equal(passes(applier.kernelView, CLIENT, WEB, 80), false, 'the first apply has the policy');
    assert.equal(applier.applied[0]?.pods.length, 3, 'every pod is known (peers too)');
    assert.equal(agent.ready, true);
  } finally {
    await agent.stop();
    await server.stop();
    await kc.done();
  }
});

test('policy created, updated, deleted', async () => {
  const h = await harness();
  try {
    await h.until(CLIENT, WEB, true, 'no policy: open');
    h.server.put(denyWeb());
    await h.until(CLIENT, WEB, false, 'deny-all on web');
    h.server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
    await h.until(CLIENT, WEB, true, 'client allowed by the update');
    assert.equal(h.reach(PROBE, WEB), false, 'probe still denied');
    h.server.delete('NetworkPolicy', 'shop', 'web');
    await h.until(PROBE, WEB, true, 'policy deleted: open');
  } finally {
    await h.close();
  }
});

test('pod relabelled -> allowed, and back', async () => {
  const h = await harness();
  try {
    h.server.put(allowWebFrom({ podSelector: { matchLabels: { role: 'trusted' } } }));
    await h.until(CLIENT, WEB, false, 'client not trusted');
    h.server.put(
      podObj('shop', 'client', { labels: { app: 'client', role: 'trusted' }, ip: CLIENT, nodeName: NODE }),
    );
    await h.until(CLIENT, WEB, true, 'client relabelled trusted');
    h.server.put(podObj('shop', 'client', { labels: { app: 'client' }, ip: CLIENT, nodeName: NODE }));
    await h.until(CLIENT, WEB, false, 'label removed again');
  } finally {
    await h.close();
  }
});

test('namespace relabelled -> its pods allowed', async () => {
  const h = await harness();
  try {
    h.server.put(allowWebFrom({ namespaceSelector: { matchLabels: { team: 'friends' } } }));
    await h.until(PROBE, WEB, false, 'other is no friend');
    h.server.put(nsObj('other', { team: 'friends' }));
    await h.until(PROBE, WEB, true, 'other relabelled');
    assert.equal(h.reach(CLIENT, WEB), false, 'shop is still not a friend');
  } finally {
    await h.close();
  }
});

test('pod IP appears late: enforced once the event carrying it arrives', async () => {
  const h = await harness();
  try {
    h.server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'late' } } }));
    h.server.put(podObj('shop', 'late', { labels: { app: 'late' }, nodeName: NODE }));
    await waitFor(() => h.applier.last?.pods.some((p) => p.name === 'late') === true, 'pending pod seen');
    assert.equal(h.reach(LATE, WEB), false, 'no address yet: nothing to allow');
    const t0 = Date.now();
    h.server.put(podObj('shop', 'late', { labels: { app: 'late' }, ip: LATE, nodeName: NODE }));
    await h.until(LATE, WEB, true, 'late pod allowed once its IP is known');
    h.log.info('late IP enforced', { ms: Date.now() - t0 }); // measured in bench/, not asserted
  } finally {
    await h.close();
  }
});

for (const gone of ['event', 'http'] as const) {
  test(`410 Gone (${gone}) after compaction forces a relist; the final state is right`, async () => {
    const h = await harness({ gone });
    try {
      h.server.put(denyWeb());
      await h.until(CLIENT, WEB, false, 'deny applied');
      const lists = h.agent.source.listCount('NetworkPolicy');
      await h.server.stop();
      // While the agent cannot reach the server: changes, then the history is compacted away.
      h.server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
      h.server.delete('Pod', 'other', 'probe');
      h.server.put(
        podObj('other', 'probe2', { labels: { app: 'probe' }, ip: '10.244.0.14', nodeName: NODE }),
      );
      h.server.compact();
      await h.server.restart();
      await h.until(CLIENT, WEB, true, 'allow seen after relist');
      await waitFor(() => h.applier.last?.pods.some((p) => p.name === 'probe2') === true, 'probe2 seen');
      assert.ok(h.agent.source.listCount('NetworkPolicy') > lists, 'policies were listed again');
      assert.ok(
        h.server.requests.some((r) => r.watch && r.status === 410),
        'the server answered 410',
      );
      const pods = h.applier.last?.pods.map((p) => `${p.namespace}/${p.name}`);
      assert.deepEqual(pods, ['other/probe2', 'shop/client', 'shop/web'], 'deleted pod gone (relist diff)');
    } finally {
      await h.close();
    }
  });
}

test('API server down: the last state stays enforced; changes made meanwhile converge', async () => {
  const h = await harness();
  try {
    h.server.put(denyWeb());
    await h.until(CLIENT, WEB, false, 'deny applied');
    const applies = h.applier.applied.length;
    await h.server.stop();
    await sleep(300); // failed reconnects meanwhile
    assert.equal(h.applier.applied.length, applies, 'nothing applied while the server is away');
    assert.equal(h.reach(CLIENT, WEB), false);
    h.server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
    await h.server.restart();
    await h.until(CLIENT, WEB, true, 'converged after the server came back');
    assert.match(h.log.text(), /watch failed; enforcing the last state/);
    // Resumed from the resourceVersion: no relist was needed.
    assert.equal(h.agent.source.listCount('NetworkPolicy'), 1);
  } finally {
    await h.close();
  }
});

test('a watch that keeps failing (403) makes the agent not ready; it recovers with the watch', async () => {
  const h = await harness();
  try {
    h.server.put(denyWeb());
    await h.until(CLIENT, WEB, false, 'deny applied');
    assert.equal(h.agent.ready, true);
    h.server.forbiddenWatch.add('networkpolicies');
    h.server.closeWatches();
    await waitFor(() => !h.agent.ready, 'not ready while NetworkPolicy watches are forbidden');
    assert.match(h.log.text(), /HTTP 403/);
    assert.equal(h.reach(CLIENT, WEB), false, 'the last state stays enforced');
    h.server.forbiddenWatch.delete('networkpolicies');
    h.server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
    await h.until(CLIENT, WEB, true, 'the change is seen once the watch works again');
    await waitFor(() => h.agent.ready, 'ready again');
  } finally {
    await h.close();
  }
});

test('bookmarks: a restarted watch resumes from the bookmarked resourceVersion', async () => {
  const h = await harness({ bookmarkMs: 0 });
  try {
    await h.until(CLIENT, WEB, true, 'synced');
    // Unrelated churn moves the global resourceVersion past what the policy watch has seen.
    for (let i = 0; i < 5; i++)
      h.server.put(podObj('other', `x${i}`, { ip: `10.244.1.${i + 1}`, nodeName: 'n2' }));
    await waitFor(() => h.applier.last?.pods.length === 8, 'pods seen');
    h.server.bookmark();
    await sleep(50);
    const rv = h.server.resourceVersion;
    h.server.compact(); // anything older than the bookmark is gone now
    h.server.closeWatches();
    await waitFor(
      () => h.server.requests.filter((r) => r.resource === 'networkpolicies' && r.watch).length >= 2,
      'policy watch restarted',
    );
    const watches = h.server.requests.filter((r) => r.resource === 'networkpolicies' && r.watch);
    assert.equal(watches[0]?.query.allowWatchBookmarks, 'true');
    assert.equal(watches[1]?.query.resourceVersion, String(rv), 'resumed at the bookmark');
    assert.equal(watches[1]?.status, 200);
    assert.equal(h.agent.source.listCount('NetworkPolicy'), 1, 'no relist needed');
  } finally {
    await h.close();
  }
});

test('an invalid NetworkPolicy is enforced as deny-only, logged with its field', async () => {
  const h = await harness();
  try {
    await h.until(CLIENT, WEB, true, 'synced');
    // One bad peer: decoding it as what is left ("from: []") would allow every source.
    h.server.put(
      policyObj('shop', 'web', {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [{ from: [{ ipBlock: { cidr: '10.244.0.0/33' } }] }],
      }),
    );
    await h.until(CLIENT, WEB, false, 'web isolated by the stand-in');
    assert.equal(h.reach(PROBE, CLIENT), true, 'other pods unaffected');
    assert.match(
      h.log.text(),
      /invalid NetworkPolicy.*"object":"shop\/web".*spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr/,
    );
    h.server.put(allowWebFrom({ ipBlock: { cidr: '10.244.0.0/24' } }));
    await h.until(CLIENT, WEB, true, 'fixed');
    assert.match(h.log.text(), /NetworkPolicy is valid again/);
  } finally {
    await h.close();
  }
});

test('decodeApiObject / denyStandIn: what a broken policy isolates', () => {
  const cases: { name: string; spec: Record<string, unknown>; selector: 'own' | 'all'; types: string[] }[] = [
    {
      name: 'bad port',
      spec: { podSelector: { matchLabels: { a: 'b' } }, ingress: [{ ports: [{ port: 0 }] }] },
      selector: 'own',
      types: ['Ingress'],
    },
    {
      name: 'bad egress peer',
      spec: { podSelector: { matchLabels: { a: 'b' } }, egress: [{ to: [{}] }] },
      selector: 'own',
      types: ['Ingress', 'Egress'],
    },
    {
      name: 'explicit egress only',
      spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: 'x' } }] }] },
      selector: 'own',
      types: ['Egress'],
    },
    {
      name: 'bad policyTypes',
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Sideways'] },
      selector: 'own',
      types: ['Ingress', 'Egress'],
    },
    {
      name: 'bad selector',
      spec: { podSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } },
      selector: 'all',
      types: ['Ingress'],
    },
    {
      name: 'unknown field',
      spec: { podSelector: {}, ingress: [], newField: 1 },
      selector: 'own',
      types: ['Ingress'],
    },
    {
      name: 'spec not a map',
      spec: [] as unknown as Record<string, unknown>,
      selector: 'all',
      types: ['Ingress', 'Egress'],
    },
  ];
  for (const c of cases) {
    const d = decodeApiObject('NetworkPolicy', {
      metadata: { name: 'p', namespace: 'x', resourceVersion: '1' },
      spec: c.spec,
    });
    assert.ok(d.problems.length > 0, `${c.name}: has problems`);
    assert.equal(d.standIn, true, c.name);
    const p = d.decoded?.object as NetworkPolicy;
    assert.deepEqual(p.ingress, [], c.name);
    assert.deepEqual(p.egress, [], c.name);
    assert.deepEqual([...p.policyTypes], c.types, `${c.name}: types`);
    const all =
      Object.keys(p.podSelector.matchLabels).length === 0 && p.podSelector.matchExpressions.length === 0;
    const own =
      JSON.stringify(p.podSelector.matchLabels) ===
      JSON.stringify((c.spec.podSelector as { matchLabels?: object } | undefined)?.matchLabels ?? {});
    assert.ok(c.selector === 'all' ? all : own, `${c.name}: selector`);
  }
  // A valid object decodes as the loader does, unknown metadata fields notwithstanding.
  const ok = decodeApiObject('NetworkPolicy', {
    metadata: { name: 'p', namespace: 'x', futureField: { a: 1 } },
    spec: { podSelector: {}, egress: [{}] },
  });
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.standIn, undefined);
  const okPolicy = ok.decoded?.object as NetworkPolicy;
  assert.deepEqual(okPolicy.policyTypes, ['Ingress', 'Egress']);
  assert.equal(denyStandIn(okPolicy, {}, []).ingress.length, 0);
});

test('hostNetwork pods are never subjects; pods of other nodes are peers only', async () => {
  const h = await harness();
  try {
    h.server.put(podObj('shop', 'hn', { labels: { app: 'web' }, hostNetwork: true, nodeName: NODE }));
    h.server.put(podObj('shop', 'far', { labels: { app: 'web' }, ip: '10.244.9.9', nodeName: 'n2' }));
    h.server.put(denyWeb());
    await h.until(CLIENT, WEB, false, 'deny applied');
    assert.equal(h.reach(CLIENT, '10.244.9.9'), true, 'web pod on another node: not enforced here');
    const hn = h.applier.last?.pods.find((p) => p.name === 'hn');
    assert.deepEqual(hn?.ips, ['10.0.0.1'], 'hostNetwork pod has its node address');
    assert.equal(h.reach(CLIENT, '10.0.0.1'), true);
  } finally {
    await h.close();
  }
});

test('on exit: keep leaves the table, remove deletes it', async () => {
  for (const onExit of ['keep', 'remove'] as const) {
    const h = await harness({}, { onExit });
    try {
      await h.until(CLIENT, WEB, true, 'synced');
    } finally {
      await h.close();
    }
    assert.equal(h.applier.removed, onExit === 'remove' ? 1 : 0, onExit);
    assert.equal(h.server.watchCount, 0, `${onExit}: watches closed`);
  }
});

test('/metrics, /healthz and /readyz', async () => {
  const addr = parseListenAddress('--metrics-addr', '127.0.0.1:0');
  const h = await harness({}, { metricsAddr: addr, healthAddr: addr });
  try {
    await h.until(CLIENT, WEB, true, 'synced');
    const m = h.agent.metricsAddress!;
    const hz = h.agent.healthAddress!;
    const get = async (port: number, path: string) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: r.status, text: await r.text() };
    };
    assert.equal((await get(hz.port, '/healthz')).status, 200);
    await waitFor(() => h.agent.ready, 'ready');
    assert.equal((await get(hz.port, '/readyz')).status, 200);
    const text = (await get(m.port, '/metrics')).text;
    for (const family of [
      'moat_sync_duration_seconds',
      'moat_ruleset_rules',
      'moat_ruleset_sets',
      'moat_ruleset_elements',
      'moat_watched_objects',
      'moat_errors_total',
      'moat_last_successful_sync_timestamp_seconds',
      'moat_event_to_enforced_seconds',
      'moat_policy_allowed_packets_total',
      'moat_policy_dropped_packets_total',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
    }
    assert.match(text, /^moat_watched_objects\{kind="Pod"\} 3$/m);
    assert.equal((await get(m.port, '/nope')).status, 404);
  } finally {
    await h.close();
  }
});

test('per-policy packets from nft counters', () => {
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { counter: { family: 'inet', name: 'a1', table: 'moat', handle: 1, packets: 5, bytes: 300 } },
      { counter: { family: 'inet', name: 'a2', table: 'moat', handle: 2, packets: 2, bytes: 100 } },
      { counter: { family: 'inet', name: 'd1', table: 'moat', handle: 3, packets: 7, bytes: 400 } },
    ],
  });
  const values = parseNftCounters(json);
  const p = { namespace: 'shop', name: 'web' };
  const q = { namespace: 'shop', name: 'other' };
  const rows = policyPackets(
    [
      { name: 'a1', meta: { kind: 'accept', direction: 'ingress', policy: p, rule: 0 } },
      { name: 'a2', meta: { kind: 'accept', direction: 'ingress', policy: p, rule: 1 } },
      { name: 'd1', meta: { kind: 'drop', direction: 'ingress', policies: [p, q] } },
    ],
    values,
  );
  assert.deepEqual(rows, [
    { namespace: 'shop', policy: 'other', direction: 'ingress', allowed: 0, dropped: 7, audited: 0 },
    { namespace: 'shop', policy: 'web', direction: 'ingress', allowed: 7, dropped: 7, audited: 0 },
  ]);
});

test('admin rule counters: one row per rule, named by its rule name or index', () => {
  const values = parseNftCounters(
    JSON.stringify({
      nftables: [
        { counter: { family: 'inet', name: 'r1', table: 'moat', handle: 1, packets: 3, bytes: 1 } },
        { counter: { family: 'inet', name: 'r2', table: 'moat', handle: 2, packets: 4, bytes: 1 } },
        { counter: { family: 'inet', name: 'a1', table: 'moat', handle: 3, packets: 9, bytes: 1 } },
      ],
    }),
  );
  const admin = (rule: number, ruleName: string, action: 'Deny' | 'Pass') => ({
    kind: 'ClusterNetworkPolicy' as const,
    name: 'tenants',
    tier: 'Admin' as const,
    rule,
    ruleName,
    action,
  });
  const rows = adminRulePackets(
    [
      { name: 'r1', meta: { kind: 'drop', direction: 'ingress', admin: admin(1, 'others', 'Deny') } },
      { name: 'r2', meta: { kind: 'pass', direction: 'egress', admin: admin(0, '', 'Pass') } },
      {
        name: 'a1',
        meta: { kind: 'accept', direction: 'ingress', policy: { namespace: 'x', name: 'y' }, rule: 0 },
      },
    ],
    values,
  );
  assert.deepEqual(rows, [
    {
      kind: 'ClusterNetworkPolicy',
      name: 'tenants',
      tier: 'Admin',
      rule: 'others',
      action: 'Deny',
      direction: 'ingress',
      packets: 3,
    },
    {
      kind: 'ClusterNetworkPolicy',
      name: 'tenants',
      tier: 'Admin',
      rule: '0',
      action: 'Pass',
      direction: 'egress',
      packets: 4,
    },
  ]);
});

test('durations and listen addresses', () => {
  const durations: [string, number][] = [
    ['10ms', 10],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1m30s', 90_000],
    ['0', 0],
  ];
  for (const [text, ms] of durations) assert.equal(parseDuration('--x', text), ms, text);
  for (const bad of ['', '5', '5x', 'm', '5m junk']) assert.throws(() => parseDuration('--x', bad), /--x/);
  assert.deepEqual(parseListenAddress('--a', '0.0.0.0:9808'), { host: '0.0.0.0', port: 9808 });
  assert.deepEqual(parseListenAddress('--a', '[::1]:1'), { host: '::1', port: 1 });
  assert.deepEqual(parseListenAddress('--a', ':9809'), { host: '::', port: 9809 });
  assert.throws(() => parseListenAddress('--a', '9808'), /--a "9808"/);
  assert.throws(() => parseListenAddress('--a', 'h:70000'), /--a/);
});

test('live pods only: a finished pod with a reused address lends it nothing', async () => {
  const reused = '10.244.0.20';
  const h = await harness({}, {}, (s) => {
    seed(s);
    s.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
    // A client pod that ran and failed; its address went to a pod no policy admits.
    const old = podObj('shop', 'old-client', { labels: { app: 'client' }, ip: reused, nodeName: NODE });
    s.put({ ...old, status: { ...(old.status as object), phase: 'Failed' } });
    s.put(podObj('other', 'newcomer', { ip: reused, nodeName: 'n2' }));
  });
  try {
    await h.until(CLIENT, WEB, true, 'the client is admitted');
    assert.equal(h.reach(reused, WEB), false, "the newcomer does not get the finished client's rules");
    assert.equal(
      h.applier.last?.pods.some((p) => p.name === 'old-client'),
      false,
    );
    assert.equal(h.agent.applier.conflicts?.size, 0, 'a finished pod is no conflict');
  } finally {
    await h.close();
  }
});

test('live pods only: a terminating pod yields its address to the pod that was given it', async () => {
  const reused = '10.244.0.21';
  const h = await harness({}, {}, (s) => {
    seed(s);
    s.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
    const old = podObj('shop', 'leaving', { labels: { app: 'client' }, ip: reused, nodeName: NODE });
    s.put({ ...old, metadata: { ...(old.metadata as object), deletionTimestamp: '2026-12-01T10:00:00Z' } });
    s.put(podObj('other', 'newcomer', { ip: reused, nodeName: 'n2' }));
  });
  try {
    await h.until(CLIENT, WEB, true, 'the client is admitted');
    assert.equal(h.reach(reused, WEB), false);
    assert.equal(h.agent.applier.conflicts?.size, 0);
  } finally {
    await h.close();
  }
});

test('two live pods with one address: logged, counted, enforced fail-closed', async () => {
  const shared = '10.244.0.30';
  const h = await harness({}, {}, (s) => {
    seed(s);
    s.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
  });
  try {
    await h.until(CLIENT, WEB, true, 'the client is admitted');
    // A client and a pod no policy selects claim one address; the kernel cannot tell them apart.
    h.server.put(podObj('shop', 'twin-client', { labels: { app: 'client' }, ip: shared, nodeName: NODE }));
    h.server.put(podObj('other', 'twin', { ip: shared, nodeName: NODE }));
    await waitFor(() => h.agent.applier.conflicts?.has(shared) === true, 'the conflict is noticed');
    await waitFor(() => !h.reach(shared, WEB), 'the shared address is no client to web');
    assert.equal(h.reach(shared, CLIENT), false, 'nor may it reach a pod nobody isolates (fail-closed)');
    assert.equal(h.reach(CLIENT, shared), false, 'nor be reached');
    assert.equal(h.reach(CLIENT, WEB), true, 'the real client is still admitted');
    const warn = h.log.lines.find((l) => l.msg.startsWith('address shared by live pods'));
    assert.deepEqual(warn?.fields, { address: shared, pods: ['other/twin', 'shop/twin-client'] });
    assert.match(await h.agent.metrics.text(), /^moat_address_conflicts 1$/m);
    h.server.delete('Pod', 'other', 'twin');
    await waitFor(() => h.agent.applier.conflicts?.size === 0, 'the conflict is over');
    await waitFor(() => h.reach(shared, WEB), 'the client twin is a client again');
    assert.match(await h.agent.metrics.text(), /^moat_address_conflicts 0$/m);
  } finally {
    await h.close();
  }
});

// ---- the admin tiers' kinds, found by API discovery ----

const CRD_KINDS = ['ClusterNetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy'];

/** Does the snapshot (by the reference evaluator) allow ns/src -> ns/dst:80/TCP? */
function admits(s: Snapshot | undefined, src: string, dst: string): boolean {
  const pod = (key: string) => {
    const p = s?.pods.find((x) => `${x.namespace}/${x.name}` === key);
    if (!p) throw new Error(`no pod ${key} in the snapshot`);
    return p;
  };
  return evaluate(s!, {
    src: { kind: 'pod', pod: pod(src) },
    dst: { kind: 'pod', pod: pod(dst) },
    protocol: 'TCP',
    port: 80,
  }).allowed;
}

/** Admin tier: web admits nobody (every namespace's pods denied). */
const denyWebCnp = () =>
  cnpObj('deny-web', {
    subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } } },
    ingress: [{ name: 'nobody', action: 'Deny', from: [{ namespaces: {} }] }],
  });

const cnpNames = (s: Snapshot | undefined) => (s?.adminPolicies ?? []).map((p) => `${p.kind}/${p.name}`);

async function readyz(h: Harness): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${h.agent.healthAddress!.port}/readyz`);
  return { status: r.status, text: await r.text() };
}

const fast = (more: Partial<AgentOptions> = {}): Partial<AgentOptions> => ({
  healthAddr: parseListenAddress('--health-addr', '127.0.0.1:0'),
  discoveryIntervalMs: 20,
  discoveryConfirmMs: 100,
  ...more,
});

test('admin CRDs not installed: ready, NetworkPolicy enforced, one log line per kind, /readyz says so', async () => {
  const h = await harness({}, fast());
  try {
    h.server.put(denyWeb());
    await h.until(CLIENT, WEB, false, 'NetworkPolicy enforced');
    await waitFor(() => h.agent.ready, 'ready without the CRDs');
    // Several discovery rounds later: still one line per kind, and no list of an absent resource.
    await waitFor(
      () => h.server.requests.filter((r) => r.path === `/apis/${CRD_GROUP}`).length >= 5,
      'discovery repeated',
    );
    for (const kind of CRD_KINDS) {
      const lines = h.log.lines.filter((l) => l.fields.kind === kind);
      assert.equal(lines.length, 1, `${kind}: ${JSON.stringify(lines)}`);
      assert.match(lines[0]!.msg, /not served by the API server \(CRD not installed\): not enforced/);
    }
    assert.equal(
      h.server.requests.some((r) => r.path.includes('networkpolicies') && r.path.includes(CRD_GROUP)),
      false,
      'nothing listed or watched of the CRD group',
    );
    const r = await readyz(h);
    assert.equal(r.status, 200);
    assert.match(r.text, /^ok: generation \d+/);
    assert.match(r.text, /^enforced: Namespace, Pod, Node, NetworkPolicy$/m);
    assert.match(
      r.text,
      /^not served: ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy$/m,
    );
  } finally {
    await h.close();
  }
});

test('a CRD installed later is watched without a restart; removed, its policies leave the snapshot', async () => {
  const h = await harness({}, fast());
  try {
    await h.until(CLIENT, WEB, true, 'synced, open');
    await waitFor(() => h.agent.ready, 'ready');
    h.server.installCrd('clusternetworkpolicies');
    h.server.put(denyWebCnp());
    await waitFor(() => !admits(h.applier.last, 'shop/client', 'shop/web'), 'the CNP is enforced');
    assert.deepEqual(cnpNames(h.applier.last), ['ClusterNetworkPolicy/deny-web']);
    assert.ok(
      h.server.requests.some(
        (r) => r.watch && r.path === `/apis/${CRD_GROUP}/v1beta1/clusternetworkpolicies` && r.status === 200,
      ),
      'watched at v1beta1',
    );
    assert.equal(
      h.log.lines.filter((l) => /ClusterNetworkPolicy now served: watching/.test(l.msg)).length,
      1,
    );
    await waitFor(() => h.agent.ready, 'ready with the CRD');
    assert.match(
      (await readyz(h)).text,
      /^enforced: Namespace, Pod, Node, NetworkPolicy, ClusterNetworkPolicy \(policy\.networking\.k8s\.io\/v1beta1\)$/m,
    );
    // Changes are seen: the policy goes, comes back.
    h.server.delete('ClusterNetworkPolicy', '', 'deny-web');
    await waitFor(() => admits(h.applier.last, 'shop/client', 'shop/web'), 'CNP deleted: open');
    h.server.put(denyWebCnp());
    await waitFor(() => !admits(h.applier.last, 'shop/client', 'shop/web'), 'CNP back');

    h.server.removeCrd('clusternetworkpolicies');
    await waitFor(() => admits(h.applier.last, 'shop/client', 'shop/web'), 'CRD removed: open again');
    await waitFor(
      () => h.log.lines.some((l) => /ClusterNetworkPolicy no longer served/.test(l.msg)),
      'logged',
    );
    await waitFor(() => h.agent.ready, 'ready again');
    assert.match((await readyz(h)).text, /^not served: ClusterNetworkPolicy, AdminNetworkPolicy/m);
    assert.equal(h.agent.source.state.count('ClusterNetworkPolicy'), 0);
    // Installed once more, with an object already there: listed and enforced again.
    h.server.installCrd('clusternetworkpolicies');
    h.server.put(denyWebCnp());
    await waitFor(() => !admits(h.applier.last, 'shop/client', 'shop/web'), 'reinstalled CRD enforced');
  } finally {
    await h.close();
  }
});

test('a CRD served at start: the first apply waits for its list and has its policies', async () => {
  const h = await harness({}, fast(), (s) => {
    seed(s);
    s.installCrd('clusternetworkpolicies');
    s.installCrd('baselineadminnetworkpolicies');
    s.put(denyWebCnp());
    // Slower than every built-in kind: a first apply without it would open web up.
    s.listDelayMs.set('clusternetworkpolicies', 300);
  });
  try {
    await waitFor(() => h.applier.applied.length > 0, 'first apply');
    assert.deepEqual(cnpNames(h.applier.applied[0]), ['ClusterNetworkPolicy/deny-web']);
    assert.equal(admits(h.applier.applied[0], 'shop/client', 'shop/web'), false);
    await waitFor(() => h.agent.ready, 'ready');
    const text = (await readyz(h)).text;
    assert.match(text, /ClusterNetworkPolicy \(policy\.networking\.k8s\.io\/v1beta1\)/);
    assert.match(text, /BaselineAdminNetworkPolicy \(policy\.networking\.k8s\.io\/v1alpha1\)/);
    assert.match(text, /^not served: AdminNetworkPolicy$/m);
  } finally {
    await h.close();
  }
});

test('ClusterNetworkPolicy: v1beta1 preferred; from v1alpha2 to v1beta1 without a gap', async () => {
  const v1alpha2 = `${CRD_GROUP}/v1alpha2`;
  const h = await harness({}, fast(), (s) => {
    seed(s);
    s.installCrd('clusternetworkpolicies', [v1alpha2]);
    s.put(denyWebCnp());
  });
  try {
    await waitFor(() => h.applier.applied.length > 0 && h.agent.ready, 'synced');
    const path = (v: string) => `/apis/${v}/clusternetworkpolicies`;
    assert.ok(h.server.requests.some((r) => r.path === path(v1alpha2) && r.watch));
    assert.match((await readyz(h)).text, /ClusterNetworkPolicy \(policy\.networking\.k8s\.io\/v1alpha2\)/);
    h.server.listDelayMs.set('clusternetworkpolicies', 300);
    h.server.put(cnpObj('other', { ...(denyWebCnp().spec as object), priority: 20 }));
    await waitFor(() => cnpNames(h.applier.last).length === 2, 'two CNPs');
    const before = h.applier.applied.length;
    h.server.installCrd('clusternetworkpolicies', [`${CRD_GROUP}/v1beta1`, v1alpha2]);
    await waitFor(() => h.server.listsAsked.includes(path(`${CRD_GROUP}/v1beta1`)), 'listing v1beta1');
    // Meanwhile: a change elsewhere is applied with both policies; one policy is deleted, which
    // only the new list can tell (the old watch is stopped).
    h.server.put(podObj('shop', 'extra', { ip: '10.244.0.40', nodeName: NODE }));
    h.server.delete('ClusterNetworkPolicy', '', 'other');
    await waitFor(() => h.applier.applied.length > before, 'the pod change was applied meanwhile');
    assert.deepEqual(cnpNames(h.applier.last), [
      'ClusterNetworkPolicy/deny-web',
      'ClusterNetworkPolicy/other',
    ]);
    await waitFor(() => h.agent.ready, 'ready at v1beta1');
    await waitFor(() => cnpNames(h.applier.last).length === 1, 'the new list dropped the deleted one');
    for (const s of h.applier.applied) assert.ok(cnpNames(s).includes('ClusterNetworkPolicy/deny-web'));
    assert.ok(h.server.requests.some((r) => r.path === path(`${CRD_GROUP}/v1beta1`) && r.watch));
    assert.match((await readyz(h)).text, /ClusterNetworkPolicy \(policy\.networking\.k8s\.io\/v1beta1\)/);
  } finally {
    await h.close();
  }
});

test('discovery failing at start: nothing applied until it answers', async () => {
  const server = await FakeApiServer.start();
  seed(server);
  server.discoveryFails = 503;
  const kc = await kubeconfigFor(server);
  const applier = new RecordingApplier(NODE);
  const log = new MemoryLog();
  const agent = await Agent.start({
    kubeConfig: kc.kc,
    nodeName: NODE,
    applier,
    log,
    driftIntervalMs: 0,
    retryMs: 20,
    discoveryIntervalMs: 20,
  });
  try {
    await waitFor(() => agent.source.listCount('NetworkPolicy') > 0, 'the built-in kinds are listed');
    await waitFor(
      () => server.requests.filter((r) => r.path === `/apis/${CRD_GROUP}`).length >= 3,
      'discovery retried',
    );
    // The previous agent's table may hold admin policies: no apply may go without knowing.
    assert.equal(applier.applied.length, 0);
    assert.equal(agent.ready, false);
    assert.equal(log.lines.filter((l) => l.msg.startsWith('API discovery failed')).length, 1, log.text());
    server.discoveryFails = undefined;
    await waitFor(() => applier.applied.length > 0, 'applied once discovery answered');
    await waitFor(() => agent.ready, 'ready');
    assert.match(log.text(), /API discovery works again/);
  } finally {
    await agent.stop();
    await server.stop();
    await kc.done();
  }
});

test('discovery answering 404 for a moment (an API server starting) drops nothing', async () => {
  const h = await harness({}, fast({ discoveryConfirmMs: 400 }), (s) => {
    seed(s);
    s.installCrd('clusternetworkpolicies');
    s.put(denyWebCnp());
  });
  try {
    await waitFor(() => h.applier.applied.length > 0 && h.agent.ready, 'synced');
    const rounds = () => h.server.requests.filter((r) => r.path === `/apis/${CRD_GROUP}`).length;
    const n = rounds();
    h.server.discoveryFails = 404;
    await waitFor(() => rounds() >= n + 2, 'discovery saw 404');
    h.server.discoveryFails = undefined;
    await sleep(600); // past the confirmation: a later round found it again
    for (const s of h.applier.applied) assert.deepEqual(cnpNames(s), ['ClusterNetworkPolicy/deny-web']);
    assert.equal(h.log.lines.filter((l) => /no longer served/.test(l.msg)).length, 0);
    assert.equal(h.agent.source.listCount('ClusterNetworkPolicy'), 1, 'never relisted');
  } finally {
    await h.close();
  }
});

test('an invalid ClusterNetworkPolicy is enforced fail-closed, logged with its field', async () => {
  const h = await harness({}, fast(), (s) => {
    seed(s);
    s.installCrd('clusternetworkpolicies');
  });
  try {
    await waitFor(() => h.applier.applied.length > 0, 'synced');
    assert.equal(admits(h.applier.last, 'shop/client', 'shop/web'), true);
    // The CRD does not check selector operators, so the API server stores this; moat cannot read
    // the peer. Dropping the rule would leave client -> web open; it must stay denied.
    h.server.put(
      cnpObj('deny-web', {
        subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } } },
        ingress: [
          {
            action: 'Deny',
            from: [{ namespaces: { matchExpressions: [{ key: 'team', operator: 'Near', values: ['x'] }] } }],
          },
        ],
      }),
    );
    await waitFor(() => !admits(h.applier.last, 'shop/client', 'shop/web'), 'denied by the stand-in');
    assert.equal(admits(h.applier.last, 'shop/web', 'shop/client'), true, 'other pods unaffected');
    assert.match(
      h.log.text(),
      /invalid ClusterNetworkPolicy: enforced fail-closed.*"object":"deny-web".*spec\.ingress\[0\]\.from\[0\]\.namespaces/,
    );
    assert.match(await h.agent.metrics.text(), /^moat_invalid_objects\{kind="ClusterNetworkPolicy"\} 1$/m);
    h.server.put(denyWebCnp());
    await waitFor(() => h.log.text().includes('ClusterNetworkPolicy is valid again'), 'fixed');
  } finally {
    await h.close();
  }
});
