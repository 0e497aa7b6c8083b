// Enforcement in the lab is the agent's own code, composed as `moat agent` composes it: per node
// an DataplaneApplier in the node's namespace, the production Reconciler, and the node's CNI result
// cache read by CniAttachments. The lab itself plays the cluster around the agents: for each
// manifest snapshot it builds the pods (kubelet and CNI), then publishes the snapshot the API
// server would show to every node's agent.
import { IptablesWriter } from '../dataplane/iptables-applier.js';
import type { Backend } from '../dataplane/probe.js';
import { CniAttachments, withAttachments } from '../agent/attachments.js';
import {
  Reconciler,
  type Applied,
  type ReconcilePhase,
  type SnapshotSource,
  type SourceSink,
} from '../agent/reconcile.js';
import {
  DEFAULT_TABLE,
  NetlinkConntrack,
  DataplaneApplier,
  NftSession,
  netnsRunner,
  type DriftResult,
} from '../dataplane/index.js';
import type { FlowLogOptions } from '../dataplane/model.js';
import type { FlowRecord } from '../flowlog/record.js';
import { FlowService } from '../flowlog/service.js';
import { formatAddress, parseIP } from '../model/cidr.js';
import type { Snapshot } from '../model/types.js';
import type { Lab } from './lab.js';
import { LAB_POD_INTERFACES } from './plan.js';

/** The applier of a lab node (default: the first, the only one in a one-node lab). */
export function labApplier(
  lab: Lab,
  table: string = DEFAULT_TABLE,
  index = 0,
  backend: Backend = 'nftables',
): DataplaneApplier {
  const n = lab.nodes[index]!;
  return new DataplaneApplier(
    netnsRunner(n.netns),
    { table, nodeName: n.name, podInterfaces: LAB_POD_INTERFACES },
    backendDeps(n.netns, backend, lab.network === 'routed'),
  );
}

/** What a node's applier writes with: nft (a session and nft -f) or iptables + ipset. */
function backendDeps(netns: string, backend: Backend, routed: boolean) {
  const conntrack = new NetlinkConntrack({ netns });
  return backend === 'iptables'
    ? { conntrack, writer: new IptablesWriter(netnsRunner(netns), { bridge: routed ? 'auto' : 'refuse' }) }
    : { conntrack, nft: new NftSession({ netns }) };
}

/**
 * What node `index`'s agent enforces once it has read its CNI cache: the lab's snapshot with the
 * node's attachments (for tests that drive an applier directly instead of a LabAgents).
 */
export function labSnapshot(lab: Lab, index = 0): Snapshot {
  return { ...lab.snapshot, attachments: lab.attachments(index) };
}

/** A source that hands over one snapshot and then stays quiet (`lab probe`, tests). */
export function staticSource(s: Snapshot): SnapshotSource {
  return {
    start: (sink) => {
      sink.snapshot(s);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
  };
}

/** What the API server shows a node agent: the newest published snapshot, to every subscriber. */
class Feed implements SnapshotSource {
  private sink: SourceSink | undefined;
  private last: Snapshot | undefined;

  publish(s: Snapshot): void {
    this.last = s;
    this.sink?.snapshot(s);
  }

  start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    if (this.last !== undefined) sink.snapshot(this.last);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.sink = undefined;
    return Promise.resolve();
  }
}

/** One node's agent: its own applier (table in its node namespace) and its own reconcile loop. */
export interface NodeAgent {
  /** The Node it enforces for (DataplaneOptions.nodeName): its pods are the local subjects. */
  readonly node: string;
  readonly netns: string;
  readonly applier: DataplaneApplier;
  readonly reconciler: Reconciler;
  readonly attachments: CniAttachments;
  /** Its flow log service (LabAgentsOptions.flowLog). */
  readonly flows?: FlowService;
}

/** 'lab': building pods for a snapshot (the lab's part, not an agent's). */
export type LabPhase = ReconcilePhase | 'lab';

