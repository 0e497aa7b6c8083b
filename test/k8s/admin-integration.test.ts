// The admin tiers through a real kube-apiserver, enforced on a lab node with real packets. The
// AdminNetworkPolicy and BaselineAdminNetworkPolicy CRDs (network-policy-api v0.1.7) are installed
// before `moat agent` (the CLI, DaemonSet ServiceAccount token) starts; the ClusterNetworkPolicy
// CRD (v0.3.0) while it runs, so that the agent must discover it (--discovery-interval 1s).
// ClusterNetworkPolicies of both tiers, an AdminNetworkPolicy and the BaselineAdminNetworkPolicy
// `default` are created, updated and deleted through the API, and namespaces relabelled so that a
// subject and a peer change. After each change the kernel's table must equal the compilation of
// what the API server holds, every probed cell must equal the reference evaluator, and the cells
// the change is meant to flip must have flipped, decided by the intended rule (so the test cannot
// pass with the admin kinds ignored by both). Then the CNP CRD is removed under a live CNP, and
// replaced by one without validation so that an invalid CNP is stored: it is enforced as its
// fail-closed stand-in. Needs root and the built cluster binaries and CRDs (test/k8s/build.sh).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parse } from 'yaml';

import { Lab } from '../../src/lab/lab.js';
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import { podKey, type Snapshot } from '../../src/model/types.js';
import { evaluate, type SideVerdict } from '../../src/policy/evaluate.js';
import { needsRoot, uniquePrefix } from '../e2e/lab-util.js';
import { allCells, seconds, type Cell, type Observation } from '../e2e/probe-util.js';
import { kernelDiff } from '../support/kernel.js';
import { installRbac, kubectl, serviceAccountKubeconfig } from './access.js';
import {
  clusterSkipReason,
  netpolApiCrds,
  startCluster,
  type Cluster,
  type NetpolApiCrds,
} from './cluster.js';
import {
  apiSnapshot,
  checker,
  installCrds,
  killAgent,
  metrics,
  seedCluster,
  startAgent,
  type AgentProc,
  type ApiSnapshotOptions,
} from './lab-cluster.js';

const PORTS = [cport(80, 'TCP', 'http'), cport(8080, 'TCP', 'alt')];
const PODS: { ns: string; name: string; labels: Record<string, string> }[] = [
  { ns: 'shop', name: 'web', labels: { app: 'web' } },
  { ns: 'shop', name: 'client', labels: { app: 'client' } },
  { ns: 'other', name: 'probe', labels: { app: 'probe' } },
  { ns: 'other', name: 'db', labels: { app: 'db' } },
];
// Admin subjects and peers select these labels; steps relabel `other`.
const NS_LABELS = { shop: { env: 'prod' }, other: { zone: 'untrusted' } };

const GROUP = 'policy.networking.k8s.io';
const CNP_CRD = `clusternetworkpolicies.${GROUP}`;
const ANP_CRDS = [`adminnetworkpolicies.${GROUP}`, `baselineadminnetworkpolicies.${GROUP}`];

let crds: { cnp: NetpolApiCrds; anp: NetpolApiCrds } | undefined;
const skip = (() => {
  if (needsRoot) return needsRoot;
  try {
    const why = clusterSkipReason();
    if (why !== undefined) return why;
    const cnp = netpolApiCrds('NETPOL_API_CNP_VERSION');
    const anp = netpolApiCrds('NETPOL_API_ANP_VERSION');
    if (typeof cnp === 'string') return cnp;
    if (typeof anp === 'string') return anp;
    crds = { cnp, anp };
    return false;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
})();

const crdFile = (dir: string, plural: string) => readFileSync(join(dir, `${GROUP}_${plural}.yaml`), 'utf8');

/**
 * The CNP CRD with every version's schema replaced by "any object": the API server then stores a
 * ClusterNetworkPolicy its real CRD would reject, as a cluster with a broken or foreign CRD could.
 */
function permissiveCnpCrd(text: string): string {
  const crd = parse(text) as { spec: { versions: Record<string, unknown>[] } };
  for (const v of crd.spec.versions) {
    v.schema = { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } };
  }
  return JSON.stringify(crd);
}

const sel = (matchLabels: Record<string, string> = {}) => ({ matchLabels });
const tcp = (port: number) => ({ tcp: { destinationPort: { number: port } } });

