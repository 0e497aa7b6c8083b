// Traffic through a node namespace holding moat's ruleset for a 10,000-pod / 1,000-policy cluster
// (one node's share: the node-0 pods), against the same node with only the conntrack rules.
// Topology (root): client netns -- node netns (routes, holds the table) -- server netns; client and
// server are 2 of the 10,000 pods, both on node-0. The server is isolated by three policies and
// admitted by rule 1 of the last one in jump order; the client is egress-isolated and allowed by
// rule 1 of its egress policy. Rounds alternate baseline (A) and moat (B): ABBA ABBA...; each AB
// pair gives a ratio, reported as the median and range of the pair ratios (robust to the machine's
// load drifting between rounds) next to the medians of each side. The node-side veths count as pod
// interfaces, so moat's source check (a fib lookup per packet from a pod) is in B's cost.
// Each round: a connect/greeting/RST loop on PAR sockets for RATE_MS, 2 s iperf3, 600 sequential connects.
// SYN retransmissions (1 s stalls: the reason earlier figures were noise) are counted per round;
// the server's accept queue is deep (backlog 4096, somaxconn and tcp_max_syn_backlog raised in the
// bench's own namespaces only: they are per-netns sysctls).
// Variant `flowlog`: A is moat's ruleset without flow logs, B the same with `--flow-log policy` and
// a rate limit no connection reaches (every decision logged: two records per connection, egress
// and ingress), read by the agent's NFLOG reader and flow logger in the node namespace.
// RECORDS_PER_S is the node's rate limit (default 1000, the agent's default; 10000000: every
// decision logged). The reader runs in its own process, as in the agent (bench/flow-sink.ts).
// READER `noreader` leaves the group unbound: the kernel's cost alone (the log rules and the limit).
//   node dist/bench/dataplane-traffic.js [rounds=10] [RATE_MS=3000] [PAR=8] [A=baseline|noguard|flowlog] [RECORDS_PER_S] [reader|noreader]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { compile, renderNft } from '../src/dataplane/index.js';
import { cport, netpol, pod, podPeer, pport, rule, sel } from '../src/model/build.js';
import type { Snapshot } from '../src/model/types.js';
import { generate } from './dataplane-load.js';
import { BenchNetns, isRoot, median, percentile, sh } from './netns.js';
import { spawn } from 'node:child_process';

export const TABLE = 'moat_bench';
export const CLIENT = '10.130.0.2';
export const SERVER = '10.130.1.2';
export const PORT = 8080;
export const IPERF_PORT = 5201;
const here = dirname(fileURLToPath(import.meta.url));
export const TCP_LOAD = join(here, 'tcp-load.js');

/** The generated cluster (9,998 pods) plus the benchmark's client and server pods and policies. */
export function benchSnapshot(): Snapshot {
  const g = generate(9998, 1000);
  const ns0 = 'ns-0';
  return {
    ...g,
    pods: [
      ...g.pods,
      pod(ns0, 'bench-client', {
        labels: { app: 'app-1', tier: 'front' },
        ips: [CLIENT],
        nodeName: 'node-0',
      }),
      pod(ns0, 'bench-server', {
        labels: { app: 'app-0', tier: 'back' },
        ips: [SERVER],
        nodeName: 'node-0',
        ports: [cport(PORT, 'TCP', 'http'), cport(IPERF_PORT, 'TCP', 'iperf')],
      }),
    ],
    policies: [
      ...g.policies,
      // Sorts after ns-0/deny-0, ns-0/ipblock-4 and ns-0/ipblock-9, which also select the server.
      netpol(ns0, 'zz-allow-client', {
        podSelector: sel({ app: 'app-0' }),
        ingress: [
          rule([podPeer(sel({ app: 'app-7' }))], [pport(9000)]),
          rule([podPeer(sel({ app: 'app-1' }))], [pport('http'), pport(IPERF_PORT)]),
        ],
      }),
      netpol(ns0, 'zz-client-egress', {
        podSelector: sel({ app: 'app-1' }),
        policyTypes: ['Egress'],
        egress: [
          rule([podPeer(sel({ k8s: 'dns' }), sel())], [pport(53, 'UDP')]),
          rule([podPeer(sel({ app: 'app-0' }))], [pport('http'), pport(IPERF_PORT)]),
        ],
      }),
    ],
  };
}

