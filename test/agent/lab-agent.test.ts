// The agent enforcing a lab node with real packets: the API test server drives it through the real
// client library, and pods in network namespaces probe each other. Needs root; skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Agent } from '../../src/agent/agent.js';
import { ClusterState } from '../../src/agent/cluster-state.js';
import { decodeApiObject, type WatchedKind } from '../../src/agent/k8s-decode.js';
import { localRunner, netnsRunner } from '../../src/dataplane/index.js';
import { IptablesWriter } from '../../src/dataplane/iptables-applier.js';
import { Lab } from '../../src/lab/lab.js';
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import { needsRoot, uniquePrefix } from '../e2e/lab-util.js';
import { FakeApiServer, nodeObj, nsObj, podObj, policyObj, type Obj } from './fake-apiserver.js';
import { kubeconfigFor, MemoryLog, passes, sleep, waitFor } from './util.js';
import { kernelDiff } from '../support/kernel.js';
import { labAgentArgs } from '../support/agent.js';
import { LAB_POD_INTERFACES } from '../../src/lab/plan.js';

const WEB = '10.244.0.10';
const CLIENT = '10.244.0.11';
const PROBE = '10.244.0.12';
const LATE = '10.244.0.13';
const HTTP = [{ containerPort: 80, name: 'http' }];

async function buildLab(probeTimeoutMs = 300): Promise<Lab> {
  const ports = [cport(80, 'TCP', 'http')];
  return Lab.create(
    snapshot({
      namespaces: [ns('shop'), ns('other')],
      pods: [
        pod('shop', 'web', { ips: [WEB], ports }),
        pod('shop', 'client', { ips: [CLIENT], ports }),
        pod('other', 'probe', { ips: [PROBE], ports }),
        pod('shop', 'late', { ips: [LATE], ports }),
      ],
    }),
    { prefix: uniquePrefix(), probeTimeoutMs },
  );
}

/** The cluster as the API server holds it: the lab's node and pods (late without its IP yet). */
function seed(s: FakeApiServer, lab: Lab): void {
  const node = lab.plan.node;
  s.put(nodeObj(node.name, [...node.addresses], [...node.podCIDRs]));
  s.put(nsObj('shop'));
  s.put(nsObj('other'));
  const on = lab.nodeName;
  s.put(podObj('shop', 'web', { labels: { app: 'web' }, ip: WEB, nodeName: on, ports: HTTP }));
  s.put(podObj('shop', 'client', { labels: { app: 'client' }, ip: CLIENT, nodeName: on, ports: HTTP }));
  s.put(podObj('other', 'probe', { labels: { app: 'probe' }, ip: PROBE, nodeName: on, ports: HTTP }));
  s.put(podObj('shop', 'late', { labels: { app: 'late' }, nodeName: on, ports: HTTP }));
}

const allowWebFrom = (from: Record<string, unknown>) =>
  policyObj('shop', 'web', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [from], ports: [{ port: 80 }] }],
  });

