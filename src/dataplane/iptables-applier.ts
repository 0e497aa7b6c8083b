// The iptables + ipset backend's writer (I/O through a runner): puts a Ruleset in the kernel as
// render-iptables.ts prints it. Sets change by `ipset restore` into temporary sets and `swap`;
// chains by `iptables-restore --noflush`, which declares (so flushes and refills) moat's chains
// only, one atomic commit per table and family; each hook is one jump, inserted first, once.
// Stale chains and sets (moat's names only) are deleted after. Nothing else is touched.
import { CommandError, MoatError } from '../errors.js';
import type { Ruleset } from './model.js';
import {
  ipsetMaxElem,
  renderIpsetRestore,
  type IpsetDef,
  renderIptables,
  type HookJump,
  type IptablesOptions,
  type IptablesRuleset,
} from './render-iptables.js';
import { iptablesMode } from './probe.js';
import type { CommandRunner } from './runner.js';

/** What an applier needs from a backend that replaces the whole ruleset at each change. */
export interface RulesetWriter {
  /** Puts `rs` in the kernel; returns the number of commands (rules and set members) written. */
  replace(rs: Ruleset): Promise<number>;
  /** Differences between the kernel and `rs` ([]: none). */
  drift(rs: Ruleset): Promise<string[]>;
  /** Removes everything of moat's. */
  remove(): Promise<void>;
  /** Whether the last replace() wrote only what changed since the one before (else all). */
  readonly lastIncremental?: boolean;
  /** The kernel's packet and byte counts per named counter of the ruleset (rule.counter). */
  counters?(): Promise<Map<string, { packets: number; bytes: number }>>;
}

export interface IptablesWriterOptions extends IptablesOptions {
  /**
   * iptables binaries: 'auto' (default: the flavour the host's rules are in, as kube-proxy
   * decides), 'iptables' (the plain binaries), 'iptables-nft' or 'iptables-legacy'.
   */
  readonly flavour?: 'auto' | 'iptables' | 'iptables-nft' | 'iptables-legacy';
  /**
   * The bridge-family table (the source check of bridged pod ports) has no iptables form yet:
   * `refuse` fails rather than leave bridged pods unchecked; `ignore` is for routed pod networks
   * only, where the rpfilter guard checks every pod interface; `auto` (default) refuses when a pod
   * interface is a bridge port (`ip link show type bridge_slave`), and ignores the table otherwise.
   */
  readonly bridge?: 'refuse' | 'ignore' | 'auto';
}

export class IptablesBackendError extends MoatError {
  override readonly name = 'IptablesBackendError';
}

const FAMILIES = [4, 6] as const;

/** A set member as `ipset save` spells it: host prefixes (/32, /128) are left out. */
function canonicalMember(e: string): string {
  return e.replace(/\/(32|128)(?=,| |$)/g, '');
}

/** table -> chain -> its rules' text, from an iptables-restore input. */
type TableChains = ReadonlyMap<string, ReadonlyMap<string, string>>;

function chainsOf(text: string): TableChains {
  const out = new Map<string, Map<string, string>>();
  let table: Map<string, string> | undefined;
  for (const l of text.split('\n')) {
    if (l.startsWith('*')) out.set(l.slice(1), (table = new Map<string, string>()));
    const decl = /^:(\S+) /.exec(l);
    if (decl !== null) table?.set(decl[1]!, '');
    const rule = /^-A (\S+) /.exec(l);
    if (rule !== null) table?.set(rule[1]!, `${table.get(rule[1]!) ?? ''}${l}\n`);
  }
  return out;
}

/** An iptables-restore --noflush input of the chains that are new or whose rules changed. */
function changedChains(before: TableChains, after: TableChains): string {
  let out = '';
  for (const [table, chains] of after) {
    const changed = [...chains].filter(([c, rules]) => before.get(table)?.get(c) !== rules);
    if (changed.length === 0) continue;
    out += `*${table}\n${changed.map(([c]) => `:${c} - [0:0]\n`).join('')}`;
    out += `${changed.map(([, rules]) => rules).join('')}COMMIT\n`;
  }
  return out;
}

