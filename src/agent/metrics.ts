// The agent's Prometheus metrics (prom-client, one registry per agent: nothing global).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ApplyResult, CommandRunner, NftCounter, Ruleset } from '../dataplane/index.js';
import type { ReconcilePhase } from './reconcile.js';
import { FLOW_SUPPRESSED } from '../dataplane/flowlog.js';

export type ErrorPhase = ReconcilePhase | 'watch' | 'decode' | 'counters' | 'remove' | 'flowlog';

/** The flow log's figures (FlowService): reader, records, what could not be attributed. */
export interface FlowFigures {
  readonly reader?: {
    received: number;
    decoded: number;
    undecodable: number;
    lost: number;
    /** Records the kernel numbered that never arrived (sequence gaps). */
    lostRecords: number;
  };
  /** "verdict/direction" -> records. */
  readonly records: ReadonlyMap<string, number>;
  readonly unattributed: number;
  readonly undecoded: number;
  /** Admin Passes whose next decision the rate limit suppressed (no record made). */
  readonly incomplete?: number;
}

export interface CounterValue {
  readonly packets: number;
  readonly bytes: number;
}

/**
 * Reads the named counters of moat's tables in one listing (`nft -j list counters`): those of
 * `inet <table>` by name, those of `bridge <table>` as "bridge/<name>".
 */
export async function readNftCounters(
  runner: CommandRunner,
  table: string,
): Promise<Map<string, CounterValue>> {
  const res = await runner.run(['nft', '-j', 'list', 'counters']);
  if (res.code !== 0) throw new Error(`nft list counters: ${res.stderr.trim()}`);
  return parseNftCounters(res.stdout, table);
}

/** Counters of `inet <table>` by name and of `bridge <table>` as "bridge/<name>" (see above). */
export function parseNftCounters(text: string, table?: string): Map<string, CounterValue> {
  const out = new Map<string, CounterValue>();
  const doc = JSON.parse(text) as { nftables?: Record<string, unknown>[] };
  for (const item of doc.nftables ?? []) {
    const c = item.counter as
      { name?: unknown; packets?: unknown; bytes?: unknown; family?: unknown; table?: unknown } | undefined;
    if (c === undefined || typeof c.name !== 'string') continue;
    if (table !== undefined && c.table !== undefined && c.table !== table) continue;
    const key =
      c.family === 'bridge'
        ? `bridge/${c.name}`
        : c.family === 'inet' || c.family === undefined
          ? c.name
          : '';
    if (key === '') continue;
    out.set(key, { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) });
  }
  return out;
}

export interface GuardPackets {
  readonly reason: string;
  readonly family: string;
  /** 'inet' (routed pod interfaces, forward, pods chains) or 'bridge' (bridged pod ports). */
  readonly table: 'inet' | 'bridge';
  readonly packets: number;
}

/** Packets dropped by the guards (source checks, martians, mid-stream TCP, shared addresses). */
export function guardPackets(rs: Ruleset, values: ReadonlyMap<string, CounterValue>): GuardPackets[] {
  const out: GuardPackets[] = [];
  for (const [t, counters, prefix] of [
    ['inet', rs.counters, ''],
    ['bridge', rs.bridge?.counters ?? [], 'bridge/'],
  ] as const) {
    for (const c of counters) {
      if (c.meta.kind !== 'guard' || c.meta.guard === undefined) continue;
      const v = values.get(`${prefix}${c.name}`);
      if (v === undefined) continue;
      out.push({ reason: c.meta.guard, family: c.meta.family ?? 'any', table: t, packets: v.packets });
    }
  }
  return out;
}

export interface PolicyPackets {
  readonly namespace: string;
  readonly policy: string;
  readonly direction: 'ingress' | 'egress';
  readonly allowed: number;
  readonly dropped: number;
  /** Would-be drops accepted in audit mode. */
  readonly audited: number;
}

/**
 * Sums the kernel's counters per (policy, direction). An accept counter belongs to the one policy
 * rule that admitted the packets. A drop counter belongs to a set of pods isolated by the union of
 * several policies: its packets are counted for each of them ("dropped while this policy isolated
 * the pod"), so dropped packets summed over policies can exceed the packets dropped.
 */
