// The Ruleset: plain data describing one nftables table. The compiler produces it, the renderer
// prints it, the applier diffs two of them. Everything is sorted so equal inputs print equally.

export type NftHook = 'postrouting' | 'input';

/** An element of a set or map; `key` and `value` are nft syntax ("10.0.0.1 . tcp . 80", "goto in_x"). */
export interface NftElement {
  readonly key: string;
  readonly value?: string;
}

export interface NftSet {
  readonly name: string;
  /** Key type, e.g. "ipv4_addr" or "ipv4_addr . inet_proto . inet_service". */
  readonly type: string;
  /** "verdict" for verdict maps; undefined for plain sets. */
  readonly valueType?: 'verdict';
  readonly flags: readonly string[];
  /** Sorted by key. */
  readonly elements: readonly NftElement[];
  readonly comment?: string;
}

export interface NftBaseHook {
  readonly hook: NftHook;
  /** Numeric priority (srcnat is 100, filter is 0). */
  readonly priority: number;
}

export interface NftChain {
  readonly name: string;
  /** Present for base chains: "type filter hook <hook> priority <n>; policy accept;". */
  readonly base?: NftBaseHook;
  /** One nft statement list per rule. */
  readonly rules: readonly string[];
  readonly comment?: string;
}

export type CounterKind = 'accept' | 'drop';

/** What a named counter counts, so metrics can label it. */
export interface CounterMeta {
  readonly kind: CounterKind;
  readonly direction: 'ingress' | 'egress';
  /** accept counters: the policy and rule index that admitted the packets. */
  readonly policy?: { readonly namespace: string; readonly name: string };
  readonly rule?: number;
  /** drop counters: the policies whose union isolates the pods dispatched to this chain. */
  readonly policies?: readonly { readonly namespace: string; readonly name: string }[];
}

export interface NftCounter {
  readonly name: string;
  readonly meta: CounterMeta;
}

export interface Ruleset {
  readonly family: 'inet';
  readonly table: string;
  /** Sorted by name. */
  readonly counters: readonly NftCounter[];
  /** Sets and verdict maps, sorted by name. */
  readonly sets: readonly NftSet[];
  /** Base chains first (in hook order), then regular chains sorted by name. */
  readonly chains: readonly NftChain[];
}

export interface DataplaneOptions {
  /** nft table name (family inet); default 'moat'. */
  readonly table: string;
  /** Only pods with spec.nodeName === nodeName are subjects; undefined: every pod is local. */
  readonly nodeName?: string;
  /** Police pod -> own-node traffic (egress) instead of always allowing it. */
  readonly policeNodeEgress?: boolean;
  /** After a change, delete the conntrack entries of flows the new rules no longer allow; default true. */
  readonly conntrackCleanup?: boolean;
}

export const DEFAULT_TABLE = 'moat';
