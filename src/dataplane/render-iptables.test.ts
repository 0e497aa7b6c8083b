import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cport, ipPeer, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import { compile } from './compile.js';
import { nftChain, type Ruleset } from './model.js';
import {
  ACCEPT_CHAIN,
  iptChain,
  IptablesRenderError,
  ipsetName,
  renderIpsetRestore,
  renderIptables,
} from './render-iptables.js';
import { ACCEPT, rule as mk } from './rule.js';

const snap = snapshot({
  namespaces: [ns('a'), ns('b')],
  nodes: [node('n1', ['192.168.0.1', 'fd00::1'])],
  pods: [
    pod('a', 'x', {
      labels: { app: 'x' },
      ips: ['10.0.0.1', 'fd00:10::1'],
      nodeName: 'n1',
      ports: [cport(80, 'TCP', 'http')],
    }),
    pod('b', 'y', { labels: { app: 'y' }, ips: ['10.0.0.2', 'fd00:10::2'], nodeName: 'n1' }),
  ],
  policies: [
    netpol('a', 'x', {
      podSelector: sel({ app: 'x' }),
      ingress: [
        rule([podPeer(undefined, sel())], [pport('http')]),
        rule([ipPeer('10.0.0.0/8', ['10.0.0.2/32', '10.1.0.0/16'])]),
        rule([ipPeer('0.0.0.0/0', ['10.0.0.0/8'])], [pport(8000, 'TCP', 8100)]),
      ],
    }),
  ],
});
const rs = compile(snap, { table: 'moat', nodeName: 'n1' });
const lines = (text: string, chain: string) => text.split('\n').filter((l) => l.startsWith(`-A ${chain} `));

