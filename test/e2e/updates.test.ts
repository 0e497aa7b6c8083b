// Updates with traffic: a cluster is enforced, then changed (a pod relabelled out of a peer set, a
// namespace relabelled, a policy's port changed, a policy deleted) and each change is applied
// incrementally by the same DataplaneApplier, never rebuilt, and verified with real packets: every cell
// against the evaluator, the cells the change is about by name, and established flows that the
// change stops allowing are cut.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DataplaneApplier } from '../../src/dataplane/index.js';
import { labApplier } from '../../src/lab/enforce.js';
import type { Backend } from '../../src/dataplane/probe.js';
import { Lab } from '../../src/lab/lab.js';
import { cport, netpol, ns, pod, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import type { Labels, NetworkPolicy, Protocol, Snapshot } from '../../src/model/types.js';
import { podKey } from '../../src/model/types.js';
import { needsRoot, uniquePrefix } from './lab-util.js';
import { allCells, cellLabel, evaluateCell, flushConntrack, probeCells } from './probe-util.js';

const PROBES: readonly { port: number; protocol: Protocol }[] = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
];

interface Spec {
  nsLabels?: Record<string, Labels>;
  podLabels?: Record<string, Labels>;
  policies: NetworkPolicy[];
}

/** web and db in namespace a (team=blue), client in b (team=red); 80/TCP http, 81/TCP alt, 80/UDP dns. */
function cluster(s: Spec): Snapshot {
  const ports = [cport(80, 'TCP', 'http'), cport(81, 'TCP', 'alt'), cport(80, 'UDP', 'dns')];
  const labels = (key: string, app: string): Labels => s.podLabels?.[key] ?? { app };
  return snapshot({
    namespaces: [ns('a', s.nsLabels?.a ?? { team: 'blue' }), ns('b', s.nsLabels?.b ?? { team: 'red' })],
    pods: [
      pod('a', 'web', { labels: labels('a/web', 'web'), ports }),
      pod('a', 'db', { labels: labels('a/db', 'db'), ports }),
      pod('b', 'client', { labels: labels('b/client', 'client'), ports }),
    ],
    policies: s.policies,
  });
}

/** One lab, one applier: `apply` changes the cluster, `verify` checks every cell with packets. */
class Scenario {
  private applies = 0;
  private current: Snapshot | undefined;
  private constructor(
    readonly lab: Lab,
    readonly applier: DataplaneApplier,
    readonly backend: Backend,
  ) {}

  static async start(backend: Backend, first: Snapshot): Promise<Scenario> {
    const lab = await Lab.create(first, {
      prefix: uniquePrefix(),
      probeTimeoutMs: 1000,
      podCidrs: ['10.244.0.0/16', 'fd00:10:244::/64'],
    });
    return new Scenario(lab, labApplier(lab, undefined, 0, backend), backend);
  }

