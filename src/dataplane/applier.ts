// Applies Rulesets to the kernel. Every change is ONE `nft -f -` transaction (script on stdin, no
// shell): the first apply replaces the table atomically, later ones apply the diff against the
// in-memory mirror of what the kernel holds, falling back to a full atomic replace.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError } from '../errors.js';
import { formatAddress, parseIP } from '../model/cidr.js';
import type { Snapshot } from '../model/types.js';
import { IncrementalCompiler } from './compile.js';
import {
  flowLabel,
  parseConntrackList,
  parseAddressList,
  parseIpAddrJson,
  planConntrackCleanup,
  type CtPlan,
} from './conntrack.js';
import type { ConntrackClient } from './ct-client.js';
import type { NftBatcher } from './nft-session.js';
import type { RulesetWriter } from './iptables-applier.js';
import { conntrackTargets, diffRulesets, needsFullReplace, type ConntrackTarget } from './diff.js';
import { DEFAULT_TABLE, type DataplaneOptions, type Ruleset } from './model.js';
import { ownedTables, renderElement, renderNft } from './render.js';
import type { CommandResult, CommandRunner } from './runner.js';

export interface ApplyResult {
  /** 'full': the table was replaced; 'incremental': a diff was applied; 'none': nothing changed. */
  readonly mode: 'full' | 'incremental' | 'none';
  /** Number of nft commands in the transaction (0 for 'none'). */
  readonly commands: number;
  /**
   * conntrack deletions done after the change, one per filter, e.g.
   * "tcp 10.0.0.3 -> 10.0.0.1 port 80 (2 flows)" (or "reply-src 10.0.0.1" when the table could not
   * be listed and every entry of the address was deleted).
   */
  readonly conntrackDeleted: readonly string[];
  /** conntrack deletions that failed (the rules are applied regardless). */
  readonly conntrackErrors: readonly string[];
  /**
   * Why the conntrack client (ctnetlink) was not used and conntrack-tools did the cleanup, when
   * that happened.
   */
  readonly conntrackFallback?: string;
  /** Why the nft session failed for this change, when it did (a full replace was done instead). */
  readonly nftSessionError?: string;
  readonly ruleset: Ruleset;
}

export interface DataplaneApplierDeps {
  /**
   * Lists and deletes conntrack entries by exact tuple over ctnetlink (NetlinkConntrack, in the
   * runner's namespace). Absent, or when a request fails: conntrack-tools through the runner.
   */
  readonly conntrack?: ConntrackClient | undefined;
  /**
   * Runs incremental transactions in a long-lived `nft -i` (NftSession, in the runner's
   * namespace): no process start, no socket-close wait. Absent, for a script too long for it,
   * or when the session fails: `nft -f -` through the runner.
   */
  readonly nft?: NftBatcher | undefined;
  /**
   * Another backend (IptablesWriter): every change replaces the whole ruleset through it, drift is
   * its comparison, and nft is not used. Conntrack cleanup is the same.
   */
  readonly writer?: RulesetWriter | undefined;
}

export interface DriftResult {
  readonly drifted: boolean;
  /** Human-readable differences between the kernel and the in-memory model. */
  readonly differences: readonly string[];
  /** True when the table was replaced to repair the drift. */
  readonly repaired: boolean;
}

const NFT_APPLY = ['nft', '-f', '-'] as const;
/** Longer incremental scripts go to `nft -f`: editline reads a session's line at ~1 us per byte. */
const SESSION_MAX_SCRIPT = 16 * 1024;
/** Every entry of this netns, both families, in one walk of the kernel's conntrack table. */
const CONNTRACK_LIST = ['conntrack', '-L'] as const;
/** The addresses local to this netns: "the node" (see compile.ts, `fib saddr type local`). */
const IP_ADDRESSES = ['ip', '-j', 'address', 'show'] as const;
const CONNTRACK_PARALLEL = 4;
const CONNTRACK_ENOENT_RETRIES = 5;
const ENOENT = /such conntrack doesn't exist/;

