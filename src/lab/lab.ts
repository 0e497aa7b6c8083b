// The lab: a one-node cluster made of network namespaces. The node is a namespace (PREFIX-node)
// that holds the routed pod network and moat's nft table; each pod is a namespace (PREFIX-pN) with
// a veth `eth0`, its /32 and /128 addresses, and a default route through the node, so pod-to-pod
// traffic crosses the node's forward path where moat enforces. The host namespace is never touched.
import { declaredProbes, matrixPods, sortProbes, type MatrixJson, type Probe } from '../analysis/matrix.js';
import { parseIP } from '../model/cidr.js';
import type { Pod, Protocol, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import { ipBatch, mapLimit, run, tryRun } from './exec.js';
import {
  DEFAULT_PREFIX,
  GATEWAY4,
  GATEWAY6,
  checkPrefix,
  nodeLink,
  nodeNetns,
  planLab,
  podNetns,
  type Plan,
  type PlanOptions,
} from './plan.js';
import { PodProcess } from './podproc-client.js';
import { UsageError } from '../errors.js';

export interface LabOptions extends PlanOptions {
  /** Namespace name prefix; must start with "moat". Default "moat-lab". */
  readonly prefix?: string;
  /** How long a probe waits before calling the flow denied. Default 1000 ms. */
  readonly probeTimeoutMs?: number;
  /** Probes in flight at once. Default 512 (a denied probe only waits). */
  readonly concurrency?: number;
  /** Progress lines (for the CLI's stderr). */
  readonly log?: (line: string) => void;
}

export interface ProbeOutcome {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** undefined: not probed (skipped). */
  readonly allowed?: boolean;
  /** What was observed: connected, echo, refused, timeout, skipped: why. */
  readonly detail: string;
}

export interface ObservedMatrix {
  /** The observations in the schema of `moat matrix -o json` (skipped probes left out). */
  readonly json: MatrixJson;
  readonly outcomes: readonly ProbeOutcome[];
  /** (port, protocol) pairs not probed, with the reason. */
  readonly skipped: readonly { readonly probe: Probe; readonly reason: string }[];
  readonly elapsedMs: number;
}

interface LabPod {
  readonly key: string;
  readonly slot: number;
  readonly netns: string;
  pod: Pod;
  ports: readonly number[];
  proc?: PodProcess;
}

/** Whether this kernel can open SCTP sockets (the sctp module registers /proc/net/sctp). */
async function kernelHasSctp(): Promise<boolean> {
  const { access } = await import('node:fs/promises');
  try {
    await access('/proc/net/sctp');
    return true;
  } catch {
    return false;
  }
}

/** Every port number a pod declares, on any protocol: each pod serves all of them on TCP and UDP. */
function servedPorts(pods: readonly Pod[]): number[] {
  return [...new Set(pods.flatMap((p) => p.ports.map((c) => c.containerPort)))].sort((a, b) => a - b);
}

function hasV6(pod: Pod): boolean {
  return pod.ips.some((ip) => parseIP(ip)?.family === 6);
}

export class Lab {
  readonly nodeNetns: string;
  private readonly pods = new Map<string, LabPod>();
  private currentPlan!: Plan;
  private destroyed = false;
  private readonly log: (line: string) => void;

  private constructor(
    readonly prefix: string,
    private readonly opts: LabOptions,
  ) {
    this.nodeNetns = nodeNetns(prefix);
    this.log = opts.log ?? (() => undefined);
  }

  /**
   * Builds the lab for a snapshot. On failure everything built so far is removed again.
   * Callers must `destroy()` the lab (in a finally block).
   */
  static async create(snapshot: Snapshot, opts: LabOptions = {}): Promise<Lab> {
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    const bad = checkPrefix(prefix);
    if (bad) throw new UsageError(bad);
    const plan = planLab(snapshot, opts);
    const lab = new Lab(prefix, opts);
    lab.currentPlan = plan;
    try {
      await lab.buildNode();
      await lab.sync(plan);
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  /** The snapshot the lab's node enforces: pods on the lab node, with their lab addresses. */
  get snapshot(): Snapshot {
    return this.currentPlan.snapshot;
  }

  get plan(): Plan {
    return this.currentPlan;
  }

  /** The Node object of the lab (for DataplaneOptions.nodeName). */
  get nodeName(): string {
    return this.currentPlan.node.name;
  }

  /** Netns of a pod ("ns/name"), for tests that want to look inside. */
  podNetns(key: string): string | undefined {
    return this.pods.get(key)?.netns;
  }

  /** Process ids of the pod processes (for tests and `lab down`). */
  pids(): number[] {
    return [...this.pods.values()].flatMap((p) => (p.proc?.pid !== undefined ? [p.proc.pid] : []));
  }

  /**
   * Re-plans for a new snapshot: pods that appeared get a namespace, pods that went away lose it, a
   * pod whose addresses changed is rebuilt, and pod processes restart when the served ports change.
   * Returns the new plan (whose snapshot is what the agent should enforce).
   */
  async update(snapshot: Snapshot): Promise<Plan> {
    const previous = new Map([...this.pods].map(([k, p]) => [k, p.pod.ips]));
    const plan = planLab(snapshot, this.opts, previous);
    await this.sync(plan);
    this.currentPlan = plan;
    return plan;
  }

  private async buildNode(): Promise<void> {
    const ns = this.nodeNetns;
    await run(['ip', 'netns', 'add', ns]);
    const node = this.currentPlan.node;
    await ipBatch(ns, [
      'link set lo up',
      // The node's own address lives on its loopback (this kernel may have no dummy links).
      ...node.addresses.map((a) => `addr add ${a}/${parseIP(a)?.family === 6 ? 128 : 32} dev lo`),
    ]);
    // Forwarding in the node namespace only: pods reach each other through the node.
    await run([
      'ip',
      'netns',
      'exec',
      ns,
      'sysctl',
      '-qw',
      'net.ipv4.ip_forward=1',
      'net.ipv6.conf.all.forwarding=1',
    ]);
  }

  private freeSlot(): number {
    const used = new Set([...this.pods.values()].map((p) => p.slot));
    let s = 0;
    while (used.has(s)) s++;
    return s;
  }

  private async sync(plan: Plan): Promise<void> {
    const want = new Map(plan.pods.map((p) => [p.key, p.pod]));
    const ports = servedPorts(plan.pods.map((p) => p.pod));
    // Gone, or readdressed: remove (a readdressed pod is rebuilt below).
    const remove = [...this.pods.values()].filter((lp) => {
      const w = want.get(lp.key);
      return w === undefined || w.ips.join(',') !== lp.pod.ips.join(',');
    });
    await mapLimit(remove, 8, (lp) => this.removePod(lp));
    for (const lp of remove) this.pods.delete(lp.key);

    const added: LabPod[] = [];
    for (const [key, pod] of want) {
      const lp = this.pods.get(key);
      if (lp) {
        lp.pod = pod;
        continue;
      }
      const slot = this.freeSlot();
      const np: LabPod = { key, slot, netns: podNetns(this.prefix, slot), pod, ports: [] };
      this.pods.set(key, np);
      added.push(np);
    }
    const t0 = Date.now();
    if (added.length > 0) await this.addPods(added);
    // Start (or restart, when the served ports changed) the pod processes.
    const stale = [...this.pods.values()].filter((lp) => !lp.proc || lp.ports.join(',') !== ports.join(','));
    await mapLimit(stale, 4, async (lp) => {
      await lp.proc?.stop();
      delete lp.proc;
      lp.proc = await PodProcess.start(lp.netns, { ports, ipv6: hasV6(lp.pod) });
      lp.ports = ports;
    });
    if (added.length > 0 || stale.length > 0) {
      this.log(
        `lab: ${added.length} pod namespace(s) built, ${stale.length} pod process(es) started in ${Date.now() - t0} ms`,
      );
    }
  }

  private async addPods(pods: readonly LabPod[]): Promise<void> {
    const node = this.nodeNetns;
    await mapLimit(pods, 8, (lp) => run(['ip', 'netns', 'add', lp.netns]));
    // Both veth ends are created from inside the node namespace: no link ever exists in the host's.
    await ipBatch(
      node,
      pods.map((lp) => `link add ${nodeLink(lp.slot)} type veth peer name eth0 netns ${lp.netns}`),
    );
    const nodeLines: string[] = [];
    for (const lp of pods) {
      const link = nodeLink(lp.slot);
      nodeLines.push(`link set ${link} up`, `addr add ${GATEWAY4}/32 dev ${link}`);
      if (hasV6(lp.pod)) nodeLines.push(`addr add ${GATEWAY6}/64 dev ${link} nodad`);
      for (const ip of lp.pod.ips) {
        nodeLines.push(`route add ${ip}/${parseIP(ip)?.family === 6 ? 128 : 32} dev ${link}`);
      }
    }
    await ipBatch(node, nodeLines);
    await mapLimit(pods, 8, (lp) => {
      const lines = ['link set lo up', 'link set eth0 up'];
      let v4 = false;
      let v6 = false;
      for (const ip of lp.pod.ips) {
        if (parseIP(ip)?.family === 6) {
          v6 = true;
          lines.push(`addr add ${ip}/128 dev eth0 nodad`);
        } else {
          v4 = true;
          lines.push(`addr add ${ip}/32 dev eth0`);
        }
      }
      if (v4)
        lines.push(`route add ${GATEWAY4} dev eth0 scope link`, `route add default via ${GATEWAY4} dev eth0`);
      if (v6) lines.push(`route add default via ${GATEWAY6} dev eth0`);
      return ipBatch(lp.netns, lines);
    });
  }

  private async removePod(lp: LabPod): Promise<void> {
    await lp.proc?.stop();
    delete lp.proc;
    await killNetnsPids(lp.netns);
    // Deleting the pod namespace deletes its veth, and with it the node's end and routes.
    await tryRun(['ip', 'netns', 'del', lp.netns]);
  }

  private pod(key: string): LabPod {
    const lp = this.pods.get(key);
    if (!lp) throw new UsageError(`lab: no pod ${key}`);
    return lp;
  }

  /** The destination address of a flow: the family of the source's first IP, as the evaluator does. */
  private target(src: LabPod, dst: LabPod): string | undefined {
    const fam = src.pod.ips[0] !== undefined ? parseIP(src.pod.ips[0])?.family : undefined;
    return dst.pod.ips.find((ip) => parseIP(ip)?.family === fam) ?? dst.pod.ips[0];
  }

  /** One probe: can pod `from` reach pod `to` on (port, protocol)? */
  async probe(from: string, to: string, port: number, protocol: Protocol): Promise<ProbeOutcome> {
    const src = this.pod(from);
    const dst = this.pod(to);
    const base = { from, to, port, protocol };
    if (protocol === 'SCTP') return { ...base, detail: 'skipped: no SCTP prober' };
    const ip = this.target(src, dst);
    if (!src.proc || ip === undefined) return { ...base, detail: 'skipped: pod has no address' };
    const timeoutMs = this.opts.probeTimeoutMs ?? 1000;
    const r = await src.proc.request({ op: 'probe', protocol, ip, port, timeoutMs });
    return { ...base, allowed: r.ok, detail: r.detail };
  }

  /**
   * Probes every pod -> pod for each (port, protocol): by default every one the pods declare (as
   * `moat matrix` does). SCTP is skipped (no SCTP sockets here, and no SCTP client in Node).
   */
  async probeMatrix(ports?: readonly Probe[]): Promise<ObservedMatrix> {
    const t0 = Date.now();
    const pods = matrixPods(this.snapshot);
    const keys = pods.map(podKey);
    const probes = ports !== undefined ? sortProbes(ports) : declaredProbes(pods);
    const sctpReason = (await kernelHasSctp())
      ? 'SCTP is not probed (Node has no SCTP sockets)'
      : 'SCTP is not probed: this kernel has no SCTP sockets';
    const skipped = probes
      .filter((p) => p.protocol === 'SCTP')
      .map((probe) => ({ probe, reason: sctpReason }));
    const live = probes.filter((p) => p.protocol !== 'SCTP');
    const jobs = live.flatMap((probe) => keys.flatMap((from) => keys.map((to) => ({ probe, from, to }))));
    const outcomes = await mapLimit(jobs, this.opts.concurrency ?? 512, (j) =>
      this.probe(j.from, j.to, j.probe.port, j.probe.protocol),
    );
    const json: MatrixJson = { pods: keys, probes: [] };
    let i = 0;
    for (const probe of live) {
      const allowed: Record<string, Record<string, boolean>> = {};
      for (const from of keys) {
        const row: Record<string, boolean> = {};
        for (const to of keys) row[to] = outcomes[i++]!.allowed === true;
        allowed[from] = row;
      }
      json.probes.push({ port: probe.port, protocol: probe.protocol, allowed });
    }
    return { json, outcomes, skipped, elapsedMs: Date.now() - t0 };
  }

  /** Opens a TCP connection from one pod to another and keeps it, for established-flow tests. */
  async connect(from: string, to: string, port: number): Promise<LabConnection | undefined> {
    const src = this.pod(from);
    const ip = this.target(src, this.pod(to));
    if (!src.proc || ip === undefined) return undefined;
    const proc = src.proc;
    const timeoutMs = this.opts.probeTimeoutMs ?? 1000;
    const r = await proc.request({ op: 'open', ip, port, timeoutMs });
    if (!r.ok || r.conn === undefined) return undefined;
    const conn = r.conn;
    return {
      send: async (t = timeoutMs) => (await proc.request({ op: 'send', conn, timeoutMs: t })).ok,
      close: async () => {
        await proc.request({ op: 'close', conn });
      },
    };
  }

  /** Stops every pod process and deletes every namespace of this lab. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    const all = [...this.pods.values()];
    await mapLimit(all, 8, (lp) => this.removePod(lp));
    this.pods.clear();
    await killNetnsPids(this.nodeNetns);
    await tryRun(['ip', 'netns', 'del', this.nodeNetns]);
  }
}

export interface LabConnection {
  /** Sends a line and waits for its echo; false when it does not come back in time. */
  send(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Kills every process still running in a namespace (by pid, as `ip netns pids` lists them). */
async function killNetnsPids(netns: string): Promise<number[]> {
  let pids: number[] = [];
  try {
    const { stdout } = await run(['ip', 'netns', 'pids', netns]);
    pids = stdout
      .split(/\s+/)
      .filter((s) => /^\d+$/.test(s))
      .map(Number)
      .filter((p) => p !== process.pid);
  } catch {
    return [];
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}

/** Network namespaces named PREFIX-* (the default prefix covers every lab, tests' included). */
export async function listLabNetns(prefix = DEFAULT_PREFIX): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

/**
 * `moat lab down`: removes what a crashed lab left behind: processes running in the namespaces,
 * then the namespaces (and with them their links and nft tables). Pod namespaces go first.
 */
export async function cleanupLabs(prefix = DEFAULT_PREFIX): Promise<{ netns: string[]; killed: number[] }> {
  const bad = checkPrefix(prefix);
  if (bad) throw new UsageError(bad);
  const names = await listLabNetns(prefix);
  const ordered = [...names.filter((n) => !n.endsWith('-node')), ...names.filter((n) => n.endsWith('-node'))];
  const killed: number[] = [];
  for (const n of ordered) {
    killed.push(...(await killNetnsPids(n)));
    await tryRun(['ip', 'netns', 'del', n]);
  }
  return { netns: ordered, killed };
}
