// Smoke test of the real-apiserver test cluster: kubectl against it, API
// defaulting and validation of NetworkPolicy, and the restart/compact hooks.
// Skips (with the reason) when test/k8s/build.sh has not been run.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import { clusterSkipReason, startCluster, type Cluster } from './cluster.js';

const NS = 'moat-smoke';

interface NetPolPort {
  protocol?: string;
  port?: number | string;
}
interface NetPol {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: {
    policyTypes?: string[];
    ingress?: { ports?: NetPolPort[] }[];
    egress?: { ports?: NetPolPort[] }[];
  };
}

function netpol(name: string, spec: object): string {
  return JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: NS },
    spec,
  });
}

// One cluster for all subtests (it takes seconds to start); a top-level test
// rather than a suite so that a skip is counted as one skipped test.
test('real kube-apiserver', { skip: clusterSkipReason() }, async (t) => {
  const c = await startCluster();
  try {
    const r = await c.kubectl(['create', 'namespace', NS]);
    assert.equal(r.code, 0, r.stderr);
    await subtests(t, c);
  } finally {
    await c.stop();
  }
});

async function subtests(t: TestContext, c: Cluster): Promise<void> {
  await t.test('serves the pinned version and the namespace reads back', async () => {
    const v = await c.kubectl(['version', '-o', 'json']);
    assert.equal(v.code, 0, v.stderr);
    const server = (JSON.parse(v.stdout) as { serverVersion: { gitVersion: string } }).serverVersion;
    assert.equal(server.gitVersion, c.env.MOAT_K8S_VERSION);

    const ns = await c.kubectl(['get', 'namespace', NS, '-o', 'json']);
    assert.equal(ns.code, 0, ns.stderr);
    assert.equal((JSON.parse(ns.stdout) as { metadata: { name: string } }).metadata.name, NS);
  });

  // API defaulting (networking/v1 SetDefaults_NetworkPolicy): "If this field
  // is not specified, it will default based on the existence of ingress or
  // egress rules"; and NetworkPolicyPort.protocol "defaults to TCP".
  const defaulting: {
    name: string;
    spec: object;
    policyTypes: string[];
    protocols: (string | undefined)[];
  }[] = [
    {
      name: 'ingress-only',
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }] }] },
      policyTypes: ['Ingress'],
      protocols: ['TCP', 'UDP'],
    },
    {
      name: 'with-egress',
      spec: { podSelector: {}, egress: [{ ports: [{ port: 'dns' }] }] },
      policyTypes: ['Ingress', 'Egress'],
      protocols: ['TCP'],
    },
    {
      name: 'deny-all',
      spec: { podSelector: {} },
      policyTypes: ['Ingress'],
      protocols: [],
    },
  ];
  for (const tc of defaulting) {
    await t.test(`NetworkPolicy ${tc.name} is stored with API defaults`, async () => {
      const r = await c.kubectl(['create', '-f', '-'], netpol(tc.name, tc.spec));
      assert.equal(r.code, 0, r.stderr);
      const got = await c.kubectl(['get', 'networkpolicy', '-n', NS, tc.name, '-o', 'json']);
      assert.equal(got.code, 0, got.stderr);
      const np = JSON.parse(got.stdout) as NetPol;
      assert.deepEqual(np.spec.policyTypes, tc.policyTypes);
      const ports = [...(np.spec.ingress ?? []), ...(np.spec.egress ?? [])].flatMap(
        (rule) => rule.ports ?? [],
      );
      assert.deepEqual(
        ports.map((p) => p.protocol),
        tc.protocols,
      );
    });
  }

  // Validation (networking ValidateNetworkPolicySpec): the API server refuses
  // these, naming the offending field; nothing is stored.
  const invalid: { name: string; spec: object; field: RegExp }[] = [
    {
      name: 'port-out-of-range',
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] },
      field: /spec\.ingress\[0\]\.ports\[0\]\.port/,
    },
    {
      name: 'end-port-below-port',
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] },
      field: /spec\.ingress\[0\]\.ports\[0\]\.endPort/,
    },
    {
      name: 'bad-cidr',
      spec: { podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] },
      field: /spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr/,
    },
    {
      name: 'except-outside-cidr',
      spec: {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }],
      },
      field: /spec\.ingress\[0\]\.from\[0\]\.ipBlock\.except\[0\]/,
    },
    {
      name: 'bad-policy-type',
      spec: { podSelector: {}, policyTypes: ['Sideways'] },
      field: /spec\.policyTypes\[0\]/,
    },
  ];
  for (const tc of invalid) {
    await t.test(`NetworkPolicy ${tc.name} is rejected by validation`, async () => {
      const r = await c.kubectl(['create', '-f', '-'], netpol(tc.name, tc.spec));
      assert.notEqual(r.code, 0, `accepted: ${r.stdout}`);
      assert.match(r.stderr, /is invalid/);
      assert.match(r.stderr, tc.field);
      const got = await c.kubectl(['get', 'networkpolicy', '-n', NS, tc.name]);
      assert.match(got.stderr, /NotFound|not found/);
    });
  }

  await t.test('after compact() and an apiserver restart an old resourceVersion is 410 Gone', async () => {
    const oldRv = await touch(c, 'ingress-only');
    // Before compaction the same watch replays history.
    assert.match((await firstWatchEvent(c, oldRv)).type, /^(ADDED|MODIFIED|DELETED)$/);
    const rev = await c.compact();
    assert.ok(rev > Number(oldRv), `compacted at ${rev}, not past ${oldRv}`);
    await c.restartApiserver();
    assertExpired(await firstWatchEvent(c, oldRv));

    // The cluster still works after the restart.
    const again = await c.kubectl(['get', 'networkpolicy', '-n', NS, 'ingress-only', '-o', 'json']);
    assert.equal(again.code, 0, again.stderr);
  });
}