/**
 * Keeps a node's kernel ruleset equal to the compiled snapshot: nft (one atomic table replace,
 * then incremental transactions), or another backend's writer (iptables + ipset) with the same
 * diff, drift loop and conntrack cleanup.
 */
export class DataplaneApplier {
  private current: Ruleset | undefined;
  private readonly opts: DataplaneOptions;
  /** Keeps per-policy chains and pod-scanned sets between applies: churn costs what changed. */
  private readonly compiler: IncrementalCompiler;

  private readonly ct: ConntrackClient | undefined;
  private readonly nft: NftBatcher | undefined;
  private readonly writer: RulesetWriter | undefined;

  constructor(
    readonly runner: CommandRunner,
    opts: DataplaneOptions,
    deps: DataplaneApplierDeps = {},
  ) {
    this.opts = { ...opts, table: opts.table === '' ? DEFAULT_TABLE : opts.table };
    this.compiler = new IncrementalCompiler(this.opts);
    this.ct = deps.conntrack;
    this.nft = deps.nft;
    this.writer = deps.writer;
  }

  /** Stops the conntrack client's and the nft session's children, if any (the table stays). */
  async close(): Promise<void> {
    await Promise.all([this.ct?.close(), this.nft?.close()]);
  }

  /** The Ruleset the kernel holds, as far as this applier knows. */
  get kernelView(): Ruleset | undefined {
    return this.current;
  }

  /** Addresses more than one live pod claims, as of the last compile (enforced fail-closed). */
  get conflicts(): ReadonlySet<string> {
    return this.compiler.conflictSet;
  }

  async apply(snapshot: Snapshot): Promise<ApplyResult> {
    const next = this.compiler.compile(snapshot);
    const prev = this.current;
    if (prev === undefined || needsFullReplace(prev, next)) {
      const commands = await this.replace(next);
      // A full replace changes what is allowed too. With nothing in memory (a starting or restarted
      // agent) every isolated pod's flows are judged: policies may have tightened while no agent
      // ran. Only the precise, listed plan runs here; cutting all flows of every pod is not a
      // fallback a start may take.
      const ct =
        this.opts.conntrackCleanup === false
          ? []
          : conntrackTargets(prev ?? { ...next, sets: [], chains: [] }, next);
      const cleaned = await this.cleanConntrack(ct, next, prev !== undefined);
      return { mode: 'full', commands, ...result(cleaned), ruleset: next };
    }
    const tx = diffRulesets(prev, next);
    if (tx.commands === 0) {
      return { mode: 'none', commands: 0, conntrackDeleted: [], conntrackErrors: [], ruleset: next };
    }
    if (this.writer !== undefined) {
      // The writer writes what changed since its last write, or everything when it cannot tell.
      const commands = await this.replace(next);
      const mode = this.writer.lastIncremental === true ? 'incremental' : 'full';
      const ct = this.opts.conntrackCleanup === false ? [] : conntrackTargets(prev, next);
      return { mode, commands, ...result(await this.cleanConntrack(ct, next)), ruleset: next };
    }
    let mode: ApplyResult['mode'] = 'incremental';
    let commands = tx.commands;
    const res = await this.incremental(tx.script);
    const sessionError = res.code === null && res.session === true ? res.stderr : undefined;
    if (res.code === 0) {
      this.current = next;
    } else {
      // The transaction was rejected as a whole (the kernel still holds `prev`, or something else
      // changed it), or the session failed. Either way a full atomic replace converges.
      mode = 'full';
      commands = await this.replace(next);
    }
    const ct = this.opts.conntrackCleanup === false ? [] : conntrackTargets(prev, next);
    const cleaned = await this.cleanConntrack(ct, next);
    return {
      mode,
      commands,
      ...result(cleaned),
      ...(sessionError !== undefined ? { nftSessionError: sessionError } : {}),
      ruleset: next,
    };
  }