export interface LabAgentsOptions {
  /** nft table name in every node namespace. Default 'moat'. */
  readonly table?: string;
  /** Passed to every node's Reconciler. */
  readonly coalesceMs?: number;
  /** Period of each node's drift check; default 0 (off: call checkDrift()). */
  readonly driftIntervalMs?: number;
  readonly retryMs?: number;
  readonly onApplied?: (node: string, a: Applied) => void | Promise<void>;
  /** Every node's agent enforces the lab's newest snapshot, its pods' attachments included. */
  readonly onSynced?: (snapshot: Snapshot, applied: readonly Applied[]) => void | Promise<void>;
  readonly onDrift?: (node: string, d: DriftResult) => void;
  /** Flow logs in every node's ruleset, read in its namespace (NetnsNflogReader); default off. */
  readonly flowLog?: FlowLogOptions;
  /** Audit mode for every policy (DataplaneOptions.audit). */
  readonly audit?: boolean;
  /** What every node enforces with; default nftables. */
  readonly backend?: Backend;
  /** Every flow record of every node. */
  readonly onFlow?: (r: FlowRecord) => void;
  /** `node` is undefined for the lab's own phase (building pods for a snapshot: 'lab'). */
  readonly onError?: (node: string | undefined, err: unknown, phase: LabPhase) => void;
}

function canon(ip: string): string {
  const a = parseIP(ip);
  return a ? formatAddress(a) : ip;
}

/**
 * One agent per lab node, as a DaemonSet runs them: each applies the same published snapshot in
 * its own namespace with DataplaneOptions.nodeName set to its node, so every pod is a peer
 * everywhere but a subject only on its own node, and a cross-node flow is checked at egress on the
 * source node and at ingress on the destination node.
 */
export class LabAgents {
  readonly agents: readonly NodeAgent[];
  private readonly feeds: Feed[] = [];
  private source: SnapshotSource | undefined;
  private stopped = false;
  private readonly last = new Map<string, Applied>();
  /** The lab's building work: one snapshot at a time, the newest one next. */
  private next: Snapshot | undefined;
  private building: Promise<void> | undefined;
  /** The snapshot published last, and whether onSynced has been told about it. */
  private published: Snapshot | undefined;
  private reported = false;
  private waiters: (() => void)[] = [];

  constructor(
    readonly lab: Lab,
    private readonly opts: LabAgentsOptions = {},
  ) {
    const table = opts.table ?? DEFAULT_TABLE;
    this.agents = lab.nodes.map(({ name, netns, cniResultsDir }) => {
      const applier = new DataplaneApplier(
        netnsRunner(netns),
        {
          table,
          nodeName: name,
          podInterfaces: LAB_POD_INTERFACES,
          ...(opts.flowLog !== undefined ? { flowLog: opts.flowLog } : {}),
          ...(opts.audit === true ? { audit: true } : {}),
        },
        backendDeps(netns, opts.backend ?? 'nftables', lab.network === 'routed'),
      );
      const onFlow = opts.onFlow;
      const flows =
        opts.flowLog !== undefined && opts.flowLog.mode !== 'off'
          ? new FlowService({
              node: name,
              sinks: onFlow !== undefined ? [onFlow] : [],
              onError: (e) => opts.onError?.(name, e, 'source'),
            })
          : undefined;
      const attachments = new CniAttachments(cniResultsDir, {
        pollMs: 1000,
        onProblem: (p) => opts.onError?.(name, new Error(p), 'source'),
      });
      const reconciler = new Reconciler({
        applier,
        ...(opts.coalesceMs !== undefined ? { coalesceMs: opts.coalesceMs } : {}),
        ...(opts.retryMs !== undefined ? { retryMs: opts.retryMs } : {}),
        driftIntervalMs: opts.driftIntervalMs ?? 0,
        onApplied: async (a) => {
          if (flows !== undefined && applier.kernelView !== undefined) {
            flows.setGeneration(applier.kernelView, a.snapshot);
          }
          this.last.set(name, a);
          await opts.onApplied?.(name, a);
          await this.checkSynced();
        },
        onDrift: (d) => opts.onDrift?.(name, d),
        onError: (e, phase) => opts.onError?.(name, e, phase),
      });
      return {
        node: name,
        netns,
        applier,
        reconciler,
        attachments,
        ...(flows !== undefined ? { flows } : {}),
      };
    });
  }

  /** The agent of a node (by Node name). */
  agent(node: string): NodeAgent {
    const a = this.agents.find((x) => x.node === node);
    if (!a) throw new Error(`lab: no node ${node}`);
    return a;
  }

