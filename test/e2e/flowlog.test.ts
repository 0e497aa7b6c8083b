// Flow logs with real packets: random clusters in a lab, every probe's records (read from NFLOG in
// the node namespace, through the agent's own reader and logger) must name what the evaluator's
// trace says decided each side; a flood above the rate limit is limited and counted while allowed
// traffic keeps flowing; audit mode accepts and says so.
//
// Replay: MOAT_FLOW_SEED=<seed> MOAT_FLOW_ROUNDS=<n> node --test dist/test/e2e/flowlog.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moat, repoRoot } from '../support/cli.js';
import { DataplaneApplier, netnsRunner } from '../../src/dataplane/index.js';
import type { FlowLogOptions } from '../../src/dataplane/model.js';
import { readNftCounters } from '../../src/agent/metrics.js';
import { NetnsNflogReader } from '../../src/flowlog/nflog-netns.js';
import type { FlowRecord } from '../../src/flowlog/record.js';
import { FlowService } from '../../src/flowlog/service.js';
import { run } from '../../src/lab/exec.js';
import { Lab } from '../../src/lab/lab.js';
import { LAB_POD_INTERFACES } from '../../src/lab/plan.js';
import { netpol, ns, pod, pport, rule, sel, snapshot as snap0 } from '../../src/model/build.js';
import { loadPaths, loadText } from '../../src/model/load.js';
import type { Snapshot } from '../../src/model/types.js';
import { podKey } from '../../src/model/types.js';
import { evaluate, type SideVerdict } from '../../src/policy/evaluate.js';
import { needsRoot, uniquePrefix } from './lab-util.js';
import { allCells, cellLabel, evaluateCell, flushConntrack, probeCells, type Cell } from './probe-util.js';
import { generateRound, POD_CIDRS, PORTS, Rng } from './random-cluster.js';

const GROUP = 3478;

function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : Number(v);
}

/** One lab node enforced by an DataplaneApplier with flow logs, and the agent's reader and logger. */
async function flowNode(lab: Lab, flowLog: FlowLogOptions, audit = false) {
  const n = lab.nodes[0]!;
  const applier = new DataplaneApplier(netnsRunner(n.netns), {
    table: 'moat',
    nodeName: n.name,
    podInterfaces: LAB_POD_INTERFACES,
    flowLog,
    ...(audit ? { audit } : {}),
  });
  const records: FlowRecord[] = [];
  const flows = new FlowService({ node: n.name, sinks: [(r) => records.push(r)] });
  await flows.start(() => NetnsNflogReader.open({ netns: n.netns, group: flowLog.group }));
  return {
    applier,
    records,
    flows,
    async apply(s: Snapshot) {
      const r = await applier.apply(s);
      flows.setGeneration(applier.kernelView!, s);
      return r;
    },
    /** Waits until the reader has delivered what the kernel logged (records stop arriving). */
    async settle() {
      let last = -1;
      while (last !== records.length) {
        last = records.length;
        await new Promise((r) => setTimeout(r, 150));
      }
      flows.logger.flush();
    },
  };
}

function ipOf(s: Snapshot, key: string, family: 4 | 6): string {
  const p = s.pods.find((x) => podKey(x) === key)!;
  return p.ips.find((ip) => (family === 4 ? !ip.includes(':') : ip.includes(':')))!;
}

