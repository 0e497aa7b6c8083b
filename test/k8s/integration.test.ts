// `moat agent` against a real kube-apiserver, enforcing a lab node with real packets. The agent is
// the CLI (a child process) with a kubeconfig holding only the DaemonSet ServiceAccount's token
// (deploy/overlays/plain RBAC applied for real). Namespaces, Pods (spec.nodeName = the lab node,
// status patched with the addresses the lab pods really have), a Node and NetworkPolicies are
// created, updated, relabelled and deleted through the API; after each change the kernel's table
// must equal the compilation of what the API server holds, and every probed cell must equal the
// reference evaluator on that snapshot. The watch is broken by restarting kube-apiserver (resume),
// then by restarting it after an etcd compaction (410 Gone, relist), each time while the agent is
// frozen (SIGSTOP) and the cluster changes under it. Needs root and the built cluster binaries.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';

import type { WatchedKind } from '../../src/agent/k8s-decode.js';
import { kernelDiff } from '../support/kernel.js';
import { Lab } from '../../src/lab/lab.js';
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import { needsRoot, uniquePrefix } from '../e2e/lab-util.js';
import { allCells, seconds } from '../e2e/probe-util.js';
import { installRbac, kubectl, serviceAccountKubeconfig } from './access.js';
import { clusterSkipReason, startCluster, type Cluster } from './cluster.js';
import {
  apiSnapshot,
  checker,
  killAgent,
  listCounts as listCountsOf,
  seedCluster,
  startAgent,
  type AgentProc,
} from './lab-cluster.js';

const PORTS = [cport(80, 'TCP', 'http'), cport(8080, 'TCP', 'alt')];
const PODS: { ns: string; name: string; labels: Record<string, string> }[] = [
  { ns: 'shop', name: 'web', labels: { app: 'web' } },
  { ns: 'shop', name: 'client', labels: { app: 'client' } },
  { ns: 'other', name: 'probe', labels: { app: 'probe' } },
  { ns: 'other', name: 'db', labels: { app: 'db' } },
];
const KINDS: WatchedKind[] = ['Namespace', 'Pod', 'Node', 'NetworkPolicy'];

