// Flow logs in the ruleset (pure): every point of decision that the mode logs sends the first packet
// of a connection to NFLOG with a prefix naming its counter, which Ruleset.counters maps back to the
// direction, tier, policy and rule. A decision rule `... counter name X <verdict>` becomes
// `... counter name X goto fl_X`, and chain fl_X is
//
//   limit name "flowlog" log prefix "moat:<class>:X" group G <verdict>
//   counter name flowlog_suppressed <verdict>
//
// `limit` is a match, so logging cannot share the decision rule: over the node's rate the first
// rule does not match and the second one counts the record it suppressed; the verdict is the same
// either way. One named limit serves every rule (nft stateful objects are shared by reference).
import {
  nftChain,
  type NftBaseHook,
  type CounterMeta,
  type FlowLogOptions,
  type NftChain,
  type NftCounter,
  type NftLimit,
} from './model.js';
import { ACCEPT, gotoChain, rule, targetOf, type Action, type Rule } from './rule.js';

export const FLOW_LIMIT = 'flowlog';
export const FLOW_SUPPRESSED = 'flowlog_suppressed';
export const FLOW_PREFIX = 'moat';
/** Counters of the `all` mode: traffic no policy decided. */
export const OPEN_COUNTER = { ingress: 'open_i', egress: 'open_e' } as const;
/**
 * Mode `policy`: the default allow after a logged admin Pass. Every path after a logged Pass then
 * logs its decision, so a Pass the reader sees alone lost its second half to the rate limit.
 */
export const PASS_OPEN_COUNTER = { ingress: 'open_pi', egress: 'open_pe' } as const;
const NP_TIER = { ingress_np: 'ingress', egress_np: 'egress' } as const;
export const NODE_COUNTER = 'node_i';

/** A: allowed, D: denied, P: passed to the next tier, U: audit (a drop that accepted). */
export type FlowClass = 'A' | 'D' | 'P' | 'U';

export function flowClass(meta: CounterMeta): FlowClass | undefined {
  switch (meta.kind) {
    case 'accept':
      return 'A';
    case 'pass':
      return 'P';
    case 'drop':
      return meta.audit === true ? 'U' : 'D';
    case 'guard':
      return undefined;
  }
}

/** The NFLOG prefix of a decision: "moat:D:d_1a2b3c4d_i". */
export function flowPrefix(cls: FlowClass, counter: string): string {
  return `${FLOW_PREFIX}:${cls}:${counter}`;
}

/** The class and counter of a prefix flowPrefix made; undefined for any other prefix. */
export function parseFlowPrefix(prefix: string): { cls: FlowClass; counter: string } | undefined {
  const m = /^moat:([ADPU]):([A-Za-z0-9_]+)$/.exec(prefix);
  return m ? { cls: m[1] as FlowClass, counter: m[2]! } : undefined;
}

function logged(mode: FlowLogOptions['mode'], cls: FlowClass, meta: CounterMeta): boolean {
  switch (mode) {
    case 'off':
      return false;
    case 'denied':
      return cls === 'D' || cls === 'U';
    case 'policy':
      return meta.open === undefined;
    case 'all':
      return true;
  }
}

export function flowLimit(opts: FlowLogOptions): NftLimit {
  return { name: FLOW_LIMIT, rate: opts.rate, burst: opts.burst };
}

export const SUPPRESSED_COUNTER: NftCounter = {
  name: FLOW_SUPPRESSED,
  meta: { kind: 'guard', direction: 'ingress' },
};

/**
 * Rewrites the decision rules of the chains for the mode; returns the chains (an unchanged chain
 * is the same object) and the log chains they now go to. `memo` keeps rewritten rule lists per
 * original list, so an unchanged policy chain stays the same object across compiles.
 */
export class FlowLogRewriter {
  private readonly memo = new WeakMap<readonly Rule[], { body: readonly Rule[]; logs: LogRef[] }>();

  constructor(readonly opts: FlowLogOptions) {}