/** What a side's records must say, given the evaluator's verdict for that side. */
function checkSide(what: string, side: SideVerdict, recs: readonly FlowRecord[]): string | undefined {
  const say = `${what} ${side.direction}: evaluator ${side.reason}; records ${JSON.stringify(
    recs.map((r) => ({ verdict: r.verdict, reason: r.reason, policies: r.policies })),
  )}`;
  const bad = (cond: boolean) => (cond ? undefined : say);
  if (side.reason === 'self' || side.reason === 'not-a-subject' || side.reason === 'address-conflict')
    return bad(recs.length === 0);
  if (recs.length === 0) return say;
  for (const r of recs) {
    const deciding = r.policies.filter((h) => h.action !== 'pass');
    let ok: boolean;
    switch (side.reason) {
      case 'node':
        ok = r.reason === 'own-node';
        break;
      case 'not-isolated':
        ok = r.verdict === 'allowed' && r.reason === 'not-isolated';
        break;
      case 'allowed-by-rule':
        ok =
          r.verdict === 'allowed' &&
          r.reason === 'rule-matched' &&
          side.matches.some(
            (m) =>
              m.policy.namespace === deciding[0]?.namespace &&
              m.policy.name === deciding[0].name &&
              m.rule === deciding[0].rule,
          );
        break;
      case 'no-rule-matched':
        ok =
          r.verdict === 'denied' &&
          r.reason === 'no-rule-matched' &&
          deciding
            .map((h) => `${h.namespace}/${h.name}`)
            .sort()
            .join() ===
            side.isolatedBy
              .map((p) => `${p.namespace}/${p.name}`)
              .sort()
              .join();
        break;
      default: {
        const a = side.tiers.find(
          (t) => t.admin !== undefined && t.answer !== 'Pass' && t.answer !== 'None',
        )?.admin;
        ok =
          r.reason === side.reason.replace('allow', 'accept') &&
          a !== undefined &&
          deciding[0]?.kind === a.kind &&
          deciding[0].name === a.name &&
          deciding[0].rule === a.rule;
      }
    }
    if (!ok) return say;
  }
  return undefined;
}

test(
  'flow logs: random clusters, every probe record names what the evaluator says decided',
  { skip: needsRoot },
  async (t) => {
    const seed = envInt('MOAT_FLOW_SEED', (Date.now() ^ (process.pid << 8)) >>> 0);
    const rounds = envInt('MOAT_FLOW_ROUNDS', 3);
    t.diagnostic(
      `seed ${seed}, ${rounds} rounds (replay with MOAT_FLOW_SEED=${seed} MOAT_FLOW_ROUNDS=${rounds})`,
    );
    const rng = new Rng(seed);
    let lab: Lab | undefined;
    let node: Awaited<ReturnType<typeof flowNode>> | undefined;
    try {
      for (let round = 0; round < rounds; round++) {
        const gen = generateRound(rng, true);
        const loaded = loadText(gen.yaml, `flowlog-seed-${seed}-round-${round}.yaml`);
        assert.deepEqual(loaded.problems, []);
        lab ??= await Lab.create(loaded.snapshot, {
          prefix: uniquePrefix(),
          probeTimeoutMs: 800,
          podCidrs: POD_CIDRS,
        });
        node ??= await flowNode(lab, { mode: 'all', group: GROUP, rate: 1_000_000, burst: 1_000_000 });
        const s = (await lab.update(loaded.snapshot)).snapshot;
        await node.apply(s);
        await flushConntrack(lab);
        await node.settle();
        node.records.length = 0;
        const pods = s.pods.map(podKey).sort();
        // TCP and UDP on two ports, both families: enough cells to meet every kind of decision.
        const probes = PORTS.slice(0, 2).flatMap((port) =>
          (['TCP', 'UDP'] as const).map((protocol) => ({ port, protocol })),
        );
        const cells = allCells(pods, probes, [4, 6]);
        const obs = await probeCells(lab, cells, { concurrency: 64, shouldPass: (c) => evaluateCell(s, c) });
        await node.settle();
        const byKey = new Map<string, FlowRecord[]>();
        for (const r of node.records) {
          const k = `${r.protocol} ${r.src.ip} ${r.dst.ip} ${r.dst.port ?? ''}`;
          byKey.set(k, [...(byKey.get(k) ?? []), r]);
        }
        const problems: string[] = [];
        let checked = 0;
        for (const o of obs) {
          const c: Cell = o.cell;
          const sip = ipOf(s, c.from, c.family);
          const dip = ipOf(s, c.to, c.family);
          if (sip === dip && c.from !== c.to) continue;
          const recs = byKey.get(`${c.protocol} ${sip} ${dip} ${c.port}`) ?? [];
          const src = s.pods.find((p) => podKey(p) === c.from)!;
          const dst = s.pods.find((p) => podKey(p) === c.to)!;
          const v = evaluate(s, {
            src: { kind: 'pod', pod: src },
            dst: { kind: 'pod', pod: dst },
            port: c.port,
            protocol: c.protocol,
            family: c.family,
          });
          const e = checkSide(
            cellLabel(c),
            v.egress,
            recs.filter((r) => r.direction === 'egress'),
          );
          if (e !== undefined) problems.push(e);
          // The kernel judges ingress only when egress let the packet through.
          if (v.egress.allowed) {
            const i = checkSide(
              cellLabel(c),
              v.ingress,
              recs.filter((r) => r.direction === 'ingress'),
            );
            if (i !== undefined) problems.push(i);
          }
          checked++;
        }
        const st = node.flows.readerStats();
        t.diagnostic(
          `round ${round}: ${pods.length} pods, ${s.policies.length} policies, ${s.adminPolicies?.length ?? 0} admin; ` +
            `${checked} cells, ${node.records.length} records; reader ${JSON.stringify(st)}; ${problems.length} problems`,
        );
        assert.equal(st?.lost, 0, 'no socket overruns');
        assert.deepEqual(problems.slice(0, 20), [], `seed ${seed} round ${round}:\n${gen.yaml}`);
      }
    } finally {
      await node?.flows.close();
      await lab?.destroy();
    }
  },
);

