// Late pod IP -> enforced: the agent watches the API test server (through the real client) and
// applies to a real nft table in a scratch network namespace (root) or to a recorder (not root).
// Each round creates a pending pod that a policy admits, then gives it an IP; measured: from the
// API write to the apply that carries the IP returning (the kernel enforces it from then on).
// Run: node dist/bench/agent-late-ip.js [rounds] [coalesce-ms] [pods]
import { Agent } from '../src/agent/agent.js';
import { localRunner, netnsRunner } from '../src/dataplane/index.js';
import type { Snapshot } from '../src/model/types.js';
import { FakeApiServer, nodeObj, nsObj, podObj, policyObj } from '../test/agent/fake-apiserver.js';
import { kubeconfigFor, RecordingApplier } from '../test/agent/util.js';

const rounds = Number(process.argv[2] ?? 40);
const coalesceMs = Number(process.argv[3] ?? 10);
const podCount = Number(process.argv[4] ?? 200);
const root = process.getuid?.() === 0;
const NETNS = `moat-bench-${process.pid}`;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function main(): Promise<void> {
  if (root) await localRunner().run(['ip', 'netns', 'add', NETNS]);
  const server = await FakeApiServer.start();
  const kc = await kubeconfigFor(server);
  server.put(nodeObj('n1', ['10.0.0.1'], ['10.244.0.0/16']));
  server.put(nsObj('shop'));
  for (let i = 0; i < podCount; i++) {
    server.put(
      podObj('shop', `p${i}`, {
        labels: { app: `a${i % 10}` },
        ip: `10.244.${1 + Math.floor(i / 250)}.${(i % 250) + 1}`,
        nodeName: i % 2 === 0 ? 'n1' : 'n2',
        ports: [{ containerPort: 80 }],
      }),
    );
  }
  for (let i = 0; i < 10; i++) {
    server.put(
      policyObj('shop', `pol${i}`, {
        podSelector: { matchLabels: { app: `a${i}` } },
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'late' } } }], ports: [{ port: 80 }] }],
      }),
    );
  }
  let waiting: { ip: string; resolve: () => void } | undefined;
  const sinceEvent: number[] = [];
  const agent = await Agent.start({
    kubeConfig: kc.kc,
    nodeName: 'n1',
    coalesceMs,
    driftIntervalMs: 0,
    ...(root ? { runner: netnsRunner(NETNS) } : { applier: new RecordingApplier('n1') }),
    onApplied: (a) => {
      const w = waiting;
      if (w && a.snapshot.pods.some((p) => p.ips.includes(w.ip))) {
        waiting = undefined;
        w.resolve();
      }
    },
  });
  const synced = (s: Snapshot | undefined) => s !== undefined;
  while (!synced(agent.reconciler.lastApplied)) await new Promise((r) => setTimeout(r, 5));
  const total: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const name = `late${i}`;
      const ip = `10.244.200.${i + 1}`;
      server.put(podObj('shop', name, { labels: { role: 'late' }, nodeName: 'n1' }));
      await agent.reconciler.idle();
      await new Promise((r) => setTimeout(r, 30));
      const done = new Promise<void>((resolve) => (waiting = { ip, resolve }));
      const t0 = performance.now();
      server.put(podObj('shop', name, { labels: { role: 'late' }, ip, nodeName: 'n1' }));
      await done;
      total.push(performance.now() - t0);
    }
    const text = await agent.metrics.text();
    const m = /moat_event_to_enforced_seconds_sum (\S+)\nmoat_event_to_enforced_seconds_count (\S+)/.exec(
      text,
    );
    if (m) sinceEvent.push((Number(m[1]) / Number(m[2])) * 1000);
  } finally {
    await agent.stop();
    await server.stop();
    await kc.done();
    if (root) await localRunner().run(['ip', 'netns', 'del', NETNS]);
  }
  console.log(
    `late IP -> enforced (${root ? 'nft in a netns' : 'recorder, no kernel'}, ${podCount} pods, 10 policies, ` +
      `coalesce ${coalesceMs} ms, ${rounds} rounds): p50 ${pct(total, 50).toFixed(1)} ms, ` +
      `p95 ${pct(total, 95).toFixed(1)} ms, max ${Math.max(...total).toFixed(1)} ms; ` +
      `agent's own event->enforced mean ${sinceEvent[0]?.toFixed(1) ?? '-'} ms`,
  );
}

await main();