  rewrite(
    chains: readonly NftChain[],
    counters: ReadonlyMap<string, CounterMeta>,
  ): { chains: NftChain[]; logChains: NftChain[]; counters: NftCounter[] } {
    const out: NftChain[] = [];
    const logChains = new Map<string, NftChain>();
    const counterDefs: NftCounter[] = [];
    const logChain = (counter: string, verdict: Action, cls: FlowClass, logged = verdict) =>
      nftChain(`fl_${counter}`, [
        {
          match: [],
          log: { limit: FLOW_LIMIT, prefix: flowPrefix(cls, counter), group: this.opts.group },
          action: logged,
        },
        rule([], verdict, FLOW_SUPPRESSED),
      ]);
    for (const ch of chains) {
      let m = this.memo.get(ch.body);
      if (m === undefined) {
        m = this.rewriteRules(ch.body, counters);
        this.memo.set(ch.body, m);
      }
      out.push(m.body === ch.body ? ch : nftChain(ch.name, m.body, extraOf(ch)));
      for (const l of m.logs) {
        const name = `fl_${l.counter}`;
        if (logChains.has(name)) continue;
        // A logged Pass goes on where every decision is logged, the default allow included; one
        // that was suppressed goes on unlogged (its decision may still be logged, without the Pass).
        const np = l.action.a === 'goto' ? l.action.chain : undefined;
        const logged = this.opts.mode === 'policy' && l.cls === 'P' && np !== undefined && np in NP_TIER;
        logChains.set(
          name,
          logChain(l.counter, l.action, l.cls, logged ? gotoChain(`${np}_pass`) : l.action),
        );
      }
    }
    if (this.opts.mode === 'policy') {
      for (const [np, direction] of Object.entries(NP_TIER)) {
        const target = `${np}_pass`;
        if (![...logChains.values()].some((c) => targetOf(c.body[0]!) === target)) continue;
        const src = out.find((c) => c.name === np);
        const last = src?.body.at(-1);
        if (
          src === undefined ||
          last?.action?.a !== 'accept' ||
          last.match.length > 0 ||
          last.counter !== undefined
        )
          throw new Error(`flow log: chain ${np} does not end in accept`);
        const counter = PASS_OPEN_COUNTER[direction];
        counterDefs.push({ name: counter, meta: { kind: 'accept', direction, open: 'not-isolated' } });
        logChains.set(
          target,
          nftChain(target, [...src.body.slice(0, -1), rule([], gotoChain(`fl_${counter}`), counter)], {
            comment: `${direction}: after a logged admin Pass (its default allow is logged too)`,
          }),
        );
        logChains.set(`fl_${counter}`, logChain(counter, ACCEPT, 'A'));
      }
    }
    return { chains: out, logChains: [...logChains.values()], counters: counterDefs };
  }

  /** A decision rule (`counter name X` then accept, drop or goto) the mode logs goes to fl_X. */
  private rewriteRules(
    body: readonly Rule[],
    counters: ReadonlyMap<string, CounterMeta>,
  ): { body: readonly Rule[]; logs: LogRef[] } {
    const logs: LogRef[] = [];
    let changed = false;
    const next = body.map((r) => {
      const a = r.action;
      if (r.counter === undefined || r.log !== undefined || a === undefined) return r;
      if (a.a !== 'accept' && a.a !== 'drop' && a.a !== 'goto') return r;
      const meta = counters.get(r.counter);
      if (meta === undefined) return r;
      const cls = flowClass(meta);
      if (cls === undefined || !logged(this.opts.mode, cls, meta)) return r;
      changed = true;
      logs.push({ counter: r.counter, action: a, cls });
      return { ...r, action: gotoChain(`fl_${r.counter}`) };
    });
    return { body: changed ? next : body, logs };
  }
}

interface LogRef {
  readonly counter: string;
  readonly action: Action;
  readonly cls: FlowClass;
}

function extraOf(ch: NftChain): { comment?: string; base?: NftBaseHook } {
  return {
    ...(ch.comment !== undefined ? { comment: ch.comment } : {}),
    ...(ch.base !== undefined ? { base: ch.base } : {}),
  };
}
