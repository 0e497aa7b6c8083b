import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipPeer, netpol, node, ns, pod, podPeer, pport, rule, sel, snapshot } from '../model/build.js';
import { compile } from './compile.js';
import { parseConntrackList, planConntrackCleanup, type CtEntry } from './conntrack.js';
import type { ConntrackTarget } from './diff.js';

const LIST = `tcp      6 431999 ESTABLISHED src=10.0.0.3 dst=10.96.0.10 sport=40000 dport=8080 src=10.0.0.1 dst=10.0.0.3 sport=80 dport=40000 [ASSURED] mark=0 use=1
udp      17 29 src=10.0.0.3 dst=10.0.0.1 sport=5353 dport=53 [UNREPLIED] src=10.0.0.1 dst=10.0.0.3 sport=53 dport=5353 mark=0 use=1
icmp     1 29 src=10.0.0.3 dst=10.0.0.1 type=8 code=0 id=7 src=10.0.0.1 dst=10.0.0.3 type=0 code=0 id=7 mark=0 use=1
tcp      6 300 ESTABLISHED src=fd00::0003 dst=fd00::1 sport=40001 dport=80 src=fd00::1 dst=fd00::3 sport=80 dport=40001 [ASSURED] mark=0 zone=3 use=1
unknown  47 599 src=10.0.0.3 dst=10.0.0.1 src=10.0.0.1 dst=10.0.0.3 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.
garbage
`;

describe('parseConntrackList', () => {
  it('reads both directions of every entry, any protocol, and skips what is not an entry', () => {
    const got = parseConntrackList(LIST);
    assert.deepEqual(
      got.map((e) => [e.family, e.proto, e.protonum, e.orig, e.reply]),
      [
        [
          4,
          'tcp',
          6,
          { src: '10.0.0.3', dst: '10.96.0.10', sport: 40000, dport: 8080 },
          { src: '10.0.0.1', dst: '10.0.0.3', sport: 80, dport: 40000 },
        ],
        [
          4,
          'udp',
          17,
          { src: '10.0.0.3', dst: '10.0.0.1', sport: 5353, dport: 53 },
          { src: '10.0.0.1', dst: '10.0.0.3', sport: 53, dport: 5353 },
        ],
        [4, 'icmp', 1, { src: '10.0.0.3', dst: '10.0.0.1' }, { src: '10.0.0.1', dst: '10.0.0.3' }],
        // Addresses are canonical, so they compare with the ruleset's.
        [
          6,
          'tcp',
          6,
          { src: 'fd00::3', dst: 'fd00::1', sport: 40001, dport: 80 },
          { src: 'fd00::1', dst: 'fd00::3', sport: 80, dport: 40001 },
        ],
        [4, 'unknown', 47, { src: '10.0.0.3', dst: '10.0.0.1' }, { src: '10.0.0.1', dst: '10.0.0.3' }],
      ],
    );
  });
});

/** web (10.0.0.1, fd00::1) on n1 admits client (10.0.0.3) on TCP 80 only; other is 10.0.0.4. */
function cluster(webFrom: 'client' | 'nobody' | 'cidr') {
  const from =
    webFrom === 'cidr' ? [ipPeer('10.0.0.0/24', ['10.0.0.3/32'])] : [podPeer(sel({ app: webFrom }), sel())];
  return snapshot({
    namespaces: [ns('a')],
    nodes: [node('n1', ['192.168.0.1'])],
    pods: [
      pod('a', 'web', { labels: { app: 'web' }, ips: ['10.0.0.1', 'fd00::1'], nodeName: 'n1' }),
      pod('a', 'client', { labels: { app: 'client' }, ips: ['10.0.0.3', 'fd00::3'], nodeName: 'n2' }),
      pod('a', 'other', { labels: { app: 'other' }, ips: ['10.0.0.4'], nodeName: 'n2' }),
    ],
    policies: [
      netpol('a', 'web', { podSelector: sel({ app: 'web' }), ingress: [rule(from, [pport(80, 'TCP')])] }),
    ],
  });
}

