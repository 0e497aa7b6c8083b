// What a hostile pod can try with crafted packets (scapy, CAP_NET_RAW: a default container
// capability), against the lab with moat enforcing, on both pod networks (routed, bridged) and both
// address families: spoofed sources (an allowed peer, an allowed ipBlock, the victim itself, the
// node's addresses, an ExternalIP), egress policy bypassed with a foreign source, neighbour
// discovery as a data channel, ARP spoofing on the bridge, a cut TCP flow picked up reversed, and
// across nodes. Every attack has a control: a packet of the same shape that must arrive, so a
// zero count means a drop, not a broken harness. The node's own traffic (kubelet-like probes from
// its other addresses, NodeLocal DNSCache's NOTRACK replies) must pass under default-deny.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { DataplaneApplier } from '../../src/dataplane/index.js';
import { labApplier } from '../../src/lab/enforce.js';
import { run } from '../../src/lab/exec.js';
import { Lab } from '../../src/lab/lab.js';
import { LAB_NETWORKS, POD_BRIDGE } from '../../src/lab/plan.js';
import {
  cport,
  ipPeer,
  netpol,
  ns,
  pod,
  podPeer,
  pport,
  rule,
  sel,
  snapshot,
} from '../../src/model/build.js';
import { parseIP, type Family } from '../../src/model/cidr.js';
import { loadText } from '../../src/model/load.js';
import type { NetworkPolicy, Snapshot } from '../../src/model/types.js';
import { repoRoot } from '../support/cli.js';
import { isRoot, needsRoot, uniquePrefix } from './lab-util.js';
import { flushConntrack } from './probe-util.js';

const PORT = 31337;
const ports = [cport(PORT, 'TCP', 'app'), cport(PORT, 'UDP', 'app-udp')];
const CIDRS = ['10.244.0.0/16', 'fd00:10:244::/64'];
/** An ipBlock the victim allows, outside the pod network. */
const BLOCK: Record<Family, string> = { 4: '10.99.0.5', 6: 'fd99:77::5' };
/** The node's ExternalIP: an address the node does not have (a cloud NATs it). */
const EXTERNAL: Record<Family, string> = { 4: '198.51.100.7', 6: '2001:db8:7::7' };
/** A source that is nobody's. */
const FOREIGN: Record<Family, string> = { 4: '203.0.113.9', 6: '2001:db8:9::9' };
/** NodeLocal DNSCache's link-local address (and an IPv6 one like it), on the node. */
const NODELOCAL: Record<Family, string> = { 4: '169.254.20.10', 6: 'fd99:20::10' };

const app = (name: string) => sel({ app: name });

/** victim admits friend (and the ipBlock) on PORT and may send to friend only; exfil may send nothing. */
function policies(victimAdmitsFriend = true): NetworkPolicy[] {
  return [
    netpol('x', 'victim', {
      podSelector: app('victim'),
      ingress: victimAdmitsFriend
        ? [
            rule(
              [podPeer(app('friend')), ipPeer('10.99.0.0/24'), ipPeer('fd99:77::/64')],
              [pport(PORT), pport(PORT, 'UDP')],
            ),
          ]
        : [],
      egress: [rule([podPeer(app('friend'))])],
      policyTypes: ['Ingress', 'Egress'],
    }),
    netpol('x', 'exfil', { podSelector: app('exfil'), policyTypes: ['Egress'] }),
  ];
}

function cluster(nodes: { attacker?: string; victim?: string } = {}): Snapshot {
  const p = (name: string, nodeName?: string) =>
    pod('x', name, { labels: { app: name }, ports, ...(nodeName !== undefined ? { nodeName } : {}) });
  return snapshot({
    namespaces: [ns('x')],
    pods: [
      p('friend', nodes.attacker),
      p('attacker', nodes.attacker),
      p('exfil', nodes.attacker),
      p('victim', nodes.victim),
      p('sink', nodes.victim),
    ],
    policies: policies(),
  });
}

/**
 * The enforced snapshot: the lab's, each node as the API server would decode it with an
 * ExternalIP besides its InternalIP, and the node's pod attachments (its CNI cache).
 */
