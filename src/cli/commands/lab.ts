// `moat lab`: a cluster of network namespaces (one node, or --nodes N with one agent per node)
// built from plain Kubernetes YAML, enforced by the agent's own code, and probed with real traffic.
import { quickBackend, type Backend } from '../../dataplane/probe.js';
import { Option, type Command } from 'commander';
import { localRunner } from '../../dataplane/runner.js';
import { computeMatrix, formatMatrixTable, matrixToJson, type MatrixJson } from '../../analysis/matrix.js';
import { FileSource } from '../../agent/file-source.js';
import type { Applied } from '../../agent/reconcile.js';
import { DEFAULT_TABLE } from '../../dataplane/index.js';
import { MoatError, UsageError } from '../../errors.js';
import { compareMatrices, formatDisagreement } from '../../lab/compare.js';
import { LabAgents, staticSource } from '../../lab/enforce.js';
import { cleanupLabs, Lab, type LabOptions, type ObservedMatrix } from '../../lab/lab.js';
import {
  DEFAULT_NODE_NAME,
  DEFAULT_POD_CIDRS,
  DEFAULT_PREFIX,
  LAB_NETWORKS,
  MAX_NODES,
  type LabNetwork,
} from '../../lab/plan.js';
import type { Snapshot } from '../../model/types.js';
import {
  addFlowLogOptions,
  collectValues,
  loadSnapshot,
  parseFlowLogFlags,
  type FlowLogFlags,
} from '../io.js';
import { formatCompact } from '../../flowlog/format.js';
import type { FlowRecord } from '../../flowlog/record.js';
import { writeFileSync } from 'node:fs';

interface CommonFlags extends FlowLogFlags {
  nodeName?: string;
  nodes?: string;
  network: string;
  backend: 'auto' | 'nftables' | 'iptables';
  podCidr?: string[];
  table: string;
  prefix: string;
  timeout: string;
}

interface ProbeFlags extends CommonFlags {
  filename: string[];
  output: string;
  /** The flow records seen while probing go to this file (JSON lines). */
  flowLog?: string;
}

interface UpFlags extends CommonFlags {
  filename: string[];
  driftInterval: string;
  flows?: boolean;
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

/** --backend; auto asks nft (check mode: nothing is committed) whether it can serve. */
async function labBackend(f: CommonFlags): Promise<Backend> {
  if (f.backend !== 'auto') return f.backend;
  const q = await quickBackend(localRunner());
  if (q.backend !== 'nftables') err(`lab: backend iptables (${q.why})`);
  return q.backend;
}

function err(line: string): void {
  process.stderr.write(`${line}\n`);
}

function requireRoot(cmd: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError(`lab ${cmd}: needs root (it creates network namespaces and nft tables)`);
  }
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`lab: ${name} "${v}": must be a positive integer`);
  return n;
}

/**
 * The lab's options. Without --nodes and --node-name, the Node objects of the manifests (if any)
 * are the lab's nodes, by name, with their labels.
 */
function labOptions(cmd: string, f: CommonFlags, snap: Snapshot): LabOptions {
  if (!TABLE_NAME.test(f.table)) {
    throw new UsageError(
      `lab ${cmd}: --table "${f.table}": must start with a letter or _ and contain only letters, digits, _ and -`,
    );
  }
  const nodes = f.nodes !== undefined ? positiveInt('--nodes', f.nodes) : 1;
  if (nodes > MAX_NODES) throw new UsageError(`lab ${cmd}: --nodes ${nodes}: at most ${MAX_NODES}`);
  const declared = snap.nodes.map((n) => n.name);
  const adopt = f.nodes === undefined && f.nodeName === undefined && declared.length > 0;
  if (adopt && declared.length > MAX_NODES) {
    throw new UsageError(
      `lab ${cmd}: the manifests declare ${declared.length} Nodes; a lab has at most ${MAX_NODES} (give --nodes)`,
    );
  }
  if (!(LAB_NETWORKS as readonly string[]).includes(f.network)) {
    throw new UsageError(`lab ${cmd}: --network "${f.network}": must be one of ${LAB_NETWORKS.join(', ')}`);
  }
  return {
    prefix: f.prefix,
    nodeName: f.nodeName ?? DEFAULT_NODE_NAME,
    nodes,
    ...(adopt ? { nodeNames: declared } : {}),
    network: f.network as LabNetwork,
    podCidrs: f.podCidr ?? DEFAULT_POD_CIDRS,
    probeTimeoutMs: positiveInt('--timeout', f.timeout),
    log: err,
  };
}