function flow(proto: string, src: string, dst: string, dport: number, via?: string): CtEntry {
  const family = src.includes(':') ? 6 : 4;
  return {
    family,
    proto,
    protonum: proto === 'tcp' ? 6 : proto === 'udp' ? 17 : 47,
    orig: { src, dst: via ?? dst, sport: 40000, dport: via !== undefined ? 8080 : dport },
    reply: { src: dst, dst: src, sport: dport, dport: 40000 },
  };
}

/** conntrack(8)'s reading of a -D filter, for the options the planner uses. */
function matches(args: readonly string[], e: CtEntry): boolean {
  const proto: Record<string, number> = { tcp: 6, udp: 17, icmp: 1 };
  for (let i = 1; i < args.length; i += 2) {
    const v = args[i + 1]!;
    const ok =
      args[i] === '-f'
        ? (v === 'ipv4') === (e.family === 4)
        : args[i] === '-p'
          ? (proto[v] ?? Number(v)) === e.protonum
          : args[i] === '-s'
            ? e.orig.src === v
            : args[i] === '-d'
              ? e.orig.dst === v
              : args[i] === '-r'
                ? e.reply.src === v
                : args[i] === '--dport'
                  ? e.orig.dport === Number(v)
                  : args[i] === '--reply-port-src'
                    ? e.reply.sport === Number(v)
                    : assert.fail(`unknown option ${args[i]}`);
    if (!ok) return false;
  }
  return true;
}

describe('planConntrackCleanup', () => {
  const web: ConntrackTarget[] = [
    { field: 'reply-src', address: '10.0.0.1' },
    { field: 'reply-src', address: 'fd00:0::1' },
  ];
  const dnat = (src: string, sport: number): CtEntry => {
    const e = flow('tcp', src, '10.0.0.1', 80, '10.96.0.10');
    return { ...e, orig: { ...e.orig, sport } };
  };
  const cases: {
    name: string;
    rules: 'client' | 'nobody' | 'cidr';
    entries: CtEntry[];
    targets: ConntrackTarget[];
    want: string[];
    kept: number;
  }[] = [
    {
      name: 'every flow of an address goes: one filter per address and family',
      rules: 'nobody',
      entries: [
        dnat('10.0.0.3', 1),
        flow('udp', '10.0.0.3', '10.0.0.1', 53),
        flow('tcp', 'fd00::3', 'fd00::1', 80),
      ],
      targets: web,
      want: ['-D -f ipv4 -r 10.0.0.1', '-D -f ipv6 -r fd00::1'],
      kept: 0,
    },
    {
      name: 'flows still allowed survive (judged after service DNAT); the rest go by protocol and port',
      rules: 'client',
      entries: [
        dnat('10.0.0.3', 1),
        flow('tcp', '10.0.0.3', '10.0.0.1', 81),
        flow('udp', '10.0.0.3', '10.0.0.1', 80),
        flow('tcp', 'fd00::3', 'fd00::1', 80),
      ],
      targets: web,
      want: ['-D -f ipv4 -r 10.0.0.1 -p tcp --reply-port-src 81', '-D -f ipv4 -r 10.0.0.1 -p udp'],
      kept: 2,
    },
    {
      name: 'an admitted and a dropped flow on one port: a filter per flow key, flows of one key together',
      rules: 'client',
      entries: [dnat('10.0.0.3', 1), dnat('10.0.0.4', 2), dnat('10.0.0.4', 3)],
      targets: web,
      want: ['-D -f ipv4 -r 10.0.0.1 -p tcp --reply-port-src 80 -s 10.0.0.4 -d 10.96.0.10 --dport 8080'],
      kept: 1,
    },
    {
      name: 'ipBlock except: the excepted address loses access, its neighbour keeps it',
      rules: 'cidr',
      entries: [flow('tcp', '10.0.0.3', '10.0.0.1', 80), flow('tcp', '10.0.0.4', '10.0.0.1', 80)],
      targets: web,
      want: ['-D -f ipv4 -r 10.0.0.1 -p tcp --reply-port-src 80 -s 10.0.0.3 -d 10.0.0.1 --dport 80'],
      kept: 1,
    },
    {
      name: 'a protocol moat does not model is dropped, by protocol number; entries of no target are not judged',
      rules: 'client',
      entries: [
        flow('tcp', '10.0.0.3', '10.0.0.1', 80),
        flow('gre', '10.0.0.3', '10.0.0.1', 0),
        flow('tcp', '10.0.0.1', '10.0.0.4', 9),
      ],
      targets: web,
      want: ['-D -f ipv4 -r 10.0.0.1 -p 47'],
      kept: 1,
    },
    {
      name: 'src targets match the original source',
      rules: 'cidr',
      entries: [flow('tcp', '10.0.0.4', '10.0.0.1', 80), flow('tcp', '10.0.0.4', '10.0.0.1', 81)],
      targets: [{ field: 'src', address: '10.0.0.4' }],
      want: ['-D -f ipv4 -s 10.0.0.4 -p tcp -r 10.0.0.1 --reply-port-src 81 -d 10.0.0.1 --dport 81'],
      kept: 1,
    },
    {
      name: 'an entry of two targets is deleted once',
      rules: 'nobody',
      entries: [flow('tcp', '10.0.0.3', '10.0.0.1', 80)],
      targets: [{ field: 'src', address: '10.0.0.3' }, ...web],
      want: ['-D -f ipv4 -s 10.0.0.3'],
      kept: 0,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rs = compile(cluster(c.rules), { table: 'moat', nodeName: 'n1' });
      const plan = planConntrackCleanup(c.entries, c.targets, rs);
      assert.deepEqual(plan.deletions.map((d) => d.args.join(' ')).sort(), [...c.want].sort());
      assert.equal(plan.kept, c.kept);
      assert.equal(
        plan.deletions.reduce((n, d) => n + d.entries, 0),
        plan.candidates - plan.kept,
      );
      // What conntrack would do with the filters: no admitted entry of the list is matched.
      const admitted = c.entries.filter((e) => !plan.deletions.some((d) => matches(d.args, e)));
      assert.equal(admitted.length, c.entries.length - (plan.candidates - plan.kept));
    });
  }
});