function enforced(lab: Lab, index: number, pols: NetworkPolicy[]): Snapshot {
  const nodes = lab.snapshot.nodes.map((n) => {
    const addrs = [
      ...n.addresses.map((a) => `  - {type: InternalIP, address: "${a}"}`),
      `  - {type: ExternalIP, address: "${EXTERNAL[4]}"}`,
      `  - {type: ExternalIP, address: "${EXTERNAL[6]}"}`,
    ];
    const yaml = `apiVersion: v1\nkind: Node\nmetadata: {name: ${n.name}}\nstatus:\n  addresses:\n${addrs.join('\n')}\n`;
    const decoded = loadText(yaml, 'node.yaml').snapshot.nodes[0]!;
    return { ...decoded, podCIDRs: n.podCIDRs };
  });
  return { ...lab.snapshot, nodes, policies: pols, attachments: lab.attachments(index) };
}

let python: string | undefined;
function scapyPython(): string {
  if (python !== undefined) return python;
  const r = spawnSync('bash', [join(repoRoot(), 'test/support/scapy.sh')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`test/support/scapy.sh failed: ${r.stderr}`);
  python = r.stdout.trim();
  return python;
}

interface Job {
  readonly kind: 'udp' | 'syn' | 'nd' | 'arp';
  readonly src: string;
  readonly dst: string;
  readonly mac: string;
  readonly tag: number;
  readonly hlim?: number;
  /** A source MAC other than the pod's own. */
  readonly srcMac?: string;
}

/** Sends crafted frames from inside a pod's namespace. */
async function send(netns: string, jobs: readonly Job[]): Promise<void> {
  await run([
    'ip',
    'netns',
    'exec',
    netns,
    scapyPython(),
    join(repoRoot(), 'test/e2e/attack.py'),
    JSON.stringify(jobs),
  ]);
}

async function macOf(netns: string, link: string): Promise<string> {
  const { stdout } = await run(['ip', '-n', netns, '-j', 'link', 'show', link]);
  return (JSON.parse(stdout) as { address: string }[])[0]!.address;
}

/** Where a frame from `from` to `to` goes first: the node's veth end (routed), or over the bridge. */
async function nextHop(lab: Lab, from: string, to: string): Promise<string> {
  const node = lab.podNode(from)!;
  if (lab.network === 'routed') return macOf(node.netns, lab.podLink(from)!);
  if (lab.podNode(to)!.name === node.name) return macOf(lab.podNetns(to)!, 'eth0');
  return macOf(node.netns, POD_BRIDGE);
}

/**
 * Counters in a pod's own namespace, at the very first hook: what reached the pod. One counter per
 * tag: the UDP/TCP source port of a case, or the ICMPv6 code of an nd case.
 */
async function sniff(netns: string, tags: readonly { tag: number; kind: Job['kind'] }[]): Promise<void> {
  const rules = tags.map(({ tag, kind }) =>
    kind === 'nd'
      ? `add rule inet moatsniff pre meta l4proto ipv6-icmp icmpv6 type nd-neighbor-solicit icmpv6 code ${tag} counter name c${tag}`
      : kind === 'syn'
        ? `add rule inet moatsniff pre tcp sport ${tag} tcp flags & syn == syn counter name c${tag}`
        : `add rule inet moatsniff pre udp sport ${tag} counter name c${tag}`,
  );
  const script = [
    'table inet moatsniff {}',
    'delete table inet moatsniff',
    'table inet moatsniff {',
    '  chain pre {',
    '    type filter hook prerouting priority -400; policy accept;',
    '  }',
    '}',
    ...tags.map(({ tag }) => `add counter inet moatsniff c${tag}`),
    ...rules,
  ].join('\n');
  await run(['ip', 'netns', 'exec', netns, 'nft', '-f', '-'], `${script}\n`);
}

async function counts(netns: string): Promise<Map<number, number>> {
  const { stdout } = await run([
    'ip',
    'netns',
    'exec',
    netns,
    'nft',
    '-j',
    'list',
    'counters',
    'table',
    'inet',
    'moatsniff',
  ]);
  const out = new Map<number, number>();
  for (const item of (JSON.parse(stdout) as { nftables: { counter?: { name: string; packets: number } }[] })
    .nftables) {
    if (item.counter) out.set(Number(item.counter.name.slice(1)), item.counter.packets);
  }
  return out;
}

interface Case {
  readonly name: string;
  readonly from: string;
  readonly src: string;
  readonly to: string;
  readonly kind: 'udp' | 'syn' | 'nd';
  readonly hlim?: number;
  /** true: a control, it must arrive; false: an attack, it must not. */
  readonly arrives: boolean;
}

function addrOf(lab: Lab, key: string, f: Family): string {
  const ip = lab.snapshot.pods
    .find((p) => `${p.namespace}/${p.name}` === key)!
    .ips.find((x) => parseIP(x)?.family === f);
  assert.ok(ip !== undefined, `${key} has an IPv${f} address`);
  return ip;
}

/** Runs the cases: tags, sniffers, one scapy run per sending pod, then one verdict per case. */
async function runCases(lab: Lab, cases: readonly Case[]): Promise<Map<Case, number>> {
  const tagged = cases.map((c, i) => ({ c, tag: c.kind === 'nd' ? 100 + i : 41000 + i }));
  for (const to of new Set(cases.map((c) => c.to))) {
    await sniff(
      lab.podNetns(to)!,
      tagged.filter((t) => t.c.to === to).map((t) => ({ tag: t.tag, kind: t.c.kind })),
    );
  }
  for (const from of new Set(cases.map((c) => c.from))) {
    const jobs: Job[] = [];
    for (const { c, tag } of tagged.filter((t) => t.c.from === from)) {
      const dst = addrOf(lab, c.to, parseIP(c.src)!.family);
      jobs.push({
        kind: c.kind,
        src: c.src,
        dst,
        mac: await nextHop(lab, c.from, c.to),
        tag,
        ...(c.hlim !== undefined ? { hlim: c.hlim } : {}),
      });
    }
    await send(lab.podNetns(from)!, jobs);
  }
  await new Promise((r) => setTimeout(r, 300));
  const out = new Map<Case, number>();
  for (const to of new Set(cases.map((c) => c.to))) {
    const got = await counts(lab.podNetns(to)!);
    for (const t of tagged) if (t.c.to === to) out.set(t.c, got.get(t.tag) ?? 0);
  }
  return out;
}

function assertCases(results: Map<Case, number>): void {
  const wrong = [...results].filter(([c, n]) => n > 0 !== c.arrives);
  assert.deepEqual(
    wrong.map(([c, n]) => `${c.name}: ${n} packet(s) arrived, want ${c.arrives ? 'some' : 'none'}`),
    [],
  );
}

/** The one-node cases for one family. */
function oneNodeCases(lab: Lab, f: Family): Case[] {
  const a = (k: string) => addrOf(lab, `x/${k}`, f);
  const node = lab.plan.node.addresses.find((x) => parseIP(x)?.family === f)!;
  const out: Case[] = [];
  for (const kind of ['udp', 'syn'] as const) {
    const to = (c: Omit<Case, 'kind'>): Case => ({ ...c, kind, name: `${kind}: ${c.name}` });
    out.push(
      to({
        name: 'control: friend -> victim, its own address',
        from: 'x/friend',
        src: a('friend'),
        to: 'x/victim',
        arrives: true,
      }),
      to({
        name: 'attacker posing as friend (an allowed peer) -> victim',
        from: 'x/attacker',
        src: a('friend'),
        to: 'x/victim',
        arrives: false,
      }),
      to({
        name: `attacker posing as ${BLOCK[f]} (in an allowed ipBlock) -> victim`,
        from: 'x/attacker',
        src: BLOCK[f],
        to: 'x/victim',
        arrives: false,
      }),
      to({
        name: "attacker posing as the victim's own address -> victim",
        from: 'x/attacker',
        src: a('victim'),
        to: 'x/victim',
        arrives: false,
      }),
      to({
        name: `attacker posing as the node's InternalIP ${node} -> victim`,
        from: 'x/attacker',
        src: node,
        to: 'x/victim',
        arrives: false,
      }),
      to({
        name: `attacker posing as the node's ExternalIP ${EXTERNAL[f]} -> victim`,
        from: 'x/attacker',
        src: EXTERNAL[f],
        to: 'x/victim',
        arrives: false,
      }),
      to({
        name: 'control: attacker -> sink (not isolated), its own address',
        from: 'x/attacker',
        src: a('attacker'),
        to: 'x/sink',
        arrives: true,
      }),
      to({
        name: 'exfil (isolated for egress) -> sink, its own address: denied by policy',
        from: 'x/exfil',
        src: a('exfil'),
        to: 'x/sink',
        arrives: false,
      }),
      to({
        name: `exfil bypassing egress with a foreign source ${FOREIGN[f]} -> sink`,
        from: 'x/exfil',
        src: FOREIGN[f],
        to: 'x/sink',
        arrives: false,
      }),
      to({
        name: 'exfil bypassing egress posing as friend -> sink',
        from: 'x/exfil',
        src: a('friend'),
        to: 'x/sink',
        arrives: false,
      }),
    );
  }
  if (f === 6) {
    out.push(
      {
        name: 'nd: control: ND-typed data attacker -> sink (not isolated)',
        from: 'x/attacker',
        src: a('attacker'),
        to: 'x/sink',
        kind: 'nd',
        arrives: true,
      },
      {
        name: 'nd: ND-typed data attacker -> victim, hop limit 64',
        from: 'x/attacker',
        src: a('attacker'),
        to: 'x/victim',
        kind: 'nd',
        hlim: 64,
        arrives: false,
      },
      {
        // Routed, it is forwarded (hop limit 254 by postrouting) and goes through policy. Bridged,
        // it is ND between neighbours as ND is: hop limit 255, never routed (RFC 4861).
        name: 'nd: ND-typed data attacker -> victim, hop limit 255',
        from: 'x/attacker',
        src: a('attacker'),
        to: 'x/victim',
        kind: 'nd',
        hlim: 255,
        arrives: lab.network === 'bridge',
      },
      {
        name: 'nd: ND-typed data from exfil (isolated for egress) -> sink',
        from: 'x/exfil',
        src: a('exfil'),
        to: 'x/sink',
        kind: 'nd',
        arrives: false,
      },
    );
  }
  return out;
}

for (const network of LAB_NETWORKS) {
  describe(`attacks on a ${network} pod network`, { skip: needsRoot }, () => {
    let lab: Lab | undefined;
    let applier: DataplaneApplier;
    const apply = async (pols: NetworkPolicy[] = policies()) => {
      const r = await applier.apply(enforced(lab!, 0, pols));
      assert.deepEqual(r.conntrackErrors, []);
    };

    before(async () => {
      if (isRoot) scapyPython();
      lab = await Lab.create(cluster(), {
        prefix: uniquePrefix(),
        podCidrs: CIDRS,
        network,
        probeTimeoutMs: 700,
      });
      applier = labApplier(lab);
      await apply();
    });
    after(async () => {
      await lab?.destroy();
    });

    for (const f of [4, 6] as const) {
      it(`IPv${f}: spoofed sources and egress bypass are dropped, controls arrive`, async () => {
        assertCases(await runCases(lab!, oneNodeCases(lab!, f)));
      });

      it(`IPv${f}: a cut TCP flow does not come back reversed when the server speaks first`, async () => {
        const l = lab!;
        await flushConntrack(l);
        const conn = await l.connect('x/friend', 'x/victim', PORT, f);
        assert.ok(conn, 'friend connects to victim');
        try {
          assert.equal(await conn.send(), true, 'the flow works while allowed');
          await apply(policies(false)); // victim admits nobody now: the flow is cut
          assert.ok((await l.push('x/victim', PORT)) > 0, 'victim pushes data on the cut flow');
          await new Promise((r) => setTimeout(r, 200));
          assert.equal(await conn.send(700), false, "friend's data must not pass as a reply");
        } finally {
          await conn.close();
          await apply();
          await flushConntrack(l);
        }
      });

      it(`IPv${f}: the node reaches a default-deny pod from any of its own addresses`, async () => {
        const l = lab!;
        await l.startNodeProber(0);
        const { stdout } = await run(['ip', '-n', l.nodeNetns, '-j', 'address', 'show']);
        // Link-local sources: the gateway on the victim's veth (routed), the bridge's (bridged).
        const link = network === 'routed' ? l.podLink('x/victim')! : POD_BRIDGE;
        const linkLocal = (JSON.parse(stdout) as { ifname: string; addr_info: { local: string }[] }[])
          .filter((i) => i.ifname === link)
          .flatMap((i) => i.addr_info.map((x) => x.local))
          .filter((x) => x.startsWith('fe80:'))
          .map((x) => `${x}%${link}`);
        const sources = [
          undefined, // the kernel's choice
          ...l.nodeSources(0).filter((x) => parseIP(x)?.family === f && !x.startsWith('fe80:')),
          ...(f === 6 ? linkLocal : []),
        ];
        const failed: string[] = [];
        for (const source of sources) {
          // The kubelet's probes are TCP (HTTP, gRPC, TCP socket). UDP from a link-local source is
          // left out: the pod's unbound echo server answers from its own link-local address.
          const protocols =
            source?.startsWith('fe80:') === true ? (['TCP'] as const) : (['TCP', 'UDP'] as const);
          for (const protocol of protocols) {
            const r = await l.probeFromNode(0, 'x/victim', PORT, protocol, source);
            if (r.allowed !== true) failed.push(`${protocol} from ${source ?? 'default'}: ${r.detail}`);
          }
        }
        assert.deepEqual(failed, []);
      });

      it(`IPv${f}: NodeLocal DNSCache-style replies (NOTRACK, from ${NODELOCAL[f]}) reach a default-deny pod`, async () => {
        const l = lab!;
        const ns = l.nodeNetns;
        const addr = NODELOCAL[f];
        const ip = f === 4 ? 'ip' : 'ip6';
        await run(['ip', '-n', ns, 'address', 'replace', `${addr}/${f === 4 ? 32 : 128}`, 'dev', 'lo']);
        // As node-local-dns sets it up: no conntrack for DNS to and from its address.
        const table = `moattest_nodelocal${f}`;
        await run(
          ['ip', 'netns', 'exec', ns, 'nft', '-f', '-'],
          [
            `table inet ${table} {`,
            '  chain pre {',
            '    type filter hook prerouting priority -300; policy accept;',
            `    ${ip} daddr ${addr} udp dport 53 notrack`,
            `    ${ip} daddr ${addr} tcp dport 53 notrack`,
            '  }',
            '  chain out {',
            '    type filter hook output priority -300; policy accept;',
            `    ${ip} saddr ${addr} udp sport 53 notrack`,
            `    ${ip} saddr ${addr} tcp sport 53 notrack`,
            '  }',
            '}',
          ].join('\n') + '\n',
        );
        // Bound to its address, as node-local-dns is: a UDP answer comes from the address asked.
        const dns = await l.startNodeServer(0, [53], [addr]);
        try {
          for (const protocol of ['UDP', 'TCP'] as const) {
            const r = await l.probeAddress('x/victim', addr, 53, protocol);
            assert.equal(r.allowed, true, `${protocol} to ${addr}:53: ${r.detail}`);
          }
        } finally {
          await dns.stop();
          await run(['ip', 'netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', table]);
        }
      });
    }

    if (network === 'bridge') {
      it("a pod cannot send with another pod's MAC (the bridge would send that pod's frames to it)", async () => {
        const l = lab!;
        const victimMac = await macOf(l.podNetns('x/victim')!, 'eth0');
        // The bridge learns the victim's MAC on the victim's port from the victim's own traffic.
        await l.probe('x/victim', 'x/friend', PORT, 'UDP');
        await send(l.podNetns('x/attacker')!, [
          {
            kind: 'udp',
            src: addrOf(l, 'x/attacker', 4),
            dst: addrOf(l, 'x/sink', 4),
            mac: await macOf(l.podNetns('x/sink')!, 'eth0'),
            srcMac: victimMac,
            tag: 42000,
          },
        ]);
        const { stdout } = await run(['bridge', '-n', l.nodeNetns, '-j', 'fdb', 'show', 'br', POD_BRIDGE]);
        const ports = (JSON.parse(stdout) as { mac: string; ifname: string }[])
          .filter((e) => e.mac === victimMac)
          .map((e) => e.ifname);
        assert.deepEqual(ports, [l.podLink('x/victim')], `the bridge's port for ${victimMac}`);
      });

      it("IPv4: a pod cannot claim another pod's address in ARP", async () => {
        const l = lab!;
        const victim = addrOf(l, 'x/victim', 4);
        const friendMac = await macOf(l.podNetns('x/friend')!, 'eth0');
        const attackerMac = await macOf(l.podNetns('x/attacker')!, 'eth0');
        const victimMac = await macOf(l.podNetns('x/victim')!, 'eth0');
        const friend = l.podNetns('x/friend')!;
        // friend knows victim's real MAC; the attacker then says it is victim.
        await run([
          'ip',
          '-n',
          friend,
          'neigh',
          'replace',
          victim,
          'lladdr',
          victimMac,
          'dev',
          'eth0',
          'nud',
          'stale',
        ]);
        await send(l.podNetns('x/attacker')!, [
          { kind: 'arp', src: victim, dst: addrOf(l, 'x/friend', 4), mac: friendMac, tag: 0 },
        ]);
        await new Promise((r) => setTimeout(r, 200));
        const { stdout } = await run(['ip', '-n', friend, '-j', 'neigh', 'show', victim]);
        const entry = (JSON.parse(stdout) as { lladdr?: string }[])[0];
        assert.equal(entry?.lladdr, victimMac, `friend's entry for ${victim} (attacker is ${attackerMac})`);
      });
    }
  });

  describe(`attacks across two nodes on a ${network} pod network`, { skip: needsRoot }, () => {
    let lab: Lab | undefined;
    before(async () => {
      if (isRoot) scapyPython();
      lab = await Lab.create(cluster({ attacker: 'moat-lab', victim: 'moat-lab-2' }), {
        prefix: uniquePrefix(),
        podCidrs: CIDRS,
        network,
        nodes: 2,
        probeTimeoutMs: 700,
      });
      for (const i of [0, 1]) {
        const r = await labApplier(lab, 'moat', i).apply(enforced(lab, i, policies()));
        assert.deepEqual(r.conntrackErrors, []);
      }
    });
    after(async () => {
      await lab?.destroy();
    });

    for (const f of [4, 6] as const) {
      it(`IPv${f}: a pod on one node cannot pose as an allowed peer to a pod on another`, async () => {
        const l = lab!;
        const a = (k: string) => addrOf(l, `x/${k}`, f);
        const cases: Case[] = [];
        for (const kind of ['udp', 'syn'] as const) {
          cases.push(
            {
              name: `${kind}: control: friend -> victim across nodes`,
              from: 'x/friend',
              src: a('friend'),
              to: 'x/victim',
              kind,
              arrives: true,
            },
            {
              name: `${kind}: attacker posing as friend -> victim across nodes`,
              from: 'x/attacker',
              src: a('friend'),
              to: 'x/victim',
              kind,
              arrives: false,
            },
            {
              name: `${kind}: attacker posing as the victim's node -> victim`,
              from: 'x/attacker',
              src: l.plan.nodes[1]!.addresses.find((x) => parseIP(x)?.family === f)!,
              to: 'x/victim',
              kind,
              arrives: false,
            },
            {
              name: `${kind}: control: attacker -> sink across nodes`,
              from: 'x/attacker',
              src: a('attacker'),
              to: 'x/sink',
              kind,
              arrives: true,
            },
            {
              name: `${kind}: exfil with a foreign source -> sink across nodes`,
              from: 'x/exfil',
              src: FOREIGN[f],
              to: 'x/sink',
              kind,
              arrives: false,
            },
          );
        }
        assertCases(await runCases(l, cases));
      });
    }
  });
}
