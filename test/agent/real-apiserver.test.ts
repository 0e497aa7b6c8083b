// The agent against a real kube-apiserver (test/k8s: etcd + kube-apiserver on loopback, https),
// through the real client library, authenticated only by a token of the DaemonSet's ServiceAccount
// (deploy/overlays/plain RBAC applied). Skips until test/k8s/build.sh has run. The
// ClusterNetworkPolicy CRD (network-policy-api v0.3.0) is installed while the agent runs, survives
// an API server restart, and is removed again.
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent } from '../../src/agent/agent.js';
import { installRbac, serviceAccountKubeconfig } from '../k8s/access.js';
import { clusterSkipReason, netpolApiCrds, startCluster, type Cluster } from '../k8s/cluster.js';
import { evaluate } from '../../src/policy/evaluate.js';
import type { Snapshot } from '../../src/model/types.js';
import { MemoryLog, passes, RecordingApplier, waitFor } from './util.js';

const NODE = 'moat-n1';
const WEB = '10.244.0.10';
const CLIENT = '10.244.0.11';

/** Does the snapshot (by the reference evaluator) allow src -> dst:80/TCP? */
function admits(s: Snapshot, src: string, dst: string): boolean {
  const pod = (key: string) => {
    const p = s.pods.find((x) => `${x.namespace}/${x.name}` === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  };
  return evaluate(s, {
    src: { kind: 'pod', pod: pod(src) },
    dst: { kind: 'pod', pod: pod(dst) },
    protocol: 'TCP',
    port: 80,
  }).allowed;
}

const skip = (() => {
  try {
    return clusterSkipReason() ?? false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

async function kubectl(c: Cluster, args: string[], stdin?: string): Promise<string> {
  const r = await c.kubectl(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function pod(name: string, labels: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels },
    spec: { nodeName: NODE, containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 80 }] }] },
  });
}

/** No kubelet here: the test reports the pod's IP as the kubelet would (status subresource). */
async function setIP(c: Cluster, name: string, ip: string): Promise<void> {
  await kubectl(c, [
    'patch',
    '-n',
    'shop',
    'pod',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } }),
  ]);
}

