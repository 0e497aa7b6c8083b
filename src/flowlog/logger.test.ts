import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compile } from '../dataplane/compile.js';
import type { FlowLogMode } from '../dataplane/model.js';
import { simulate } from '../dataplane/simulate.js';
import { adminRule, cnp, netpol, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import type { Snapshot } from '../model/types.js';
import { FlowLogger } from './logger.js';
import type { FlowRecord } from './record.js';

const web = pod('shop', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1'], nodeName: 'n1' });
const db = pod('shop', 'db', { labels: { app: 'db' }, ips: ['10.0.0.2'], nodeName: 'n1' });
const other = pod('dev', 'tool', { labels: { app: 'tool' }, ips: ['10.0.0.3'], nodeName: 'n1' });

function base(extra: Partial<Snapshot> = {}): Snapshot {
  return snapshot({ namespaces: [ns('shop'), ns('dev')], pods: [web, db, other], ...extra });
}

/** Records the logger makes for one TCP SYN src -> dst, as the ruleset logs it (simulated). */
function records(
  s: Snapshot,
  src: string,
  dst: string,
  port: number,
  mode: FlowLogMode = 'policy',
  audit = false,
): FlowRecord[] {
  const rs = compile(s, {
    table: 'moat',
    flowLog: { mode, group: 1, rate: 10, burst: 5 },
    ...(audit ? { audit } : {}),
  });
  const logger = new FlowLogger({ node: 'n1', passWaitMs: 1 });
  logger.setGeneration(rs, s);
  const out: FlowRecord[] = [];
  logger.subscribe((r) => out.push(r));
  const sim = simulate(rs, {
    family: 4,
    saddr: src,
    daddr: dst,
    l4proto: 'tcp',
    dport: port,
    hook: 'postrouting',
  });
  for (const prefix of sim.logs) {
    logger.ingest({
      prefix,
      key: `${src}>${dst}:${port}`,
      time: new Date(0),
      packet: { family: 'ipv4', protocol: 'TCP', src, dst, srcPort: 40000, dstPort: port, tcpFlags: 'SYN' },
    });
  }
  logger.flush();
  return out;
}

const denyAll = netpol('shop', 'default-deny', { podSelector: sel(), policyTypes: ['Ingress'] });
const allowWeb = netpol('shop', 'allow-web', {
  podSelector: sel({ app: 'db' }),
  ingress: [rule([podPeer(sel({ app: 'web' }))], [pport(5432)])],
});

describe('FlowLogger', () => {
  it('names the accepting rule, with both ends enriched', () => {
    const [r, ...rest] = records(base({ policies: [denyAll, allowWeb] }), '10.0.0.1', '10.0.0.2', 5432);
    assert.equal(rest.length, 0);
    assert.deepEqual(r, {
      time: '1970-01-01T00:00:00.000Z',
      node: 'n1',
      verdict: 'allowed',
      direction: 'ingress',
      protocol: 'TCP',
      family: 'ipv4',
      src: { ip: '10.0.0.1', port: 40000, namespace: 'shop', pod: 'web', labels: { app: 'web' }, node: 'n1' },
      dst: { ip: '10.0.0.2', port: 5432, namespace: 'shop', pod: 'db', labels: { app: 'db' }, node: 'n1' },
      tcpFlags: 'SYN',
      policies: [
        {
          kind: 'NetworkPolicy',
          namespace: 'shop',
          name: 'allow-web',
          tier: 'NetworkPolicy',
          rule: 0,
          action: 'allow',
        },
      ],
      reason: 'rule-matched',
      summary: 'allowed by shop/allow-web ingress[0]',
    });
  });

  it('names every isolating policy of a default-deny drop', () => {
    const [r] = records(base({ policies: [denyAll, allowWeb] }), '10.0.0.3', '10.0.0.2', 5432);
    assert.equal(r?.verdict, 'denied');
    assert.equal(r?.reason, 'no-rule-matched');
    assert.deepEqual(
      r?.policies.map((p) => `${p.namespace}/${p.name}:${p.action}`),
      ['shop/allow-web:deny', 'shop/default-deny:deny'],
    );
    assert.equal(r?.summary, 'isolated by shop/allow-web, shop/default-deny; no rule matched');
  });

  it('policy mode: nothing for pods no policy selects; all mode: not-isolated', () => {
    assert.deepEqual(records(base(), '10.0.0.1', '10.0.0.2', 80), []);
    const all = records(base(), '10.0.0.1', '10.0.0.2', 80, 'all');
    assert.deepEqual(
      all.map((r) => `${r.direction}:${r.reason}`),
      ['egress:not-isolated', 'ingress:not-isolated'],
    );
  });

  it('denied mode logs drops only', () => {
    assert.deepEqual(
      records(base({ policies: [denyAll, allowWeb] }), '10.0.0.1', '10.0.0.2', 5432, 'denied'),
      [],
    );
    assert.equal(records(base({ policies: [denyAll] }), '10.0.0.1', '10.0.0.2', 5432, 'denied').length, 1);
  });

  it('an admin Pass is merged with the NetworkPolicy decision after it', () => {
    const pass = cnp('delegate', {
      ingress: [adminRule('Pass', [{ kind: 'namespaces', namespaceSelector: sel() }], undefined, 'to-np')],
    });
    const [r, ...rest] = records(
      base({ policies: [denyAll], adminPolicies: [pass] }),
      '10.0.0.1',
      '10.0.0.2',
      80,
    );
    assert.equal(rest.length, 0);
    assert.deepEqual(
      r?.policies.map((p) => `${p.kind}/${p.name}:${p.action}`),
      ['ClusterNetworkPolicy/delegate:pass', 'NetworkPolicy/default-deny:deny'],
    );
    assert.equal(r?.verdict, 'denied');
    assert.equal(
      r?.summary,
      'passed by ClusterNetworkPolicy delegate rule "to-np"; isolated by shop/default-deny; no rule matched',
    );
    // No NetworkPolicy after the Pass: the default allow after a logged Pass is logged too.
    const [lone] = records(base({ adminPolicies: [pass] }), '10.0.0.1', '10.0.0.2', 80);
    assert.equal(lone?.verdict, 'allowed');
    assert.equal(lone?.reason, 'not-isolated');
    assert.deepEqual(
      lone.policies.map((p) => p.action),
      ['pass'],
    );
  });

  it('a Pass whose next decision the rate limit suppressed makes no record, and is counted', () => {
    const pass = cnp('delegate', {
      ingress: [adminRule('Pass', [{ kind: 'namespaces', namespaceSelector: sel() }], undefined, 'to-np')],
    });
    for (const policies of [[denyAll], []]) {
      const s = base({ policies, adminPolicies: [pass] });
      const rs = compile(s, { table: 'moat', flowLog: { mode: 'policy', group: 1, rate: 10, burst: 5 } });
      const sim = simulate(rs, {
        family: 4,
        saddr: '10.0.0.1',
        daddr: '10.0.0.2',
        l4proto: 'tcp',
        dport: 80,
        hook: 'postrouting',
      });
      assert.equal(sim.logs.length, 2, sim.logs.join());
      const logger = new FlowLogger({ node: 'n1', passWaitMs: 1 });
      logger.setGeneration(rs, s);
      const out: FlowRecord[] = [];
      logger.subscribe((r) => out.push(r));
      logger.ingest({
        prefix: sim.logs[0]!,
        key: 'k',
        time: new Date(0),
        packet: { family: 'ipv4', protocol: 'TCP', src: '10.0.0.1', dst: '10.0.0.2', dstPort: 80 },
      });
      logger.flush();
      assert.deepEqual(out, []);
      assert.equal(logger.stats().incomplete, 1);
    }
  });

  it('admin Deny names the rule; audit mode accepts and says audit', () => {
    const deny = cnp('block-dev', {
      ingress: [
        adminRule(
          'Deny',
          [{ kind: 'namespaces', namespaceSelector: sel({ 'kubernetes.io/metadata.name': 'dev' }) }],
          undefined,
          'no-dev',
        ),
      ],
    });
    const s = base({ adminPolicies: [deny] });
    const [r] = records(s, '10.0.0.3', '10.0.0.2', 80);
    assert.equal(r?.verdict, 'denied');
    assert.equal(r?.reason, 'admin-deny');
    assert.equal(r?.summary, 'denied by ClusterNetworkPolicy block-dev rule "no-dev"');
    const [a] = records(s, '10.0.0.3', '10.0.0.2', 80, 'policy', true);
    assert.equal(a?.verdict, 'audit');
    assert.equal(
      a?.summary,
      'audit: would be dropped: denied by ClusterNetworkPolicy block-dev rule "no-dev"',
    );
    // The kernel really accepts it.
    const rs = compile(s, { table: 'moat', audit: true });
    assert.equal(
      simulate(rs, {
        family: 4,
        saddr: '10.0.0.3',
        daddr: '10.0.0.2',
        l4proto: 'tcp',
        dport: 80,
        hook: 'postrouting',
      }).verdict,
      'accept',
    );
  });

  it('a policy annotated for audit isolates nothing; alongside an enforced one it is ignored', () => {
    const audited = { ...denyAll, audit: true as const };
    const [r] = records(base({ policies: [audited] }), '10.0.0.1', '10.0.0.2', 80);
    assert.equal(r?.verdict, 'audit');
    assert.equal(r?.summary, 'audit: would be dropped: isolated by shop/default-deny; no rule matched');
    const auditedAllow = {
      ...netpol('shop', 'audited-allow', { podSelector: sel({ app: 'db' }), ingress: [rule()] }),
      audit: true as const,
    };
    const [d] = records(base({ policies: [denyAll, auditedAllow] }), '10.0.0.1', '10.0.0.2', 80);
    assert.equal(d?.verdict, 'denied');
    assert.deepEqual(
      d?.policies.map((p) => p.name),
      ['default-deny'],
    );
  });

  it('counts unattributed prefixes, keeps recent records in a ring, and counts by verdict', async () => {
    const s = base({ policies: [denyAll] });
    const rs = compile(s, { table: 'moat', flowLog: { mode: 'policy', group: 1, rate: 10, burst: 5 } });
    const logger = new FlowLogger({ node: 'n1', recent: 2, earlyWaitMs: 0 });
    logger.setGeneration(rs, s);
    const drop = rs.counters.find((c) => c.name.startsWith('d_'))!.name;
    const pkt = {
      family: 'ipv4' as const,
      protocol: 'UDP',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      srcPort: 1,
      dstPort: 53,
    };
    logger.ingest({ prefix: 'moat:D:nope', key: 'x', time: new Date(0), packet: pkt });
    logger.ingest({ prefix: 'other', key: 'x', time: new Date(0), packet: pkt });
    await new Promise((r) => setTimeout(r, 5)); // the unknown moat counter waited for a generation
    for (let i = 0; i < 3; i++) {
      logger.ingest({ prefix: `moat:D:${drop}`, key: String(i), time: new Date(i), packet: pkt });
    }
    assert.equal(logger.stats().unattributed, 2);
    assert.deepEqual([...logger.stats().records], [['denied/ingress', 3]]);
    assert.deepEqual(
      logger.recent().map((r) => r.time),
      ['1970-01-01T00:00:00.001Z', '1970-01-01T00:00:00.002Z'],
    );
    // A counter of the previous generation still maps after an apply removed it.
    logger.setGeneration(compile(base(), { table: 'moat' }), base());
    logger.ingest({ prefix: `moat:D:${drop}`, key: 'late', time: new Date(9), packet: pkt });
    assert.equal(logger.stats().unattributed, 2);
  });
  it("merges a Pass with its packet's decision when other packets come between them", () => {
    const pass = cnp('delegate', {
      ingress: [adminRule('Pass', [{ kind: 'namespaces', namespaceSelector: sel() }], undefined, 'to-np')],
    });
    const s = base({ policies: [denyAll], adminPolicies: [pass] });
    const rs = compile(s, { table: 'moat', flowLog: { mode: 'policy', group: 1, rate: 10, burst: 5 } });
    const logger = new FlowLogger({ node: 'n1', passWaitMs: 1000 });
    logger.setGeneration(rs, s);
    const out: FlowRecord[] = [];
    logger.subscribe((r) => out.push(r));
    const sim = (src: string) =>
      simulate(rs, {
        family: 4,
        saddr: src,
        daddr: '10.0.0.2',
        l4proto: 'tcp',
        dport: 80,
        hook: 'postrouting',
      }).logs;
    const a = sim('10.0.0.1');
    const b = sim('10.0.0.3');
    assert.equal(a.length, 2);
    const pkt = (src: string) => ({
      family: 'ipv4' as const,
      protocol: 'TCP',
      src,
      dst: '10.0.0.2',
      dstPort: 80,
    });
    const feed = (prefix: string, src: string) =>
      logger.ingest({ prefix, key: src, time: new Date(0), packet: pkt(src) });
    feed(a[0]!, '10.0.0.1');
    feed(b[0]!, '10.0.0.3');
    feed(b[1]!, '10.0.0.3');
    feed(a[1]!, '10.0.0.1');
    assert.deepEqual(
      out.map((r) => `${r.src.ip} ${r.policies.map((h) => h.action).join(',')}`),
      ['10.0.0.3 pass,deny', '10.0.0.1 pass,deny'],
    );
  });
  it('a packet logged before the agent learned the new generation is attributed by it', () => {
    const s = base({ policies: [denyAll] });
    const rs = compile(s, { table: 'moat', flowLog: { mode: 'policy', group: 1, rate: 10, burst: 5 } });
    const logger = new FlowLogger({ node: 'n1' });
    const out: FlowRecord[] = [];
    logger.subscribe((r) => out.push(r));
    logger.setGeneration(compile(base(), { table: 'moat' }), base());
    const drop = rs.counters.find((c) => c.name.startsWith('d_'))!.name;
    const pkt = {
      family: 'ipv4' as const,
      protocol: 'UDP',
      src: '10.0.0.1',
      dst: '10.0.0.2',
      srcPort: 1,
      dstPort: 53,
    };
    logger.ingest({ prefix: `moat:D:${drop}`, key: 'k', time: new Date(0), packet: pkt });
    assert.equal(out.length, 0);
    logger.setGeneration(rs, s);
    assert.equal(out[0]?.reason, 'no-rule-matched');
    assert.equal(logger.stats().unattributed, 0);
  });
});
