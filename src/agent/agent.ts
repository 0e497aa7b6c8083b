// The node agent, wired: Kubernetes API (K8sSource) -> reconcile loop -> nftables (DataplaneApplier),
// with metrics, health and JSON logs. Enforcement lives in the kernel: while the agent is down the
// last table keeps being enforced (fail-static); a starting agent replaces it atomically with its
// first apply, which happens only once every watched resource has been listed.
import type { KubeConfig } from '@kubernetes/client-node';
import type { RulesetWriter } from '../dataplane/iptables-applier.js';
import {
  DEFAULT_POD_INTERFACES,
  DEFAULT_TABLE,
  localRunner,
  NetlinkConntrack,
  DataplaneApplier,
  NftSession,
  type CommandRunner,
  type ConntrackClient,
  type NftBatcher,
  type Ruleset,
} from '../dataplane/index.js';
import type { FlowLogOptions } from '../dataplane/model.js';
import { FileSink } from '../flowlog/file-sink.js';
import { FlowService, type OpenReader } from '../flowlog/service.js';
import { addressConflicts } from '../model/conflicts.js';
import type { Snapshot } from '../model/types.js';
import { CniAttachments, DEFAULT_CNI_RESULTS_DIR, withAttachments } from './attachments.js';
import { parseIpRoutes, unguardedPods, type Unguarded } from './guard-check.js';
import { K8sSource, type KindStatus } from './k8s-source.js';
import { WATCHABLE } from './k8s-decode.js';
import { errorField, silentLog, type Log } from './log.js';
import { AgentMetrics, readNftCounters } from './metrics.js';
import { Reconciler, type Applied, type Applier, type SnapshotSource } from './reconcile.js';
import {
  healthRoutes,
  metricsRoutes,
  serve,
  type HealthState,
  type ListenAddress,
  type RunningServer,
} from './server.js';

/** What the agent needs of the dataplane (DataplaneApplier; tests substitute a recorder). */
export interface AgentApplier extends Applier {
  readonly kernelView: Ruleset | undefined;
  /** Addresses that more than one live pod claims, as of the last apply. */
  readonly conflicts?: ReadonlySet<string>;
  remove(): Promise<void>;
  /** Stops helpers (the conntrack client's child). */
  close?(): Promise<void>;
}

export type OnExit = 'keep' | 'remove';