test(
  'flow logs: a flood above the rate limit is limited and counted; allowed traffic keeps flowing',
  { skip: needsRoot },
  async () => {
    const s = snap0({
      namespaces: [ns('a')],
      pods: [
        pod('a', 'client', { labels: { app: 'client' }, ports: [] }),
        pod('a', 'server', {
          labels: { app: 'server' },
          ports: [
            { containerPort: 80, protocol: 'TCP' },
            { containerPort: 81, protocol: 'UDP' },
          ],
        }),
      ],
      policies: [
        netpol('a', 'web-only', {
          podSelector: sel({ app: 'server' }),
          ingress: [rule(undefined, [pport(80)])],
        }),
      ],
    });
    const lab = await Lab.create(s, { prefix: uniquePrefix(), probeTimeoutMs: 1000 });
    const node = await flowNode(lab, { mode: 'policy', group: GROUP + 1, rate: 5, burst: 10 });
    try {
      const snap = lab.snapshot;
      await node.apply(snap);
      const server = snap.pods.find((p) => p.name === 'server')!.ips[0]!;
      // 300 new UDP flows (distinct source ports), all denied, as fast as the pod can send them,
      // while a TCP connection the policy allows is tried in the middle of it.
      const script =
        "const d=require('node:dgram');let n=0;for(let i=0;i<300;i++){const s=d.createSocket('udp4');" +
        `s.send('x',81,'${server}',()=>{s.close();if(++n===300)process.exit(0)})}`;
      const before = await lab.probe('a/client', 'a/server', 80, 'TCP');
      assert.equal(before.allowed, true, before.detail);
      await node.settle();
      assert.ok(
        node.records.some(
          (r) => r.verdict === 'allowed' && r.dst.port === 80 && r.policies[0]?.name === 'web-only',
        ),
        `the allowed connection has its record: ${JSON.stringify(node.records)}`,
      );
      const flood = run(['ip', 'netns', 'exec', lab.podNetns('a/client')!, process.execPath, '-e', script]);
      const during = await lab.probe('a/client', 'a/server', 80, 'TCP');
      await flood;
      assert.equal(during.allowed, true, `allowed TCP during the flood: ${during.detail}`);
      await node.settle();
      const values = await readNftCounters(netnsRunner(lab.nodeNetns), 'moat');
      const suppressed = values.get('flowlog_suppressed')?.packets ?? 0;
      const count = (prefix: string) =>
        [...values].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v.packets, 0);
      const drops = count('d_');
      const decisions = drops + count('a_');
      const denied = node.records.filter((r) => r.verdict === 'denied').length;
      assert.ok(drops >= 250, `drops counted: ${drops}`);
      // Burst 10 plus 5/s for the few seconds of the flood: far below 300, and nothing goes missing.
      // The allowed connections' records take from the same bucket, which may not be full again.
      assert.ok(denied >= 5 && denied <= 60, `records: ${denied}`);
      assert.equal(
        node.records.length + suppressed,
        decisions,
        'records + suppressed = decisions the kernel counted',
      );
      assert.equal(node.flows.readerStats()?.lost, 0);
    } finally {
      await node.flows.close();
      await lab.destroy();
    }
  },
);