  /** One incremental transaction: through the session when there is one and it can, else nft -f. */
  private async incremental(script: string): Promise<CommandResult & { session?: true }> {
    if (this.nft !== undefined && script.length <= SESSION_MAX_SCRIPT) {
      try {
        return await this.nft.apply(script);
      } catch (e) {
        // The session failed, not nft's judgement of the script: whether it committed is unknown
        // (running it again could add a new chain's rules twice), so the caller's full replace
        // converges instead.
        return { stdout: '', stderr: (e as Error).message, code: null, session: true };
      }
    }
    return this.runner.run(NFT_APPLY, script);
  }

  /** Compares the kernel's table with the mirror; repairs any difference by a full replace. */
  async checkDrift(): Promise<DriftResult> {
    const want = this.current;
    if (want === undefined) return { drifted: false, differences: [], repaired: false };
    const differences: string[] = [];
    if (this.writer !== undefined) differences.push(...(await this.writer.drift(want)));
    else
      for (const t of want.bridge !== undefined ? [want, want.bridge] : [want]) {
        const res = await this.runner.run(['nft', '-j', 'list', 'table', t.family, t.table]);
        if (res.code !== 0) {
          differences.push(`table ${t.family} ${t.table}: cannot be listed: ${res.stderr.trim()}`);
        } else {
          differences.push(...compareKernel(t, parseNftJson(res.stdout)).map((d) => `${t.family}: ${d}`));
        }
      }
    if (differences.length === 0) return { drifted: false, differences, repaired: false };
    await this.replace(want);
    return { drifted: true, differences, repaired: true };
  }

  /** Deletes the table (a no-op when it does not exist). */
  async remove(): Promise<void> {
    if (this.writer !== undefined) {
      await this.writer.remove();
      this.current = undefined;
      return;
    }
    const script = ownedTables(this.opts)
      .map((t) => `table ${t} {}\ndelete table ${t}\n`)
      .join('');
    const res = await this.runner.run(NFT_APPLY, script);
    if (res.code !== 0) throw new CommandError(NFT_APPLY, res.code, res.stderr);
    this.current = undefined;
  }

  private async replace(rs: Ruleset): Promise<number> {
    if (this.writer !== undefined) {
      try {
        const n = await this.writer.replace(rs);
        this.current = rs;
        return n;
      } catch (e) {
        this.current = undefined; // unknown: the next apply replaces again
        throw e;
      }
    }
    const script = renderNft(rs);
    const res = await this.runner.run(NFT_APPLY, script);
    if (res.code !== 0) {
      this.current = undefined; // unknown: the next apply replaces again
      throw new CommandError(NFT_APPLY, res.code, res.stderr);
    }
    this.current = rs;
    this.nft?.warm?.(); // the changes after a full replace go through the session
    let n = 0;
    for (const line of script.split('\n')) if (/^(table|delete|add) /.test(line)) n++;
    return n;
  }

  /**
   * After the new rules are committed: lists the conntrack table once, and deletes the entries of
   * the targets that the new ruleset would drop (conntrack.ts): by exact tuple through the
   * conntrack client when there is one, else with conntrack-tools filters. When the table cannot
   * be listed, deletes every entry of every target, as a filter per address.
   */
  private async cleanConntrack(
    targets: readonly ConntrackTarget[],
    next: Ruleset,
    coarseFallback = true,
  ): Promise<Cleaned> {
    if (targets.length === 0) return { deleted: [], errors: [] };
    let fallback: string | undefined;
    if (this.ct !== undefined) {
      const client = this.ct;
      // The listing and the node's addresses at once: neither waits for the other.
      const [listed, local] = await Promise.all([
        client.list([...new Set(targets.map((t) => t.address))]).then(
          (entries) => ({ entries }),
          (e: Error) => ({ error: e.message }),
        ),
        this.localAddresses(client),
      ]);
      if ('entries' in listed) {
        const plan = planConntrackCleanup(listed.entries, targets, next, local);
        return this.deleteExact(client, plan);
      }
      fallback = `list: ${listed.error}`;
    }
    const withFallback = (c: Cleaned): Cleaned => (fallback === undefined ? c : { ...c, fallback });
    const list = await this.runner.run(CONNTRACK_LIST);
    if (list.code === 0) {
      const local = await this.localAddresses();
      const plan = planConntrackCleanup(parseConntrackList(list.stdout), targets, next, local);
      return withFallback(await this.runDeletions(plan.deletions));
    }
    if (!coarseFallback) {
      return withFallback({
        deleted: [],
        errors: [`${CONNTRACK_LIST.join(' ')}: exit ${list.code ?? 'signal'}: ${list.stderr.trim()}`],
      });
    }
    const byTarget = targets.map((t) => ({
      args: [
        '-D',
        '-f',
        parseIP(t.address)?.family === 6 ? 'ipv6' : 'ipv4',
        t.field === 'src' ? '-s' : '-r',
        t.address,
      ],
      label: `${t.field} ${t.address}`,
    }));
    return withFallback(await this.runDeletions(byTarget));
  }

