// The moat DaemonSet's RBAC (deploy/overlays/plain: ServiceAccount, ClusterRole, ClusterRoleBinding)
// applied to a real kube-apiserver, and the agent run with a kubeconfig holding only a token minted
// for that ServiceAccount (TokenRequest API), so a missing permission fails. Negative checks prove
// that it would: copies of the ClusterRole without `watch` on networkpolicies, or without nodes,
// make the same check fail. No root needed (the ruleset is compiled, not loaded).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';

import { Agent } from '../../src/agent/agent.js';
import { MemoryLog, RecordingApplier, sleep, waitFor } from '../agent/util.js';
import { installRbac, kubectl, kubectlAs, serviceAccountKubeconfig, type Obj } from './access.js';
import { clusterSkipReason, startCluster, type Cluster } from './cluster.js';

const NODE = 'moat-n1';

const skip = (() => {
  try {
    return clusterSkipReason() ?? false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The ClusterRole with `change` applied to each rule (rules left empty are dropped). */
function editRules(change: (r: Rule) => Rule): (role: Obj) => Obj {
  return (role) => ({
    ...role,
    rules: (role.rules as Rule[]).map(change).filter((r) => r.resources.length > 0 && r.verbs.length > 0),
  });
}

let policies = 0;

/**
 * Runs the agent with `kubeconfig` and fails unless it becomes ready, enforces a policy created
 * afterwards, and never sees a list or watch fail.
 */
async function agentWorks(c: Cluster, kubeconfig: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const user = kc.getCurrentUser();
  assert.ok(user?.token !== undefined && user.token !== '', 'the kubeconfig carries a token');
  assert.equal(
    user.certData ?? user.certFile ?? user.keyData ?? user.keyFile,
    undefined,
    'and no client cert',
  );
  const log = new MemoryLog();
  const applier = new RecordingApplier(NODE);
  const agent = await Agent.start({
    kubeConfig: kc,
    nodeName: NODE,
    applier,
    log,
    driftIntervalMs: 0,
    retryMs: 100,
    resyncMs: 0,
  });
  const failures = () =>
    log.lines
      .filter((l) => l.msg.startsWith('watch failed'))
      .map((l) => `${String(l.fields.kind)}: ${String(l.fields.error)}`);
  try {
    try {
      await waitFor(() => agent.ready, 'ready', 10_000);
    } catch {
      throw new Error(`agent never became ready: ${[...new Set(failures())].join('; ')}`);
    }
    const name = `rbac-check-${++policies}`;
    await kubectl(
      c,
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name, namespace: 'shop' },
        spec: { podSelector: {} },
      }),
    );
    let enforced = true;
    try {
      await waitFor(() => applier.last?.policies.some((p) => p.name === name) === true, name, 10_000);
    } catch {
      enforced = false;
    }
    await sleep(500); // a failing watch reports within milliseconds of its list
    const failed = [...new Set(failures())];
    if (!enforced || failed.length > 0) {
      throw new Error(
        `${enforced ? '' : `policy ${name}, created after the first sync, never enforced; `}list/watch failed: ${failed.join('; ')}`,
      );
    }
  } finally {
    await agent.stop();
  }
}

test(
  'the DaemonSet RBAC on a real API server: the agent works with the ServiceAccount token alone',
  { skip },
  async (t) => {
    const c = await startCluster();
    try {
      await kubectl(c, ['create', 'namespace', 'shop']);
      const rbac = await installRbac(c);
      assert.deepEqual(rbac.objects.map((o) => o.kind).sort(), [
        'ClusterRole',
        'ClusterRoleBinding',
        'Namespace',
        'ServiceAccount',
      ]);
      const sa = await serviceAccountKubeconfig(c, rbac);

      await t.test('the token authenticates as the ServiceAccount', async () => {
        const who = await kubectlAs(sa.path, ['auth', 'whoami', '-o', 'json']);
        assert.equal(who.code, 0, who.stderr);
        const user = (JSON.parse(who.stdout) as { status: { userInfo: { username: string } } }).status
          .userInfo;
        assert.equal(user.username, `system:serviceaccount:${rbac.namespace}:${rbac.serviceAccount}`);
      });

      await t.test('the role grants list and watch on the four kinds and nothing else', async () => {
        const can = async (verb: string, resource: string) =>
          (await kubectlAs(sa.path, ['auth', 'can-i', verb, resource, '--all-namespaces'])).code === 0;
        for (const r of ['pods', 'namespaces', 'nodes', 'networkpolicies.networking.k8s.io']) {
          assert.equal(await can('list', r), true, `list ${r}`);
          assert.equal(await can('watch', r), true, `watch ${r}`);
          assert.equal(await can('get', r), false, `get ${r}`);
          assert.equal(await can('create', r), false, `create ${r}`);
        }
        assert.equal(await can('list', 'secrets'), false, 'list secrets');
        const secrets = await kubectlAs(sa.path, ['get', 'secrets', '-A']);
        assert.match(secrets.stderr, /forbidden/i);
      });

      await t.test('the agent lists, watches and enforces with it', async () => {
        await agentWorks(c, sa.path);
      });

      await t.test('negative: without watch on networkpolicies the same check fails', async () => {
        const bad = await installRbac(c, {
          suffix: '-nowatch',
          editRole: editRules((r) =>
            r.resources.includes('networkpolicies')
              ? { ...r, verbs: r.verbs.filter((v) => v !== 'watch') }
              : r,
          ),
        });
        await assert.rejects(agentWorks(c, (await serviceAccountKubeconfig(c, bad)).path), (e: Error) => {
          t.diagnostic(`detected: ${e.message}`);
          // Either the agent went unready before the check saw it ready (its watch kept failing), or
          // it was ready but never saw the policy: both mean the missing permission was caught.
          return /(never became ready|never enforced; list\/watch failed): .*NetworkPolicy: Forbidden/s.test(
            e.message,
          );
        });
      });

      await t.test('negative: without nodes the agent never becomes ready', async () => {
        const bad = await installRbac(c, {
          suffix: '-nonodes',
          editRole: editRules((r) => ({ ...r, resources: r.resources.filter((x) => x !== 'nodes') })),
        });
        await assert.rejects(agentWorks(c, (await serviceAccountKubeconfig(c, bad)).path), (e: Error) => {
          t.diagnostic(`detected: ${e.message}`);
          return /never became ready: .*Node: .*forbidden/is.test(e.message);
        });
      });
    } finally {
      await c.stop();
    }
  },
);