describe('iptables rendering of the rule model', () => {
  const r = renderIptables(rs);

  it('an accept sets the bit and returns; a jump returns while it is set; the hook clears it', () => {
    assert.ok(r.v4.includes(`-A ${ACCEPT_CHAIN} -j MARK --set-xmark 0x40000/0x40000`));
    assert.deepEqual(lines(r.v4, 'MOAT-POSTROUTING'), [
      '-A MOAT-POSTROUTING -j MARK --set-xmark 0x0/0x40000',
      '-A MOAT-POSTROUTING -j MOAT-ingress',
      '-A MOAT-POSTROUTING -m mark --mark 0x40000/0x40000 -j MARK --set-xmark 0x0/0x40000',
    ]);
    const sig = r.v4.split('\n').find((l) => /^-A MOAT-in_\S+ -j MOAT-pi_/.test(l))!;
    const all = r.v4.split('\n');
    assert.equal(
      all[all.indexOf(sig) + 1],
      `${sig.split(' -j ')[0]} -m mark --mark 0x40000/0x40000 -j RETURN`,
    );
    assert.ok(
      lines(r.v4, 'MOAT-ingress').includes(
        '-A MOAT-ingress -m conntrack --ctstate ESTABLISHED,RELATED -g MOAT-ACCEPT',
      ),
    );
    assert.deepEqual(r.hooks, [
      { table: 'raw', builtin: 'PREROUTING', target: 'MOAT-PREROUTING' },
      { table: 'mangle', builtin: 'FORWARD', target: 'MOAT-FORWARD' },
      { table: 'mangle', builtin: 'POSTROUTING', target: 'MOAT-POSTROUTING' },
    ]);
  });

  it('an ipBlock with except is a hash:net set with nomatch entries; 0.0.0.0/0 except is a negation', () => {
    const c = r.sets.find((s) => s.elements.includes('10.0.0.0/8'))!;
    assert.equal(c.type, 'hash:net family inet');
    assert.deepEqual(c.elements, ['10.0.0.0/8', '10.0.0.2/32 nomatch', '10.1.0.0/16 nomatch']);
    assert.match(
      r.v4,
      new RegExp(`-m set --match-set ${c.name} src -m comment --comment moat:a_\\w+_i1 -g MOAT-ACCEPT`),
    );
    assert.match(r.v4, /! -s 10\.0\.0\.0\/8 -m comment --comment moat:a_\w+_i2 -g MOAT-ACCEPT/);
    assert.match(r.v4, /-p tcp --dport 8000:8100 ! -s 10\.0\.0\.0\/8/);
    // The IPv4 ipBlocks are not in ip6tables.
    assert.doesNotMatch(r.v6, /10\.0\.0\.0/);
  });

  it('a named port is a hash:ip,port set; a verdict map is one set and one rule per target', () => {
    const np = r.sets.find((s) => s.name === ipsetName('nport_http_v4'))!;
    assert.deepEqual(np, {
      name: 'moat-nport_http_v4',
      type: 'hash:ip,port family inet',
      elements: ['10.0.0.1,tcp:80'],
    });
    const dispatch = lines(r.v4, 'MOAT-ingress_pods').filter((l) => l.includes('--match-set moat-d-'));
    assert.equal(dispatch.length, 1);
    const set = /--match-set (\S+)/.exec(dispatch[0]!)![1]!;
    assert.deepEqual(r.sets.find((s) => s.name === set)?.elements, ['10.0.0.1']);
    assert.match(dispatch[0]!, / dst -g MOAT-in_\w+$/);
  });

  it('ND: ICMPv6 types expand to one rule each, in ip6tables only', () => {
    const nd = lines(r.v6, 'MOAT-ingress_pods').filter((l) => l.includes('--hl-eq 255'));
    assert.deepEqual(
      nd.map((l) => /--icmpv6-type (\S+)/.exec(l)?.[1]),
      ['133', '134', '135', '136', '137'],
    );
    assert.doesNotMatch(r.v4, /icmpv6/);
  });

  it('self pairs: a hash:net,net set, or one rule per local pod without it', () => {
    assert.match(r.v4, /-m set --match-set moat-self_v4 dst,src -g MOAT-ACCEPT/);
    const rules = renderIptables(rs, { selfPairs: 'rules' });
    assert.ok(!rules.sets.some((s) => s.name === 'moat-self_v4'));
    assert.ok(
      lines(rules.v4, 'MOAT-ingress_pods').includes(
        '-A MOAT-ingress_pods -s 10.0.0.1/32 -d 10.0.0.1/32 -g MOAT-ACCEPT',
      ),
    );
    assert.ok(
      lines(rules.v6, 'MOAT-egress_pods').includes(
        '-A MOAT-egress_pods -s fd00:10::2/128 -d fd00:10::2/128 -g MOAT-ACCEPT',
      ),
    );
  });

  it('flow logs: the limit is consulted once per packet (hashlimit-above), then NFLOG and the verdict', () => {
    const fl = renderIptables(
      compile(snap, {
        table: 'moat',
        nodeName: 'n1',
        flowLog: { mode: 'policy', group: 7, rate: 50, burst: 9 },
      }),
    );
    const chain = fl.chains.mangle.find((c) => c.startsWith('MOAT-fl_d_'))!;
    assert.deepEqual(
      lines(fl.v4, chain).map((l) => l.replace(/moat:D:\S+/, 'PREFIX')),
      [
        `-A ${chain} -m hashlimit --hashlimit-above 50/sec --hashlimit-burst 9 --hashlimit-name moat-flowlog -m comment --comment moat:flowlog_suppressed -j DROP`,
        `-A ${chain} -j NFLOG --nflog-group 7 --nflog-prefix PREFIX`,
        `-A ${chain} -j DROP`,
      ],
    );
  });

  it('names fit iptables (28) and ipset (31), deterministic and distinct', () => {
    const a = iptChain('fl_r_5f605a35226dcb35_i0');
    const b = iptChain('fl_r_5f605a35226dcb35_i1');
    assert.ok(a.length <= 28 && b.length <= 28 && a !== b && a === iptChain('fl_r_5f605a35226dcb35_i0'));
    for (const s of r.sets) assert.ok(s.name.length <= 31 && s.name.startsWith('moat-'), s.name);
    for (const c of [...r.chains.raw, ...r.chains.mangle])
      assert.ok(c.length <= 28 && c.startsWith('MOAT-'), c);
  });

  it('ipset restore: every set filled under a temporary name and swapped in', () => {
    const text = renderIpsetRestore([
      { name: 'moat-p', type: 'hash:ip family inet', elements: ['10.0.0.1'] },
    ]);
    const tmp = /create (moat-t-\w+)/.exec(text)![1]!;
    assert.equal(
      text,
      [
        'create moat-p hash:ip family inet maxelem 65536 -exist',
        `create ${tmp} hash:ip family inet maxelem 65536 -exist`,
        `flush ${tmp}`,
        `add ${tmp} 10.0.0.1`,
        `swap ${tmp} moat-p`,
        `destroy ${tmp}`,
        '',
      ].join('\n'),
    );
  });

  it('ipset restore: a set that exists is not created again, and the swap brings its new size', () => {
    const elements = Array.from({ length: 70000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    const text = renderIpsetRestore(
      [{ name: 'moat-p', type: 'hash:ip family inet', elements }],
      new Set(['moat-p']),
    );
    const lines = text.split('\n');
    assert.match(lines[0]!, /^create moat-t-\w+ hash:ip family inet maxelem 131072 -exist$/);
    assert.ok(!lines.some((l) => l.startsWith('create moat-p ')));
    assert.match(text, /^swap moat-t-\w+ moat-p$/m);
  });

  it('refuses what it cannot say: bridge matches, inner wildcards, bridge tables', () => {
    const bad = (chain: Ruleset['chains'][number]): Ruleset => ({ ...rs, chains: [...rs.chains, chain] });
    assert.throws(
      () => renderIptables(bad(nftChain('x', [mk([{ m: 'etherType', type: 'ip' }], ACCEPT)]))),
      (e: Error) => e instanceof IptablesRenderError && /bridge table/.test(e.message),
    );
    assert.throws(
      () => renderIptables(bad(nftChain('x', [mk([{ m: 'iif', glob: 'a*b' }], ACCEPT)]))),
      /trailing wildcard/,
    );
    assert.throws(() => renderIptables({ ...rs, family: 'bridge' }), /only the inet table/);
  });
});