const skip = (() => {
  if (needsRoot) return needsRoot;
  try {
    return clusterSkipReason() ?? false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

function netpol(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

/** moat_lists_total per built-in kind (initial lists and relists). */
const listCounts = (a: AgentProc) => listCountsOf(a, KINDS);

// ---- the test

test(
  'moat agent (ServiceAccount token) against a real kube-apiserver, enforcing a lab node',
  { skip },
  async (t) => {
    const t0 = Date.now();
    const lab = await Lab.create(
      snapshot({
        namespaces: [ns('shop'), ns('other')],
        pods: PODS.map((p) => pod(p.ns, p.name, { ports: PORTS })),
      }),
      { prefix: uniquePrefix(), probeTimeoutMs: 300 },
    );
    // Watch cache off: a watch from a compacted resourceVersion reaches etcd and gets 410 Gone,
    // while a watch from a revision etcd still has resumes (see docs/k8s-testing.md).
    let c: Cluster | undefined;
    let agent: AgentProc | undefined;
    try {
      c = await startCluster({ watchCache: false });
      const cluster = c;
      const k = (args: string[], stdin?: string) => kubectl(cluster, args, stdin);
      t.diagnostic(`lab and cluster up: ${seconds(t0)}`);

      // The cluster as a kubelet and controllers would leave it.
      await seedCluster(cluster, lab, PODS, PORTS);

      const rbac = await installRbac(cluster);
      const sa = await serviceAccountKubeconfig(cluster, rbac);
      agent = startAgent(sa.path, lab);
      const a = agent;
      const cells = allCells(
        PODS.map((p) => `${p.ns}/${p.name}`),
        PORTS.map((p) => ({ port: p.containerPort, protocol: p.protocol })),
        [4],
      ).filter((x) => x.from !== x.to);

      const checks = checker(cluster, lab, a, cells);
      const check = async (st: TestContext, what: string): Promise<void> => {
        await checks.check(st, what);
      };
      let pending: () => Promise<void> = () => Promise.resolve();
      const step = (name: string, change: () => Promise<void>) =>
        t.test(name, async (st) => {
          await change();
          await check(st, name);
        });

      await step('no policies: everything open', async () => {
        await a.metricsPort();
      });
      await step('NetworkPolicy created: shop denies all ingress', async () => {
        await k(['apply', '-f', '-'], netpol('shop', 'deny-all', { podSelector: {} }));
      });
      await step('NetworkPolicy created: web from role=trusted on 80', async () => {
        await k(
          ['apply', '-f', '-'],
          netpol('shop', 'allow-web', {
            podSelector: { matchLabels: { app: 'web' } },
            ingress: [
              { from: [{ podSelector: { matchLabels: { role: 'trusted' } } }], ports: [{ port: 80 }] },
            ],
          }),
        );
      });
      await step('Pod relabelled: client role=trusted', async () => {
        await k(['label', '-n', 'shop', 'pod', 'client', 'role=trusted']);
      });
      await step('NetworkPolicy updated: web also on the named port alt', async () => {
        await k(
          ['apply', '-f', '-'],
          netpol('shop', 'allow-web', {
            podSelector: { matchLabels: { app: 'web' } },
            ingress: [
              {
                from: [{ podSelector: { matchLabels: { role: 'trusted' } } }],
                ports: [{ port: 80 }, { port: 'alt' }],
              },
            ],
          }),
        );
      });
      await step('NetworkPolicy from a namespaceSelector, then the Namespace relabelled', async () => {
        await k(
          ['apply', '-f', '-'],
          netpol('shop', 'allow-friends', {
            podSelector: {},
            ingress: [
              {
                from: [{ namespaceSelector: { matchLabels: { team: 'friends' } } }],
                ports: [{ port: 8080 }],
              },
            ],
          }),
        );
        await k(['label', 'namespace', 'other', 'team=friends']);
      });
      await step('Egress policy in other: probe only to shop/web on alt', async () => {
        await k(
          ['apply', '-f', '-'],
          netpol('other', 'probe-egress', {
            podSelector: { matchLabels: { app: 'probe' } },
            policyTypes: ['Egress'],
            egress: [
              {
                to: [
                  {
                    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
                    podSelector: { matchLabels: { app: 'web' } },
                  },
                ],
                ports: [{ port: 'alt' }],
              },
            ],
          }),
        );
      });
      await step('Namespace and Pod relabelled away: team removed, client loses role', async () => {
        await k(['label', 'namespace', 'other', 'team-']);
        await k(['label', '-n', 'shop', 'pod', 'client', 'role-', 'app=client2', '--overwrite']);
      });
      await step('NetworkPolicies deleted: deny-all and allow-friends', async () => {
        await k(['delete', '-n', 'shop', 'networkpolicy', 'deny-all', 'allow-friends']);
      });

      // The watch broken by a kube-apiserver restart while the agent is frozen and the cluster
      // changes: etcd still has those revisions, so the agent resumes its watches, no relist.
      await step('kube-apiserver restarted while the agent was frozen: resumes', async (): Promise<void> => {
        const before = await listCounts(a);
        a.proc.kill('SIGSTOP');
        try {
          await k(['apply', '-f', '-'], netpol('shop', 'deny-all', { podSelector: {} }));
          await k(['label', '-n', 'shop', 'pod', 'client', 'role=trusted']);
          await k(['label', 'namespace', 'other', 'team=friends']);
          await cluster.restartApiserver();
        } finally {
          a.proc.kill('SIGCONT');
        }
        // Counted after check() has seen the kernel converge (step runs it next).
        pending = async () => {
          const after = await listCounts(a);
          t.diagnostic(`resume: lists before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
          assert.deepEqual(after, before, 'resumed from its resourceVersions: no relist');
        };
      });
      await pending();

      // Compaction past every revision the agent has seen, then a restart: its watches come back with
      // 410 Gone and it must list again (reporting what disappeared meanwhile as deletions).
      await t.test(
        'etcd compacted and kube-apiserver restarted while frozen: 410 Gone, relist',
        async (st) => {
          const before = await listCounts(a);
          a.proc.kill('SIGSTOP');
          try {
            await k(['delete', '-n', 'other', 'networkpolicy', 'probe-egress']);
            await k(['label', '-n', 'other', 'pod', 'probe', 'app=probe2', '--overwrite']);
            await k(
              ['apply', '-f', '-'],
              netpol('other', 'db-from-web', {
                podSelector: { matchLabels: { app: 'db' } },
                ingress: [
                  {
                    from: [
                      {
                        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } },
                        podSelector: { matchLabels: { app: 'web' } },
                      },
                    ],
                  },
                ],
              }),
            );
            const rev = await cluster.compact();
            st.diagnostic(`etcd compacted at revision ${rev}`);
            await cluster.restartApiserver();
          } finally {
            a.proc.kill('SIGCONT');
          }
          await check(st, 'after 410 Gone');
          // Kinds that did not change may notice their expired watch a little later than the others.
          let after = await listCounts(a);
          for (let i = 0; i < 300 && KINDS.some((kind) => (after[kind] ?? 0) <= (before[kind] ?? 0)); i++) {
            await new Promise((r) => setTimeout(r, 100));
            after = await listCounts(a);
          }
          for (const l of a.lines.filter((x) => /relisted|watch failed/.test(x))) st.diagnostic(l);
          st.diagnostic(`lists before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
          for (const kind of KINDS)
            assert.ok((after[kind] ?? 0) > (before[kind] ?? 0), `${kind} relisted after 410 Gone`);
          assert.ok(
            a.lines.some((l) => l.includes('"relisted"')),
            'the agent logged its relists',
          );
        },
      );

      await step('all NetworkPolicies deleted: open again', async () => {
        await k(['delete', 'networkpolicy', '--all', '-n', 'shop']);
        await k(['delete', 'networkpolicy', '--all', '-n', 'other']);
      });
      t.diagnostic(`${checks.count} checks; whole test ${seconds(t0)}`);

      // SIGTERM with --on-exit remove: a clean exit, the table gone.
      a.proc.kill('SIGTERM');
      assert.equal(await a.exited, 0);
      assert.deepEqual(await kernelDiff(lab, await apiSnapshot(cluster)), ['table inet moat: missing']);
    } finally {
      await killAgent(agent);
      await c?.stop();
      await lab.destroy();
    }
  },
);