  /**
   * The node's own addresses: from the client (rtnetlink, no process) when it can, else
   * `ip -j address`; undefined when they cannot be read.
   */
  private async localAddresses(client?: ConntrackClient): Promise<Set<string> | undefined> {
    if (client?.addresses !== undefined) {
      try {
        return parseAddressList(await client.addresses());
      } catch {
        // the runner below
      }
    }
    const addrs = await this.runner.run(IP_ADDRESSES);
    return addrs.code === 0 ? parseIpAddrJson(addrs.stdout) : undefined;
  }

  /**
   * Deletes exactly the listed entries the plan drops, by tuple and id: a hash lookup each, no
   * walk, and a flow opened after the listing is never matched. One label per flow key. A failed
   * request, or an entry the kernel refused for another reason than "gone", falls back to the
   * plan's conntrack-tools filters (deleting what is already gone matches nothing there).
   */
  private async deleteExact(client: ConntrackClient, plan: CtPlan): Promise<Cleaned> {
    let errnos: number[];
    try {
      errnos = await client.delete(plan.dropped);
    } catch (e) {
      return { ...(await this.runDeletions(plan.deletions)), fallback: `delete: ${(e as Error).message}` };
    }
    const refused = errnos.findIndex((n) => n !== 0 && n !== ENOENT_ERRNO);
    if (refused >= 0) {
      const why = `delete ${flowLabel(plan.dropped[refused]!)}: ${errnoText(errnos[refused]!)}`;
      return { ...(await this.runDeletions(plan.deletions)), fallback: why };
    }
    const counts = new Map<string, { deleted: number; gone: number }>();
    plan.dropped.forEach((e, i) => {
      const label = flowLabel(e);
      let c = counts.get(label);
      if (c === undefined) counts.set(label, (c = { deleted: 0, gone: 0 }));
      if (errnos[i] === 0) c.deleted++;
      else c.gone++;
    });
    const deleted: string[] = [];
    const plural = (n: number): string => `${n} flow${n === 1 ? '' : 's'}`;
    for (const [label, c] of counts) {
      if (c.deleted > 0) deleted.push(`${label} (${plural(c.deleted)})`);
      if (c.gone > 0) deleted.push(`${label} (${plural(c.gone)} already gone)`);
    }
    return { deleted: deleted.sort(), errors: [] };
  }

  /**
   * Every deletion walks the kernel's whole conntrack table (CPU time in the kernel), so they are
   * spread over one `conntrack -R` batch per core (at most CONNTRACK_PARALLEL).
   */
  private async runDeletions(dels: readonly Deletion[]) {
    const k = Math.min(dels.length, CONNTRACK_PARALLEL, Math.max(1, availableParallelism()));
    const parts: Deletion[][] = Array.from({ length: k }, () => []);
    dels.forEach((d, i) => parts[i % k]!.push(d));
    const done = await Promise.all(parts.map((p) => this.runBatch(p)));
    return { deleted: done.flatMap((d) => d.deleted).sort(), errors: done.flatMap((d) => d.errors) };
  }

