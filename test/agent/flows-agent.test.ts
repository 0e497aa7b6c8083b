// The agent's flow logs with real packets: the API test server drives the agent on a lab node;
// records reach /flows (filtered, replayed and followed), `moat flows --agent`, the log, and the
// metrics agree with them. Needs root; skipped otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { Agent } from '../../src/agent/agent.js';
import { netnsRunner } from '../../src/dataplane/index.js';
import { NetnsNflogReader } from '../../src/flowlog/nflog-netns.js';
import type { FlowRecord } from '../../src/flowlog/record.js';
import { Lab } from '../../src/lab/lab.js';
import { LAB_POD_INTERFACES } from '../../src/lab/plan.js';
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import { needsRoot, uniquePrefix } from '../e2e/lab-util.js';
import { FakeApiServer, nodeObj, nsObj, podObj, policyObj } from './fake-apiserver.js';
import { kubeconfigFor, MemoryLog, waitFor } from './util.js';

const WEB = '10.244.0.10';
const CLIENT = '10.244.0.11';
const HTTP = [{ containerPort: 80, name: 'http' }];

test(
  'agent flow logs: /flows, moat flows --agent, the log sink and the metrics',
  { skip: needsRoot },
  async () => {
    const ports = [cport(80, 'TCP', 'http')];
    const lab = await Lab.create(
      snapshot({
        namespaces: [ns('shop')],
        pods: [pod('shop', 'web', { ips: [WEB], ports }), pod('shop', 'client', { ips: [CLIENT], ports })],
      }),
      { prefix: uniquePrefix(), probeTimeoutMs: 500 },
    );
    const server = await FakeApiServer.start();
    const kc = await kubeconfigFor(server);
    const log = new MemoryLog();
    let agent: Agent | undefined;
    try {
      const node = lab.plan.node;
      server.put(nodeObj(node.name, [...node.addresses], [...node.podCIDRs]));
      server.put(nsObj('shop'));
      server.put(
        podObj('shop', 'web', { labels: { app: 'web' }, ip: WEB, nodeName: lab.nodeName, ports: HTTP }),
      );
      server.put(
        podObj('shop', 'client', {
          labels: { app: 'client' },
          ip: CLIENT,
          nodeName: lab.nodeName,
          ports: HTTP,
        }),
      );
      server.put(policyObj('shop', 'default-deny', { podSelector: {}, policyTypes: ['Ingress'] }));
      agent = await Agent.start({
        kubeConfig: kc.kc,
        nodeName: lab.nodeName,
        runner: netnsRunner(lab.nodeNetns),
        driftIntervalMs: 0,
        retryMs: 50,
        log,
        metricsAddr: { host: '127.0.0.1', port: 0 },
        podInterfaces: LAB_POD_INTERFACES,
        cniResultsDir: lab.cniResultsDir(0),
        flowLog: { mode: 'policy', group: 3490, rate: 1000, burst: 100 },
        openFlowReader: (group) => NetnsNflogReader.open({ netns: lab.nodeNetns, group }),
      });
      const a = agent;
      await waitFor(() => a.ready, 'agent ready', 10_000);
      const base = `http://127.0.0.1:${a.metricsAddress!.port}`;
      // A follower subscribed before the traffic sees the record arrive.
      const followed: FlowRecord[] = [];
      const req = get(`${base}/flows?follow=1&verdict=denied`, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            followed.push(JSON.parse(buf.slice(0, i)) as FlowRecord);
            buf = buf.slice(i + 1);
          }
        });
      });
      req.on('error', () => undefined);
      await new Promise((r) => setTimeout(r, 200));
      const o = await lab.probe('shop/client', 'shop/web', 80, 'TCP');
      assert.equal(o.allowed, false, o.detail);
      await waitFor(() => followed.length > 0, 'the followed /flows stream has the drop', 5000);
      req.destroy();
      const rec = followed[0]!;
      assert.equal(rec.verdict, 'denied');
      assert.equal(rec.node, lab.nodeName);
      assert.deepEqual(
        [rec.src.namespace, rec.src.pod, rec.dst.pod, rec.dst.port],
        ['shop', 'client', 'web', 80],
      );
      assert.equal(rec.summary, 'isolated by shop/default-deny; no rule matched');
      // Replay with filters, and a bad filter.
      const replay = await (await fetch(`${base}/flows?to=shop/web&port=80`)).text();
      assert.ok(replay.trim().split('\n').length >= 1);
      assert.equal((await fetch(`${base}/flows?to=shop/web&port=80&verdict=allowed`)).status, 200);
      assert.equal((await (await fetch(`${base}/flows?verdict=allowed`)).text()).trim(), '');
      const bad = await fetch(`${base}/flows?verdict=nope`);
      assert.equal(bad.status, 400);
      assert.match(await bad.text(), /verdict "nope"/);
      // The CLI reads the agent (in a child: this process serves it).
      const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const c = spawn(process.execPath, [
          'dist/src/cli/bin.js',
          'flows',
          '--agent',
          base,
          '--verdict',
          'denied',
          '-o',
          'json',
        ]);
        let out = '';
        c.stdout.on('data', (b: Buffer) => (out += b.toString()));
        c.on('close', (code) => resolve({ code, out }));
      });
      assert.equal(cli.code, 0);
      assert.equal((JSON.parse(cli.out.trim().split('\n')[0]!) as FlowRecord).summary, rec.summary);
      // The log sink, and the metrics.
      assert.ok(
        log.lines.some((l) => l.msg === 'flow' && (l.fields.flow as FlowRecord).verdict === 'denied'),
      );
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.match(text, /^moat_flow_records_total\{verdict="denied",direction="ingress"\} [1-9]\d*$/m);
      assert.match(text, /^moat_flow_log_messages_total\{state="received"\} [1-9]\d*$/m);
      assert.match(text, /^moat_flow_log_overruns_total 0$/m);
      assert.match(text, /^moat_flow_records_suppressed_total 0$/m);
    } finally {
      await agent?.stop();
      await server.stop();
      await kc.done();
      await lab.destroy();
    }
  },
);