type Binaries = Record<4 | 6, { cmd: string; restore: string; save: string }>;

function binaries(flavour: 'iptables' | 'iptables-nft' | 'iptables-legacy'): Binaries {
  const suffix = flavour === 'iptables' ? '' : flavour.slice('iptables'.length);
  const names = (base: string) => ({
    cmd: `${base}${suffix}`,
    restore: `${base}${suffix}-restore`,
    save: `${base}${suffix}-save`,
  });
  return { 4: names('iptables'), 6: names('ip6tables') };
}

export class IptablesWriter implements RulesetWriter {
  private binCache: Binaries | undefined;
  /** The flavour in use and why (after the first call). */
  flavour: { name: string; why: string } | undefined;

  constructor(
    readonly runner: CommandRunner,
    readonly opts: IptablesWriterOptions = {},
  ) {}

  /**
   * The binaries of the flavour the host uses (`auto`: as kube-proxy's wrapper decides, the one
   * holding more rules), so moat's chains sit in the same tables as kube-proxy's. When that is the
   * flavour of the plain `iptables` binary, the plain names are used (some images have no others).
   */
  private async detect(): Promise<Binaries> {
    if (this.binCache !== undefined) return this.binCache;
    const asked = this.opts.flavour ?? 'auto';
    if (asked !== 'auto') {
      this.flavour = { name: asked, why: 'asked for' };
      return (this.binCache = binaries(asked));
    }
    const m = await iptablesMode(this.runner, async (path) => {
      const r = await this.runner.run(['cat', path]);
      return r.code === 0 ? r.stdout : undefined;
    });
    this.flavour = { name: `iptables-${m.mode}`, why: m.why };
    return (this.binCache = binaries(m.mode === m.own ? 'iptables' : `iptables-${m.mode}`));
  }

  private async b(f: 4 | 6) {
    return (await this.detect())[f];
  }

  private selfPairs: 'set' | 'rules' | undefined;

  /** hash:net,net where the kernel has it (some kernels are built without it). */
  private async pairs(): Promise<'set' | 'rules'> {
    if (this.opts.selfPairs !== undefined) return this.opts.selfPairs;
    if (this.selfPairs === undefined) {
      const probe = 'moat-probe-netnet';
      const r = await this.runner.run(['ipset', 'create', probe, 'hash:net,net', '-exist']);
      this.selfPairs = r.code === 0 ? 'set' : 'rules';
      if (r.code === 0) await this.runner.run(['ipset', 'destroy', probe]);
    }
    return this.selfPairs;
  }

  private async render(rs: Ruleset): Promise<IptablesRuleset> {
    if (
      rs.bridge !== undefined &&
      (this.opts.bridge ?? 'auto') !== 'ignore' &&
      (await this.bridged(rs.bridge))
    ) {
      throw new IptablesBackendError(
        'iptables backend: bridged pod ports need the bridge-family source check (nftables), which this backend does not have yet; use --backend nftables',
      );
    }
    return renderIptables(rs, { ...this.opts, selfPairs: await this.pairs() });
  }

  /** Whether pods sit on a bridge here: `refuse`, or a bridge port matching a pod interface glob. */
  private async bridged(bridge: Ruleset): Promise<boolean> {
    if (this.opts.bridge === 'refuse') return true;
    const globs = bridge.chains.flatMap((c) =>
      c.body.flatMap((r) => r.match.flatMap((m) => (m.m === 'iif' ? [m.glob] : []))),
    );
    const out = await this.must(['ip', '-o', 'link', 'show', 'type', 'bridge_slave']);
    const ports = [...out.matchAll(/^\d+: ([^:@\s]+)/gm)].map((m) => m[1]!);
    const re = globs.map(
      (g) => new RegExp(`^${g.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`),
    );
    return ports.some((p) => re.some((r) => r.test(p)));
  }