  private async runBatch(dels: readonly Deletion[]): Promise<{ deleted: string[]; errors: string[] }> {
    if (dels.length > 1) {
      // One process for several: conntrack >= 1.4.6 reads commands from a file with -R (not from a
      // socket, which is what a child's stdin is), and exits 0 also when a line matched nothing.
      // On any failure, the one-by-one path below tells which deletion failed.
      const dir = await mkdtemp(join(tmpdir(), 'moat-ct-'));
      try {
        const file = join(dir, 'delete');
        await writeFile(file, dels.map((d) => `${d.args.join(' ')}\n`).join(''));
        const res = await this.runner.run(['conntrack', '-R', file]);
        if (res.code === 0) return { deleted: dels.map((d) => d.label), errors: [] };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    const deleted: string[] = [];
    const errors: string[] = [];
    for (const d of dels) {
      const argv = ['conntrack', ...d.args];
      let res = await this.runner.run(argv);
      // conntrack-tools < 1.4.8 aborts the whole deletion when one entry vanished between its dump
      // and its delete ("such conntrack doesn't exist"; fixed upstream by skipping ENOENT): run it
      // again to delete the rest.
      for (
        let tries = 1;
        tries < CONNTRACK_ENOENT_RETRIES && res.code !== 0 && ENOENT.test(res.stderr);
        tries++
      ) {
        res = await this.runner.run(argv);
      }
      // conntrack exits 1 when nothing matched ("0 flow entries have been deleted").
      if (res.code === 0 || /flow entries have been deleted/.test(res.stderr)) deleted.push(d.label);
      else errors.push(`${argv.join(' ')}: exit ${res.code ?? 'signal'}: ${res.stderr.trim()}`);
    }
    return { deleted, errors };
  }
}

interface Cleaned {
  readonly deleted: string[];
  readonly errors: string[];
  readonly fallback?: string;
}

function result(c: Cleaned): Pick<ApplyResult, 'conntrackDeleted' | 'conntrackErrors' | 'conntrackFallback'> {
  return {
    conntrackDeleted: c.deleted,
    conntrackErrors: c.errors,
    ...(c.fallback !== undefined ? { conntrackFallback: c.fallback } : {}),
  };
}

const ENOENT_ERRNO = osConstants.errno.ENOENT;

function errnoText(n: number): string {
  return Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

interface Deletion {
  /** Arguments after `conntrack`. */
  readonly args: readonly string[];
  readonly label: string;
}

// ---------------------------------------------------------------------------------------------
// Reading the kernel's table back (nft -j) in the Ruleset's own terms.

export interface KernelTable {
  readonly counters: Set<string>;
  /** Set/map name -> canonical element texts. */
  readonly sets: Map<string, Set<string>>;
  /** Chain name -> hook/priority (base chains) and number of rules. */
  readonly chains: Map<string, { hook?: string; priority?: number; rules: number }>;
}

function canonToken(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') {
    const a = parseIP(v);
    if (a) return formatAddress(a);
    return v;
  }
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.concat)) return o.concat.map(canonToken).join(' . ');
    if (o.elem !== undefined && typeof o.elem === 'object')
      return canonToken((o.elem as Record<string, unknown>).val);
    for (const verdict of ['goto', 'jump'] as const) {
      const tgt = o[verdict] as { target?: unknown } | undefined;
      if (tgt !== undefined) return `${verdict} ${String(tgt.target)}`;
    }
    if ('accept' in o) return 'accept';
    if ('drop' in o) return 'drop';
  }
  return JSON.stringify(v);
}

const PROTO_NUM: Record<string, string> = { '6': 'tcp', '17': 'udp', '132': 'sctp' };

function canonElement(v: unknown): string {
  if (Array.isArray(v) && v.length === 2) return `${canonToken(v[0])} : ${canonToken(v[1])}`;
  return canonToken(v);
}