function common(cmd: Command): Command {
  return addFlowLogOptions(cmd, '--flow-log-mode')
    .option(
      '--nodes <n>',
      'number of lab nodes, each a namespace with its own agent; pods go to the node their ' +
        'spec.nodeName names, else the one whose pod CIDR slice holds their status.podIP, else round robin ' +
        '(default: one per Node object in the manifests, with its name and labels; else 1)',
    )
    .option(
      '--node-name <name>',
      `name of the (first) lab Node; with --nodes N the others are NAME-2 .. NAME-N (default ${DEFAULT_NODE_NAME})`,
    )
    .option(
      '--pod-cidr <cidr...>',
      `CIDRs for pods without status.podIPs (one per family; default ${DEFAULT_POD_CIDRS.join(', ')}); ` +
        'with --nodes N each node gets a slice (10.244.0.0/24, 10.244.1.0/24, ...)',
    )
    .option(
      '--network <kind>',
      'pod network of each node: routed (a veth and a route per pod: kindnet, ptp, Calico) or ' +
        "bridge (every pod a port of one bridge with br_netfilter: flannel's cni0)",
      'routed',
    )
    .option('--table <name>', 'nft table name in each node namespace', DEFAULT_TABLE)
    .addOption(
      new Option(
        '--backend <name>',
        'each node enforces with nftables or iptables + ipset (auto: nftables if nft can serve)',
      )
        .choices(['auto', 'nftables', 'iptables'])
        .default('auto'),
    )
    .option('--prefix <prefix>', 'network namespace name prefix (must start with "moat")', DEFAULT_PREFIX)
    .option('--timeout <ms>', 'probe timeout: no answer within it counts as denied', '1000');
}

/** Compares the observation with the evaluator on stderr; returns the number of disagreements. */
function report(observed: ObservedMatrix, expected: MatrixJson): number {
  for (const s of observed.skipped) err(`lab: ${s.probe.protocol}/${s.probe.port} skipped: ${s.reason}`);
  const cmp = compareMatrices(observed.json, expected);
  for (const d of cmp.disagreements) err(`lab: DISAGREE ${formatDisagreement(d)}`);
  err(
    `lab: ${cmp.agree} of ${cmp.cells} cells agree with the evaluator` +
      (cmp.disagreements.length > 0 ? `, ${cmp.disagreements.length} disagree` : '') +
      ` (${observed.outcomes.length} probes in ${observed.elapsedMs} ms)`,
  );
  return cmp.disagreements.length;
}

/** `node` is named only in a multi-node lab (one-node output is unchanged). */
function describeApply(a: Applied, node?: string): string {
  const r = a.result;
  const ct = r.conntrackDeleted.length > 0 ? `, conntrack cleared for ${r.conntrackDeleted.join(', ')}` : '';
  const on = node !== undefined ? `node ${node}: ` : '';
  return `lab: ${on}applied generation ${a.generation} (${r.mode}, ${r.commands} command(s)${ct}) in ${a.elapsedMs} ms`;
}

/** "3 pod(s) on node X" or "5 pod(s) on 2 nodes (X: 3, Y: 2)". */
function describeLab(l: Lab): string {
  const pods = l.snapshot.pods;
  if (l.nodes.length === 1) return `${pods.length} pod(s) on node ${l.nodeName} (${l.network} pod network)`;
  const per = l.nodes.map((n) => `${n.name}: ${pods.filter((p) => p.nodeName === n.name).length}`);
  return `${pods.length} pod(s) on ${l.nodes.length} nodes (${per.join(', ')}; ${l.network} pod network)`;
}

