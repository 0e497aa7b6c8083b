// The Ruleset: plain data describing one nftables table. The compiler produces it, the renderer
// prints it, the applier diffs two of them. Everything is sorted so equal inputs print equally.

import type { AdminAction, AdminKind, AdminTier } from '../model/types.js';
import { nftRule, type Rule } from './rule.js';

export type NftHook = 'prerouting' | 'forward' | 'input' | 'postrouting';

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
  /** The rules, by meaning (rule.ts): what the simulator, the flow log and the diff read. */
  readonly body: readonly Rule[];
  /** The same rules as nft statement lists (nftRule of each): what nft loads and lists back. */
  readonly rules: readonly string[];
  readonly comment?: string;
}

/** A chain from its rules; `rules` is rendered from `body`. */
export function nftChain(
  name: string,
  body: readonly Rule[],
  extra: { readonly comment?: string; readonly base?: NftBaseHook } = {},
): NftChain {
  return {
    name,
    ...(extra.base !== undefined ? { base: extra.base } : {}),
    body,
    rules: body.map(nftRule),
    ...(extra.comment !== undefined ? { comment: extra.comment } : {}),
  };
}

export type CounterKind = 'accept' | 'drop' | 'pass' | 'guard';

/** What a named counter counts, so metrics can label it. */
export interface CounterMeta {
  readonly kind: CounterKind;
  readonly direction: 'ingress' | 'egress';
  /** accept counters: the policy and rule index that admitted the packets. */
  readonly policy?: { readonly namespace: string; readonly name: string };
  readonly rule?: number;
  /** drop counters: the policies whose union isolates the pods dispatched to this chain. */
  readonly policies?: readonly { readonly namespace: string; readonly name: string }[];
  /** guard counters: what was dropped before any policy (see GuardReason). */
  readonly guard?: GuardReason;
  /** guard counters: the address family or frame type. */
  readonly family?: 'ipv4' | 'ipv6' | 'arp' | 'ether' | 'other';
  /** Admin-tier rule counters (kind accept, drop or pass): the policy and rule that decided. */
  /** drop counters (d_ and admin Deny): audit mode, the rule accepts and logs instead. */
  readonly audit?: true;
  /** accept counters of the flow log's `all` mode: no policy decided (see FlowLogOptions). */
  readonly open?: 'not-isolated' | 'own-node';
  readonly admin?: {
    readonly kind: AdminKind;
    readonly name: string;
    readonly tier: AdminTier;
    readonly rule: number;
    readonly ruleName: string;
    readonly action: AdminAction;
  };
}

/**
 * Why a guard dropped a packet:
 * - spoofed: a packet from a pod interface without that pod's source address (routed: the route
 *   back to the source is not the interface it came in on; bridged: not the port's binding);
 * - martian: a forwarded packet to a local pod whose source is an address of this node;
 * - not-syn: a new TCP connection that does not start with a SYN (mid-stream pickup);
 * - conflict: an address that two live pods share (fail-closed).
 */
export type GuardReason = 'spoofed' | 'martian' | 'not-syn' | 'conflict';

export interface NftCounter {
  readonly name: string;
  readonly meta: CounterMeta;
}

/** A named limit object (`limit NAME { rate R/second burst B packets }`), shared by every rule using it. */
export interface NftLimit {
  readonly name: string;
  readonly rate: number;
  readonly burst: number;
}

export interface Ruleset {
  readonly family: 'inet' | 'bridge';
  readonly table: string;
  /** Sorted by name. */
  readonly counters: readonly NftCounter[];
  /** Named limits (the flow log's rate limit), sorted by name; absent when none. */
  readonly limits?: readonly NftLimit[];
  /** Sets and verdict maps, sorted by name. */
  readonly sets: readonly NftSet[];
  /** Base chains first (in hook order), then regular chains sorted by name. */
  readonly chains: readonly NftChain[];
  /**
   * The `bridge` family table of the same name, applied in the same transaction: the source check
   * of bridged pod ports (the inet hooks see the bridge, never the port a frame came in on).
   */
  readonly bridge?: Ruleset;
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
  /**
   * Host-side pod interfaces (nft iifname globs, e.g. "veth*"): every packet that enters through
   * one must carry the address of the pod behind it. Default DEFAULT_POD_INTERFACES; [] turns the
   * source check off (then a pod can send with any source address: see docs/security.md).
   */
  readonly podInterfaces?: readonly string[];
  /** Flow logs (NFLOG) at every point of decision; default off. */
  readonly flowLog?: FlowLogOptions;
  /** Audit mode for every policy: would-be drops are accepted (and logged as `audit`). */
  readonly audit?: boolean;
}

/**
 * What the ruleset logs, through NFLOG, for the first packet of each connection (what reaches a
 * point of decision is new: established packets leave at the fast path):
 * - denied: the drops a policy decided (isolation, admin and baseline Deny), audit included;
 * - policy: every verdict a policy decided (rule accepts, drops, admin/baseline Accept and Pass);
 * - all: also traffic no policy decided (pods not isolated, and the pod's own node).
 */
export type FlowLogMode = 'off' | 'denied' | 'policy' | 'all';
export const FLOW_LOG_MODES: readonly FlowLogMode[] = ['off', 'denied', 'policy', 'all'];

export interface FlowLogOptions {
  readonly mode: FlowLogMode;
  /** NFLOG group (0-65535). */
  readonly group: number;
  /** Records per second for the whole node (both directions share one limit). */
  readonly rate: number;
  /** Records allowed above the rate in a burst. */
  readonly burst: number;
}

export const DEFAULT_FLOW_LOG: FlowLogOptions = { mode: 'policy', group: 3477, rate: 1000, burst: 200 };

export const DEFAULT_POD_INTERFACES: readonly string[] = ['veth*'];

/** An interface name (IFNAMSIZ: at most 15 bytes) or a prefix glob ending in "*". */
export function checkInterfaceGlob(g: string): string | undefined {
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(g.endsWith('*') ? g.slice(0, -1) || 'x' : g) &&
    !g.slice(0, -1).includes('*')
    ? undefined
    : `"${g}" is not an interface name or a prefix glob like "veth*" (at most 15 characters)`;
}

export const DEFAULT_TABLE = 'moat';