export function baselineScript(): string {
  const t = `inet ${TABLE}`;
  const chain = (name: string, prio: number) =>
    `\tchain ${name} {\n\t\ttype filter hook postrouting priority ${prio}; policy accept;\n\t\tct state established,related accept\n\t}\n`;
  return `table ${t} {}\ndelete table ${t}\ntable ${t} {\n${chain('egress', 94)}${chain('ingress', 95)}}\n`;
}

export function setup(nsx: BenchNetns) {
  const client = nsx.add('c');
  const node = nsx.add('n');
  const server = nsx.add('s');
  const links = [
    { pod: client, podIf: `moat${nsx.id}c`, nodeIf: `moat${nsx.id}cn`, net: '10.130.0', ip: CLIENT },
    { pod: server, podIf: `moat${nsx.id}s`, nodeIf: `moat${nsx.id}sn`, net: '10.130.1', ip: SERVER },
  ];
  for (const l of links) {
    sh([
      'ip',
      'link',
      'add',
      l.podIf,
      'netns',
      l.pod,
      'type',
      'veth',
      'peer',
      'name',
      l.nodeIf,
      'netns',
      node,
    ]);
    sh(['ip', '-n', l.pod, 'addr', 'add', `${l.ip}/24`, 'dev', l.podIf]);
    sh(['ip', '-n', l.pod, 'link', 'set', l.podIf, 'up']);
    sh(['ip', '-n', l.pod, 'route', 'add', 'default', 'via', `${l.net}.1`]);
    sh(['ip', '-n', node, 'addr', 'add', `${l.net}.1/24`, 'dev', l.nodeIf]);
    sh(['ip', '-n', node, 'link', 'set', l.nodeIf, 'up']);
  }
  sh(['ip', 'netns', 'exec', node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  sh(['ip', 'netns', 'exec', client, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000']);
  for (const ns of [client, server]) {
    sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.core.somaxconn=4096']);
    sh(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_max_syn_backlog=4096']);
  }
  return { client, node, server };
}

export function inNs(netns: string, argv: readonly string[], timeoutMs = 120_000): string {
  const r = spawnSync('ip', ['netns', 'exec', netns, ...argv], { timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} in ${netns}: ${r.stderr?.toString().slice(0, 400)}`);
  return r.stdout.toString();
}

export async function waitListening(netns: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = inNs(netns, ['ss', '-Hltn', `sport = :${port}`]);
    if (out.trim() !== '') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port} in ${netns}`);
}

interface Results {
  rate: Record<'A' | 'B', number[]>;
  gbps: Record<'A' | 'B', number[]>;
  lat: Record<'A' | 'B', number[]>;
  synRetrans: Record<'A' | 'B', number[]>;
  /** Connections B's rate loops made (each logs twice with flow logs on). */
  connsB: number;
  /** flowlog_suppressed of B's rounds (each load replaces the table: read before the next). */
  suppressedB: number;
}

/** TcpExt counters of a namespace (/proc/net/netstat is per netns). */
export function tcpExt(netns: string): Map<string, number> {
  const lines = inNs(netns, ['cat', '/proc/net/netstat']).split('\n');
  const out = new Map<string, number>();
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i]!.startsWith('TcpExt:') || !lines[i + 1]!.startsWith('TcpExt:')) continue;
    const names = lines[i]!.split(/\s+/).slice(1);
    const values = lines[i + 1]!.split(/\s+/).slice(1).map(Number);
    names.forEach((n, j) => out.set(n, values[j] ?? 0));
    break;
  }
  return out;
}

export function spread(xs: readonly number[], d = 0): string {
  return `median ${median(xs).toFixed(d)} (min ${Math.min(...xs).toFixed(d)}, max ${Math.max(...xs).toFixed(d)})`;
}

async function main(): Promise<void> {
  if (!isRoot()) {
    process.stdout.write('dataplane-traffic: needs root (network namespaces); skipped\n');
    return;
  }
  const rounds = Math.min(Math.max(Number(process.argv[2] ?? 10), 1), 40);
  const rateMs = Math.min(Math.max(Number(process.argv[3] ?? 3000), 500), 20_000);
  const par = Math.min(Math.max(Number(process.argv[4] ?? 8), 1), 64);
  const snap = benchSnapshot();
  // The node-side veths are the pod interfaces: every packet from client and server passes the
  // source check (a fib lookup in prerouting), established ones included.
  const variant = process.argv[5] ?? 'baseline';
  if (variant !== 'baseline' && variant !== 'noguard' && variant !== 'flowlog')
    throw new Error(`A: baseline, noguard or flowlog, not ${variant}`);
  const limit = Number(process.argv[6] ?? 1000);
  const flowLog = { mode: 'policy' as const, group: 3499, rate: limit, burst: Math.min(limit, 200) };
  const rs = compile(snap, {
    table: TABLE,
    nodeName: 'node-0',
    podInterfaces: ['moat*'],
    ...(variant === 'flowlog' ? { flowLog } : {}),
  });
  const moatScript = renderNft(rs);
  // A: only the conntrack rules (default), or `noguard`: moat's whole ruleset without the source
  // check, so that B/A is the source check's own cost.
  const baselineA =
    variant === 'noguard'
      ? renderNft(compile(snap, { table: TABLE, nodeName: 'node-0', podInterfaces: [] }))
      : variant === 'flowlog'
        ? renderNft(compile(snap, { table: TABLE, nodeName: 'node-0', podInterfaces: ['moat*'] }))
        : baselineScript();
  let sink: ReturnType<typeof spawn> | undefined;
  let sinkOut = '';
  const nsx = new BenchNetns();
  try {
    const { client, node, server } = setup(nsx);
    nsx.spawnIn(server, ['node', TCP_LOAD, 'serve', String(PORT)]);
    nsx.spawnIn(server, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
    await waitListening(server, PORT);
    await waitListening(server, IPERF_PORT);
    const load = (which: 'A' | 'B') => {
      const t0 = performance.now();
      sh(['ip', 'netns', 'exec', node, 'nft', '-f', '-'], which === 'A' ? baselineA : moatScript);
      return performance.now() - t0;
    };
    const loadMs = load('B');
    if (variant === 'flowlog' && process.argv[7] !== 'noreader') {
      sink = spawn(
        process.execPath,
        [
          join(here, 'flow-sink.js'),
          node,
          TABLE,
          String(flowLog.group),
          String(flowLog.rate),
          String(flowLog.burst),
        ],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      const s0 = sink;
      await new Promise<void>((resolve, reject) => {
        s0.stdout!.on('data', (b: Buffer) => {
          sinkOut += b.toString();
          if (sinkOut.includes('ready\n')) resolve();
        });
        s0.on('exit', (code) => reject(new Error(`flow-sink exited ${code}`)));
      });
    }
    // The moat ruleset really admits the flow through the intended rules.
    inNs(client, ['node', TCP_LOAD, 'latency', SERVER, String(PORT), '3']);
    const counters = inNs(node, ['nft', 'list', 'counters', 'table', 'inet', TABLE]);
    const hits = [...counters.matchAll(/counter (a_\w+) \{\s*packets (\d+)/g)]
      .filter((m) => Number(m[2]) > 0)
      .map((m) => m[1]!);
    const res: Results = {
      rate: { A: [], B: [] },
      gbps: { A: [], B: [] },
      lat: { A: [], B: [] },
      synRetrans: { A: [], B: [] },
      connsB: 0,
      suppressedB: 0,
    };
    const before = { client: tcpExt(client), server: tcpExt(server) };
    for (let r = 0; r < rounds; r++) {
      // ABBA ordering: a drift of the machine's load over time weighs on both sides alike.
      for (const which of r % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const)) {
        load(which);
        const syn0 = tcpExt(client).get('TCPSynRetrans') ?? 0;
        const rate = JSON.parse(
          inNs(client, ['node', TCP_LOAD, 'rate', SERVER, String(PORT), String(rateMs), String(par)]),
        ) as {
          connections: number;
          errors: number;
          ms: number;
        };
        if (rate.errors > 0) process.stderr.write(`round ${r}${which}: ${rate.errors} connect errors\n`);
        res.rate[which].push(rate.connections / (rate.ms / 1000));
        if (which === 'B') res.connsB += rate.connections;
        res.synRetrans[which].push((tcpExt(client).get('TCPSynRetrans') ?? 0) - syn0);
        const ip = JSON.parse(
          inNs(client, ['iperf3', '-c', SERVER, '-p', String(IPERF_PORT), '-t', '2', '-J']),
        ) as { end: { sum_received: { bits_per_second: number } } };
        res.gbps[which].push(ip.end.sum_received.bits_per_second / 1e9);
        const lat = JSON.parse(
          inNs(client, ['node', TCP_LOAD, 'latency', SERVER, String(PORT), '600']),
        ) as number[];
        res.lat[which].push(...lat.slice(50)); // the first ones warm up the JIT
        if (which === 'B' && variant === 'flowlog') {
          const counters = inNs(node, ['nft', '-j', 'list', 'counters', 'table', 'inet', TABLE]);
          res.suppressedB += Number(
            /"name": ?"flowlog_suppressed"[^}]*"packets": ?(\d+)/.exec(counters)?.[1] ?? 0,
          );
        }
        process.stdout.write(
          `round ${r + 1}${which}: ${res.rate[which].at(-1)!.toFixed(0)} conn/s (${res.synRetrans[which].at(-1)} SYN retransmissions), ${res.gbps[which].at(-1)!.toFixed(2)} Gbit/s, connect p50 ${percentile(lat, 50)} us\n`,
        );
      }
    }
    const rules = rs.chains.reduce((n, c) => n + c.rules.length, 0);
    const f = (x: number, d = 0) => x.toFixed(d);
    // Round r's A and B ran back to back: their ratio is the least disturbed by load drift.
    const pairs = (xs: Record<'A' | 'B', number[]>) => xs.B.map((b, i) => b / xs.A[i]!);
    const moved = (['client', 'server'] as const).map((who) => {
      const now = tcpExt(who === 'client' ? client : server);
      const d = [...now]
        .filter(([k, v]) => v !== (before[who].get(k) ?? 0))
        .map(([k, v]) => `${k} ${v - (before[who].get(k) ?? 0)}`);
      return `${who}: ${d.join(', ')}`;
    });
    const overflows = moved.join('; ');
    let flowLine = '';
    if (variant === 'flowlog' && sink === undefined) {
      flowLine = `flow log (B, limit ${limit}/s): no reader bound; suppressed by the limit ${res.suppressedB} of the ${2 * res.connsB} decisions of B's rate loops (2 per connection), besides iperf3 and latency traffic`;
    }
    if (sink !== undefined) {
      const s0 = sink;
      const done = new Promise<void>((resolve) => s0.on('exit', () => resolve()));
      s0.kill('SIGTERM');
      await done;
      const st = JSON.parse(
        sinkOut
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .at(-1) ?? '{}',
      ) as Record<string, number>;
      const suppressed = res.suppressedB;
      flowLine =
        `flow log (B, limit ${limit}/s): ${res.connsB} connections in B's rate loops; NFLOG records received ${st.received ?? 0}, ` +
        `flow records ${st.records ?? 0}, suppressed by the limit ${suppressed}, lost ${st.lost ?? 0} overruns / ${st.lostRecords ?? 0} records, ` +
        `undecodable ${st.undecodable ?? 0}, unattributed ${st.unattributed ?? 0}`;
    }
    process.stdout.write(
      [
        `date: ${new Date().toISOString()}`,
        `ruleset: 10,000 pods / ${snap.policies.length} policies, node-0's share: ${rs.sets.length} sets, ${rules} rules; full load ${f(loadMs)} ms`,
        `accept counters hit by the test flow: ${hits.join(', ')}`,
        `A: ${variant === 'noguard' ? "moat's ruleset without the source check" : variant === 'flowlog' ? "moat's ruleset, flow logs off" : 'conntrack rules only'}; B: moat's ruleset${variant === 'flowlog' ? ', flow logs on (policy mode, every decision logged)' : ''}`,
        `rounds: ${rounds} x AB (ABBA order); rate: ${rateMs} ms on ${par} sockets; TcpExt counters that moved during the run: ${overflows}`,
        `connections/s  A ${spread(res.rate.A)}  B ${spread(res.rate.B)}`,
        `               ratio B/A of medians ${f(median(res.rate.B) / median(res.rate.A), 3)}; per pair ${spread(pairs(res.rate), 3)}`,
        `SYN retransmissions per round  A ${spread(res.synRetrans.A)}  B ${spread(res.synRetrans.B)}`,
        `iperf3 Gbit/s  A ${spread(res.gbps.A, 2)}  B ${spread(res.gbps.B, 2)}`,
        `               ratio B/A of medians ${f(median(res.gbps.B) / median(res.gbps.A), 3)}; per pair ${spread(pairs(res.gbps), 3)}`,
        ...(flowLine !== '' ? [flowLine] : []),
        `connect us     A p50 ${percentile(res.lat.A, 50)} p99 ${percentile(res.lat.A, 99)}  B p50 ${percentile(res.lat.B, 50)} p99 ${percentile(res.lat.B, 99)}  added p50 ${percentile(res.lat.B, 50) - percentile(res.lat.A, 50)} p99 ${percentile(res.lat.B, 99) - percentile(res.lat.A, 99)}`,
      ].join('\n') + '\n',
    );
  } finally {
    nsx.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