export function parseNftJson(text: string): KernelTable {
  const out: KernelTable = { counters: new Set(), sets: new Map(), chains: new Map() };
  const doc = JSON.parse(text) as { nftables?: Record<string, Record<string, unknown>>[] };
  for (const item of doc.nftables ?? []) {
    const [kind, body] = Object.entries(item)[0] ?? [];
    if (body === undefined) continue;
    const name = String(body.name);
    if (kind === 'counter') out.counters.add(name);
    else if (kind === 'set' || kind === 'map') {
      const elems = Array.isArray(body.elem) ? (body.elem as unknown[]) : [];
      out.sets.set(name, new Set(elems.map(canonElement)));
    } else if (kind === 'chain') {
      out.chains.set(name, {
        ...(typeof body.hook === 'string' ? { hook: body.hook } : {}),
        ...(typeof body.prio === 'number' ? { priority: body.prio } : {}),
        rules: 0,
      });
    } else if (kind === 'rule') {
      const ch = out.chains.get(String(body.chain));
      if (ch) ch.rules++;
    }
  }
  return out;
}

/** Canonical element text of the model, the same way the kernel's JSON is canonicalised. */
function canonModelElement(text: string): string {
  const [key, value] = text.split(' : ');
  const k = (key ?? '')
    .split(' . ')
    .map((tok) => {
      const a = parseIP(tok);
      // Interface names are quoted in nft syntax, plain strings in its JSON.
      return a ? formatAddress(a) : (PROTO_NUM[tok] ?? tok.replace(/^"(.*)"$/, '$1'));
    })
    .join(' . ');
  return value === undefined ? k : `${k} : ${value}`;
}

/** Differences between the model and the kernel: sets and elements, chains, rule counts, counters. */
export function compareKernel(want: Ruleset, got: KernelTable): string[] {
  const diffs: string[] = [];
  const names = (xs: Iterable<string>) => [...xs].sort();
  const wantCounters = new Set(want.counters.map((c) => c.name));
  for (const c of names(wantCounters)) if (!got.counters.has(c)) diffs.push(`counter ${c}: missing`);
  for (const c of names(got.counters)) if (!wantCounters.has(c)) diffs.push(`counter ${c}: unexpected`);
  const wantSets = new Map(want.sets.map((s) => [s.name, s]));
  for (const s of want.sets) {
    const k = got.sets.get(s.name);
    if (!k) {
      diffs.push(`set ${s.name}: missing`);
      continue;
    }
    const w = new Set(s.elements.map((e) => canonModelElement(renderElement(e))));
    const missing = [...w].filter((e) => !k.has(e));
    const extra = [...k].filter((e) => !w.has(e));
    if (missing.length > 0)
      diffs.push(`set ${s.name}: ${missing.length} element(s) missing, e.g. ${missing[0]}`);
    if (extra.length > 0)
      diffs.push(`set ${s.name}: ${extra.length} unexpected element(s), e.g. ${extra[0]}`);
  }
  for (const s of names(got.sets.keys())) if (!wantSets.has(s)) diffs.push(`set ${s}: unexpected`);
  const wantChains = new Set(want.chains.map((c) => c.name));
  for (const ch of want.chains) {
    const k = got.chains.get(ch.name);
    if (!k) {
      diffs.push(`chain ${ch.name}: missing`);
      continue;
    }
    if (ch.base && (k.hook !== ch.base.hook || k.priority !== ch.base.priority)) {
      diffs.push(
        `chain ${ch.name}: hook ${k.hook ?? '-'} priority ${k.priority ?? '-'}, want ${ch.base.hook} ${ch.base.priority}`,
      );
    }
    if (k.rules !== ch.rules.length)
      diffs.push(`chain ${ch.name}: ${k.rules} rule(s), want ${ch.rules.length}`);
  }
  for (const c of names(got.chains.keys())) if (!wantChains.has(c)) diffs.push(`chain ${c}: unexpected`);
  return diffs;
}
