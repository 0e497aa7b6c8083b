// Golden rulesets: `moat compile` output for representative snapshots. Regenerate after an
// intended change with: UPDATE_GOLDEN=1 node --test dist/test/golden/dataplane.test.js
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compile, renderNft, type DataplaneOptions } from '../../src/dataplane/index.js';
import { renderIpsetRestore, renderIptables } from '../../src/dataplane/render-iptables.js';
import { cport, ipPeer, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import { loadPaths } from '../../src/model/load.js';
import type { Snapshot } from '../../src/model/types.js';

// dist/test/golden -> test/golden (the .nft files are not compiled).
const here = dirname(fileURLToPath(import.meta.url));
const goldenDir = join(here, '..', '..', '..', 'test', 'golden');

const shop: Snapshot = snapshot({
  namespaces: [ns('web', { tier: 'front' }), ns('api', { tier: 'mid' }), ns('data', { tier: 'back' }), ns('kube-system')],
  nodes: [node('n1', ['192.168.0.1']), node('n2', ['192.168.0.2'])],
  pods: [
    pod('web', 'frontend', { labels: { app: 'frontend' }, ips: ['10.244.1.10'], nodeName: 'n1', ports: [cport(80, 'TCP', 'http')] }),
    pod('api', 'backend', { labels: { app: 'backend' }, ips: ['10.244.2.10'], nodeName: 'n2', ports: [cport(8080, 'TCP', 'http')] }),
    pod('data', 'db', { labels: { app: 'db' }, ips: ['10.244.1.20'], nodeName: 'n1', ports: [cport(5432, 'TCP', 'postgres')] }),
    pod('kube-system', 'dns', { labels: { k8s: 'dns' }, ips: ['10.244.2.53'], nodeName: 'n2' }),
    pod('kube-system', 'agent', { hostNetwork: true, ips: ['192.168.0.1'], nodeName: 'n1' }),
  ],
  policies: [
    netpol('web', 'deny-all', { policyTypes: ['Ingress', 'Egress'] }),
    netpol('web', 'frontend', {
      podSelector: sel({ app: 'frontend' }),
      ingress: [rule(undefined, [pport('http')])],
      egress: [
        rule([podPeer(sel({ app: 'backend' }), sel({ tier: 'mid' }))], [pport(8080)]),
        rule([podPeer(sel({ k8s: 'dns' }), sel({ 'kubernetes.io/metadata.name': 'kube-system' }))], [pport(53, 'UDP'), pport(53)]),
      ],
    }),
    netpol('api', 'backend', {
      podSelector: sel({ app: 'backend' }),
      ingress: [rule([podPeer(undefined, sel({ tier: 'front' }))], [pport('http')])],
    }),
    netpol('data', 'db', {
      podSelector: sel({ app: 'db' }),
      ingress: [rule([podPeer(sel({ app: 'backend' }), sel({ tier: 'mid' })), ipPeer('10.0.0.0/8', ['10.244.0.0/16'])], [pport('postgres')])],
    }),
  ],
});

const dualStack: Snapshot = snapshot({
  namespaces: [ns('a'), ns('b')],
  nodes: [node('n1', ['192.168.0.1', 'fd00::1'])],
  pods: [
    pod('a', 'x', { labels: { app: 'x' }, ips: ['10.0.0.1', 'fd00:10::1'], nodeName: 'n1', ports: [cport(9000, 'SCTP', 'sig')] }),
    pod('b', 'y', { labels: { app: 'y' }, ips: ['10.0.0.2', 'fd00:10::2'], nodeName: 'n1' }),
  ],
  policies: [
    netpol('a', 'x', {
      podSelector: sel({ app: 'x' }),
      ingress: [
        rule([podPeer(undefined, sel())], [pport('sig', 'SCTP'), pport(8000, 'TCP', 8100)]),
        rule([ipPeer('fd00::/16', ['fd00:10::/32']), ipPeer('0.0.0.0/0', ['10.0.0.0/8'])]),
      ],
      egress: [rule(undefined, [pport(undefined, 'UDP')])],
    }),
  ],
});

// The admin tiers with flow logs: a logged Pass goes on to ingress_np_pass, whose default allow logs.
const tenants = async () =>
  (await loadPaths([join(here, '..', '..', '..', 'examples', 'tenants')])).snapshot;

const cases: { name: string; snap: Snapshot | (() => Promise<Snapshot>); opts: DataplaneOptions }[] = [
  { name: 'shop-all', snap: shop, opts: { table: 'moat' } },
  {
    name: 'tenants-flowlog',
    snap: tenants,
    opts: { table: 'moat', flowLog: { mode: 'policy', group: 3477, rate: 1000, burst: 200 } },
  },
  { name: 'shop-n1', snap: shop, opts: { table: 'moat', nodeName: 'n1' } },
  { name: 'shop-n1-police', snap: shop, opts: { table: 'moat', nodeName: 'n1', policeNodeEgress: true } },
  { name: 'dual-stack', snap: dualStack, opts: { table: 'moat_ds', nodeName: 'n1' } },
];

describe('golden rulesets', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const snap = typeof c.snap === 'function' ? await c.snap() : c.snap;
      const text = renderNft(compile(snap, c.opts));
      assert.doesNotMatch(text, /\bqueue\b/);
      const file = join(goldenDir, `${c.name}.nft`);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
        if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`${file} is missing; run with UPDATE_GOLDEN=1`);
        writeFileSync(file, text);
        return;
      }
      assert.equal(text, readFileSync(file, 'utf8'), `${c.name}: differs from ${file}`);
    });
  }
});

// The same rulesets for iptables + ipset (`moat compile --backend iptables` prints these parts).
describe('golden rulesets, iptables backend', () => {
  for (const c of cases.filter((x) => ['shop-n1', 'tenants-flowlog', 'dual-stack'].includes(x.name))) {
    it(c.name, async () => {
      const snap = typeof c.snap === 'function' ? await c.snap() : c.snap;
      const r = renderIptables(compile(snap, c.opts));
      const text = `# ipset restore\n${renderIpsetRestore(r.sets)}# iptables-restore\n${r.v4}# ip6tables-restore\n${r.v6}`;
      const file = join(goldenDir, `${c.name}.iptables`);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
        if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`${file} is missing; run with UPDATE_GOLDEN=1`);
        writeFileSync(file, text);
        return;
      }
      assert.equal(text, readFileSync(file, 'utf8'), `${c.name}: differs from ${file}`);
    });
  }
});