describe('planConntrackCleanup and the node', () => {
  // web is isolated both ways by a deny-all; the node's addresses: InternalIP, a veth address.
  const s = snapshot({
    ...cluster('nobody'),
    policies: [netpol('a', 'deny', { policyTypes: ['Ingress', 'Egress'] })],
  });
  const rs = compile(s, { table: 'moat', nodeName: 'n1' });
  const local = new Set(['192.168.0.1', '169.254.1.1', '10.0.0.254']);
  const targets: ConntrackTarget[] = [
    { field: 'src', address: '10.0.0.1' },
    { field: 'reply-src', address: '10.0.0.1' },
  ];
  const entries = [
    flow('tcp', '169.254.1.1', '10.0.0.1', 8080), // kubelet's probe from the veth's address
    flow('tcp', '10.0.0.254', '10.0.0.1', 8080), // from the bridge's address
    flow('tcp', '10.0.0.1', '192.168.0.1', 10250), // pod -> its node
    flow('tcp', '10.0.0.3', '10.0.0.1', 80), // another pod: cut
    flow('tcp', '10.0.0.1', '10.0.0.4', 80), // to another pod: cut
  ];
  it('keeps every flow to and from any of the node own addresses, cuts the rest', () => {
    const plan = planConntrackCleanup(entries, targets, rs, local);
    assert.equal(plan.candidates, 5);
    assert.equal(plan.kept, 3);
    assert.deepEqual(
      plan.deletions.map((d) => d.label),
      ['tcp 10.0.0.1 -> 10.0.0.4 (1 flow)', 'tcp to 10.0.0.1 port 80 (1 flow)'],
    );
  });
});