export interface AgentOptions {
  readonly kubeConfig: KubeConfig;
  /** This node: only its pods are policy subjects; every pod's addresses are kept for peers. */
  readonly nodeName: string;
  readonly table?: string;
  /** On stop: keep the table (fail-static, the default) or remove it (fail-open). */
  readonly onExit?: OnExit;
  /** Where to serve /metrics; undefined: not served. */
  readonly metricsAddr?: ListenAddress;
  /** Where to serve /healthz and /readyz; undefined: not served. */
  readonly healthAddr?: ListenAddress;
  readonly log?: Log;
  /** Full resync period. Default 5 min. */
  readonly resyncMs?: number;
  /** API discovery period of the CRD kinds (the admin tiers); 0: only at start. Default 30 s. */
  readonly discoveryIntervalMs?: number;
  /** A kind discovery stops finding is dropped when a discovery this much later agrees. Default 5 s. */
  readonly discoveryConfirmMs?: number;
  /** Drift check period. Default 30 s. */
  readonly driftIntervalMs?: number;
  /** Coalescing window of the reconcile loop. Default 10 ms. */
  readonly coalesceMs?: number;
  readonly conntrackCleanup?: boolean;
  readonly policeNodeEgress?: boolean;
  /** Host-side pod interface globs (DataplaneOptions.podInterfaces). */
  readonly podInterfaces?: readonly string[];
  /** The CNI result cache of this node's pods ('' turns it off). Default /var/lib/cni/results. */
  readonly cniResultsDir?: string;
  /** Runs nft and conntrack (default: on this host). */
  readonly runner?: CommandRunner;
  /**
   * Lists and deletes conntrack entries over ctnetlink (default: a NetlinkConntrack on this host
   * when no runner is given); conntrack-tools through the runner is the fallback.
   */
  readonly conntrack?: ConntrackClient;
  /**
   * Runs incremental nft transactions in one long-lived `nft -i` (default: an NftSession on this
   * host when no runner is given); `nft -f` through the runner is the fallback.
   */
  readonly nft?: NftBatcher;
  /** The iptables + ipset backend instead of nftables (IptablesWriter); the nft session is unused. */
  readonly writer?: RulesetWriter;
  /** Not ready once applies have been failing for this long. Default 60 s. */
  readonly readyFailAfterMs?: number;
  /** First retry delay of failed watches and applies. Default 500 ms. */
  readonly retryMs?: number;
  /** Flow logs (NFLOG at every decision); default off. */
  readonly flowLog?: FlowLogOptions;
  /** Audit mode for every policy: would-be drops are accepted and logged as `audit`. */
  readonly audit?: boolean;
  /** Where flow records go: the agent's log (default), or a rotating file. */
  readonly flowLogFile?: { readonly path: string; readonly maxBytes?: number; readonly keep?: number };
  /** Opens the NFLOG reader (default: NetnsNflogReader, a child in this process's namespace). */
  readonly openFlowReader?: (group: number) => ReturnType<OpenReader>;
  /** Replaces the DataplaneApplier (tests). */
  readonly applier?: AgentApplier;
  readonly onApplied?: (a: Applied) => void;
}

export const DEFAULT_COALESCE_MS = 10;

