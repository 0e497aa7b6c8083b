// The agent against a real kube-apiserver (test/k8s: etcd + kube-apiserver on loopback, https),
// through the real client library, authenticated only by a token of the DaemonSet's ServiceAccount
// (deploy/overlays/plain RBAC applied). Skips until test/k8s/build.sh has run.
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent } from '../../src/agent/agent.js';
import { installRbac, serviceAccountKubeconfig } from '../k8s/access.js';
import { clusterSkipReason, startCluster, type Cluster } from '../k8s/cluster.js';
import { passes, RecordingApplier, waitFor } from './util.js';

const NODE = 'moat-n1';
const WEB = '10.244.0.10';
const CLIENT = '10.244.0.11';

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
      agent = await Agent.start({
        kubeConfig: kc,
        nodeName: NODE,
        applier,
        driftIntervalMs: 0,
        retryMs: 100,
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
      t.diagnostic(
        `lists per kind: ${['Namespace', 'Pod', 'Node', 'NetworkPolicy'].map((k) => `${k} ${a.source.listCount(k as 'Pod')}`).join(', ')}`,
      );
    } finally {
      await agent?.stop();
      await c.stop();
    }
  },
);