  /**
   * Applies the cluster: the first apply replaces the table, every later one must be an incremental
   * transaction (not a rebuild) that leaves exactly the compiled table in the kernel. The iptables
   * backend has no incremental mode: each change swaps the sets and rewrites moat's chains.
   */
  async apply(s: Snapshot, what: string): Promise<void> {
    const snap = (await this.lab.update(s)).snapshot;
    const r = await this.applier.apply(snap);
    assert.equal(r.mode, this.applies++ === 0 ? 'full' : 'incremental', `${what}: apply mode`);
    // conntrack(8) may race with expiring entries ("such conntrack doesn't exist"); see the report.
    const ct = r.conntrackErrors.filter((e) => !/such conntrack doesn't exist/.test(e));
    assert.deepEqual(ct, [], `${what}: conntrack cleanup`);
    assert.deepEqual((await this.applier.checkDrift()).differences, [], `${what}: kernel table`);
    this.current = snap;
  }

  /** Probes every cell (new flows) against the evaluator; returns verdicts by cellLabel. */
  async verify(what: string): Promise<Map<string, boolean>> {
    const snap = this.current!;
    // Conntrack from earlier steps must not decide new probes (established flows are checked
    // with open connections, before this).
    await flushConntrack(this.lab);
    const cells = allCells(snap.pods.map(podKey).sort(), PROBES, [4, 6]);
    const want = new Map(cells.map((c) => [c, evaluateCell(snap, c)]));
    const obs = await probeCells(this.lab, cells, { shouldPass: (c) => want.get(c) === true });
    const wrong = obs
      .filter((o) => o.allowed !== want.get(o.cell))
      .map((o) => `${cellLabel(o.cell)}: lab ${o.allowed ? 'allowed' : 'denied'} (${o.detail})`);
    assert.deepEqual(wrong, [], `${what}: lab vs evaluator`);
    return new Map(obs.map((o) => [cellLabel(o.cell), o.allowed]));
  }

  async step(s: Snapshot, what: string): Promise<Map<string, boolean>> {
    await this.apply(s, what);
    return this.verify(what);
  }

  destroy(): Promise<void> {
    return this.lab.destroy();
  }
}

/** The verdict of a cell in both families (they must agree for these selector-only policies). */
function reach(
  m: Map<string, boolean>,
  from: string,
  to: string,
  port = 80,
  protocol: Protocol = 'TCP',
): boolean {
  const v4 = m.get(`${protocol}/${port} IPv4 ${from} -> ${to}`);
  const v6 = m.get(`${protocol}/${port} IPv6 ${from} -> ${to}`);
  assert.equal(v4, v6, `${protocol}/${port} ${from} -> ${to}: IPv4 and IPv6 differ`);
  assert.notEqual(v4, undefined, `${protocol}/${port} ${from} -> ${to} was probed`);
  return v4!;
}

for (const backend of ['nftables', 'iptables'] as const) {
  test(
    `update: a pod relabelled out of a peer set loses access, one relabelled in gains it (${backend})`,
    { skip: needsRoot },
    async () => {
      const policy = netpol('a', 'web', {
        podSelector: sel({ app: 'web' }),
        ingress: [rule([podPeer(sel({ app: 'client' }), sel())], [pport(80)])],
      });
      const sc = await Scenario.start(backend, cluster({ policies: [policy] }));
      try {
        let m = await sc.step(cluster({ policies: [policy] }), 'initial');
        assert.equal(reach(m, 'b/client', 'a/web'), true);
        assert.equal(reach(m, 'a/db', 'a/web'), false);
        assert.equal(reach(m, 'b/client', 'a/web', 81), false, 'only port 80 is allowed');

        const conn = await sc.lab.connect('b/client', 'a/web', 80);
        assert.ok(conn, 'client opens a connection to web:80');
        try {
          assert.equal(await conn.send(), true);
          await sc.apply(
            cluster({
              podLabels: { 'b/client': { app: 'other' }, 'a/db': { app: 'client' } },
              policies: [policy],
            }),
            'relabelled',
          );
          assert.equal(await conn.send(1500), false, "the relabelled client's established connection is cut");
        } finally {
          await conn.close();
        }
        m = await sc.verify('relabelled');
        assert.equal(reach(m, 'b/client', 'a/web'), false, 'client left the peer set');
        assert.equal(reach(m, 'a/db', 'a/web'), true, 'db (now app=client) joined it');
      } finally {
        await sc.destroy();
      }
    },
  );

  test(
    `update: relabelling a namespace moves its pods in and out of a namespaceSelector (${backend})`,
    { skip: needsRoot },
    async () => {
      const policy = netpol('a', 'web', {
        podSelector: sel({ app: 'web' }),
        ingress: [rule([podPeer(undefined, sel({ team: 'red' }))])],
      });
      const sc = await Scenario.start(backend, cluster({ policies: [policy] }));
      try {
        let m = await sc.step(cluster({ policies: [policy] }), 'initial');
        assert.equal(reach(m, 'b/client', 'a/web'), true, 'b is team=red');
        assert.equal(reach(m, 'b/client', 'a/web', 80, 'UDP'), true, 'all ports');
        assert.equal(reach(m, 'a/db', 'a/web'), false, 'a is team=blue');

        m = await sc.step(
          cluster({ nsLabels: { a: { team: 'red' }, b: { team: 'green' } }, policies: [policy] }),
          'namespaces relabelled',
        );
        assert.equal(reach(m, 'b/client', 'a/web'), false, 'b left team=red');
        assert.equal(reach(m, 'a/db', 'a/web'), true, 'a joined team=red');
        assert.equal(reach(m, 'a/web', 'b/client'), true, 'egress is not isolated');
      } finally {
        await sc.destroy();
      }
    },
  );

  test(
    `update: changing a policy's port moves what is allowed (${backend})`,
    { skip: needsRoot },
    async () => {
      const on = (...ports: ReturnType<typeof pport>[]) =>
        netpol('a', 'web', {
          podSelector: sel({ app: 'web' }),
          ingress: [rule([podPeer(sel(), sel({ team: 'red' }))], ports)],
        });
      const sc = await Scenario.start(backend, cluster({ policies: [on(pport(80))] }));
      try {
        let m = await sc.step(cluster({ policies: [on(pport(80))] }), 'port 80');
        assert.deepEqual(
          [
            reach(m, 'b/client', 'a/web', 80),
            reach(m, 'b/client', 'a/web', 81),
            reach(m, 'b/client', 'a/web', 80, 'UDP'),
          ],
          [true, false, false],
        );
        m = await sc.step(cluster({ policies: [on(pport(81))] }), 'port 81');
        assert.deepEqual(
          [
            reach(m, 'b/client', 'a/web', 80),
            reach(m, 'b/client', 'a/web', 81),
            reach(m, 'b/client', 'a/web', 80, 'UDP'),
          ],
          [false, true, false],
        );
        m = await sc.step(cluster({ policies: [on(pport('dns', 'UDP'))] }), 'named port dns/UDP');
        assert.deepEqual(
          [
            reach(m, 'b/client', 'a/web', 80),
            reach(m, 'b/client', 'a/web', 81),
            reach(m, 'b/client', 'a/web', 80, 'UDP'),
          ],
          [false, false, true],
        );
        m = await sc.step(cluster({ policies: [on(pport(80, 'TCP', 81))] }), 'range 80-81/TCP');
        assert.deepEqual(
          [
            reach(m, 'b/client', 'a/web', 80),
            reach(m, 'b/client', 'a/web', 81),
            reach(m, 'b/client', 'a/web', 80, 'UDP'),
          ],
          [true, true, false],
        );
      } finally {
        await sc.destroy();
      }
    },
  );

  test(`update: deleting policies one by one (${backend})`, { skip: needsRoot }, async () => {
    const fromClient = netpol('a', 'web-from-client', {
      podSelector: sel({ app: 'web' }),
      ingress: [rule([podPeer(sel({ app: 'client' }), sel())], [pport(80)])],
    });
    const fromDb = netpol('a', 'web-from-db', {
      podSelector: sel({ app: 'web' }),
      ingress: [rule([podPeer(sel({ app: 'db' }))], [pport(80)])],
    });
    const clientEgress = netpol('b', 'client-egress', {
      podSelector: sel({ app: 'client' }),
      policyTypes: ['Egress'],
      egress: [rule([podPeer(sel({ app: 'web' }), sel({ team: 'blue' }))])],
    });
    const sc = await Scenario.start(backend, cluster({ policies: [fromClient, fromDb, clientEgress] }));
    try {
      let m = await sc.step(cluster({ policies: [fromClient, fromDb, clientEgress] }), 'three policies');
      assert.equal(reach(m, 'b/client', 'a/web'), true);
      assert.equal(reach(m, 'a/db', 'a/web'), true);
      assert.equal(reach(m, 'b/client', 'a/db'), false, 'client egress only to web');

      const conn = await sc.lab.connect('b/client', 'a/web', 80);
      assert.ok(conn);
      try {
        assert.equal(await conn.send(), true);
        await sc.apply(cluster({ policies: [fromDb, clientEgress] }), 'web-from-client deleted');
        assert.equal(await conn.send(1500), false, 'deleting the allowing policy cuts the connection');
      } finally {
        await conn.close();
      }
      m = await sc.verify('web-from-client deleted');
      assert.equal(reach(m, 'b/client', 'a/web'), false);
      assert.equal(reach(m, 'a/db', 'a/web'), true);

      m = await sc.step(cluster({ policies: [fromDb] }), 'client-egress deleted');
      assert.equal(reach(m, 'b/client', 'a/db'), true, 'client egress open again');
      assert.equal(reach(m, 'b/client', 'a/web'), false, 'web still isolated');

      m = await sc.step(cluster({ policies: [] }), 'all deleted');
      assert.equal(reach(m, 'b/client', 'a/web', 81), true, 'web open again');
    } finally {
      await sc.destroy();
    }
  });
}