  private async must(argv: readonly string[], input?: string): Promise<string> {
    const r = await this.runner.run(argv, input);
    if (r.code !== 0) throw new CommandError(argv, r.code, r.stderr);
    return r.stdout;
  }

  /**
   * What the last successful replace() wrote: the next one writes only what differs (set members
   * as `add`/`del`, a family's chains only when its text changed, stale names only when the names
   * changed). Cleared on failure and when drift is found, so the next write is a full one.
   */
  private last:
    | {
        readonly sets: ReadonlyMap<string, { type: string; max: number; elements: ReadonlySet<string> }>;
        readonly chains: Record<4 | 6, TableChains>;
        readonly names: string;
      }
    | undefined;

  lastIncremental = false;

  /**
   * Sets first (the chains refer to them), then the chains per family, then removals: members
   * that left a set go after the chains and after the members that joined, so an address moving
   * between sets (a pod relabelled: one dispatch set to another) is never in none of them, which
   * would leave it unisolated for a moment. A new or retyped set is filled aside and swapped in.
   */
  async replace(rs: Ruleset): Promise<number> {
    const r = await this.render(rs);
    const last = this.last;
    this.last = undefined;
    this.lastIncremental = false;
    const full: IpsetDef[] = [];
    const adds: string[] = [];
    const dels: string[] = [];
    const sets = new Map<string, { type: string; max: number; elements: ReadonlySet<string> }>();
    for (const s of r.sets) {
      const prev = last?.sets.get(s.name);
      const elements = new Set(s.elements);
      // Flagged entries (`nomatch`) cannot be changed in place with add/del; sets of them are
      // content-named anyway, so they rarely change.
      const flagged = s.elements.some((e) => e.includes(' '));
      if (prev === undefined || prev.type !== s.type || s.elements.length >= prev.max || flagged) {
        full.push(s);
        sets.set(s.name, { type: s.type, max: ipsetMaxElem(s.elements.length), elements });
        continue;
      }
      for (const e of s.elements) if (!prev.elements.has(e)) adds.push(`add ${s.name} ${e}\n`);
      for (const e of prev.elements) if (!elements.has(e)) dels.push(`del ${s.name} ${e}\n`);
      sets.set(s.name, { ...prev, elements });
    }
    // moat's sets before this write: what the last one wrote, or after a full one the kernel's.
    const existing = last !== undefined ? new Set(last.sets.keys()) : new Set(await this.moatSets());
    const first = renderIpsetRestore(full, existing) + adds.join('');
    if (first !== '') await this.must(['ipset', 'restore'], first);
    let n = 0;
    const chains = { 4: chainsOf(r.v4), 6: chainsOf(r.v6) };
    for (const f of FAMILIES) {
      // Only the chains whose rules changed are declared (so flushed and refilled); one commit
      // per table, as before.
      const text = last === undefined ? (f === 4 ? r.v4 : r.v6) : changedChains(last.chains[f], chains[f]);
      if (text === '') continue;
      await this.must([(await this.b(f)).restore, '-w', '--noflush'], text);
      for (const l of text.split('\n')) if (l.startsWith('-A ')) n++;
      if (last === undefined)
        for (const h of r.hooks) if (!(await this.hook(f, h, '-C'))) await this.hook(f, h, '-I');
    }
    if (dels.length > 0) await this.must(['ipset', 'restore'], dels.join(''));
    const names = JSON.stringify([r.chains, r.sets.map((x) => x.name)]);
    if (last === undefined || last.names !== names) await this.deleteStale(r, last, existing);
    this.last = { sets, chains, names };
    this.lastIncremental = last !== undefined;
    for (const s of full) n += s.elements.length;
    return n + adds.length + dels.length;
  }