test(
  'agent against a real kube-apiserver: policies, relabels, late IPs, restart + compaction',
  { skip },
  async (t) => {
    // Watch cache off: a watch from a compacted resourceVersion reaches etcd and gets 410 Gone.
    const c = await startCluster({ watchCache: false });
    let agent: Agent | undefined;
    try {
      await kubectl(c, ['create', 'namespace', 'shop']);
      await kubectl(c, ['apply', '-f', '-'], pod('web', { app: 'web' }));
      await kubectl(c, ['apply', '-f', '-'], pod('client', { app: 'client' }));
      await setIP(c, 'web', WEB);
      await setIP(c, 'client', CLIENT);
      const kc = new KubeConfig();
      kc.loadFromFile((await serviceAccountKubeconfig(c, await installRbac(c))).path);
      const applier = new RecordingApplier(NODE);
      const log = new MemoryLog();
      agent = await Agent.start({
        log,
        kubeConfig: kc,
        nodeName: NODE,
        applier,
        driftIntervalMs: 0,
        retryMs: 100,
        discoveryIntervalMs: 200,
        discoveryConfirmMs: 3000,
      });
      const a = agent;
      const until = (want: boolean, what: string) =>
        waitFor(
          () => a.applier.kernelView !== undefined && passes(applier.kernelView, CLIENT, WEB, 80) === want,
          what,
          15_000,
        );

      await until(true, 'first sync: open');
      await kubectl(
        c,
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: 'web', namespace: 'shop' },
          spec: {
            podSelector: { matchLabels: { app: 'web' } },
            ingress: [
              { from: [{ podSelector: { matchLabels: { role: 'trusted' } } }], ports: [{ port: 80 }] },
            ],
          },
        }),
      );
      await until(false, 'policy created -> denied');
      await kubectl(c, ['label', '-n', 'shop', 'pod', 'client', 'role=trusted']);
      await until(true, 'pod relabelled -> allowed');

      // Late IP: a new trusted pod without an address, then with one.
      await kubectl(c, ['apply', '-f', '-'], pod('late', { role: 'trusted' }));
      await waitFor(() => applier.last?.pods.some((p) => p.name === 'late') === true, 'pending pod', 15_000);
      await setIP(c, 'late', '10.244.0.12');
      await waitFor(() => passes(applier.kernelView, '10.244.0.12', WEB, 80), 'late IP -> allowed', 15_000);

      // The API server restarts after a compaction while the agent runs; changes made meanwhile.
      await c.compact();
      await kubectl(c, ['label', '-n', 'shop', 'pod', 'client', 'role-']);
      await c.restartApiserver();
      await until(false, 'converged after the restart');
      await kubectl(c, ['delete', '-n', 'shop', 'networkpolicy', 'web']);
      await until(true, 'policy deleted -> open');

      // The ClusterNetworkPolicy CRD, installed while the agent runs: watched without a restart.
      const kind = (k: string) => a.source.kinds().find((x) => x.kind === k);
      assert.equal(kind('ClusterNetworkPolicy')?.state, 'not served');
      const crds = netpolApiCrds('NETPOL_API_CNP_VERSION');
      assert.ok(typeof crds !== 'string', crds as string);
      const cnpCrd = join(crds.standard, 'policy.networking.k8s.io_clusternetworkpolicies.yaml');
      await kubectl(c, ['apply', '--server-side', '-f', cnpCrd]);
      await kubectl(c, [
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        'crd/clusternetworkpolicies.policy.networking.k8s.io',
      ]);
      await kubectl(
        c,
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'policy.networking.k8s.io/v1beta1',
          kind: 'ClusterNetworkPolicy',
          metadata: { name: 'deny-web' },
          spec: {
            tier: 'Admin',
            priority: 10,
            subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } } },
            ingress: [{ name: 'nobody', action: 'Deny', from: [{ namespaces: {} }] }],
          },
        }),
      );
      const denied = (s: Snapshot | undefined) => s !== undefined && !admits(s, 'shop/client', 'shop/web');
      await waitFor(() => denied(applier.last), 'the CNP is enforced', 30_000);
      assert.deepEqual(kind('ClusterNetworkPolicy'), {
        kind: 'ClusterNetworkPolicy',
        state: 'enforced',
        apiVersion: 'policy.networking.k8s.io/v1beta1',
        discovered: true,
      });
      // An API server restart (CRDs load after it listens) must not drop it from any apply.
      const from = applier.applied.length - 1;
      await c.restartApiserver();
      await kubectl(c, ['label', '-n', 'shop', 'pod', 'client', 'after=restart']);
      await waitFor(
        () => applier.last?.pods.some((p) => p.labels.after === 'restart') === true,
        'a change after the restart applied',
        30_000,
      );
      await new Promise((r) => setTimeout(r, 4000)); // past the discovery confirmation
      for (const s of applier.applied.slice(from)) assert.ok(denied(s), 'every apply has the CNP');

      // The CRD removed: its objects go, the kind is not served, the agent is ready again.
      await kubectl(c, ['delete', 'crd', 'clusternetworkpolicies.policy.networking.k8s.io', '--wait=true']);
      await waitFor(() => !denied(applier.last), 'CRD removed -> open', 30_000);
      await waitFor(() => kind('ClusterNetworkPolicy')?.state === 'not served', 'not served', 30_000);
      await waitFor(() => a.ready, 'ready after the CRD went', 30_000);
      t.diagnostic(
        `lists per kind: ${['Namespace', 'Pod', 'Node', 'NetworkPolicy', 'ClusterNetworkPolicy'].map((k) => `${k} ${a.source.listCount(k as 'Pod')}`).join(', ')}`,
      );
      const count = (re: RegExp) => log.lines.filter((l) => re.test(l.msg)).length;
      t.diagnostic(
        `discovery: ${count(/not found by discovery/)} unconfirmed absences, ${count(/no longer served/)} removal, ${count(/now served/)} appearance`,
      );
      assert.equal(
        count(/ClusterNetworkPolicy no longer served/),
        1,
        'dropped once: when the CRD was deleted',
      );
    } finally {
      await agent?.stop();
      await c.stop();
    }
  },
);