  /** Starts every node's agent (on its feed and its CNI cache), then the manifest source. */
  async start(source: SnapshotSource): Promise<void> {
    const group = this.opts.flowLog?.group;
    if (group !== undefined) {
      const { NetnsNflogReader } = await import('../flowlog/nflog-netns.js');
      for (const a of this.agents) {
        await a.flows?.start(() => NetnsNflogReader.open({ netns: a.netns, group }));
      }
    }
    for (const a of this.agents) {
      const feed = new Feed();
      this.feeds.push(feed);
      await a.reconciler.start(withAttachments(feed, a.attachments));
    }
    this.source = source;
    await source.start({
      snapshot: (s) => this.submit(s),
      error: (e) => this.opts.onError?.(undefined, e, 'source'),
    });
  }

  /** A manifest snapshot: the lab builds it, then every agent is shown the result. */
  submit(s: Snapshot): void {
    if (this.stopped) return;
    this.next = s;
    this.building ??= this.build().finally(() => {
      this.building = undefined;
      this.wake();
    });
  }

  private async build(): Promise<void> {
    while (this.next !== undefined && !this.stopped) {
      const s = this.next;
      this.next = undefined;
      let shown: Snapshot;
      try {
        shown = (await this.lab.update(s)).snapshot;
      } catch (e) {
        this.opts.onError?.(undefined, e, 'lab');
        continue;
      }
      this.published = shown;
      this.reported = false;
      for (const f of this.feeds) f.publish(shown);
    }
  }

  /**
   * Whether every agent enforces the published snapshot: its last apply had that snapshot's pods
   * and policies (admin policies too), and the attachments of every pod of its node (read from its CNI cache).
   */
  private enforced(): Applied[] | undefined {
    const p = this.published;
    if (p === undefined || this.building !== undefined) return undefined;
    const out: Applied[] = [];
    for (const [i, a] of this.agents.entries()) {
      const last = this.last.get(a.node);
      if (
        last === undefined ||
        last.snapshot.pods !== p.pods ||
        last.snapshot.policies !== p.policies ||
        last.snapshot.adminPolicies !== p.adminPolicies
      ) {
        return undefined;
      }
      const bound = new Set((last.snapshot.attachments ?? []).flatMap((x) => x.ips));
      for (const x of this.lab.attachments(i))
        if (!x.ips.every((ip) => bound.has(canon(ip)))) return undefined;
      out.push(last);
    }
    return out;
  }

  private async checkSynced(): Promise<void> {
    const applied = this.enforced();
    if (applied === undefined) return;
    this.wake();
    if (this.reported || this.published === undefined) return;
    this.reported = true;
    await this.opts.onSynced?.(this.published, applied);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Resolves when the lab has built the newest snapshot and every agent enforces it (or, when a
   * build or apply failed, when everything is idle: the error went to onError).
   */
  async idle(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (this.building === undefined) {
        await Promise.all(this.agents.map((a) => a.reconciler.idle()));
        if (this.building === undefined && (this.enforced() !== undefined || this.stopped)) return;
      }
      if (Date.now() > until) return;
      // An apply wakes us; poll as the safety net.
      await new Promise<void>((r) => {
        const t = setTimeout(r, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** A drift check on every node now (each agent repairs its own table). */
  checkDrift(): Promise<(DriftResult | undefined)[]> {
    return Promise.all(this.agents.map((a) => a.reconciler.checkDrift()));
  }

  /** Stops the source and every node's loop. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.next = undefined;
    await this.source?.stop();
    await this.building;
    await Promise.all(this.agents.map((a) => a.reconciler.stop()));
    await Promise.all(this.agents.map((a) => a.applier.close()));
    this.wake();
  }

  /**
   * Settles what the flow loggers hold back (a Pass waiting for its packet's next decision); returns
   * how many Passes, on all nodes, lost their next decision to the rate limit.
   */
  flushFlows(): number {
    let incomplete = 0;
    for (const a of this.agents) {
      a.flows?.logger.flush();
      incomplete += a.flows?.logger.stats().incomplete ?? 0;
    }
    return incomplete;
  }

  /** Stops reading flow logs (stop() leaves them running: a lab probes after its agents stop). */
  async closeFlows(): Promise<void> {
    await Promise.all(this.agents.map((a) => (a.flows !== undefined ? a.flows.close() : Promise.resolve())));
  }

  /** Deletes every node's tables. */
  async remove(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.applier.remove()));
  }
}