export function policyPackets(
  counters: readonly NftCounter[],
  values: ReadonlyMap<string, CounterValue>,
): PolicyPackets[] {
  const acc = new Map<
    string,
    {
      namespace: string;
      policy: string;
      direction: 'ingress' | 'egress';
      allowed: number;
      dropped: number;
      audited: number;
    }
  >();
  const entry = (namespace: string, policy: string, direction: 'ingress' | 'egress') => {
    const k = `${namespace}/${policy}/${direction}`;
    let e = acc.get(k);
    if (!e) acc.set(k, (e = { namespace, policy, direction, allowed: 0, dropped: 0, audited: 0 }));
    return e;
  };
  for (const c of counters) {
    const v = values.get(c.name);
    if (v === undefined) continue;
    const m = c.meta;
    if (m.kind === 'accept' && m.policy)
      entry(m.policy.namespace, m.policy.name, m.direction).allowed += v.packets;
    if (m.kind === 'drop') {
      const field = m.audit === true ? 'audited' : 'dropped';
      for (const p of m.policies ?? []) entry(p.namespace, p.name, m.direction)[field] += v.packets;
    }
  }
  return [...acc.values()].sort((a, b) =>
    `${a.namespace}/${a.policy}/${a.direction}` < `${b.namespace}/${b.policy}/${b.direction}` ? -1 : 1,
  );
}

export interface AdminRulePackets {
  readonly kind: string;
  readonly name: string;
  readonly tier: string;
  readonly rule: string;
  readonly action: string;
  readonly direction: 'ingress' | 'egress';
  readonly packets: number;
}

/** The packets each admin-tier rule decided (its Accept, Deny or Pass), from its counter. */
export function adminRulePackets(
  counters: readonly NftCounter[],
  values: ReadonlyMap<string, CounterValue>,
): AdminRulePackets[] {
  const out: AdminRulePackets[] = [];
  for (const c of counters) {
    const a = c.meta.admin;
    const v = values.get(c.name);
    if (a === undefined || v === undefined) continue;
    out.push({
      kind: a.kind,
      name: a.name,
      tier: a.tier,
      rule: a.ruleName !== '' ? a.ruleName : String(a.rule),
      action: a.action,
      direction: c.meta.direction,
      packets: v.packets,
    });
  }
  return out;
}

export interface MetricsSources {
  /** The ruleset the kernel holds (for counter names and sizes). */
  readonly ruleset: () => Ruleset | undefined;
  /** Reads the kernel's counters; undefined: not available (e.g. no table yet). */
  readonly counters: () => Promise<ReadonlyMap<string, CounterValue> | undefined>;
  /** Objects watched per kind. */
  readonly objects: () => Readonly<Record<string, number>>;
  /** Objects per kind that did not decode cleanly. */
  readonly invalid: () => Readonly<Record<string, number>>;
  /** Addresses that more than one live pod claims (enforced fail-closed). */
  readonly conflicts?: () => number;
  /** Local pod addresses the source check does not cover (guard-check.ts). */
  readonly unguarded?: () => number;
  /** Pod attachments read from the CNI result cache; undefined when not read. */
  readonly attachments?: () => number | undefined;
  /** Flow logs; undefined when off. */
  readonly flows?: () => FlowFigures | undefined;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly syncDuration: Histogram<'mode'>;
  private readonly syncs: Counter<'mode'>;
  private readonly errors: Counter<'phase'>;
  private readonly lastSync: Gauge;
  private readonly eventToEnforced: Histogram;
  private readonly drifts: Counter;
  private readonly watchErrors: Counter<'kind'>;
  private readonly relists: Counter<'kind'>;