  /**
   * Checks (`-C`), inserts first (`-I`; a failure throws) or deletes (`-D`) the jump from a
   * built-in chain to moat's entry chain; true when the command succeeded.
   */
  private async hook(f: 4 | 6, h: HookJump, op: '-C' | '-I' | '-D'): Promise<boolean> {
    const position = op === '-I' ? ['1'] : [];
    const argv = [(await this.b(f)).cmd, '-w', '-t', h.table, op, h.builtin, ...position, '-j', h.target];
    const r = await this.runner.run(argv);
    if (op === '-I' && r.code !== 0) throw new CommandError(argv, r.code, r.stderr);
    return r.code === 0;
  }

  /** moat's ipsets, as the kernel lists them. */
  private async moatSets(): Promise<string[]> {
    return (await this.must(['ipset', 'list', '-n'])).split('\n').filter((n) => n.startsWith('moat-'));
  }

  /** Flushes all of `names` first (they may jump to each other), then deletes them: one commit. */
  private async dropChains(f: 4 | 6, table: string, names: readonly string[]): Promise<void> {
    if (names.length === 0) return;
    const script = `*${table}\n${names.map((n) => `:${n} - [0:0]\n`).join('')}${names.map((n) => `-X ${n}\n`).join('')}COMMIT\n`;
    await this.must([(await this.b(f)).restore, '-w', '--noflush'], script);
  }

  /** moat's chains per table and family as the kernel lists them, with their rule counts. */
  private async listed(f: 4 | 6): Promise<Map<string, { table: string; rules: number }>> {
    const out = new Map<string, { table: string; rules: number }>();
    for (const table of ['raw', 'mangle']) {
      const text = await this.must([(await this.b(f)).save, '-t', table]);
      for (const line of text.split('\n')) {
        const decl = /^:(MOAT-\S+) /.exec(line);
        if (decl !== null) out.set(decl[1]!, { table, rules: 0 });
        const rule = /^-A (MOAT-\S+) /.exec(line);
        if (rule !== null) {
          const c = out.get(rule[1]!);
          if (c !== undefined) c.rules++;
        }
      }
    }
    return out;
  }

  /** Sets a destroy found still referenced (by a rule of someone else): tried again next time. */
  private undestroyed = new Set<string>();

  /**
   * Deletes moat's chains and sets that `r` no longer has: those the last write had (or, after a
   * full write, the chains the kernel lists), and the sets there were before this write.
   */
  private async deleteStale(
    r: IptablesRuleset,
    last: IptablesWriter['last'],
    previousSets: ReadonlySet<string>,
  ): Promise<void> {
    const want = new Set([...r.chains.raw, ...r.chains.mangle]);
    for (const f of FAMILIES) {
      const had: [string, string][] =
        last === undefined
          ? [...(await this.listed(f))].map(([name, c]) => [name, c.table])
          : [...last.chains[f]].flatMap(([table, chains]) =>
              [...chains.keys()].map((n): [string, string] => [n, table]),
            );
      const stale = had.filter(([name]) => !want.has(name));
      for (const table of ['raw', 'mangle'])
        await this.dropChains(
          f,
          table,
          stale.filter(([, t]) => t === table).map(([n]) => n),
        );
    }
    const wantSets = new Set(r.sets.map((s) => s.name));
    const names = new Set([...previousSets, ...this.undestroyed]);
    this.undestroyed = new Set();
    for (const n of names) {
      if (wantSets.has(n)) continue;
      const d = await this.runner.run(['ipset', 'destroy', n]);
      // A set something else still references stays; the next change tries again.
      if (d.code !== 0 && /in use|is referenced/i.test(d.stderr)) this.undestroyed.add(n);
      else if (d.code !== 0 && !/does not exist/i.test(d.stderr))
        throw new CommandError(['ipset', 'destroy', n], d.code, d.stderr);
    }
  }