function cnp(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: `${GROUP}/v1beta1`,
    kind: 'ClusterNetworkPolicy',
    metadata: { name },
    spec,
  });
}
function anp(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'AdminNetworkPolicy',
    metadata: { name },
    spec,
  });
}
function banp(spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec,
  });
}
function netpol(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

// ---- what a change is meant to do to a cell

/**
 * A cell the change is meant to flip to `allowed` (or, with `holds`, to leave at `allowed`), and
 * the admin rule meant to decide it: "Kind/name/ruleName" as the last tier outcome on `side`.
 */
interface Intent {
  readonly cell: string; // "from->to:port"
  readonly allowed: boolean;
  readonly by?: { readonly side: 'ingress' | 'egress'; readonly rule: string };
  readonly holds?: true;
}

function parseCell(s: string): Cell {
  const m = /^(\S+)->(\S+):(\d+)$/.exec(s);
  if (!m) throw new Error(`intent cell "${s}": want from->to:port`);
  return { from: m[1]!, to: m[2]!, port: Number(m[3]), protocol: 'TCP', family: 4 };
}

/** "Kind/name/ruleName" of the admin rule that gave a side its verdict, or the tier that did. */
function decider(side: SideVerdict): string {
  const last = side.tiers[side.tiers.length - 1];
  if (last?.admin) return `${last.admin.kind}/${last.admin.name}/${last.admin.ruleName}`;
  return `${last?.tier ?? 'no tier'} (${side.reason})`;
}

function verdictOf(s: Snapshot, c: Cell) {
  const find = (key: string) => {
    const p = s.pods.find((x) => podKey(x) === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  };
  return evaluate(s, {
    src: { kind: 'pod', pod: find(c.from) },
    dst: { kind: 'pod', pod: find(c.to) },
    port: c.port,
    protocol: c.protocol,
    family: c.family,
  });
}

const key = (c: Cell) => `${c.from}->${c.to}:${c.port}`;

/** Checks each intent against the packets of this step and the last, and the evaluator's decider. */
function checkIntents(
  what: string,
  intents: readonly Intent[],
  want: Snapshot,
  seen: readonly Observation[],
  before: ReadonlyMap<string, boolean>,
): string[] {
  const now = new Map(seen.map((o) => [key(o.cell), o.allowed]));
  const out: string[] = [];
  for (const i of intents) {
    const c = parseCell(i.cell);
    const got = now.get(i.cell);
    if (got === undefined) throw new Error(`${what}: intent cell ${i.cell} is not probed`);
    const was = before.get(i.cell);
    const want1 = i.holds ? i.allowed : !i.allowed;
    if (got !== i.allowed)
      out.push(`${i.cell}: packets ${got ? 'pass' : 'dropped'}, meant ${i.allowed ? 'to pass' : 'dropped'}`);
    if (was !== want1) out.push(`${i.cell}: was ${String(was)} before the change, meant ${String(want1)}`);
    if (i.by) {
      const v = verdictOf(want, c);
      const d = decider(v[i.by.side]);
      if (d !== i.by.rule) out.push(`${i.cell}: ${i.by.side} decided by ${d}, meant ${i.by.rule}`);
    }
  }
  return out;
}

// ---- the test

test('admin tiers through a real kube-apiserver: moat agent enforcing a lab node', { skip }, async (t) => {
  assert.ok(crds);
  const { cnp: cnpCrds, anp: anpCrds } = crds;
  const t0 = Date.now();
  const lab = await Lab.create(
    snapshot({
      namespaces: [ns('shop'), ns('other')],
      pods: PODS.map((p) => pod(p.ns, p.name, { ports: PORTS })),
    }),
    { prefix: uniquePrefix(), probeTimeoutMs: 300 },
  );
  let c: Cluster | undefined;
  let agent: AgentProc | undefined;
  try {
    c = await startCluster();
    const cluster = c;
    const k = (args: string[], stdin?: string) => kubectl(cluster, args, stdin);
    await seedCluster(cluster, lab, PODS, PORTS, NS_LABELS);
    // ANP and BANP served before the agent starts (its first sync waits for discovery); CNP later.
    await installCrds(
      cluster,
      ['adminnetworkpolicies', 'baselineadminnetworkpolicies'].map((p) => crdFile(anpCrds.standard, p)),
      ANP_CRDS,
    );
    t.diagnostic(`lab, cluster and ANP/BANP CRDs up: ${seconds(t0)}`);

    const sa = await serviceAccountKubeconfig(cluster, await installRbac(cluster));
    agent = startAgent(sa.path, lab, ['--discovery-interval', '1s']);
    const a = agent;
    const cells = allCells(
      PODS.map((p) => `${p.ns}/${p.name}`),
      PORTS.map((p) => ({ port: p.containerPort, protocol: p.protocol })),
      [4],
    ).filter((x) => x.from !== x.to);
    const checks = checker(cluster, lab, a, cells);
    let last = new Map<string, boolean>();
    let intentsChecked = 0;
    const step = (
      name: string,
      change: () => Promise<void>,
      intents: readonly Intent[],
      opts: ApiSnapshotOptions = {},
    ) =>
      t.test(name, async (st: TestContext) => {
        await change();
        const { want, seen } = await checks.check(st, name, opts);
        const wrong = checkIntents(name, intents, want, seen, last);
        last = new Map(seen.map((o) => [key(o.cell), o.allowed]));
        assert.deepEqual(wrong, [], `${name}: what the change is meant to do`);
        intentsChecked += intents.length;
      });

    await step(
      'no policies, ANP/BANP CRDs served: everything open',
      () => a.metricsPort().then(() => undefined),
      [],
    );
    await step(
      'NetworkPolicy: other/db only from its namespace',
      () =>
        k(
          ['apply', '-f', '-'],
          netpol('other', 'db-same-ns', {
            podSelector: sel({ app: 'db' }),
            ingress: [{ from: [{ podSelector: {} }] }],
          }),
        ).then(() => undefined),
      [{ cell: 'shop/web->other/db:80', allowed: false }],
    );

    // The CNP CRD installed while the agent runs: discovered, watched, enforced.
    const guard = (priority: number, ingress: unknown[]) =>
      cnp('guard', { tier: 'Admin', priority, subject: { namespaces: sel({ env: 'prod' }) }, ingress });
    const denyUntrusted = {
      name: 'deny-untrusted',
      action: 'Deny',
      from: [{ namespaces: sel({ zone: 'untrusted' }) }],
    };
    await step(
      'CNP CRD installed while the agent runs; CNP guard (Admin, 20): Pass from probe, Deny from zone=untrusted',
      async () => {
        await installCrds(cluster, [crdFile(cnpCrds.standard, 'clusternetworkpolicies')], [CNP_CRD]);
        await k(
          ['apply', '-f', '-'],
          guard(20, [
            {
              name: 'pass-probe',
              action: 'Pass',
              from: [{ pods: { namespaceSelector: {}, podSelector: sel({ app: 'probe' }) } }],
            },
            denyUntrusted,
          ]),
        );
      },
      [
        {
          cell: 'other/db->shop/web:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/deny-untrusted' },
        },
        {
          cell: 'other/db->shop/client:8080',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/deny-untrusted' },
        },
        // Passed to the NetworkPolicy tier, where nothing isolates shop.
        { cell: 'other/probe->shop/web:80', allowed: true, holds: true },
      ],
    );
    await step(
      'ANP anp-alt (10): Deny 8080 into env=prod from everywhere',
      () =>
        k(
          ['apply', '-f', '-'],
          anp('anp-alt', {
            priority: 10,
            subject: { namespaces: sel({ env: 'prod' }) },
            ingress: [
              {
                name: 'deny-alt',
                action: 'Deny',
                from: [{ namespaces: {} }],
                ports: [{ portNumber: { protocol: 'TCP', port: 8080 } }],
              },
            ],
          }),
        ).then(() => undefined),
      [
        {
          cell: 'shop/client->shop/web:8080',
          allowed: false,
          by: { side: 'ingress', rule: 'AdminNetworkPolicy/anp-alt/deny-alt' },
        },
        // Priority 10 before the CNP's Pass at 20.
        {
          cell: 'other/probe->shop/web:8080',
          allowed: false,
          by: { side: 'ingress', rule: 'AdminNetworkPolicy/anp-alt/deny-alt' },
        },
        { cell: 'other/probe->shop/web:80', allowed: true, holds: true },
      ],
    );
    await step(
      'CNP guard updated: priority 20 -> 5, Pass from probe -> Accept from db',
      () =>
        k(
          ['apply', '-f', '-'],
          guard(5, [
            {
              name: 'accept-db',
              action: 'Accept',
              from: [{ pods: { namespaceSelector: {}, podSelector: sel({ app: 'db' }) } }],
            },
            denyUntrusted,
          ]),
        ).then(() => undefined),
      [
        // Priority 5 now before the ANP's Deny at 10.
        {
          cell: 'other/db->shop/web:8080',
          allowed: true,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/accept-db' },
        },
        {
          cell: 'other/db->shop/web:80',
          allowed: true,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/accept-db' },
        },
        // No longer passed: the Deny rule after it matches.
        {
          cell: 'other/probe->shop/web:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/deny-untrusted' },
        },
      ],
    );
    const floor = cnp('floor', {
      tier: 'Baseline',
      priority: 10,
      subject: { namespaces: sel({ zone: 'untrusted' }) },
      ingress: [{ name: 'deny-all', action: 'Deny', from: [{ namespaces: {} }] }],
      egress: [
        {
          name: 'no-alt-to-prod',
          action: 'Deny',
          to: [{ namespaces: sel({ env: 'prod' }) }],
          protocols: [tcp(8080)],
        },
      ],
    });
    await step(
      'CNP floor (Baseline, 10): Deny ingress into zone=untrusted, Deny egress to env=prod:8080',
      () => k(['apply', '-f', '-'], floor).then(() => undefined),
      [
        // other/probe is isolated by no NetworkPolicy: the Baseline tier decides.
        {
          cell: 'shop/web->other/probe:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/floor/deny-all' },
        },
        // Accepted by guard at ingress, denied at egress by the baseline.
        {
          cell: 'other/db->shop/web:8080',
          allowed: false,
          by: { side: 'egress', rule: 'ClusterNetworkPolicy/floor/no-alt-to-prod' },
        },
        // other/db is isolated by its NetworkPolicy: the Baseline tier is not reached.
        { cell: 'other/probe->other/db:80', allowed: true, holds: true },
        { cell: 'other/db->shop/web:80', allowed: true, holds: true },
      ],
    );
    await step(
      'BANP default: into env=prod Allow from app=web, Deny the rest',
      () =>
        k(
          ['apply', '-f', '-'],
          banp({
            subject: { namespaces: sel({ env: 'prod' }) },
            ingress: [
              {
                name: 'allow-web',
                action: 'Allow',
                from: [{ pods: { namespaceSelector: {}, podSelector: sel({ app: 'web' }) } }],
              },
              { name: 'deny-rest', action: 'Deny', from: [{ namespaces: {} }] },
            ],
          }),
        ).then(() => undefined),
      [
        {
          cell: 'shop/client->shop/web:80',
          allowed: false,
          by: { side: 'ingress', rule: 'BaselineAdminNetworkPolicy/default/deny-rest' },
        },
        {
          cell: 'shop/web->shop/client:80',
          allowed: true,
          holds: true,
          by: { side: 'ingress', rule: 'BaselineAdminNetworkPolicy/default/allow-web' },
        },
      ],
    );
    await step(
      'Namespace other labelled env=prod: now a subject of guard, anp-alt and default',
      () => k(['label', 'namespace', 'other', 'env=prod']).then(() => undefined),
      [
        {
          cell: 'other/db->other/probe:80',
          allowed: true,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/accept-db' },
        },
        {
          cell: 'other/probe->other/db:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/deny-untrusted' },
        },
        {
          cell: 'shop/web->other/db:8080',
          allowed: false,
          holds: true,
          by: { side: 'ingress', rule: 'AdminNetworkPolicy/anp-alt/deny-alt' },
        },
      ],
    );
    await step(
      'Namespace other loses zone=untrusted: no longer a peer of guard, nor a subject of floor',
      () => k(['label', 'namespace', 'other', 'zone-']).then(() => undefined),
      [
        // Past the admin tier to db's NetworkPolicy, which admits its own namespace.
        {
          cell: 'other/probe->other/db:80',
          allowed: true,
          by: { side: 'ingress', rule: 'NetworkPolicy (allowed-by-rule)' },
        },
        // Accepted by guard at ingress; db's egress no longer denied by floor.
        {
          cell: 'other/db->shop/web:8080',
          allowed: true,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/guard/accept-db' },
        },
        // Still dropped, now by the next policy in priority order.
        {
          cell: 'other/probe->shop/web:8080',
          allowed: false,
          holds: true,
          by: { side: 'ingress', rule: 'AdminNetworkPolicy/anp-alt/deny-alt' },
        },
      ],
    );
    await step(
      'ANP anp-alt deleted',
      () => k(['delete', 'adminnetworkpolicy', 'anp-alt']).then(() => undefined),
      [
        {
          cell: 'shop/web->shop/client:8080',
          allowed: true,
          by: { side: 'ingress', rule: 'BaselineAdminNetworkPolicy/default/allow-web' },
        },
      ],
    );
    await step(
      'CNPs guard and floor and BANP default deleted: NetworkPolicies only',
      async () => {
        await k(['delete', 'clusternetworkpolicy', 'guard', 'floor']);
        await k(['delete', 'baselineadminnetworkpolicy', 'default']);
      },
      [
        { cell: 'shop/client->shop/web:80', allowed: true },
        { cell: 'other/probe->shop/client:8080', allowed: true },
      ],
    );

    // The CNP CRD deleted under a live CNP: the agent drops the kind once discovery confirms it.
    const lockdown = cnp('lockdown', {
      tier: 'Admin',
      priority: 1,
      subject: { namespaces: {} },
      ingress: [{ name: 'deny-all', action: 'Deny', from: [{ namespaces: {} }] }],
    });
    await step(
      'CNP lockdown (Admin, 1): Deny all ingress',
      () => k(['apply', '-f', '-'], lockdown).then(() => undefined),
      [
        {
          cell: 'shop/client->shop/web:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/lockdown/deny-all' },
        },
      ],
    );
    await step(
      'CNP CRD deleted under lockdown: its objects gone',
      () => k(['delete', 'crd', CNP_CRD, '--wait=true']).then(() => undefined),
      [{ cell: 'shop/client->shop/web:80', allowed: true }],
    );

    // A CRD without validation stores a CNP the real CRD rejects (action Allow is not a CNP
    // action): enforced as its stand-in, the rule before the broken one kept, the broken one Deny all.
    await step(
      'CNP CRD without validation; invalid CNP broken (Accept from web, then action Allow)',
      async () => {
        await installCrds(
          cluster,
          [permissiveCnpCrd(crdFile(cnpCrds.standard, 'clusternetworkpolicies'))],
          [CNP_CRD],
        );
        await k(
          ['apply', '-f', '-'],
          cnp('broken', {
            tier: 'Admin',
            priority: 30,
            subject: { namespaces: {} },
            ingress: [
              {
                name: 'accept-web',
                action: 'Accept',
                from: [{ pods: { namespaceSelector: {}, podSelector: sel({ app: 'web' }) } }],
              },
              { name: 'typo', action: 'Allow', from: [{ namespaces: sel({ env: 'prod' }) }] },
            ],
          }),
        );
      },
      [
        {
          cell: 'shop/client->shop/web:80',
          allowed: false,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/broken/typo' },
        },
        {
          cell: 'shop/web->other/probe:8080',
          allowed: true,
          holds: true,
          by: { side: 'ingress', rule: 'ClusterNetworkPolicy/broken/accept-web' },
        },
      ],
      { standIns: ['ClusterNetworkPolicy broken'] },
    );
    await t.test('the invalid CNP is reported: a warning naming it and its field, the metric', async () => {
      const warned = a.lines
        .map((l) => {
          try {
            return JSON.parse(l) as { msg?: string; object?: string; problems?: string[] };
          } catch {
            return {};
          }
        })
        .filter((o) => o.msg?.startsWith('invalid ClusterNetworkPolicy: enforced fail-closed') === true);
      assert.deepEqual(
        warned.map((o) => ({ object: o.object, fields: (o.problems ?? []).map((p) => p.split(':')[0]) })),
        [{ object: 'broken', fields: ['spec.ingress[1].action'] }],
      );
      assert.match(await metrics(a), /^moat_invalid_objects\{kind="ClusterNetworkPolicy"\} 1$/m);
    });
    await step(
      'invalid CNP deleted, CRD deleted: open but for db-same-ns',
      async () => {
        await k(['delete', 'clusternetworkpolicy', 'broken']);
        await k(['delete', 'crd', CNP_CRD, '--wait=true']);
      },
      [{ cell: 'shop/client->shop/web:80', allowed: true }],
    );
    assert.match(
      await metrics(a),
      /^moat_invalid_objects\{kind="ClusterNetworkPolicy"\} 0$/m,
      'gone with it',
    );
    t.diagnostic(`${checks.count} checks, ${intentsChecked} intended flips/holds; whole test ${seconds(t0)}`);

    a.proc.kill('SIGTERM');
    assert.equal(await a.exited, 0);
    assert.deepEqual(await kernelDiff(lab, await apiSnapshot(cluster)), ['table inet moat: missing']);
  } finally {
    await killAgent(agent);
    await c?.stop();
    await lab.destroy();
  }
});