test(
  'lab probe --flow-log: every record of the admin-tier example agrees with the evaluator',
  { skip: needsRoot },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moat-flows-'));
    const file = join(dir, 'flows.ndjson');
    try {
      const r = moat([
        'lab',
        'probe',
        '-f',
        join(repoRoot(), 'examples/tenants'),
        '-o',
        'json',
        '--flow-log',
        file,
        '--flow-log-mode',
        'all',
        '--prefix',
        uniquePrefix(),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const snap = (await loadPaths([join(repoRoot(), 'examples/tenants')])).snapshot;
      const records = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as FlowRecord);
      assert.ok(records.length > 50, `${records.length} records`);
      const byName = (e: FlowRecord['src']) =>
        snap.pods.find((p) => p.namespace === e.namespace && p.name === e.pod);
      const problems: string[] = [];
      for (const rec of records) {
        const src = byName(rec.src);
        const dst = byName(rec.dst);
        if (src === undefined || dst === undefined || rec.dst.port === undefined) continue;
        const v = evaluate(snap, {
          src: { kind: 'pod', pod: src },
          dst: { kind: 'pod', pod: dst },
          port: rec.dst.port,
          protocol: rec.protocol as 'TCP',
          family: rec.family === 'ipv4' ? 4 : 6,
        });
        const e = checkSide(
          `${rec.src.pod} -> ${rec.dst.pod} ${rec.protocol}/${rec.dst.port}`,
          v[rec.direction],
          [rec],
        );
        if (e !== undefined) problems.push(e);
      }
      assert.deepEqual(problems.slice(0, 10), []);
      // The admin tiers are named: the example's cluster-wide rules decide some of its flows.
      assert.ok(
        records.some((x) => x.policies.some((h) => h.tier !== 'NetworkPolicy')),
        'admin-tier hits',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'audit mode: a would-be drop is accepted and logged as audit, by flag and by annotation',
  { skip: needsRoot },
  async () => {
    const yaml = `
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: a, labels: {app: client}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: a, labels: {app: server}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: a, annotations: {moat.dev/audit: "true"}}
spec: {podSelector: {}, policyTypes: [Ingress]}
`;
    const loaded = loadText(yaml, 'audit.yaml');
    assert.deepEqual(loaded.problems, []);
    assert.equal(loaded.snapshot.policies[0]?.audit, true);
    const lab = await Lab.create(loaded.snapshot, { prefix: uniquePrefix(), probeTimeoutMs: 1000 });
    const node = await flowNode(lab, { mode: 'policy', group: GROUP + 2, rate: 1000, burst: 100 });
    try {
      await node.apply(lab.snapshot);
      const o = await lab.probe('a/client', 'a/server', 80, 'TCP');
      assert.equal(o.allowed, true, `audited default-deny does not drop: ${o.detail}`);
      await node.settle();
      const rec = node.records.find((r) => r.direction === 'ingress' && r.dst.port === 80);
      assert.equal(rec?.verdict, 'audit', JSON.stringify(node.records));
      assert.equal(rec.summary, 'audit: would be dropped: isolated by a/default-deny; no rule matched');
      // Without the annotation, enforced: the same probe is dropped and logged as denied.
      const enforced = { ...lab.snapshot, policies: lab.snapshot.policies.map(({ audit: _a, ...p }) => p) };
      await node.apply(enforced);
      await flushConntrack(lab);
      node.records.length = 0;
      const d = await lab.probe('a/client', 'a/server', 80, 'TCP');
      assert.equal(d.allowed, false);
      await node.settle();
      assert.ok(node.records.some((r) => r.verdict === 'denied' && r.reason === 'no-rule-matched'));
    } finally {
      await node.flows.close();
      await lab.destroy();
    }
    // --audit for the whole node: the enforced policy's drop is accepted too.
    const lab2 = await Lab.create(loaded.snapshot, { prefix: uniquePrefix(), probeTimeoutMs: 1000 });
    const node2 = await flowNode(lab2, { mode: 'denied', group: GROUP + 3, rate: 1000, burst: 100 }, true);
    try {
      const enforced = { ...lab2.snapshot, policies: lab2.snapshot.policies.map(({ audit: _a, ...p }) => p) };
      await node2.apply(enforced);
      assert.equal((await lab2.probe('a/client', 'a/server', 80, 'TCP')).allowed, true);
      await node2.settle();
      assert.deepEqual(
        node2.records.map((r) => r.verdict),
        ['audit'],
      );
    } finally {
      await node2.flows.close();
      await lab2.destroy();
    }
  },
);
