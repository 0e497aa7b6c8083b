// Two lab nodes, one agent each: a cross-node flow is checked at egress by the source node's agent
// and at ingress by the destination node's agent. What the kernels let through must still be what
// the (node-agnostic) evaluator says, and each side must be enforced by its own node only.
import type { Backend } from '../../src/dataplane/probe.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeMatrix, matrixToJson } from '../../src/analysis/matrix.js';
import { compareMatrices, formatDisagreement } from '../../src/lab/compare.js';
import { LabAgents, staticSource } from '../../src/lab/enforce.js';
import { run } from '../../src/lab/exec.js';
import { cleanupLabs, Lab, listLabNetns } from '../../src/lab/lab.js';
import { LAB_NETWORKS, type LabNetwork } from '../../src/lab/plan.js';
import { cport, netpol, ns, pod, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import type { NetworkPolicy, Protocol, Snapshot } from '../../src/model/types.js';
import { needsRoot, uniquePrefix } from './lab-util.js';

const N1 = 'moat-lab';
const N2 = 'moat-lab-2';
const ports = [cport(80, 'TCP', 'http'), cport(80, 'UDP', 'dns')];
const app = (name: string) => ({ app: name });

/**
 * Five pods, placed by each of the plan's rules: client by spec.nodeName (node 1), server by
 * spec.nodeName (node 2), db by its status.podIP in node 2's slice, web and stray round robin
 * (both to node 1, the emptier); stray's manifest address is outside every slice.
 */
function cluster(policies: NetworkPolicy[] = []): Snapshot {
  return snapshot({
    namespaces: [ns('a'), ns('b')],
    pods: [
      pod('a', 'client', { labels: app('client'), ports, nodeName: N1 }),
      pod('a', 'web', { labels: app('web'), ports }),
      pod('b', 'server', { labels: app('server'), ports, nodeName: N2 }),
      pod('b', 'db', { labels: app('db'), ports, ips: ['10.244.1.50'] }),
      pod('b', 'stray', { labels: app('stray'), ports, ips: ['10.99.0.7'] }),
    ],
    policies,
  });
}

const PLACEMENT: Record<string, string> = {
  'a/client': N1,
  'a/web': N1,
  'b/stray': N1,
  'b/server': N2,
  'b/db': N2,
};

/** Egress-only on a node-1 pod: client may reach only server, only on TCP/80. */
const CLIENT_EGRESS = netpol('a', 'client-egress', {
  podSelector: sel(app('client')),
  egress: [rule([podPeer(sel(app('server')), sel())], [pport(80)])],
  policyTypes: ['Egress'],
});

/** Ingress-only on a node-2 pod: db admits only web. */
const DB_INGRESS = netpol('b', 'db-ingress', {
  podSelector: sel(app('db')),
  ingress: [rule([podPeer(sel(app('web')), sel({ 'kubernetes.io/metadata.name': 'a' }))])],
});

/** Both directions on a node-2 pod: server admits client on TCP/80 and may send nothing. */
const SERVER_BOTH = netpol('b', 'server-both', {
  podSelector: sel(app('server')),
  ingress: [rule([podPeer(sel(app('client')), sel())], [pport(80)])],
  policyTypes: ['Ingress', 'Egress'],
});

interface Cell {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly allowed: boolean;
}

const CASES: { name: string; policies: NetworkPolicy[]; cells: Cell[] }[] = [
  {
    name: 'no policy: every cross-node pair connects',
    policies: [],
    cells: [
      { from: 'a/client', to: 'b/db', protocol: 'TCP', allowed: true },
      { from: 'b/server', to: 'b/stray', protocol: 'UDP', allowed: true },
      { from: 'b/stray', to: 'b/db', protocol: 'TCP', allowed: true },
    ],
  },
  {
    name: 'egress-only on node 1 towards node 2',
    policies: [CLIENT_EGRESS],
    cells: [
      { from: 'a/client', to: 'b/server', protocol: 'TCP', allowed: true },
      { from: 'a/client', to: 'b/server', protocol: 'UDP', allowed: false },
      { from: 'a/client', to: 'b/db', protocol: 'TCP', allowed: false },
      { from: 'a/client', to: 'a/web', protocol: 'TCP', allowed: false },
      { from: 'b/db', to: 'a/client', protocol: 'TCP', allowed: true },
    ],
  },
  {
    name: 'ingress-only on node 2',
    policies: [DB_INGRESS],
    cells: [
      { from: 'a/web', to: 'b/db', protocol: 'TCP', allowed: true },
      { from: 'a/web', to: 'b/db', protocol: 'UDP', allowed: true },
      { from: 'a/client', to: 'b/db', protocol: 'TCP', allowed: false },
      { from: 'b/stray', to: 'b/db', protocol: 'TCP', allowed: false },
      { from: 'b/server', to: 'b/db', protocol: 'TCP', allowed: false },
    ],
  },
  {
    name: 'egress and ingress together',
    policies: [CLIENT_EGRESS, DB_INGRESS, SERVER_BOTH],
    cells: [
      { from: 'a/client', to: 'b/server', protocol: 'TCP', allowed: true },
      { from: 'a/web', to: 'b/server', protocol: 'TCP', allowed: false },
      { from: 'b/server', to: 'a/client', protocol: 'TCP', allowed: false },
      { from: 'b/server', to: 'b/db', protocol: 'TCP', allowed: false },
      { from: 'a/web', to: 'b/db', protocol: 'TCP', allowed: true },
    ],
  },
];

async function withTwoNodes(
  policies: NetworkPolicy[],
  body: (lab: Lab, agents: LabAgents) => Promise<void>,
  network: LabNetwork = 'routed',
  backend: Backend = 'nftables',
): Promise<void> {
  const lab = await Lab.create(cluster(policies), {
    prefix: uniquePrefix(),
    nodes: 2,
    probeTimeoutMs: 700,
    network,
  });
  const errors: string[] = [];
  const agents = new LabAgents(lab, {
    coalesceMs: 0,
    backend,
    onError: (node, e, phase) => errors.push(`${node ?? 'lab'} ${phase}: ${String(e)}`),
  });
  try {
    await agents.start(staticSource(cluster(policies)));
    await agents.idle();
    await body(lab, agents);
    assert.deepEqual(errors, []);
  } finally {
    await agents.stop();
    await lab.destroy();
  }
}

const MULTI_RUNS = [
  ...LAB_NETWORKS.map((network) => ({ network, backend: 'nftables' as const })),
  { network: 'routed' as const, backend: 'iptables' as const },
];

for (const { network, backend } of MULTI_RUNS)
  test(
    `lab, 2 nodes (${network}${backend === 'iptables' ? ', iptables' : ''}): placement, and every cell equals the evaluator for cross-node policies`,
    { skip: needsRoot },
    async () => {
      await withTwoNodes(
        [],
        async (lab, agents) => {
          assert.deepEqual(
            lab.nodes.map((n) => n.name),
            [N1, N2],
          );
          assert.deepEqual(
            lab.plan.nodes.map((n) => n.podCIDRs),
            [['10.244.0.0/24'], ['10.244.1.0/24']],
          );
          // Every Node object is in the snapshot, and every pod runs on the node the rules pick.
          assert.deepEqual(
            lab.snapshot.nodes.map((n) => n.name),
            [N1, N2],
          );
          for (const p of lab.snapshot.pods) {
            const key = `${p.namespace}/${p.name}`;
            assert.equal(p.nodeName, PLACEMENT[key], `${key} placed`);
            assert.equal(lab.podNode(key)?.name, p.nodeName);
          }
          assert.deepEqual(lab.snapshot.pods.find((p) => p.name === 'db')?.ips, ['10.244.1.50']);
          // Each agent enforces for its own node, in its own namespace.
          assert.deepEqual(
            agents.agents.map((a) => [a.node, a.netns]),
            lab.nodes.map((n) => [n.name, n.netns]),
          );

          for (const c of CASES) {
            agents.submit(cluster(c.policies));
            await agents.idle();
            const observed = await lab.probeMatrix();
            const expected = matrixToJson(computeMatrix(lab.snapshot));
            const cmp = compareMatrices(observed.json, expected);
            assert.deepEqual(cmp.disagreements.map(formatDisagreement), [], c.name);
            assert.equal(cmp.cells, 50, `${c.name}: 5 x 5 pods x TCP, UDP`);
            for (const cell of c.cells) {
              const probe = observed.json.probes.find((p) => p.protocol === cell.protocol && p.port === 80);
              assert.equal(
                probe?.allowed[cell.from]?.[cell.to],
                cell.allowed,
                `${c.name}: ${cell.protocol} ${cell.from} -> ${cell.to}`,
              );
            }
          }
        },
        network,
        backend,
      );
    },
  );

test(
  'lab, 2 nodes: egress is enforced by the source node only, ingress by the destination node only',
  { skip: needsRoot },
  async () => {
    await withTwoNodes([CLIENT_EGRESS, DB_INGRESS], async (lab, agents) => {
      const [n1, n2] = lab.nodes;
      assert.ok(n1 && n2);
      // client -> server UDP: denied only by client's egress (node 1); server is not isolated.
      // stray -> db TCP: denied only by db's ingress (node 2); stray is not isolated.
      const egressDenied = async () => (await lab.probe('a/client', 'b/server', 80, 'UDP')).allowed;
      const ingressDenied = async () => (await lab.probe('b/stray', 'b/db', 80, 'TCP')).allowed;
      assert.equal(await egressDenied(), false);
      assert.equal(await ingressDenied(), false);

      // Node 2's table flushed: node 1's egress denial holds; db's ingress is nobody's business
      // on node 1 (daddr is remote there), so that denial is gone.
      await run(['ip', 'netns', 'exec', n2.netns, 'nft', 'flush', 'table', 'inet', 'moat']);
      assert.equal(await egressDenied(), false, 'egress denial of node 1 holds');
      assert.equal(await ingressDenied(), true, 'ingress denial of node 2 is gone');
      const [d1, d2] = await agents.checkDrift();
      assert.equal(d1?.drifted, false, 'node 1 did not drift');
      assert.equal(d2?.repaired, true, 'node 2 repaired by its own agent');
      assert.equal(await ingressDenied(), false, 'drift check restored the ingress denial');

      // Node 1's table deleted: node 2's egress chain does not take the forwarded packet (saddr is
      // remote) for egress of a local pod, so client's egress denial is gone; db's ingress holds.
      await run(['ip', 'netns', 'exec', n1.netns, 'nft', 'delete', 'table', 'inet', 'moat']);
      assert.equal(await egressDenied(), true, 'egress denial of node 1 is gone');
      assert.equal(await ingressDenied(), false, 'ingress denial of node 2 holds');
      const [e1, e2] = await agents.checkDrift();
      assert.equal(e1?.repaired, true, 'node 1 repaired by its own agent');
      assert.equal(e2?.drifted, false, 'node 2 did not drift');
      assert.equal(await egressDenied(), false, 'drift check restored the egress denial');
    });
  },
);

test(
  'lab, 3 nodes: a bridge joins them, and `lab down` removes every namespace',
  { skip: needsRoot },
  async () => {
    const prefix = uniquePrefix();
    const lab = await Lab.create(cluster([DB_INGRESS]), { prefix, nodes: 3, probeTimeoutMs: 700 });
    try {
      const agents = new LabAgents(lab, { coalesceMs: 0 });
      await agents.start(staticSource(cluster([DB_INGRESS])));
      await agents.idle();
      await agents.stop();
      // Round robin now also fills node 3.
      assert.deepEqual([...new Set(lab.snapshot.pods.map((p) => p.nodeName))].sort(), [N1, N2, 'moat-lab-3']);
      const observed = await lab.probeMatrix();
      const cmp = compareMatrices(observed.json, matrixToJson(computeMatrix(lab.snapshot)));
      assert.deepEqual(cmp.disagreements.map(formatDisagreement), []);
      assert.ok(observed.outcomes.some((o) => o.allowed === false));
      // 5 pods, 3 nodes and the fabric; a crashed lab is cleaned up by `moat lab down`.
      assert.equal((await listLabNetns(prefix)).length, 9);
      const r = await cleanupLabs(prefix);
      assert.equal(r.netns.length, 9);
      assert.deepEqual(await listLabNetns(prefix), []);
    } finally {
      await lab.destroy();
    }
  },
);

test(
  'lab, 2 nodes, dual stack: IPv6 is routed between the nodes and enforced',
  { skip: needsRoot },
  async () => {
    const s = (policies: NetworkPolicy[]) =>
      snapshot({
        namespaces: [ns('a')],
        pods: [
          pod('a', 'client', { labels: app('client'), ports, nodeName: N1 }),
          pod('a', 'other', { labels: app('other'), ports, nodeName: N1 }),
          pod('a', 'server', { labels: app('server'), ports, nodeName: N2 }),
        ],
        policies,
      });
    const onlyClient = netpol('a', 'server', {
      podSelector: sel(app('server')),
      ingress: [rule([podPeer(sel(app('client')))], [pport(80)])],
    });
    const lab = await Lab.create(s([onlyClient]), {
      prefix: uniquePrefix(),
      nodes: 2,
      podCidrs: ['10.244.0.0/16', 'fd00:244::/64'],
      probeTimeoutMs: 700,
    });
    const agents = new LabAgents(lab, { coalesceMs: 0 });
    try {
      await agents.start(staticSource(s([onlyClient])));
      await agents.idle();
      assert.deepEqual(
        lab.plan.nodes.map((n) => n.podCIDRs),
        [
          ['10.244.0.0/24', 'fd00:244::/112'],
          ['10.244.1.0/24', 'fd00:244::1:0/112'],
        ],
      );
      const v6 = async (from: string, protocol: Protocol) =>
        (await lab.probe(from, 'a/server', 80, protocol, { family: 6 })).allowed;
      assert.equal(await v6('a/client', 'TCP'), true);
      assert.equal(await v6('a/client', 'UDP'), false);
      assert.equal(await v6('a/other', 'TCP'), false);
      // ...and the server answers over IPv6 across the nodes (not isolated for egress).
      assert.equal((await lab.probe('a/server', 'a/other', 80, 'UDP', { family: 6 })).allowed, true);
      const observed = await lab.probeMatrix();
      const cmp = compareMatrices(observed.json, matrixToJson(computeMatrix(lab.snapshot)));
      assert.deepEqual(cmp.disagreements.map(formatDisagreement), []);
    } finally {
      await agents.stop();
      await lab.destroy();
    }
  },
);
