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
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';

import { ClusterState } from '../../src/agent/cluster-state.js';
import { decodeApiObject, type WatchedKind } from '../../src/agent/k8s-decode.js';
import { kernelDiff } from '../support/kernel.js';
import { Lab } from '../../src/lab/lab.js';
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import type { Snapshot } from '../../src/model/types.js';
import { needsRoot, uniquePrefix } from '../e2e/lab-util.js';
import { allCells, cellLabel, evaluateCell, flushConntrack, probeCells, seconds } from '../e2e/probe-util.js';
import { installRbac, kubectl, serviceAccountKubeconfig } from './access.js';
import { clusterSkipReason, startCluster, type Cluster } from './cluster.js';
import { labAgentArgs } from '../support/agent.js';

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

// ---- the agent, as a child process

interface AgentProc {
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  metricsPort(): Promise<number>;
}

function startAgent(kubeconfig: string, lab: Lab): AgentProc {
  const proc = spawn(process.execPath, labAgentArgs(kubeconfig, lab, ['--on-exit', 'remove']), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let resolvePort: (p: number) => void = () => undefined;
  const port = new Promise<number>((r) => (resolvePort = r));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    try {
      const o = JSON.parse(line) as { msg?: string; metrics?: { port?: number } };
      if (o.msg === 'starting' && typeof o.metrics?.port === 'number') resolvePort(o.metrics.port);
    } catch {
      // not JSON
    }
  });
  createInterface({ input: proc.stderr }).on('line', (line) => lines.push(`stderr: ${line}`));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, lines, exited, metricsPort: () => port };
}

async function metrics(a: AgentProc): Promise<string> {
  return (await fetch(`http://127.0.0.1:${await a.metricsPort()}/metrics`)).text();
}

/** moat_lists_total per kind (initial lists and relists). */
async function listCounts(a: AgentProc): Promise<Record<string, number>> {
  const text = await metrics(a);
  return Object.fromEntries(
    KINDS.map((k) => [
      k,
      Number(new RegExp(`^moat_lists_total\\{kind="${k}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0),
    ]),
  );
}

// ---- what the API server holds, and what the kernel holds

/** The snapshot moat builds from everything the API server holds right now (read as admin). */
async function apiSnapshot(c: Cluster): Promise<Snapshot> {
  const list = JSON.parse(
    await kubectl(c, ['get', 'namespaces,pods,nodes,networkpolicies.networking.k8s.io', '-A', '-o', 'json']),
  ) as { items: { kind: WatchedKind }[] };
  const state = new ClusterState();
  for (const item of list.items) {
    const d = decodeApiObject(item.kind, item);
    assert.deepEqual(d.problems, [], `${item.kind} ${d.key} decodes cleanly`);
    state.set(d);
  }
  return state.snapshot();
}

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

      // The cluster as a kubelet and controllers would leave it: namespaces, the lab's Node, its pods
      // with the lab's addresses (status written as the kubelet would, through the status subresource).
      await k(['create', 'namespace', 'shop']);
      await k(['create', 'namespace', 'other']);
      const node = lab.plan.node;
      await k(
        ['create', '-f', '-'],
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: node.name },
          spec: { podCIDR: node.podCIDRs[0], podCIDRs: node.podCIDRs },
        }),
      );
      await k([
        'patch',
        'node',
        node.name,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({
          status: { addresses: node.addresses.map((address) => ({ type: 'InternalIP', address })) },
        }),
      ]);
      for (const p of PODS) {
        const ips = lab.snapshot.pods.find((x) => x.namespace === p.ns && x.name === p.name)?.ips ?? [];
        assert.ok(ips.length > 0, `lab pod ${p.ns}/${p.name} has an address`);
        await k(
          ['create', '-f', '-'],
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: p.name, namespace: p.ns, labels: p.labels },
            spec: {
              nodeName: lab.nodeName,
              containers: [
                {
                  name: 'c',
                  image: 'moat-test',
                  ports: PORTS.map((x) => ({
                    name: x.name,
                    containerPort: x.containerPort,
                    protocol: x.protocol,
                  })),
                },
              ],
            },
          }),
        );
        await k([
          'patch',
          'pod',
          '-n',
          p.ns,
          p.name,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } }),
        ]);
      }

      const rbac = await installRbac(cluster);
      const sa = await serviceAccountKubeconfig(cluster, rbac);
      agent = startAgent(sa.path, lab);
      const a = agent;
      const cells = allCells(
        PODS.map((p) => `${p.ns}/${p.name}`),
        PORTS.map((p) => ({ port: p.containerPort, protocol: p.protocol })),
        [4],
      ).filter((x) => x.from !== x.to);

      let checks = 0;
      let pending: () => Promise<void> = () => Promise.resolve();
      /** Waits for the kernel to hold what the API holds, then probes every cell against the evaluator. */
      const check = async (st: TestContext, what: string): Promise<void> => {
        const t1 = Date.now();
        const want = await apiSnapshot(cluster);
        let diffs: string[] = [];
        for (let i = 0; i < 200; i++) {
          diffs = await kernelDiff(lab, want);
          if (diffs.length === 0) break;
          if (a.proc.exitCode !== null) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.deepEqual(
          diffs,
          [],
          `${what}: the kernel's table is the compilation of the API's snapshot\n${a.lines.slice(-20).join('\n')}`,
        );
        const converged = Date.now() - t1;
        await flushConntrack(lab);
        const expect = (x: (typeof cells)[number]) => evaluateCell(want, x);
        const seen = await probeCells(lab, cells, { shouldPass: expect, concurrency: 24 });
        const wrong = seen
          .filter((o) => o.allowed !== expect(o.cell))
          .map(
            (o) =>
              `${cellLabel(o.cell)}: evaluator ${expect(o.cell) ? 'allows' : 'denies'}, packets ${o.detail}`,
          );
        const flipped = seen.filter((o) => o.flipped).map((o) => cellLabel(o.cell));
        assert.deepEqual(wrong, [], `${what}: probes vs the evaluator`);
        const allowed = seen.filter((o) => o.allowed).length;
        checks++;
        st.diagnostic(
          `${what}: converged in ${converged} ms; ${seen.length} cells probed, ${allowed} allowed${flipped.length > 0 ? `, passed only on retry: ${flipped.join(', ')}` : ''}`,
        );
      };
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
      t.diagnostic(`${checks} checks; whole test ${seconds(t0)}`);

      // SIGTERM with --on-exit remove: a clean exit, the table gone.
      a.proc.kill('SIGTERM');
      assert.equal(await a.exited, 0);
      assert.deepEqual(await kernelDiff(lab, await apiSnapshot(cluster)), ['table inet moat: missing']);
    } finally {
      if (agent && agent.proc.exitCode === null && agent.proc.signalCode === null) {
        agent.proc.kill('SIGCONT');
        agent.proc.kill('SIGKILL');
        await agent.exited;
      }
      await c?.stop();
      await lab.destroy();
    }
  },
);