  async drift(rs: Ruleset): Promise<string[]> {
    const r = await this.render(rs);
    const diffs = await this.compare(r);
    if (diffs.length > 0) this.last = undefined;
    return diffs;
  }

  private async compare(r: IptablesRuleset): Promise<string[]> {
    const diffs: string[] = [];
    for (const f of FAMILIES) {
      const have = await this.listed(f);
      const want = new Map<string, number>();
      for (const chains of chainsOf(f === 4 ? r.v4 : r.v6).values())
        for (const [name, rules] of chains) want.set(name, rules.split('\n').length - 1);
      for (const name of [...r.chains.raw, ...r.chains.mangle]) {
        const h = have.get(name);
        const w = want.get(name) ?? 0;
        if (h === undefined) diffs.push(`ipv${f}: chain ${name} is missing`);
        else if (h.rules !== w) diffs.push(`ipv${f}: chain ${name}: ${h.rules} rule(s), want ${w}`);
      }
      for (const h of r.hooks)
        if (!(await this.hook(f, h, '-C')))
          diffs.push(`ipv${f}: ${h.table} ${h.builtin} does not jump to ${h.target}`);
    }
    // Members, exactly (`ipset save`, moat's sets only), in ipset's own spelling.
    const members = new Map<string, Set<string>>();
    for (const l of (await this.must(['ipset', 'save'])).split('\n')) {
      const c = /^create (moat-\S+) /.exec(l);
      if (c !== null) members.set(c[1]!, new Set());
      const a = /^add (moat-\S+) (.+)$/.exec(l);
      if (a !== null) members.get(a[1]!)?.add(canonicalMember(a[2]!));
    }
    for (const s of r.sets) {
      const have = members.get(s.name);
      if (have === undefined) {
        diffs.push(`ipset ${s.name} is missing`);
        continue;
      }
      const want = new Set(s.elements.map(canonicalMember));
      const missing = [...want].filter((e) => !have.has(e));
      const extra = [...have].filter((e) => !want.has(e));
      if (missing.length > 0 || extra.length > 0)
        diffs.push(
          `ipset ${s.name}: ${missing.length} member(s) missing (${missing.slice(0, 3).join(', ')}), ${extra.length} unexpected (${extra.slice(0, 3).join(', ')})`,
        );
    }
    return diffs;
  }

  /**
   * Sums `iptables-save -c` over moat's rules by their `moat:NAME` comment, both families and
   * tables: the named counters of the nft backend, so the agent's metrics read the same names.
   */
  async counters(): Promise<Map<string, { packets: number; bytes: number }>> {
    const out = new Map<string, { packets: number; bytes: number }>();
    for (const f of FAMILIES) {
      for (const table of ['raw', 'mangle']) {
        const text = await this.must([(await this.b(f)).save, '-c', '-t', table]);
        for (const m of text.matchAll(/^\[(\d+):(\d+)\] -A MOAT-\S+ .*--comment "?moat:([^\s"]+)/gm)) {
          const c = out.get(m[3]!) ?? { packets: 0, bytes: 0 };
          c.packets += Number(m[1]);
          c.bytes += Number(m[2]);
          out.set(m[3]!, c);
        }
      }
    }
    return out;
  }

  async remove(): Promise<void> {
    this.last = undefined;
    for (const f of FAMILIES) {
      const have = await this.listed(f);
      for (const table of ['raw', 'mangle'] as const) {
        for (const builtin of ['PREROUTING', 'FORWARD', 'INPUT', 'POSTROUTING'] as const) {
          const target = `MOAT-${builtin}`;
          if (!have.has(target) || have.get(target)!.table !== table) continue;
          while (await this.hook(f, { table, builtin, target }, '-D'));
        }
        await this.dropChains(
          f,
          table,
          [...have].filter(([, c]) => c.table === table).map(([n]) => n),
        );
      }
    }
    for (const n of await this.moatSets()) await this.runner.run(['ipset', 'destroy', n]);
  }
}