  constructor(src: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.syncDuration = new Histogram({
      name: 'moat_sync_duration_seconds',
      help: 'Time to compile and apply a snapshot to the kernel',
      labelNames: ['mode'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.syncs = new Counter({
      name: 'moat_syncs_total',
      help: 'Successful applies, by mode (full, incremental, none)',
      labelNames: ['mode'],
      registers,
    });
    this.errors = new Counter({
      name: 'moat_errors_total',
      help: 'Errors, by phase (source, watch, decode, apply, drift, counters, remove)',
      labelNames: ['phase'],
      registers,
    });
    const phases: ErrorPhase[] = ['source', 'watch', 'decode', 'apply', 'drift', 'counters', 'remove'];
    for (const phase of phases) this.errors.inc({ phase }, 0);
    this.lastSync = new Gauge({
      name: 'moat_last_successful_sync_timestamp_seconds',
      help: 'Unix time of the last successful apply',
      registers,
    });
    this.eventToEnforced = new Histogram({
      name: 'moat_event_to_enforced_seconds',
      help: 'From receiving a change from the API server to the kernel enforcing it',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.drifts = new Counter({
      name: 'moat_drift_repairs_total',
      help: 'Times the kernel table differed from the model and was replaced',
      registers,
    });
    this.watchErrors = new Counter({
      name: 'moat_watch_errors_total',
      help: 'Failed lists and watches, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.relists = new Counter({
      name: 'moat_lists_total',
      help: 'Full lists, by kind (the initial list and relists, e.g. after 410 Gone)',
      labelNames: ['kind'],
      registers,
    });
    const sized = (name: string, help: string, of: (rs: Ruleset) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const rs = src.ruleset();
          this.set(rs ? of(rs) : 0);
        },
      });
    sized('moat_ruleset_rules', 'Rules in the nft table', (rs) =>
      rs.chains.reduce((n, c) => n + c.rules.length, 0),
    );
    sized('moat_ruleset_chains', 'Chains in the nft table', (rs) => rs.chains.length);
    sized('moat_ruleset_sets', 'Sets and maps in the nft table', (rs) => rs.sets.length);
    sized('moat_ruleset_elements', 'Set and map elements in the nft table', (rs) =>
      rs.sets.reduce((n, s) => n + s.elements.length, 0),
    );
    sized('moat_ruleset_counters', 'Named counters in the nft table', (rs) => rs.counters.length);
    new Gauge({
      name: 'moat_watched_objects',
      help: 'Objects held from the API server, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(src.objects())) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'moat_invalid_objects',
      help: 'Objects that failed validation, by kind (enforced fail-closed: NetworkPolicies deny-only, admin policies Deny all from the broken rule on)',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(src.invalid())) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'moat_address_conflicts',
      help: 'Addresses claimed by more than one live pod, enforced fail-closed',
      registers,
      collect() {
        this.set(src.conflicts?.() ?? 0);
      },
    });
    new Gauge({
      name: 'moat_unguarded_pod_addresses',
      help: 'Addresses of local pods behind an interface the source check does not cover (see --pod-interfaces)',
      registers,
      collect() {
        this.set(src.unguarded?.() ?? 0);
      },
    });
    new Gauge({
      name: 'moat_pod_attachments',
      help: "Pod attachments in the CNI result cache (the bridge table's port bindings)",
      registers,
      collect() {
        this.set(src.attachments?.() ?? 0);
      },
    });
    // Kernel counters are read at scrape time. They restart at 0 when the table is replaced, which
    // Prometheus' rate() treats as a counter reset.
    type Read = {
      policies: PolicyPackets[];
      guards: GuardPackets[];
      admin: AdminRulePackets[];
      suppressed: number;
    };
    let scrape: Promise<Read> | undefined;
    const readCounters = (): Promise<Read> => {
      scrape ??= (async () => {
        try {
          const rs = src.ruleset();
          const values = rs ? await src.counters() : undefined;
          return rs && values
            ? {
                policies: policyPackets(rs.counters, values),
                guards: guardPackets(rs, values),
                admin: adminRulePackets(rs.counters, values),
                suppressed: values.get(FLOW_SUPPRESSED)?.packets ?? 0,
              }
            : { policies: [], guards: [], admin: [], suppressed: 0 };
        } catch {
          this.error('counters');
          return { policies: [], guards: [], admin: [], suppressed: 0 };
        } finally {
          setImmediate(() => (scrape = undefined));
        }
      })();
      return scrape;
    };
    const readPolicies = async (): Promise<PolicyPackets[]> => (await readCounters()).policies;
    new Counter({
      name: 'moat_guard_dropped_packets_total',
      help: 'Packets dropped before any policy: spoofed source, martian (node source from elsewhere), not-syn (mid-stream TCP), conflict (shared address)',
      labelNames: ['reason', 'family', 'table'],
      registers,
      async collect() {
        const rows = (await readCounters()).guards;
        this.reset();
        for (const r of rows) this.inc({ reason: r.reason, family: r.family, table: r.table }, r.packets);
      },
    });
    const perPolicy = (name: string, help: string, field: 'allowed' | 'dropped' | 'audited') =>
      new Counter({
        name,
        help,
        labelNames: ['namespace', 'policy', 'direction'],
        registers,
        async collect() {
          const rows = await readPolicies();
          this.reset();
          for (const r of rows) {
            this.inc({ namespace: r.namespace, policy: r.policy, direction: r.direction }, r[field]);
          }
        },
      });
    new Counter({
      name: 'moat_admin_rule_packets_total',
      help: 'New connections an admin-tier rule decided (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy), by its action',
      labelNames: ['kind', 'name', 'tier', 'rule', 'action', 'direction'],
      registers,
      async collect() {
        const rows = (await readCounters()).admin;
        this.reset();
        for (const r of rows) {
          const { packets, ...labels } = r;
          this.inc(labels, packets);
        }
      },
    });
    new Counter({
      name: 'moat_flow_log_messages_total',
      help: 'NFLOG messages the flow log reader received, decoded, could not decode or attribute, or that made no record (incomplete: an admin Pass whose next decision the rate limit suppressed)',
      labelNames: ['state'],
      registers,
      collect() {
        const f = src.flows?.();
        this.reset();
        if (f?.reader === undefined) return;
        this.inc({ state: 'received' }, f.reader.received);
        this.inc({ state: 'decoded' }, f.reader.decoded);
        this.inc({ state: 'undecodable' }, f.reader.undecodable + f.undecoded);
        this.inc({ state: 'unattributed' }, f.unattributed);
        this.inc({ state: 'incomplete' }, f.incomplete ?? 0);
      },
    });
    new Counter({
      name: 'moat_flow_log_overruns_total',
      help: 'Socket overruns of the flow log reader (ENOBUFS): the kernel dropped records it could not deliver',
      registers,
      collect() {
        this.reset();
        this.inc(src.flows?.()?.reader?.lost ?? 0);
      },
    });
    new Counter({
      name: 'moat_flow_log_lost_records_total',
      help: 'Flow records the kernel logged that never reached the agent (gaps in the NFLOG sequence numbers)',
      registers,
      collect() {
        this.reset();
        this.inc(src.flows?.()?.reader?.lostRecords ?? 0);
      },
    });
    new Counter({
      name: 'moat_flow_records_total',
      help: 'Flow records written, by verdict (allowed, denied, audit) and direction',
      labelNames: ['verdict', 'direction'],
      registers,
      collect() {
        this.reset();
        for (const [k, n] of src.flows?.()?.records ?? []) {
          const [verdict = '', direction = ''] = k.split('/');
          this.inc({ verdict, direction }, n);
        }
      },
    });
    new Counter({
      name: 'moat_flow_records_suppressed_total',
      help: "Flow records the node's rate limit suppressed (--flow-log-rate): the verdict was enforced, not logged",
      registers,
      async collect() {
        this.reset();
        this.inc((await readCounters()).suppressed);
      },
    });
    perPolicy('moat_policy_allowed_packets_total', 'Packets admitted by a rule of the policy', 'allowed');
    perPolicy(
      'moat_policy_dropped_packets_total',
      'Packets dropped at pods the policy isolates (counted for every policy isolating them)',
      'dropped',
    );
    perPolicy(
      'moat_policy_audited_packets_total',
      'Packets the policy would drop, accepted in audit mode (--audit, annotation moat.dev/audit)',
      'audited',
    );
  }

  synced(r: ApplyResult, elapsedMs: number, eventAt?: number): void {
    this.syncDuration.observe({ mode: r.mode }, elapsedMs / 1000);
    this.syncs.inc({ mode: r.mode });
    const now = Date.now();
    this.lastSync.set(now / 1000);
    if (eventAt !== undefined) this.eventToEnforced.observe((now - eventAt) / 1000);
  }

  error(phase: ErrorPhase): void {
    this.errors.inc({ phase });
  }

  drift(): void {
    this.drifts.inc();
  }

  watchError(kind: string): void {
    this.watchErrors.inc({ kind });
    this.error('watch');
  }

  listed(kind: string): void {
    this.relists.inc({ kind });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