// Without the watch cache, watches go to etcd, so compaction alone is enough.
test('real kube-apiserver without watch cache', { skip: clusterSkipReason() }, async (t) => {
  const c = await startCluster({ watchCache: false });
  try {
    const r = await c.kubectl(['create', 'namespace', NS]);
    assert.equal(r.code, 0, r.stderr);
    const created = await c.kubectl(['create', '-f', '-'], netpol('p', { podSelector: {} }));
    assert.equal(created.code, 0, created.stderr);

    await t.test('compact() alone makes a watch from an old resourceVersion 410 Gone', async () => {
      const oldRv = await touch(c, 'p');
      assert.match((await firstWatchEvent(c, oldRv)).type, /^(ADDED|MODIFIED|DELETED)$/);
      await c.compact();
      assertExpired(await firstWatchEvent(c, oldRv));
    });
  } finally {
    await c.stop();
  }
});

/** Returns the policy's resourceVersion, then changes the policy once. */
async function touch(c: Cluster, name: string): Promise<string> {
  const got = await c.kubectl(['get', 'networkpolicy', '-n', NS, name, '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  const rv = (JSON.parse(got.stdout) as NetPol).metadata.resourceVersion;
  const r = await c.kubectl(['label', '--overwrite', 'networkpolicy', '-n', NS, name, `touched=${rv}`]);
  assert.equal(r.code, 0, r.stderr);
  return rv;
}

interface WatchEvent {
  type: string;
  object: { code?: number; reason?: string };
}

async function firstWatchEvent(c: Cluster, rv: string): Promise<WatchEvent> {
  const path = `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies`;
  const w = await c.kubectl(['get', '--raw', `${path}?watch=1&resourceVersion=${rv}&timeoutSeconds=2`]);
  const line = w.stdout.split('\n')[0] ?? '';
  assert.notEqual(line, '', `watch from ${rv} sent no event: ${w.stderr}`);
  return JSON.parse(line) as WatchEvent;
}

// A watch answers 200 and then one ERROR event carrying Status 410 Expired.
function assertExpired(e: WatchEvent): void {
  assert.equal(e.type, 'ERROR');
  assert.equal(e.object.code, 410);
  assert.equal(e.object.reason, 'Expired');
}