for (const backend of ['nftables', 'iptables'] as const)
  test(
    `agent on a lab node: policies, relabels, late IPs, 410 relist, metrics, with real packets (${backend})`,
    { skip: needsRoot },
    async (t) => {
      const lab = await buildLab();
      const server = await FakeApiServer.start();
      const kc = await kubeconfigFor(server);
      let agent: Agent | undefined;
      try {
        seed(server, lab);
        agent = await Agent.start({
          kubeConfig: kc.kc,
          nodeName: lab.nodeName,
          runner: netnsRunner(lab.nodeNetns),
          driftIntervalMs: 0,
          retryMs: 50,
          metricsAddr: { host: '127.0.0.1', port: 0 },
          podInterfaces: LAB_POD_INTERFACES,
          cniResultsDir: lab.cniResultsDir(0),
          ...(backend === 'iptables' ? { writer: new IptablesWriter(netnsRunner(lab.nodeNetns)) } : {}),
        });
        const a = agent;
        const sim = (s: string, d: string) => passes(a.applier.kernelView, s, d, 80);
        const until = (s: string, d: string, want: boolean, what: string) =>
          waitFor(() => a.applier.kernelView !== undefined && sim(s, d) === want, what);
        const real = async (from: string, to: string) => (await lab.probe(from, to, 80, 'TCP')).allowed;

        await until(CLIENT, WEB, true, 'first sync');
        assert.equal(await real('shop/client', 'shop/web'), true, 'no policy: open');

        server.put(policyObj('shop', 'web', { podSelector: { matchLabels: { app: 'web' } } }));
        await until(CLIENT, WEB, false, 'deny-all');
        assert.equal(await real('shop/client', 'shop/web'), false, 'policy created -> denied');

        server.put(allowWebFrom({ podSelector: { matchLabels: { role: 'trusted' } } }));
        server.put(
          podObj('shop', 'client', {
            labels: { app: 'client', role: 'trusted' },
            ip: CLIENT,
            nodeName: lab.nodeName,
            ports: HTTP,
          }),
        );
        await until(CLIENT, WEB, true, 'client trusted');
        assert.equal(await real('shop/client', 'shop/web'), true, 'pod relabelled -> allowed');
        assert.equal(await real('other/probe', 'shop/web'), false);

        server.put(allowWebFrom({ namespaceSelector: { matchLabels: { team: 'friends' } } }));
        await until(PROBE, WEB, false, 'namespace policy');
        server.put(nsObj('other', { team: 'friends' }));
        await until(PROBE, WEB, true, 'namespace relabelled');
        assert.equal(await real('other/probe', 'shop/web'), true, 'namespace relabelled -> allowed');
        assert.equal(await real('shop/client', 'shop/web'), false, 'shop is no friend');

        server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'late' } } }));
        await until(PROBE, WEB, false, 'late policy');
        assert.equal(await real('shop/late', 'shop/web'), false, 'late pod has no address in the API yet');
        const t0 = Date.now();
        server.put(
          podObj('shop', 'late', { labels: { app: 'late' }, ip: LATE, nodeName: lab.nodeName, ports: HTTP }),
        );
        await until(LATE, WEB, true, 'late IP');
        const lateMs = Date.now() - t0;
        assert.equal(await real('shop/late', 'shop/web'), true, 'late IP -> allowed');
        t.diagnostic(`late IP: event -> kernel table updated in ${lateMs} ms`);

        // 410: the server goes away, things change, the history is compacted; the agent relists.
        await server.stop();
        server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'probe' } }, namespaceSelector: {} }));
        server.compact();
        await server.restart();
        await until(PROBE, WEB, true, 'relisted after 410');
        await until(LATE, WEB, false, 'relisted after 410');
        assert.equal(await real('other/probe', 'shop/web'), true, 'after 410 relist: probe allowed');
        assert.equal(await real('shop/late', 'shop/web'), false, 'after 410 relist: late denied');
        assert.ok(server.requests.some((r) => r.watch && r.status === 410));

        // Counters: the probes above were admitted and dropped under shop/web (nftables: named
        // counters; iptables: the rules' moat:NAME comments, read with iptables-save -c).
        const m = a.metricsAddress!;
        const text = await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text();
        const value = (family: string) => {
          const re = new RegExp(
            `^${family}\\{namespace="shop",policy="web",direction="ingress"\\} (\\d+)$`,
            'm',
          );
          return Number(re.exec(text)?.[1] ?? -1);
        };
        assert.ok(value('moat_policy_allowed_packets_total') > 0, 'allowed packets counted');
        assert.ok(value('moat_policy_dropped_packets_total') > 0, 'dropped packets counted');
        // Every lab pod is behind a covered interface, and the guard counters are exported.
        assert.match(
          text,
          /^moat_guard_dropped_packets_total\{reason="spoofed",family="ipv4",table="inet"\} \d+$/m,
        );
        // The bridge-family check (ARP, bridged ports) is nftables only; this lab is routed.
        if (backend === 'nftables')
          assert.match(
            text,
            /^moat_guard_dropped_packets_total\{reason="spoofed",family="arp",table="bridge"\} \d+$/m,
          );
        let unguarded = -1;
        for (let i = 0; i < 60 && unguarded !== 0; i++) {
          const t2 = await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text();
          unguarded = Number(/^moat_unguarded_pod_addresses (\d+)$/m.exec(t2)?.[1] ?? -1);
          if (unguarded !== 0) await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(unguarded, 0, 'no local pod escapes the source check');
      } finally {
        await agent?.stop();
        await server.stop();
        await kc.done();
        await lab.destroy();
      }
    },
  );

test(
  'agent on a lab node: a --pod-interfaces glob that misses the pods is reported',
  { skip: needsRoot },
  async () => {
    const lab = await buildLab();
    const server = await FakeApiServer.start();
    const kc = await kubeconfigFor(server);
    const log = new MemoryLog();
    let agent: Agent | undefined;
    try {
      seed(server, lab);
      agent = await Agent.start({
        kubeConfig: kc.kc,
        nodeName: lab.nodeName,
        runner: netnsRunner(lab.nodeNetns),
        driftIntervalMs: 0,
        log,
        podInterfaces: ['veth*'], // the lab's are moatv*
        cniResultsDir: lab.cniResultsDir(0),
      });
      await waitFor(
        () => log.lines.some((l) => l.msg.startsWith('pod address not covered by the source check')),
        'the uncovered pods are reported',
        8000,
      );
      const line = log.lines.find((l) => l.msg.startsWith('pod address not covered'))!;
      assert.match(String(line.fields.interface), /^moatv\d+$/);
    } finally {
      await agent?.stop();
      await server.stop();
      await kc.done();
      await lab.destroy();
    }
  },
);

interface Child {
  readonly proc: ChildProcess;
  readonly synced: Promise<void>;
  readonly exited: Promise<number | null>;
}

function startAgent(kubeconfig: string, lab: Lab, extra: string[] = []): Child {
  const proc = spawn(process.execPath, labAgentArgs(kubeconfig, lab, extra), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const synced = new Promise<void>((resolve) => {
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line.includes('"first sync')) resolve();
    });
  });
  proc.stderr.resume();
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, synced, exited };
}