export class Agent {
  readonly source: K8sSource;
  readonly reconciler: Reconciler;
  readonly metrics: AgentMetrics;
  readonly applier: AgentApplier;
  private readonly log: Log;
  private readonly servers: RunningServer[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private lastBeat = Date.now();
  private firstSyncAt: number | undefined;
  private lastSyncAt: number | undefined;
  private failingSince: number | undefined;
  private lastError = '';
  /** Event time of the oldest change submitted but not yet picked up by an apply. */
  private pendingEventAt: number | undefined;
  private inFlightEventAt: number | undefined;
  private stopping: Promise<void> | undefined;
  private readonly attachments: CniAttachments | undefined;
  private conflicts: ReadonlySet<string> = new Set();
  private readonly runner: CommandRunner;
  private unguarded = new Map<string, Unguarded>();
  private guardTimer: NodeJS.Timeout | undefined;
  private guardCheck: Promise<void> | undefined;
  /** Flow logs, when on. */
  readonly flows: FlowService | undefined;
  private flowFile: FileSink | undefined;

  private constructor(private readonly opts: AgentOptions) {
    this.log = opts.log ?? silentLog;
    const runner = opts.runner ?? localRunner();
    this.runner = runner;
    const table = opts.table ?? DEFAULT_TABLE;
    this.applier =
      opts.applier ??
      new DataplaneApplier(
        runner,
        {
          table,
          nodeName: opts.nodeName,
          ...(opts.policeNodeEgress !== undefined ? { policeNodeEgress: opts.policeNodeEgress } : {}),
          ...(opts.conntrackCleanup !== undefined ? { conntrackCleanup: opts.conntrackCleanup } : {}),
          ...(opts.podInterfaces !== undefined ? { podInterfaces: opts.podInterfaces } : {}),
          ...(opts.flowLog !== undefined ? { flowLog: opts.flowLog } : {}),
          ...(opts.audit === true ? { audit: true } : {}),
        },
        {
          conntrack: opts.conntrack ?? (opts.runner === undefined ? new NetlinkConntrack() : undefined),
          ...(opts.writer !== undefined
            ? { writer: opts.writer }
            : { nft: opts.nft ?? (opts.runner === undefined ? new NftSession() : undefined) }),
        },
      );
    const dir = opts.cniResultsDir ?? DEFAULT_CNI_RESULTS_DIR;
    this.attachments =
      dir === ''
        ? undefined
        : new CniAttachments(dir, {
            onProblem: (problem) => this.log.warn('CNI result not usable', { problem }),
            onMissing: (d) =>
              this.log.warn(
                'no CNI result cache: bridged pod ports are not source-checked (routed pods still are)',
                { dir: d },
              ),
          });
    this.source = new K8sSource({
      kubeConfig: opts.kubeConfig,
      log: this.log,
      ...(opts.resyncMs !== undefined ? { resyncMs: opts.resyncMs } : {}),
      ...(opts.retryMs !== undefined ? { retryMs: opts.retryMs } : {}),
      ...(opts.discoveryIntervalMs !== undefined ? { discoveryIntervalMs: opts.discoveryIntervalMs } : {}),
      ...(opts.discoveryConfirmMs !== undefined ? { discoveryConfirmMs: opts.discoveryConfirmMs } : {}),
      onWatchError: (kind) => this.metrics.watchError(kind),
      onList: (kind) => this.metrics.listed(kind),
    });
    if (opts.flowLog !== undefined && opts.flowLog.mode !== 'off') {
      const file = opts.flowLogFile;
      this.flowFile = file !== undefined ? new FileSink(file) : undefined;
      const sink = this.flowFile;
      this.flows = new FlowService({
        node: opts.nodeName,
        sinks: [sink !== undefined ? (r) => sink.write(r) : (r) => this.log.info('flow', { flow: r })],
        onError: (e) => {
          this.metrics.error('flowlog');
          this.log.error('flow log reader failed: no more flow records', { error: errorField(e) });
        },
      });
    }
    this.metrics = new AgentMetrics({
      flows: () => {
        const f = this.flows;
        if (f === undefined) return undefined;
        const st = f.logger.stats();
        const reader = f.readerStats();
        return {
          ...(reader !== undefined ? { reader } : {}),
          records: st.records,
          unattributed: st.unattributed,
          incomplete: st.incomplete,
          undecoded: f.undecodedPayloads,
        };
      },
      ruleset: () => this.applier.kernelView,
      // Per-rule counters: nft's named counters, or what the writer reads by the same names.
      counters: () =>
        this.applier.kernelView === undefined
          ? Promise.resolve(undefined)
          : opts.writer === undefined
            ? readNftCounters(runner, table)
            : (opts.writer.counters?.() ?? Promise.resolve(undefined)),
      objects: () => Object.fromEntries(WATCHABLE.map((r) => [r.kind, this.source.state.count(r.kind)])),
      invalid: () =>
        Object.fromEntries(WATCHABLE.map((r) => [r.kind, this.source.state.invalidCount(r.kind)])),
      conflicts: () => this.conflicts.size,
      unguarded: () => this.unguarded.size,
      attachments: () => this.attachments?.current?.length,
    });
    this.reconciler = new Reconciler({
      applier: this.applier,
      coalesceMs: opts.coalesceMs ?? DEFAULT_COALESCE_MS,
      driftIntervalMs: opts.driftIntervalMs ?? 30_000,
      retryMs: opts.retryMs ?? 500,
      onDequeue: () => {
        // This apply takes every change submitted so far.
        this.inFlightEventAt = this.pendingEventAt;
        this.pendingEventAt = undefined;
      },
      onApplied: (a) => this.applied(a),
      onDrift: (d) => {
        this.metrics.drift();
        this.log.warn('nft table drifted; replaced', { differences: d.differences.slice(0, 20) });
      },
      onError: (err, phase) => {
        this.metrics.error(phase);
        if (phase === 'source') return; // logged by the source, with the resource
        if (phase === 'apply') {
          this.failingSince ??= Date.now();
          this.lastError = errorField(err);
        }
        this.log.error(`${phase} failed`, { phase, error: errorField(err) });
      },
    });
  }

  /** Starts the endpoints, then the watches; returns once both are under way. */
  static async start(opts: AgentOptions): Promise<Agent> {
    const agent = new Agent(opts);
    await agent.begin();
    return agent;
  }

  private async begin(): Promise<void> {
    const o = this.opts;
    this.heartbeat = setInterval(() => (this.lastBeat = Date.now()), 1000);
    this.heartbeat.unref();
    const health = healthRoutes(this.health());
    const metrics = {
      ...metricsRoutes(() => this.metrics.text(), this.metrics.registry.contentType),
      ...(this.flows !== undefined ? { '/flows': this.flows.handle.bind(this.flows) } : {}),
    };
    try {
      const same =
        o.metricsAddr !== undefined &&
        o.healthAddr !== undefined &&
        o.metricsAddr.host === o.healthAddr.host &&
        o.metricsAddr.port === o.healthAddr.port &&
        o.metricsAddr.port !== 0;
      if (same && o.metricsAddr) {
        this.servers.push(await serve(o.metricsAddr, { ...metrics, ...health }));
      } else {
        if (o.metricsAddr) this.servers.push(await serve(o.metricsAddr, metrics));
        if (o.healthAddr) this.servers.push(await serve(o.healthAddr, health));
      }
    } catch (e) {
      await this.closeServers();
      throw e;
    }
    this.log.info('starting', {
      node: o.nodeName,
      table: o.table ?? DEFAULT_TABLE,
      onExit: o.onExit ?? 'keep',
      server: o.kubeConfig.getCurrentCluster()?.server,
      metrics: this.metricsAddress,
      health: this.healthAddress,
    });
    if (this.flows !== undefined && o.flowLog !== undefined) {
      try {
        const group = o.flowLog.group;
        const { NetnsNflogReader } = await import('../flowlog/nflog-netns.js');
        const open = o.openFlowReader ?? ((g: number) => NetnsNflogReader.open({ group: g }));
        await this.flows.start(() => open(group));
      } catch (e) {
        // The ruleset still logs (to nobody: the kernel frees the messages); enforcement is intact.
        this.metrics.error('flowlog');
        this.log.error('cannot read flow logs', { group: o.flowLog.group, error: errorField(e) });
      }
    }
    const timed = this.timedSource();
    await this.reconciler.start(this.attachments ? withAttachments(timed, this.attachments) : timed);
  }

  /** The source, with the time of each snapshot's oldest change noted for the latency metric. */
  private timedSource(): SnapshotSource {
    const src = this.source;
    return {
      start: (sink) =>
        src.start({
          snapshot: (s) => {
            const at = src.eventTime(s);
            if (at !== undefined && (this.pendingEventAt === undefined || at < this.pendingEventAt)) {
              this.pendingEventAt = at;
            }
            sink.snapshot(s);
          },
          error: (e) => sink.error(e),
        }),
      stop: () => src.stop(),
    };
  }

  private applied(a: Applied): void {
    const now = Date.now();
    this.firstSyncAt ??= now;
    this.lastSyncAt = now;
    this.failingSince = undefined;
    this.metrics.synced(a.result, a.elapsedMs, this.inFlightEventAt);
    const fields = {
      generation: a.generation,
      mode: a.result.mode,
      commands: a.result.commands,
      coalesced: a.coalesced,
      elapsedMs: a.elapsedMs,
      ...(this.inFlightEventAt !== undefined ? { sinceEventMs: now - this.inFlightEventAt } : {}),
      pods: a.snapshot.pods.length,
      policies: a.snapshot.policies.length,
    };
    this.inFlightEventAt = undefined;
    const kv = this.applier.kernelView;
    if (this.flows !== undefined && kv !== undefined) this.flows.setGeneration(kv, a.snapshot);
    this.noteConflicts(a.snapshot);
    this.scheduleGuardCheck(a.snapshot);
    if (a.generation === 1) this.log.info('first sync: table replaced atomically', fields);
    else if (a.result.mode === 'none') this.log.debug('in sync', fields);
    else this.log.info('applied', fields);
    for (const e of a.result.conntrackErrors) this.log.warn('conntrack cleanup failed', { error: e });
    const fb = a.result.conntrackFallback;
    if (fb !== undefined) this.log.warn('conntrack over netlink failed: conntrack-tools used', { error: fb });
    const ns = a.result.nftSessionError;
    if (ns !== undefined) this.log.warn('nft session failed: the table was replaced in full', { error: ns });
    this.opts.onApplied?.(a);
  }

  /**
   * Soon after an apply, checks that every local pod is behind an interface the source check
   * covers (guard-check.ts), and says so when one is not: a glob that misses the CNI's interfaces
   * must not be a silently open door.
   */
  private scheduleGuardCheck(s: Snapshot): void {
    const globs = this.opts.podInterfaces ?? DEFAULT_POD_INTERFACES;
    if (globs.length === 0 || this.guardTimer !== undefined) return;
    this.guardTimer = setTimeout(() => {
      this.guardTimer = undefined;
      this.guardCheck = this.checkGuards(this.reconciler.lastApplied ?? s, globs).finally(
        () => (this.guardCheck = undefined),
      );
    }, 1000);
    this.guardTimer.unref();
  }

  private async checkGuards(s: Snapshot, globs: readonly string[]): Promise<void> {
    const routes = [];
    for (const fam of ['-4', '-6']) {
      const r = await this.runner.run(['ip', fam, '-j', 'route', 'show', 'table', 'main']);
      if (r.code !== 0) return; // no routes to judge by: say nothing rather than something wrong
      routes.push(...parseIpRoutes(r.stdout));
    }
    const now = new Map(
      unguardedPods(s, this.opts.nodeName, routes, globs).map((u) => [`${u.pod} ${u.ip}`, u]),
    );
    for (const [k, u] of now) {
      if (this.unguarded.has(k)) continue;
      this.log.warn('pod address not covered by the source check: the pod could send as anyone', {
        pod: u.pod,
        address: u.ip,
        interface: u.dev,
        podInterfaces: globs.join(','),
        hint: 'set --pod-interfaces to the CNI host-side interfaces; on a bridge, mount the CNI result cache',
      });
    }
    for (const [k, u] of this.unguarded) {
      if (!now.has(k))
        this.log.info('pod address covered by the source check', { pod: u.pod, address: u.ip });
    }
    this.unguarded = now;
  }

  /** Logs each address that two live pods came to share, once, with the pods (fail-closed). */
  private noteConflicts(s: Snapshot): void {
    const now = this.applier.conflicts;
    if (now === undefined) return;
    const fresh = [...now].filter((a) => !this.conflicts.has(a));
    const gone = [...this.conflicts].filter((a) => !now.has(a));
    this.conflicts = new Set(now);
    if (fresh.length > 0) {
      const want = new Set(fresh);
      for (const c of addressConflicts(s.pods)) {
        if (!want.has(c.address)) continue;
        this.log.warn('address shared by live pods: enforced fail-closed', {
          address: c.address,
          pods: c.pods,
        });
      }
    }
    for (const a of gone) this.log.info('address no longer shared', { address: a });
  }

  private health(): HealthState {
    return {
      live: () => {
        const lag = Date.now() - this.lastBeat;
        return lag < 10_000
          ? { ok: true, detail: 'event loop running' }
          : { ok: false, detail: `event loop stalled for ${lag} ms` };
      },
      ready: () => {
        const r = this.readiness();
        return {
          ok: r.ok,
          detail: `${r.detail}\n${kindLines(this.source.kinds(), this.source.discoveryError)}`,
        };
      },
    };
  }

  private readiness(): { ok: boolean; detail: string } {
    if (this.firstSyncAt === undefined) {
      const waiting = this.source.kinds().some((k) => k.state === 'unknown')
        ? 'waiting for API discovery and the first list of every resource'
        : 'waiting for the first list of every resource';
      return { ok: false, detail: this.source.synced ? 'first sync in progress' : waiting };
    }
    const broken = this.source.brokenWatches();
    if (broken.length > 0) {
      return {
        ok: false,
        detail: `not seeing changes (last state still enforced): ${broken.map((b) => `${b.kind}: ${b.error}`).join('; ')}`,
      };
    }
    const listing = this.source.kinds().filter((k) => k.state === 'listing');
    if (listing.length > 0) {
      return {
        ok: false,
        detail: `newly served, not enforced until listed: ${listing.map((k) => k.kind).join(', ')}`,
      };
    }
    const limit = this.opts.readyFailAfterMs ?? 60_000;
    if (this.failingSince !== undefined && Date.now() - this.failingSince >= limit) {
      return {
        ok: false,
        detail: `applies failing for ${Date.now() - this.failingSince} ms: ${this.lastError}`,
      };
    }
    return {
      ok: true,
      detail: `generation ${this.reconciler.generation}, last sync ${Date.now() - (this.lastSyncAt ?? 0)} ms ago`,
    };
  }

  get ready(): boolean {
    return this.health().ready().ok;
  }

  get metricsAddress(): ListenAddress | undefined {
    return this.opts.metricsAddr ? this.servers[0]?.address : undefined;
  }

  get healthAddress(): ListenAddress | undefined {
    if (!this.opts.healthAddr) return undefined;
    return this.servers[this.servers.length - 1]?.address;
  }

  /**
   * Stops the watches and the loop, then keeps the table (fail-static) or removes it (fail-open).
   * Safe to call twice.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const onExit = this.opts.onExit ?? 'keep';
      this.log.info('stopping', { onExit });
      await this.reconciler.stop();
      if (this.guardTimer) clearTimeout(this.guardTimer);
      await this.guardCheck;
      if (onExit === 'remove') {
        try {
          await this.applier.remove();
          this.log.info('table removed: pods on this node are no longer policed (fail-open)');
        } catch (e) {
          this.metrics.error('remove');
          this.log.error('removing the table failed', { error: errorField(e) });
        }
      } else {
        this.log.info('table kept: the last policies stay enforced, unchanged, until an agent runs again');
      }
      if (this.heartbeat) clearInterval(this.heartbeat);
      await this.closeServers();
      await this.flows?.close();
      this.flowFile?.close();
      await this.applier.close?.();
    })();
    return this.stopping;
  }

  private async closeServers(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close()));
  }
}

/**
 * The kinds, one line per state (for /readyz), e.g.
 *   enforced: Namespace, Pod, Node, NetworkPolicy, ClusterNetworkPolicy (policy.networking.k8s.io/v1beta1)
 *   not served: AdminNetworkPolicy, BaselineAdminNetworkPolicy
 * A CRD kind carries the version watched; "not served" means its CRD is not installed.
 */
export function kindLines(
  kinds: readonly KindStatus[],
  discoveryError?: { since: number; error: string },
  now = Date.now(),
): string {
  const lines: string[] = [];
  for (const state of ['enforced', 'listing', 'not served', 'unknown'] as const) {
    const of = kinds.filter((k) => k.state === state);
    if (of.length === 0) continue;
    const names = of.map((k) => (k.discovered && k.apiVersion ? `${k.kind} (${k.apiVersion})` : k.kind));
    lines.push(`${state === 'unknown' ? 'not discovered yet' : state}: ${names.join(', ')}`);
  }
  if (discoveryError) {
    lines.push(`discovery failing for ${now - discoveryError.since} ms: ${discoveryError.error}`);
  }
  return lines.join('\n');
}