/** Runs `body` with the lab, tearing it down on return, on error and on Ctrl-C / SIGTERM. */
async function withLab<T>(
  snap: Snapshot,
  opts: LabOptions,
  body: (lab: Lab, stopped: Promise<void>) => Promise<T>,
): Promise<T> {
  let onSignal: () => void = () => undefined;
  let interrupted = false;
  const stopped = new Promise<void>((resolve) => {
    onSignal = () => {
      err('lab: stopping');
      interrupted = true;
      resolve();
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = Date.now();
  let lab: Lab | undefined;
  try {
    lab = await Lab.create(snap, opts);
    err(`lab: ${describeLab(lab)} built in ${Date.now() - t0} ms`);
    for (const n of lab.plan.notes) err(`lab: ${n}`);
    if (interrupted) throw new MoatError('lab: interrupted');
    return await body(lab, stopped);
  } finally {
    await lab?.destroy();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description(
      'a cluster of network namespaces (one agent per node), enforced by moat and probed with real traffic (root)',
    );

  common(
    lab
      .command('probe')
      .description(
        'build the lab, enforce, probe every pod -> pod on every declared port, compare with the evaluator, tear down',
      )
      .option(
        '-f, --filename <path>',
        'file, directory (recursive) or - for stdin; repeatable',
        collectValues,
        [],
      )
      .option('-o, --output <format>', 'table or json (the schema of `moat matrix -o json`)', 'table')
      .option(
        '--flow-log <file>',
        'write the flow records seen while probing to FILE (JSON lines; docs/flows.md)',
      ),
  ).action(async (f: ProbeFlags) => {
    const fl = parseFlowLogFlags(f); // --flow-log is a file here: the mode is --flow-log-mode
    if (f.filename === undefined || f.filename.length === 0)
      throw new UsageError('lab probe: -f PATH is required');
    if (f.output !== 'table' && f.output !== 'json') {
      throw new UsageError(`lab probe: -o "${f.output}": must be table or json`);
    }
    requireRoot('probe');
    const snap = await loadSnapshot(f.filename);
    const opts = labOptions('probe', f, snap);
    const disagree = await withLab(snap, opts, (l, stopped) => {
      const interrupted = stopped.then(() => {
        throw new MoatError('lab probe: interrupted');
      });
      return Promise.race([interrupted, probeOnce(l)]);
    });
    if (disagree > 0) process.exitCode = 1;

    async function probeOnce(l: Lab): Promise<number> {
      let failure: unknown;
      const many = l.nodes.length > 1;
      const records: FlowRecord[] = [];
      const agents = new LabAgents(l, {
        table: f.table,
        backend: await labBackend(f),
        coalesceMs: 0,
        driftIntervalMs: 0,
        flowLog: fl.flowLog,
        ...(fl.audit ? { audit: true } : {}),
        onFlow: (r) => records.push(r),
        onApplied: (node, a) => err(describeApply(a, many ? node : undefined)),
        onError: (node, e) => {
          // No retries here: a failed apply is the answer.
          failure ??=
            many && node !== undefined && e instanceof Error
              ? new MoatError(`node ${node}: ${e.message}`)
              : e;
          void agents.stop();
        },
      });
      try {
        return await enforceAndProbe(agents, records, () => failure);
      } finally {
        await agents.closeFlows();
      }
    }

    async function enforceAndProbe(
      agents: LabAgents,
      records: FlowRecord[],
      failed: () => unknown,
    ): Promise<number> {
      const l = agents.lab;
      await agents.start(staticSource(snap));
      await agents.idle();
      await agents.stop();
      const failure = failed();
      if (failure instanceof MoatError) throw failure;
      if (failure !== undefined) {
        throw new MoatError(
          `lab probe: enforcing failed: ${failure instanceof Error ? failure.message : 'unknown error'}`,
        );
      }
      records.length = 0; // only what probing sends
      const observed = await l.probeMatrix();
      if (f.flowLog !== undefined) {
        // The last records are still on their way from the node namespaces' readers.
        await new Promise((r) => setTimeout(r, 300));
        const incomplete = agents.flushFlows();
        writeFileSync(f.flowLog, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
        err(
          `lab: ${records.length} flow record(s) written to ${f.flowLog}` +
            (incomplete > 0
              ? `; ${incomplete} without a record (an admin Pass whose decision the rate limit suppressed)`
              : ''),
        );
      }
      const out =
        f.output === 'json'
          ? JSON.stringify(observed.json, null, 2) + '\n'
          : formatMatrixTable(observed.json);
      process.stdout.write(out);
      return report(observed, matrixToJson(computeMatrix(l.snapshot)));
    }
  });

  common(
    lab
      .command('up')
      .description(
        'build the lab and enforce DIR with the agent loop; re-apply and re-probe on every change; Ctrl-C tears down',
      )
      .option('-f, --filename <path>', 'files or directories to watch; repeatable', collectValues, [])
      .option('--drift-interval <ms>', 'how often to check the nft table for drift', '10000')
      .option('--flows', 'print every flow record as it is logged (one line each, as `moat flows`)'),
  ).action(async (f: UpFlags) => {
    const fl = parseFlowLogFlags(f);
    if (f.filename === undefined || f.filename.length === 0)
      throw new UsageError('lab up: -f DIR is required');
    if (f.filename.includes('-'))
      throw new UsageError('lab up: cannot watch stdin; give files or directories');
    const driftMs = positiveInt('--drift-interval', f.driftInterval);
    requireRoot('up');
    const snap = await loadSnapshot(f.filename);
    const opts = labOptions('up', f, snap);
    await withLab(snap, opts, async (l, stopped) => {
      const many = l.nodes.length > 1;
      const agents = new LabAgents(l, {
        table: f.table,
        backend: await labBackend(f),
        driftIntervalMs: driftMs,
        flowLog: fl.flowLog,
        ...(fl.audit ? { audit: true } : {}),
        ...(f.flows === true
          ? { onFlow: (r: FlowRecord) => process.stdout.write(`${formatCompact(r)}\n`) }
          : {}),
        onApplied: (node, a) => err(describeApply(a, many ? node : undefined)),
        // Probe once every node's agent has applied the snapshot.
        onSynced: async (snapshot, applied) => {
          const gen = applied.map((a) => a.generation).join('/');
          const observed = await l.probeMatrix();
          process.stdout.write(`\n# generation ${gen}: observed\n${formatMatrixTable(observed.json)}`);
          report(observed, matrixToJson(computeMatrix(snapshot)));
        },
        onDrift: (node, d) =>
          err(
            `lab: ${many ? `node ${node}: ` : ''}drift: ${d.differences.join('; ')}${d.repaired ? ' (repaired)' : ''}`,
          ),
        onError: (node, e, phase) =>
          err(
            `moat: lab up: ${node !== undefined && many ? `node ${node}: ` : ''}${phase}: ${e instanceof Error ? e.message : String(e)}`,
          ),
      });
      const source = new FileSource(f.filename, { onNote: (n) => err(`moat: ${n}`) });
      await agents.start(source);
      err(`lab: watching ${f.filename.join(', ')}; Ctrl-C to tear down`);
      await stopped;
      await agents.stop();
      await agents.closeFlows();
      await agents.remove().catch(() => undefined);
    });
  });

  lab
    .command('down')
    .description(
      'remove what a crashed lab left behind: its pod, node and fabric namespaces and the processes in them',
    )
    .option('--prefix <prefix>', 'network namespace name prefix', DEFAULT_PREFIX)
    .action(async (f: { prefix: string }) => {
      requireRoot('down');
      const r = await cleanupLabs(f.prefix);
      err(
        r.netns.length === 0
          ? `lab: nothing to remove (no network namespace named ${f.prefix}-*)`
          : `lab: removed ${r.netns.length} network namespace(s) (${r.netns.join(', ')}) and killed ${r.killed.length} process(es)`,
      );
    });
}