/** The kernel's table in the lab node against the compiled desired state: the differences. */
function kernelVsDesired(lab: Lab, objects: readonly Obj[]): Promise<string[]> {
  const state = new ClusterState();
  for (const o of objects) state.set(decodeApiObject(o.kind as WatchedKind, o));
  return kernelDiff(lab, state.snapshot());
}

test(
  'kill -9 during a storm of changes and restart: a denied flow never passes',
  { skip: needsRoot },
  async (t) => {
    const lab = await buildLab(150);
    const server = await FakeApiServer.start({ bookmarkMs: 100 });
    const kc = await kubeconfigFor(server);
    const children: Child[] = [];
    let storming = true;
    let probing = true;
    try {
      seed(server, lab);
      // other/probe -> shop/web is denied throughout; nothing in the storm may change that.
      server.put(allowWebFrom({ podSelector: { matchLabels: { app: 'client' } } }));
      const first = startAgent(kc.path, lab);
      children.push(first);
      await first.synced;
      assert.equal((await lab.probe('other/probe', 'shop/web', 80, 'TCP')).allowed, false);
      assert.equal((await lab.probe('shop/client', 'shop/web', 80, 'TCP')).allowed, true);

      let changes = 0;
      const storm = (async () => {
        for (let i = 0; storming; i++) {
          switch (i % 5) {
            case 0:
              server.put(
                policyObj('other', `p${i % 20}`, {
                  podSelector: { matchLabels: { app: `x${i}` } },
                  ingress: [{}],
                }),
              );
              break;
            case 1:
              server.delete('NetworkPolicy', 'other', `p${(i + 10) % 20}`);
              break;
            case 2:
              server.put(
                podObj('shop', 'client', {
                  labels: { app: 'client', gen: String(i) },
                  ip: CLIENT,
                  nodeName: lab.nodeName,
                  ports: HTTP,
                }),
              );
              break;
            case 3:
              server.put(nsObj('other', { gen: String(i) }));
              break;
            case 4:
              server.put(
                podObj('other', `far${i % 7}`, {
                  labels: { app: 'probe' },
                  ip: `10.244.7.${(i % 7) + 1}`,
                  nodeName: 'elsewhere',
                }),
              );
              break;
          }
          changes++;
          await sleep(3);
        }
      })();

      let probes = 0;
      const leaks: string[] = [];
      const prober = async (lane: number) => {
        await sleep(lane * 19);
        while (probing) {
          const r = await lab.probe('other/probe', 'shop/web', 80, 'TCP');
          probes++;
          if (r.allowed === true) leaks.push(`${new Date().toISOString()} ${r.detail}`);
        }
      };
      const probers = Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(prober));

      // Restarted agents see policies listed last, well after pods: a partial first table would
      // leave web open for that long.
      server.listDelayMs.set('networkpolicies', 400);
      await sleep(300);
      first.proc.kill('SIGKILL');
      await first.exited;
      await sleep(300); // no agent: the kernel keeps the last table
      const second = startAgent(kc.path, lab);
      children.push(second);
      await sleep(40); // killed while it starts: listing, or applying its first table
      second.proc.kill('SIGKILL');
      await second.exited;
      const third = startAgent(kc.path, lab);
      children.push(third);
      await third.synced;
      await sleep(300);
      third.proc.kill('SIGKILL');
      await third.exited;
      const last = startAgent(kc.path, lab, ['--on-exit', 'remove']);
      children.push(last);
      await last.synced;
      await sleep(300);
      storming = false;
      await storm;
      probing = false;
      await probers;
      t.diagnostic(`${changes} changes, ${probes} probes of the denied flow, 4 agent starts, 3 kill -9`);
      assert.deepEqual(leaks, [], 'the denied flow was never observed allowed');

      let diffs: string[] = [];
      for (let i = 0; i < 100; i++) {
        diffs = await kernelVsDesired(lab, server.all());
        if (diffs.length === 0) break;
        await sleep(50);
      }
      assert.deepEqual(diffs, [], 'the kernel holds exactly the final state');
      assert.equal((await lab.probe('other/probe', 'shop/web', 80, 'TCP')).allowed, false);
      assert.equal((await lab.probe('shop/client', 'shop/web', 80, 'TCP')).allowed, true);

      // SIGTERM with --on-exit remove: the table goes (fail-open), the agent exits cleanly.
      last.proc.kill('SIGTERM');
      assert.equal(await last.exited, 0);
      const listed = await localRunner().run([
        'ip',
        'netns',
        'exec',
        lab.nodeNetns,
        'nft',
        'list',
        'table',
        'inet',
        'moat',
      ]);
      assert.notEqual(listed.code, 0, 'table removed');
      assert.equal(
        (await lab.probe('other/probe', 'shop/web', 80, 'TCP')).allowed,
        true,
        'fail-open after remove',
      );
    } finally {
      storming = false;
      probing = false;
      for (const c of children)
        if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited));
      await server.stop();
      await kc.done();
      await lab.destroy();
    }
  },
);
