// Snapshot -> Ruleset. Pure and deterministic: the same snapshot and options always give the same,
// sorted Ruleset. The semantics are those of src/policy/evaluate.ts (the oracle); see
// docs/dataplane.md for the layout and the reasons behind it.
import { cidrWithin, parseCidr, type Family } from '../model/cidr.js';
import { matchesSelector } from '../model/selector.js';
import type {
  AdminPolicy,
  Labels,
  NetworkPolicy,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  Snapshot,
} from '../model/types.js';
import {
  DEFAULT_POD_INTERFACES,
  nftChain,
  type DataplaneOptions,
  type NftChain,
  type NftCounter,
  type NftElement,
  type NftLimit,
  type NftSet,
  type Ruleset,
} from './model.js';
import {
  canonicalIP,
  cidrText,
  cmp,
  comment,
  FAM,
  labelsKey,
  nportDef,
  nsLabelsOf,
  policyKey,
  PROTO,
  shortHash,
  selectorPeerDef,
  type SetDef,
} from './compile-common.js';
import {
  adminPolicyId,
  adminSelects,
  buildAdminPart,
  NP_TIER_CHAIN,
  nodeSetElements,
  type AdminPart,
  type NodeDef,
} from './compile-admin.js';
import { compareAdminPolicies } from '../policy/admin.js';
import { setDeltaHint } from './delta.js';
import {
  ACCEPT,
  DROP,
  gotoChain,
  jumpTo,
  nftRule,
  RETURN,
  rule,
  setsOf,
  type Match,
  type Rule,
} from './rule.js';
import { flowLimit, FlowLogRewriter, NODE_COUNTER, OPEN_COUNTER, SUPPRESSED_COUNTER } from './flowlog.js';

type Dir = 'ingress' | 'egress';

/** Priorities: after DNAT (prerouting, -100) and IPVS (LOCAL_IN/OUT), before SNAT (srcnat, 100). */
export const EGRESS_PRIORITY = 94; // srcnat - 6
export const INGRESS_PRIORITY = 95; // srcnat - 5
/**
 * Input hook, only with policeNodeEgress: after IPVS (LOCAL_IN at 98 and 99), which steals the
 * packets to virtual services and sends them on through LOCAL_OUT and postrouting, so what reaches
 * this chain is really delivered to the node.
 */
export const NODE_EGRESS_PRIORITY = 110;
/** Source checks: raw (-300), before conntrack (-200) and DNAT: a spoofed packet leaves no entry. */
export const GUARD_PRIORITY = -300;
/** The forward hook's guard (martians to local pods): first, before anyone's filter (0). */
export const FORWARD_GUARD_PRIORITY = -300;

interface PodAddrs {
  readonly pod: Pod;
  readonly v4: readonly string[];
  readonly v6: readonly string[];
}

function addrsOf(pod: Pod): PodAddrs {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const ip of pod.ips) {
    const c = canonicalIP(ip);
    if (!c) continue;
    (c.family === 4 ? v4 : v6).push(c.text);
  }
  return { pod, v4, v6 };
}

function famAddrs(p: PodAddrs, f: Family): readonly string[] {
  return f === 4 ? p.v4 : p.v6;
}

// ---------------------------------------------------------------------------------------------
// Sets whose contents come from scanning all pods (peer sets, named-port sets) are kept between
// compiles with a reference count per element, and updated from the pod delta: pod churn costs
// O(changed pods x sets), not O(pods). Everything else (chains, dispatch maps, local-pod sets) is
// recomputed each time from the policies and the local pods only.

interface SetState {
  readonly def: SetDef;
  /** Element key -> number of pods contributing it. */
  readonly counts: Map<string, number>;
  set: NftSet;
}

/** One policy's chain for one direction, with what it needs (cached per policy object). */
interface PolicyPart {
  readonly name: string;
  readonly body: readonly Rule[];
  readonly comment: string;
  readonly counters: readonly NftCounter[];
  readonly sets: readonly SetDef[];
}

/**
 * The elements one pod contributes to a pod-scanned set. An address another live pod shares is no
 * pod's: it is in no selector or named-port set (it may still match an ipBlock).
 */
function contribution(
  def: SetDef,
  p: PodAddrs,
  nsLabels: ReadonlyMap<string, Labels>,
  conflicts: ReadonlySet<string>,
): string[] {
  const all = famAddrs(p, def.f);
  const addrs = conflicts.size === 0 ? all : all.filter((a) => !conflicts.has(a));
  if (addrs.length === 0) return [];
  if (def.kind === 'nport') {
    const out: string[] = [];
    for (const cp of p.pod.ports) {
      if (cp.name !== def.portName) continue;
      for (const a of addrs) out.push(`${a} . ${PROTO[cp.protocol]} . ${cp.containerPort}`);
    }
    return out;
  }
  // "hostNetwork pods are matched by ipBlock only".
  if (p.pod.hostNetwork) return [];
  // "podSelector only: Pods in the same namespace as the NetworkPolicy"; "namespaceSelector:
  // namespaces for which all Pods should be allowed"; both: pods within those namespaces.
  if (def.nsSel === undefined) {
    if (p.pod.namespace !== def.policyNs) return [];
  } else if (!matchesSelector(def.nsSel, nsLabelsOf(nsLabels, p.pod.namespace))) {
    return [];
  }
  if (def.podSel !== undefined && !matchesSelector(def.podSel, p.pod.labels)) return [];
  return [...addrs];
}

function podEqual(a: Pod, b: Pod): boolean {
  if (a === b) return true;
  const same = (x: Labels, y: Labels) => {
    const kx = Object.keys(x);
    return kx.length === Object.keys(y).length && kx.every((k) => x[k] === y[k]);
  };
  return (
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.nodeName === b.nodeName &&
    a.hostNetwork === b.hostNetwork &&
    a.ips.length === b.ips.length &&
    a.ips.every((x, i) => x === b.ips[i]) &&
    a.ports.length === b.ports.length &&
    a.ports.every(
      (x, i) =>
        x.name === b.ports[i]!.name &&
        x.containerPort === b.ports[i]!.containerPort &&
        x.protocol === b.ports[i]!.protocol,
    ) &&
    same(a.labels, b.labels)
  );
}

function sameElements(a: readonly NftElement[], b: readonly NftElement[]): boolean {
  return a.length === b.length && a.every((e, i) => e.key === b[i]!.key && e.value === b[i]!.value);
}

function sameChain(a: NftChain, b: NftChain): boolean {
  return (
    a.comment === b.comment &&
    a.base?.hook === b.base?.hook &&
    a.base?.priority === b.base?.priority &&
    a.rules.length === b.rules.length &&
    a.rules.every((r, i) => r === b.rules[i])
  );
}

/**
 * Map elements sorted by key, one per key: two local pods with one address (a stale pod and its
 * successor, briefly) would otherwise make nft reject the whole transaction. The smallest value
 * wins, so the choice is deterministic.
 */
function uniqueKeys(xs: NftElement[]): NftElement[] {
  xs.sort((x, y) => cmp(x.key, y.key) || cmp(x.value ?? '', y.value ?? ''));
  return xs.filter((e, i) => i === 0 || xs[i - 1]!.key !== e.key);
}

/** Index of the first element whose key is >= key. */
function lowerBound(xs: readonly NftElement[], key: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(xs[mid]!.key, key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Per-compile builder: policy chains, signature chains and the set definitions they need. */
type AdminCache = WeakMap<AdminPolicy, { fkey: string; parts: Map<Dir, AdminPart | undefined> }>;

/** The admin policies selecting a pod, per tier and direction (indexes into Pass.admin). */
interface AdminSelection {
  readonly Admin: Record<Dir, number[]>;
  readonly Baseline: Record<Dir, number[]>;
}

class Pass {
  readonly chains = new Map<string, NftChain>();
  readonly counters = new Map<string, NftCounter>();
  readonly setDefs = new Map<string, SetDef>();
  readonly nodeDefs = new Map<string, NodeDef>();
  /** Admin-tier policies in the order they are consulted (compareAdminPolicies). */
  readonly admin: readonly AdminPolicy[];
  private readonly policiesByNs = new Map<string, number[]>();
  /**
   * Signature chain names by the index list (the per-label-set caches hand every pod of a label
   * set the same array): without it, every local pod hashed its signatures again.
   */
  private readonly sigMemo = new Map<string, Map<readonly number[], string | undefined>>();

  private memo(kind: string, idxs: readonly number[], f: () => string | undefined): string | undefined {
    let m = this.sigMemo.get(kind);
    if (m === undefined) this.sigMemo.set(kind, (m = new Map<readonly number[], string | undefined>()));
    if (m.has(idxs)) return m.get(idxs);
    const v = f();
    m.set(idxs, v);
    return v;
  }

  constructor(
    readonly snapshot: Snapshot,
    readonly families: readonly Family[],
    private readonly policyCache: WeakMap<
      NetworkPolicy,
      { fkey: string; parts: Map<Dir, PolicyPart | undefined> }
    >,
    private readonly adminCache: AdminCache,
    /** Audit mode for every policy (DataplaneOptions.audit). */
    private readonly auditAll = false,
  ) {
    snapshot.policies.forEach((p, i) => {
      let list = this.policiesByNs.get(p.namespace);
      if (!list) this.policiesByNs.set(p.namespace, (list = []));
      list.push(i);
    });
    this.admin = [...(snapshot.adminPolicies ?? [])].sort(compareAdminPolicies);
  }

  /** Admin and Baseline policies whose subject selects the pod and that have rules per direction. */
  adminFor(
    pod: Pod,
    nsLabels: ReadonlyMap<string, Labels>,
    cache: Map<string, AdminSelection>,
  ): AdminSelection {
    const key = `${pod.namespace}\u0000${labelsKey(pod.labels)}`;
    let hit = cache.get(key);
    if (!hit) {
      const sel: AdminSelection = {
        Admin: { ingress: [], egress: [] },
        Baseline: { ingress: [], egress: [] },
      };
      this.admin.forEach((p, i) => {
        if (!adminSelects(p.subject, pod, (ns) => nsLabelsOf(nsLabels, ns))) return;
        if (p.ingress.length > 0) sel[p.tier].ingress.push(i);
        if (p.egress.length > 0) sel[p.tier].egress.push(i);
      });
      cache.set(key, (hit = sel));
    }
    return hit;
  }

  /** The chain of one admin policy for one direction; undefined when it has no rules. */
  adminChain(policy: AdminPolicy, dir: Dir): string | undefined {
    const fkey = this.families.join(',');
    let cached = this.adminCache.get(policy);
    if (cached === undefined || cached.fkey !== fkey) {
      cached = { fkey, parts: new Map() };
      this.adminCache.set(policy, cached);
    }
    let part = cached.parts.get(dir);
    if (!cached.parts.has(dir)) {
      part = buildAdminPart(policy, dir, this.families, this.auditAll || policy.audit === true);
      cached.parts.set(dir, part);
    }
    if (part === undefined) return undefined;
    if (!this.chains.has(part.name)) {
      this.chains.set(part.name, nftChain(part.name, part.body, { comment: part.comment }));
      for (const c of part.counters) this.addCounter(c);
      for (const s of part.sets) if (!this.setDefs.has(s.name)) this.setDefs.set(s.name, s);
      for (const s of part.nodeSets) if (!this.nodeDefs.has(s.name)) this.nodeDefs.set(s.name, s);
    }
    return part.name;
  }

  /**
   * The chain of one admin signature (the tier's policies selecting a pod, in order): jump to each
   * policy's chain; when none decided, the Admin tier goes on to the NetworkPolicy tier (every path
   * ends in a verdict, so that a Pass, a goto from a policy chain, never falls back into it) and the
   * Baseline tier returns to the NetworkPolicy tier's chain, whose last rule is the default allow.
   */
  adminSignatureChain(idxs: readonly number[], tier: AdminPolicy['tier'], dir: Dir): string | undefined {
    return this.memo(`${tier}/${dir}`, idxs, () => this.buildAdminSignatureChain(idxs, tier, dir));
  }

  private buildAdminSignatureChain(
    idxs: readonly number[],
    tier: AdminPolicy['tier'],
    dir: Dir,
  ): string | undefined {
    const jumps: string[] = [];
    for (const i of idxs) {
      const pc = this.adminChain(this.admin[i]!, dir);
      if (pc !== undefined) jumps.push(pc);
    }
    if (jumps.length === 0) return undefined;
    const ids = idxs.map((i) => adminPolicyId(this.admin[i]!));
    const sh = shortHash(`${tier}\n${dir}\n${ids.join('\n')}`);
    const name = `${tier === 'Admin' ? 'a' : 'b'}${dir === 'ingress' ? 'in' : 'out'}_${sh}`;
    if (this.chains.has(name)) return name;
    const rules = jumps.map((c) => rule([], jumpTo(c)));
    // The Baseline chain is jumped to from the end of the NetworkPolicy tier's chain and returns to
    // it: its default allow (logged in mode `all`, and after a logged Pass) is that chain's last rule.
    if (tier === 'Admin') rules.push(rule([], gotoChain(NP_TIER_CHAIN[dir])));
    this.chains.set(
      name,
      nftChain(name, rules, { comment: comment(`${tier} tier for ${dir}: ${ids.join(', ')}`) }),
    );
    return name;
  }

  /** Policies of the pod's namespace selecting it, per direction (evaluate.ts policiesFor). */
  policiesFor(pod: Pod, cache: Map<string, { ingress: number[]; egress: number[] }>) {
    const key = `${pod.namespace}\u0000${labelsKey(pod.labels)}`;
    let hit = cache.get(key);
    if (!hit) {
      hit = { ingress: [], egress: [] };
      for (const i of this.policiesByNs.get(pod.namespace) ?? []) {
        const p = this.snapshot.policies[i]!;
        if (!matchesSelector(p.podSelector, pod.labels)) continue;
        if (p.policyTypes.includes('Ingress')) hit.ingress.push(i);
        if (p.policyTypes.includes('Egress')) hit.egress.push(i);
      }
      cache.set(key, hit);
    }
    return hit;
  }

  addCounter(c: NftCounter): void {
    if (!this.counters.has(c.name)) this.counters.set(c.name, c);
  }

  /** The chain of one policy for one direction; undefined when it has no rules. */
  policyChain(policy: NetworkPolicy, dir: Dir): string | undefined {
    const fkey = this.families.join(',');
    let cached = this.policyCache.get(policy);
    if (cached === undefined || cached.fkey !== fkey) {
      cached = { fkey, parts: new Map() };
      this.policyCache.set(policy, cached);
    }
    let part = cached.parts.get(dir);
    if (!cached.parts.has(dir)) {
      part = buildPolicyPart(policy, dir, this.families);
      cached.parts.set(dir, part);
    }
    if (part === undefined) return undefined;
    if (!this.chains.has(part.name)) {
      this.chains.set(part.name, nftChain(part.name, part.body, { comment: part.comment }));
      for (const c of part.counters) this.addCounter(c);
      for (const s of part.sets) if (!this.setDefs.has(s.name)) this.setDefs.set(s.name, s);
    }
    return part.name;
  }

  /** The isolation chain of one policy signature: jump to each policy, then count and drop. */
  signatureChain(idxs: readonly number[], dir: Dir): string {
    return this.memo(`np/${dir}`, idxs, () => this.buildSignatureChain(idxs, dir))!;
  }

  private buildSignatureChain(idxs: readonly number[], dir: Dir): string {
    const keys = idxs.map((i) => policyKey(this.snapshot.policies[i]!)).sort(cmp);
    const sh = shortHash(`${dir}\n${keys.join('\n')}`);
    const name = `${dir === 'ingress' ? 'in' : 'out'}_${sh}`;
    if (this.chains.has(name)) return name;
    const all = [...idxs].sort((a, b) =>
      cmp(policyKey(this.snapshot.policies[a]!), policyKey(this.snapshot.policies[b]!)),
    );
    // Policies in audit mode do not isolate: where an enforced policy isolates the pod, only the
    // enforced ones decide (an audited policy's allow must not open what they deny); where every
    // isolating policy is audited, they are consulted and their would-be drop accepts and logs.
    const enforced = all.filter((i) => this.snapshot.policies[i]!.audit !== true);
    const sorted = enforced.length > 0 ? enforced : all;
    const audit = this.auditAll || enforced.length === 0;
    const rules: Rule[] = [];
    for (const i of sorted) {
      const pc = this.policyChain(this.snapshot.policies[i]!, dir);
      if (pc !== undefined) rules.push(rule([], jumpTo(pc)));
    }
    const counter = `d_${sh}_${dir === 'ingress' ? 'i' : 'e'}`;
    this.addCounter({
      name: counter,
      meta: {
        kind: 'drop',
        direction: dir,
        policies: sorted.map((i) => {
          const p = this.snapshot.policies[i]!;
          return { namespace: p.namespace, name: p.name };
        }),
        ...(audit ? { audit: true as const } : {}),
      },
    });
    rules.push(rule([], audit ? ACCEPT : DROP, counter));
    this.chains.set(
      name,
      nftChain(name, rules, { comment: comment(`isolated for ${dir} by ${keys.join(', ')}`) }),
    );
    return name;
  }
}

/** A peer as matches for one family: [] matches all, null never matches. */
function peerMatch(
  policyNs: string,
  peer: Peer | undefined,
  dir: Dir,
  f: Family,
  sets: Map<string, SetDef>,
): Match[] | null {
  if (peer === undefined) return [];
  const field = dir === 'ingress' ? 'saddr' : 'daddr';
  if (peer.kind === 'selector') {
    const d = selectorPeerDef(policyNs, peer.namespaceSelector, peer.podSelector, f);
    sets.set(d.name, d);
    return [{ m: 'addr', family: f, field, set: d.name }];
  }
  const c = parseCidr(peer.ipBlock.cidr);
  if (typeof c === 'string' || c.family !== f) return null;
  const parts: Match[] = [
    c.prefix === 0 ? { m: 'family', family: f } : { m: 'cidr', family: f, field, cidr: cidrText(c) },
  ];
  const excepts = new Set<string>();
  for (const ex of peer.ipBlock.except) {
    const e = parseCidr(ex);
    if (typeof e === 'string' || e.family !== f) continue;
    if (cidrWithin(c, e)) return null; // the except covers the whole block
    excepts.add(cidrText(e));
  }
  for (const e of [...excepts].sort(cmp)) parts.push({ m: 'cidr', family: f, field, cidr: e, neg: true });
  return parts;
}

/** A port as matches: [] matches all, null never matches; family-neutral unless named. */
function portMatch(port: PolicyPort | undefined, f: Family, sets: Map<string, SetDef>): Match[] | null {
  if (port === undefined) return [];
  const proto = PROTO[port.protocol];
  if (port.port === undefined) return [{ m: 'proto', proto }];
  if (typeof port.port === 'number') {
    if (port.endPort === undefined || port.endPort === port.port)
      return [{ m: 'port', proto, from: port.port }];
    if (port.endPort < port.port) return null;
    return [{ m: 'port', proto, from: port.port, to: port.endPort }];
  }
  // The destination is the subject (ingress) or the peer (egress): always the daddr.
  const d = nportDef(port.port, f);
  sets.set(d.name, d);
  return [
    { m: 'proto', proto },
    { m: 'namedPort', family: f, set: d.name },
  ];
}

/** The chain of one policy for one direction: accept when any of its rules admits the packet. */
function buildPolicyPart(
  policy: NetworkPolicy,
  dir: Dir,
  families: readonly Family[],
): PolicyPart | undefined {
  const ph = shortHash(policyKey(policy));
  const name = `${dir === 'ingress' ? 'pi' : 'pe'}_${ph}`;
  const rules: Rule[] = [];
  const counters: NftCounter[] = [];
  const sets = new Map<string, SetDef>();
  const list: readonly PolicyRule[] = dir === 'ingress' ? policy.ingress : policy.egress;
  list.forEach((r, ri) => {
    const counter = `a_${ph}_${dir === 'ingress' ? 'i' : 'e'}${ri}`;
    const peers: readonly (Peer | undefined)[] = r.peers ?? [undefined];
    const ports: readonly (PolicyPort | undefined)[] = r.ports ?? [undefined];
    const lines: Rule[] = [];
    for (const peer of peers) {
      for (const port of ports) {
        // Family-neutral when neither side needs an address family.
        const neutral = peer === undefined && (port === undefined || typeof port.port !== 'string');
        for (const f of neutral ? [4 as Family] : families) {
          const pm = peerMatch(policy.namespace, peer, dir, f, sets);
          const qm = portMatch(port, f, sets);
          if (pm === null || qm === null) continue;
          lines.push(rule([...pm, ...qm], ACCEPT, counter));
        }
      }
    }
    if (lines.length === 0) return;
    counters.push({
      name: counter,
      meta: {
        kind: 'accept',
        direction: dir,
        policy: { namespace: policy.namespace, name: policy.name },
        rule: ri,
      },
    });
    const seen = new Set<string>();
    for (const l of lines) if (!seen.has(nftRule(l)) && seen.add(nftRule(l))) rules.push(l);
  });
  if (rules.length === 0) return undefined;
  // Only sets that survived into a rule are needed (an except covering a block drops the rule).
  const used = new Set(rules.flatMap(setsOf));
  return {
    name,
    body: rules,
    comment: comment(`NetworkPolicy ${policyKey(policy)} ${dir}`),
    counters,
    sets: [...sets.values()].filter((s) => used.has(s.name)),
  };
}

/** Pod traffic preamble: neighbour discovery, invalid packets, TCP that does not start with SYN. */
function podPreamble(dir: Dir): Rule[] {
  return [
    // ND is never "established"; without it IPv6 neighbours cannot resolve each other. Only as ND
    // is: "hop limit 255" (RFC 4861 7.1.1), which no routed packet has by postrouting (forwarding
    // decrements it), so ND-typed packets routed through the node go through policy like any other.
    rule(
      [
        { m: 'proto', proto: 'ipv6-icmp' },
        { m: 'icmpv6', types: ['133-137'] },
        { m: 'hoplimit', value: 255 },
      ],
      ACCEPT,
    ),
    rule([{ m: 'ct', states: ['invalid'] }], DROP),
    // With nf_conntrack_tcp_loose (the default) conntrack picks up a mid-stream TCP packet as a NEW
    // connection: after a cut, the server's next packet would start a reversed flow, judged by the
    // other side's egress. A new connection must begin with a SYN.
    rule([{ m: 'ct', states: ['new'] }, { m: 'tcpNotSyn' }], DROP, NOT_SYN[dir]),
  ];
}

const NOT_SYN: Record<Dir, string> = { ingress: 'not_syn_i', egress: 'not_syn_e' };
const CONFLICT: Record<Dir, string> = { ingress: 'conflict_in', egress: 'conflict_out' };

/** Counters of the guards (fixed names; the metrics read them by name). */
function guardCounters(): NftCounter[] {
  const out: NftCounter[] = [];
  for (const f of ['v4', 'v6'] as const) {
    const family = f === 'v4' ? 'ipv4' : 'ipv6';
    out.push({
      name: `spoofed_${f}`,
      meta: { kind: 'guard', guard: 'spoofed', direction: 'egress', family },
    });
    out.push({
      name: `martian_${f}`,
      meta: { kind: 'guard', guard: 'martian', direction: 'ingress', family },
    });
  }
  for (const d of ['ingress', 'egress'] as const) {
    out.push({ name: NOT_SYN[d], meta: { kind: 'guard', guard: 'not-syn', direction: d } });
    out.push({ name: `${CONFLICT[d]}`, meta: { kind: 'guard', guard: 'conflict', direction: d } });
  }
  return out;
}

/** nft string literal of an interface glob (checked by checkInterfaceGlob: no quotes in it). */
function ifaceLit(glob: string): string {
  return `"${glob.replace(/["\\]/g, '')}"`;
}

/**
 * Source checks of routed pod interfaces (one veth per pod, a route per pod address, as kindnet,
 * the ptp plugin and Calico set them up): the reverse path of the source must be the interface the
 * packet came in on (strict rpfilter, `fib saddr . iif oif missing`). That rejects another pod's
 * address, any address off the node, and the node's own addresses (a local route is not the veth)
 * in both families, whatever the node's rp_filter says. Bridged pods arrive on the bridge (iifname
 * is the bridge here) and are checked per port in the bridge table.
 */
function guardRules(globs: readonly string[]): Rule[] {
  const out: Rule[] = [];
  for (const g of globs) {
    for (const f of [4, 6] as const) {
      out.push(
        rule(
          [{ m: 'family', family: f }, { m: 'iif', glob: g }, { m: 'rpfMissing' }],
          DROP,
          `spoofed_${FAM[f].sfx}`,
        ),
      );
    }
    // Pods are not routers: router advertisements and redirects from a pod are dropped.
    out.push(
      rule(
        [
          { m: 'iif', glob: g },
          { m: 'proto', proto: 'ipv6-icmp' },
          { m: 'icmpv6', types: ['nd-router-advert', 'nd-redirect'] },
        ],
        DROP,
        'spoofed_v6',
      ),
    );
  }
  return out;
}

/**
 * The bridge table: frames entering a pod port (a bridge port matching a pod interface glob) must
 * carry the port's own pod addresses, as the runtime's CNI result records them (snapshot
 * attachments). ARP must name them too (no ARP spoofing of another pod's address); IPv6 may also
 * come from link-local or unspecified sources, but only as neighbour discovery and MLD are. Nothing
 * else (other ether types, VLAN tags) leaves a pod port. A port without a binding passes nothing:
 * fail-closed until its attachment is known.
 */
function bridgeRuleset(
  table: string,
  globs: readonly string[],
  attachments: Snapshot['attachments'],
  prev: Ruleset | undefined,
): Ruleset {
  const binds: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  const macs = new Set<string>();
  const macPorts = new Set<string>();
  for (const a of attachments ?? []) {
    if (a.mac !== undefined && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(a.mac)) {
      for (const i of a.interfaces) {
        if (!/^[^"\\\s]{1,15}$/.test(i)) continue;
        macPorts.add(ifaceLit(i));
        macs.add(`${ifaceLit(i)} . ${a.mac}`);
      }
    }
    for (const ip of a.ips) {
      const c = canonicalIP(ip);
      if (!c) continue;
      for (const i of a.interfaces) {
        if (/^[^"\\\s]{1,15}$/.test(i)) binds[c.family].add(`${ifaceLit(i)} . ${c.text}`);
      }
    }
  }
  const sets: NftSet[] = [
    {
      name: 'bind_mac',
      type: 'ifname . ether_addr',
      flags: [],
      elements: [...macs].sort(cmp).map((key) => ({ key })),
      comment: 'pod port . pod MAC, from the CNI result',
    },
    ...([4, 6] as const).map((f) => ({
      name: `bind_${FAM[f].sfx}`,
      type: `ifname . ${FAM[f].addr}`,
      flags: [],
      elements: [...binds[f]].sort(cmp).map((key) => ({ key })),
      comment: 'pod port . pod address, from the CNI result',
    })),
    {
      name: 'mac_ports',
      type: 'ifname',
      flags: [],
      elements: [...macPorts].sort(cmp).map((key) => ({ key })),
      comment: 'pod ports whose pod MAC the CNI result records',
    },
  ];
  const counters: NftCounter[] = (['arp', 'mac', 'other', 'v4', 'v6'] as const).map((f) => ({
    name: `spoofed_${f}`,
    meta: {
      kind: 'guard',
      guard: 'spoofed',
      direction: 'egress',
      family: f === 'v4' ? 'ipv4' : f === 'v6' ? 'ipv6' : f === 'mac' ? 'ether' : f,
    },
  }));
  const ip: Match = { m: 'etherType', type: 'ip' };
  const arp: Match = { m: 'etherType', type: 'arp' };
  const ip6: Match = { m: 'etherType', type: 'ip6' };
  const v6src = (cidr: string): Match => ({ m: 'cidr', family: 6, field: 'saddr', cidr });
  const icmp6 = (...types: string[]): Match => ({ m: 'icmpv6', types });
  const hop = (value: number): Match => ({ m: 'hoplimit', value });
  const port: Rule[] = [
    // The pod's own MAC only (where known): another pod's would teach the bridge to send that
    // pod's frames here (forwarding database poisoning).
    rule(
      [
        { m: 'iifIn', set: 'mac_ports' },
        { m: 'bind', what: 'mac', set: 'bind_mac', neg: true },
      ],
      DROP,
      'spoofed_mac',
    ),
    rule([ip, { m: 'bind', what: 'v4', set: 'bind_v4' }], RETURN),
    rule([ip], DROP, 'spoofed_v4'),
    // ARP from the pod's own address, or an ARP probe (RFC 5227: sender 0.0.0.0).
    rule([arp, { m: 'bind', what: 'arp', set: 'bind_v4' }], RETURN),
    rule([arp, { m: 'arpSender', ip: '0.0.0.0' }], RETURN),
    rule([arp], DROP, 'spoofed_arp'),
    rule([ip6, icmp6('nd-router-advert', 'nd-redirect')], DROP, 'spoofed_v6'),
    rule([ip6, { m: 'bind', what: 'v6', set: 'bind_v6' }], RETURN),
    rule(
      [
        ip6,
        v6src('fe80::/10'),
        icmp6('nd-router-solicit', 'nd-neighbor-solicit', 'nd-neighbor-advert'),
        hop(255),
      ],
      RETURN,
    ),
    rule([ip6, v6src('::'), icmp6('nd-neighbor-solicit'), hop(255)], RETURN),
    rule(
      [
        ip6,
        v6src('fe80::/10'),
        icmp6('mld-listener-report', 'mld-listener-done', 'mld2-listener-report'),
        hop(1),
      ],
      RETURN,
    ),
    rule([ip6, v6src('::'), icmp6('mld-listener-report', 'mld2-listener-report'), hop(1)], RETURN),
    rule([ip6], DROP, 'spoofed_v6'),
    rule([], DROP, 'spoofed_other'),
  ];
  const chains: NftChain[] = [
    nftChain(
      'guard',
      globs.map((g) => rule([{ m: 'iif', glob: g }], jumpTo('pod_port'))),
      { base: { hook: 'prerouting', priority: GUARD_PRIORITY }, comment: 'frames from pod ports' },
    ),
    nftChain('pod_port', port, { comment: 'a pod port sends its own addresses only' }),
  ];
  const out: Ruleset = { family: 'bridge', table, counters, sets, chains };
  // Unchanged parts stay the same objects, so diffs skip them.
  if (prev === undefined) return out;
  const keepSets = out.sets.map((s, i) => {
    const o = prev.sets[i];
    return o !== undefined && o.name === s.name && sameElements(o.elements, s.elements) ? o : s;
  });
  const keepChains = out.chains.map((c, i) => {
    const o = prev.chains[i];
    return o !== undefined && o.name === c.name && sameChain(o, c) ? o : c;
  });
  return { ...out, counters: prev.counters, sets: keepSets, chains: keepChains };
}

/** Conntrack fast path: "accept" only ends this base chain, so it has no effect on other traffic. */
const FAST_PATH: Rule = rule([{ m: 'ct', states: ['established', 'related'] }], ACCEPT);

/**
 * Snapshot -> Ruleset, keeping what it needs between calls so that the next compile only pays for
 * what changed. The output is exactly `compile(snapshot, opts)` (a property test checks it); sets
 * that changed carry a delta hint (delta.ts) against the previous output.
 */
export class IncrementalCompiler {
  private readonly addrCache = new WeakMap<Pod, PodAddrs>();
  private readonly adminCache: AdminCache = new WeakMap();
  private readonly policyCache = new WeakMap<
    NetworkPolicy,
    { fkey: string; parts: Map<Dir, PolicyPart | undefined> }
  >();
  private store = new Map<string, SetState>();
  private prevPods: Set<Pod> | undefined;
  private v6Pods = 0;
  private prevNs = new Map<string, Labels>();
  private prevFamilies = '';
  private prevSets = new Map<string, NftSet>();
  private prevChains = new Map<string, NftChain>();
  private prevBridge: Ruleset | undefined;
  /** Live non-hostNetwork pods per canonical address, and the addresses more than one claims. */
  private owners = new Map<string, number>();
  private conflicts: ReadonlySet<string> = new Set();

  private readonly flowLog: FlowLogRewriter | undefined;

  constructor(readonly opts: DataplaneOptions) {
    this.flowLog =
      opts.flowLog !== undefined && opts.flowLog.mode !== 'off'
        ? new FlowLogRewriter(opts.flowLog)
        : undefined;
  }

  /** Addresses more than one live pod claims, as of the last compile. */
  get conflictSet(): ReadonlySet<string> {
    return this.conflicts;
  }

  private addrs(p: Pod): PodAddrs {
    let a = this.addrCache.get(p);
    if (a === undefined) this.addrCache.set(p, (a = addrsOf(p)));
    return a;
  }

  /** Forgets everything: the next compile starts from scratch. */
  reset(): void {
    this.store = new Map();
    this.prevPods = undefined;
    this.prevNs = new Map();
    this.prevFamilies = '';
    this.prevSets = new Map();
    this.prevChains = new Map();
    this.prevBridge = undefined;
    this.owners = new Map();
    this.conflicts = new Set();
  }

  /** Counts the addresses of pods (+1 or -1 each); returns the addresses whose count crossed 1/2. */
  private own(pods: readonly PodAddrs[], delta: 1 | -1, touched: Set<string>): void {
    for (const p of pods) {
      if (p.pod.hostNetwork) continue;
      for (const a of new Set([...p.v4, ...p.v6])) {
        const n = (this.owners.get(a) ?? 0) + delta;
        if (n > 0) this.owners.set(a, n);
        else this.owners.delete(a);
        touched.add(a);
      }
    }
  }

  compile(snapshot: Snapshot): Ruleset {
    const opts = this.opts;
    const police = opts.policeNodeEgress === true;
    const nsLabels = new Map<string, Labels>();
    for (const n of snapshot.namespaces) nsLabels.set(n.name, n.labels);

    // The pod delta against the previous compile, by object identity first (a watch cache keeps
    // unchanged objects), then by content for the rest; too large a delta is cheaper as a rescan.
    const cur = new Set(snapshot.pods);
    let removed: PodAddrs[] = [];
    let added: PodAddrs[] = [];
    // The same object twice would be counted twice by a rescan but once by the delta.
    let full = this.prevPods === undefined || cur.size !== snapshot.pods.length;
    if (!full) {
      const prev = this.prevPods!;
      const addCand = snapshot.pods.filter((p) => !prev.has(p));
      const delCand = [...prev].filter((p) => !cur.has(p));
      if (addCand.length + delCand.length > Math.max(64, cur.size / 8)) {
        // Mostly new objects: pair them by content.
        const byKey = new Map<string, Pod[]>();
        for (const p of delCand) {
          const k = `${p.namespace}/${p.name}`;
          const l = byKey.get(k);
          if (l) l.push(p);
          else byKey.set(k, [p]);
        }
        const keptOld = new Set<Pod>();
        const addReal: Pod[] = [];
        for (const q of addCand) {
          const l = byKey.get(`${q.namespace}/${q.name}`);
          const i = l === undefined ? -1 : l.findIndex((p) => !keptOld.has(p) && podEqual(p, q));
          if (i >= 0) keptOld.add(l![i]!);
          else addReal.push(q);
        }
        added = addReal.map((p) => this.addrs(p));
        removed = delCand.filter((p) => !keptOld.has(p)).map((p) => this.addrs(p));
      } else {
        added = addCand.map((p) => this.addrs(p));
        removed = delCand.map((p) => this.addrs(p));
      }
      if (removed.length + added.length > Math.max(64, cur.size / 8)) full = true;
    }
    // IPv6 rules and sets only exist when the cluster has IPv6 addresses: a v4-only cluster pays
    // nothing for them (the first IPv6 address is a structural change: a full replace).
    if (full) {
      this.v6Pods = 0;
      for (const p of snapshot.pods) if (this.addrs(p).v6.length > 0) this.v6Pods++;
    } else {
      for (const p of removed) if (p.v6.length > 0) this.v6Pods--;
      for (const p of added) if (p.v6.length > 0) this.v6Pods++;
    }
    const hasV6 =
      this.v6Pods > 0 || snapshot.nodes.some((n) => n.addresses.some((a) => canonicalIP(a)?.family === 6));
    const families: Family[] = hasV6 ? [4, 6] : [4];
    if (families.join(',') !== this.prevFamilies) full = true;
    // Addresses two live pods share: a change of that set changes which pods' addresses belong in
    // the pod-scanned sets, also for pods that did not change: rescan.
    let conflicts: Set<string>;
    if (full || removed.length + added.length > 0) {
      const touched = new Set<string>();
      if (full) {
        this.owners = new Map();
        this.own(
          snapshot.pods.map((p) => this.addrs(p)),
          1,
          touched,
        );
        conflicts = new Set([...this.owners].filter(([, n]) => n > 1).map(([a]) => a));
      } else {
        this.own(removed, -1, touched);
        this.own(added, 1, touched);
        conflicts = new Set(this.conflicts);
        for (const a of touched) {
          if ((this.owners.get(a) ?? 0) > 1) conflicts.add(a);
          else conflicts.delete(a);
        }
      }
    } else {
      conflicts = new Set(this.conflicts);
    }
    if (conflicts.size !== this.conflicts.size || [...conflicts].some((a) => !this.conflicts.has(a))) {
      full = true;
    }
    this.conflicts = conflicts;
    if (full) {
      this.store = new Map();
      removed = [];
      added = [];
    }
    let allPods: PodAddrs[] | undefined;
    const pods = () => (allPods ??= snapshot.pods.map((p) => this.addrs(p)));
    // Non-hostNetwork pods by namespace: a peer set only scans the namespaces it can match.
    let peerPods: Map<string, PodAddrs[]> | undefined;
    const podsFor = (def: SetDef): readonly PodAddrs[] => {
      if (def.kind === 'nport') return pods();
      if (peerPods === undefined) {
        peerPods = new Map();
        for (const p of pods()) {
          if (p.pod.hostNetwork) continue;
          const l = peerPods.get(p.pod.namespace);
          if (l) l.push(p);
          else peerPods.set(p.pod.namespace, [p]);
        }
      }
      if (def.nsSel === undefined) return peerPods.get(def.policyNs) ?? [];
      const out: PodAddrs[] = [];
      for (const [ns, l] of peerPods) {
        if (matchesSelector(def.nsSel, nsLabelsOf(nsLabels, ns))) out.push(...l);
      }
      return out;
    };
    let nsChanged = nsLabels.size !== this.prevNs.size;
    for (const [k, l] of nsLabels) {
      if (nsChanged) break;
      const o = this.prevNs.get(k);
      nsChanged = o === undefined || labelsKey(o) !== labelsKey(l);
    }

    // Structure: local pods -> signatures -> policy chains -> the sets they need.
    const pass = new Pass(snapshot, families, this.policyCache, this.adminCache, opts.audit === true);
    const cache = new Map<string, { ingress: number[]; egress: number[] }>();
    const adminSel = new Map<string, AdminSelection>();
    // With admin policies, the pod chains dispatch three times: Admin tier, NetworkPolicy tier
    // (ingress_np/egress_np, where an admin Pass goes on), Baseline tier.
    const tiered = pass.admin.length > 0;
    const vmaps: Record<Dir, Record<Family, NftElement[]>> = {
      ingress: { 4: [], 6: [] },
      egress: { 4: [], 6: [] },
    };
    const adminMaps: Record<'Admin' | 'Baseline', Record<Dir, Record<Family, NftElement[]>>> = {
      Admin: { ingress: { 4: [], 6: [] }, egress: { 4: [], 6: [] } },
      Baseline: { ingress: { 4: [], 6: [] }, egress: { 4: [], 6: [] } },
    };
    const selfPairs: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
    const local: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
    let anyConflict = false;

    for (const pod of snapshot.pods) {
      // "hostNetwork pods are not selected by NetworkPolicy"; subjects are this node's pods.
      if (pod.hostNetwork || !(opts.nodeName === undefined || pod.nodeName === opts.nodeName)) continue;
      const pa = this.addrs(pod);
      if (pa.v4.length + pa.v6.length === 0) continue;
      const pol = pass.policiesFor(pod, cache);
      const sig: Record<Dir, string | undefined> = {
        ingress: pol.ingress.length > 0 ? pass.signatureChain(pol.ingress, 'ingress') : undefined,
        egress: pol.egress.length > 0 ? pass.signatureChain(pol.egress, 'egress') : undefined,
      };
      const tierSig: Record<'Admin' | 'Baseline', Record<Dir, string | undefined>> = {
        Admin: { ingress: undefined, egress: undefined },
        Baseline: { ingress: undefined, egress: undefined },
      };
      if (tiered) {
        const a = pass.adminFor(pod, nsLabels, adminSel);
        for (const t of ['Admin', 'Baseline'] as const) {
          for (const d of ['ingress', 'egress'] as const) {
            if (a[t][d].length > 0) tierSig[t][d] = pass.adminSignatureChain(a[t][d], t, d);
          }
        }
      }
      for (const f of families) {
        for (const a of famAddrs(pa, f)) {
          local[f].add(a);
          selfPairs[f].add(`${a} . ${a}`);
          // A shared address is nobody's: fail-closed both ways, whichever pod it is.
          const shared = conflicts.has(a);
          if (shared) anyConflict = true;
          for (const d of ['ingress', 'egress'] as const) {
            const chain = shared ? CONFLICT[d] : sig[d];
            if (chain !== undefined) vmaps[d][f].push({ key: a, value: `goto ${chain}` });
            if (!tiered) continue;
            // The address check comes first in every tier: a shared address meets no policy.
            const ac = shared ? CONFLICT[d] : tierSig.Admin[d];
            if (ac !== undefined) adminMaps.Admin[d][f].push({ key: a, value: `goto ${ac}` });
            const bc = shared ? undefined : tierSig.Baseline[d];
            if (bc !== undefined) adminMaps.Baseline[d][f].push({ key: a, value: `jump ${bc}` });
          }
        }
      }
    }

    const sets = new Map<string, NftSet>();
    /** Reuses the previous object when equal, else attaches a delta hint against it. */
    const emit = (s: NftSet): NftSet => {
      const old = this.prevSets.get(s.name);
      const keep =
        old !== undefined &&
        (old === s ||
          (old.type === s.type &&
            old.valueType === s.valueType &&
            old.comment === s.comment &&
            sameElements(old.elements, s.elements)));
      const chosen = keep ? old : s;
      sets.set(s.name, chosen);
      return chosen;
    };

    const ingress: Rule[] = [FAST_PATH];
    const egress: Rule[] = [FAST_PATH];
    const ingressPods: Rule[] = podPreamble('ingress');
    const egressPods: Rule[] = podPreamble('egress');
    const nodeEgress: Rule[] = [FAST_PATH];
    const forwardGuard: Rule[] = [];
    for (const c of guardCounters()) pass.addCounter(c);
    if (anyConflict) {
      for (const d of ['ingress', 'egress'] as const) {
        pass.chains.set(
          CONFLICT[d],
          nftChain(CONFLICT[d], [rule([], DROP, CONFLICT[d])], {
            comment: comment(`${d} of an address two live pods share: fail-closed`),
          }),
        );
      }
    }
    for (const f of families) {
      const { addr, sfx } = FAM[f];
      const sort = (s: Set<string>) => [...s].sort(cmp).map((key) => ({ key }));
      emit({
        name: `local_${sfx}`,
        type: addr,
        flags: [],
        elements: sort(local[f]),
        comment: 'addresses of local pods: moat touches no other traffic',
      });
      emit({
        name: `self_${sfx}`,
        type: `${addr} . ${addr}`,
        flags: [],
        elements: sort(selfPairs[f]),
        comment: 'pod address . pod address: a pod reaching itself',
      });
      for (const d of ['ingress', 'egress'] as const) {
        emit({
          name: `${d}_${sfx}`,
          type: addr,
          valueType: 'verdict',
          flags: [],
          elements: uniqueKeys(vmaps[d][f]),
          comment: `pod address -> ${d} isolation chain`,
        });
        if (!tiered) continue;
        for (const t of ['Admin', 'Baseline'] as const) {
          emit({
            name: `${d}_${t.toLowerCase()}_${sfx}`,
            type: addr,
            valueType: 'verdict',
            flags: [],
            elements: uniqueKeys(adminMaps[t][d][f]),
            comment: `pod address -> ${d} ${t}-tier chain`,
          });
        }
      }
      // Only traffic from (egress) or to (ingress) a local pod enters moat's chains.
      const localSet = `local_${sfx}`;
      egress.push(rule([{ m: 'addr', family: f, field: 'saddr', set: localSet }], gotoChain('egress_pods')));
      ingress.push(
        rule([{ m: 'addr', family: f, field: 'daddr', set: localSet }], gotoChain('ingress_pods')),
      );
      // "A pod reaching itself is always allowed" (hairpin through a service).
      ingressPods.push(rule([{ m: 'pair', family: f, first: 'daddr', set: `self_${sfx}` }], ACCEPT));
      egressPods.push(rule([{ m: 'pair', family: f, first: 'saddr', set: `self_${sfx}` }], ACCEPT));
      // A forwarded packet to a local pod never comes from one of the node's own addresses (IPv4
      // drops such martians itself, IPv6 does not): the node check below must not be fooled.
      forwardGuard.push(
        rule(
          [{ m: 'addr', family: f, field: 'daddr', set: localSet }, { m: 'srcLocal' }],
          DROP,
          `martian_${sfx}`,
        ),
      );
      // Pod -> own node is delivered locally (input), never through postrouting; with policing on,
      // the input chain judges it by the pod's egress policies (the source check keeps pod sources
      // honest, so a local pod's address is that pod).
      if (police)
        nodeEgress.push(
          rule([{ m: 'addr', family: f, field: 'saddr', set: localSet }], gotoChain('egress_pods')),
        );
    }
    // "Traffic to and from the node where a Pod is running is always allowed": whatever the node
    // sends from any of its own addresses (InternalIP, the bridge's or the veth's address, a
    // link-local one, NodeLocal DNSCache's 169.254.20.10), and only those: not a list of Node
    // addresses, where an ExternalIP (not on the node) would pass as the node.
    const logAll = opts.flowLog?.mode === 'all';
    if (logAll) {
      pass.addCounter({
        name: NODE_COUNTER,
        meta: { kind: 'accept', direction: 'ingress', open: 'own-node' },
      });
      for (const d of ['ingress', 'egress'] as const) {
        pass.addCounter({
          name: OPEN_COUNTER[d],
          meta: { kind: 'accept', direction: d, open: 'not-isolated' },
        });
      }
    }
    const openAccept = (d: Dir) => rule([], ACCEPT, logAll ? OPEN_COUNTER[d] : undefined);
    ingressPods.push(rule([{ m: 'srcLocal' }], ACCEPT, logAll ? NODE_COUNTER : undefined));
    const dispatch = (f: Family, d: Dir, map: string): Rule =>
      rule([], { a: 'dispatch', family: f, field: d === 'ingress' ? 'daddr' : 'saddr', map });
    if (!tiered) {
      for (const f of families) {
        ingressPods.push(dispatch(f, 'ingress', `ingress_${FAM[f].sfx}`));
        egressPods.push(dispatch(f, 'egress', `egress_${FAM[f].sfx}`));
      }
      if (logAll) {
        ingressPods.push(openAccept('ingress'));
        egressPods.push(openAccept('egress'));
      }
    } else {
      // "Policy tiers are evaluated in the following order: Admin tier, NetworkPolicy tier,
      // Baseline tier". Every chain below ends in a verdict: an admin Pass is a goto to the
      // NetworkPolicy tier's chain, and nothing may fall back into the Admin tier after it.
      for (const d of ['ingress', 'egress'] as const) {
        const pods = d === 'ingress' ? ingressPods : egressPods;
        const np: Rule[] = [];
        for (const f of families) {
          pods.push(dispatch(f, d, `${d}_admin_${FAM[f].sfx}`));
          np.push(dispatch(f, d, `${d}_${FAM[f].sfx}`));
        }
        pods.push(rule([], gotoChain(NP_TIER_CHAIN[d])));
        for (const f of families) np.push(dispatch(f, d, `${d}_baseline_${FAM[f].sfx}`));
        np.push(openAccept(d));
        pass.chains.set(
          NP_TIER_CHAIN[d],
          nftChain(NP_TIER_CHAIN[d], np, { comment: `${d}: NetworkPolicy tier, then Baseline tier` }),
        );
      }
    }

    // Pod-scanned sets: kept and updated from the pod delta, or rescanned.
    const nextStore = new Map<string, SetState>();
    for (const def of [...pass.setDefs.values()].sort((a, b) => cmp(a.name, b.name))) {
      const st = this.store.get(def.name);
      const nsDependent = def.kind === 'peer' && def.nsSel !== undefined;
      if (st !== undefined && !(nsDependent && nsChanged)) {
        this.update(st, removed, added, nsLabels);
        nextStore.set(def.name, st);
      } else {
        nextStore.set(def.name, this.scan(def, podsFor(def), nsLabels));
      }
      const st2 = nextStore.get(def.name)!;
      st2.set = emit(st2.set);
    }
    this.store = nextStore;
    // Node sets: the selected nodes' addresses, and their hostNetwork pods' (few; rebuilt each time).
    if (pass.nodeDefs.size > 0) {
      const hostPods = snapshot.pods.filter((p) => p.hostNetwork);
      for (const def of [...pass.nodeDefs.values()].sort((a, b) => cmp(a.name, b.name))) {
        emit({
          name: def.name,
          type: FAM[def.f].addr,
          flags: [],
          elements: nodeSetElements(def, snapshot, hostPods).map((key) => ({ key })),
          comment: def.comment,
        });
      }
    }

    const globs = opts.podInterfaces ?? DEFAULT_POD_INTERFACES;
    const base: NftChain[] = [];
    if (globs.length > 0) {
      base.push(
        nftChain('guard', guardRules(globs), {
          base: { hook: 'prerouting', priority: GUARD_PRIORITY },
          comment: 'packets from routed pod interfaces carry their pod address',
        }),
      );
    }
    base.push(
      nftChain('forward_guard', forwardGuard, {
        base: { hook: 'forward', priority: FORWARD_GUARD_PRIORITY },
        comment: 'no forwarded packet to a local pod comes from the node itself',
      }),
      nftChain('egress', egress, {
        base: { hook: 'postrouting', priority: EGRESS_PRIORITY },
        comment: 'egress of local pods',
      }),
      nftChain('ingress', ingress, {
        base: { hook: 'postrouting', priority: INGRESS_PRIORITY },
        comment: 'ingress of local pods',
      }),
    );
    if (police) {
      base.push(
        nftChain('egress_node', nodeEgress, {
          base: { hook: 'input', priority: NODE_EGRESS_PRIORITY },
          comment: 'egress of local pods to their own node',
        }),
      );
    }
    pass.chains.set('egress_pods', nftChain('egress_pods', egressPods, { comment: 'from local pods' }));
    pass.chains.set('ingress_pods', nftChain('ingress_pods', ingressPods, { comment: 'to local pods' }));
    let regular = [...pass.chains.values()].filter((ch) => ch.rules.length > 0);
    let limits: NftLimit[] | undefined;
    if (this.flowLog !== undefined) {
      const metas = new Map([...pass.counters.values()].map((c) => [c.name, c.meta]));
      const rw = this.flowLog.rewrite([...base, ...regular], metas);
      base.splice(0, base.length, ...rw.chains.slice(0, base.length));
      regular = [...rw.chains.slice(base.length), ...rw.logChains];
      for (const c of rw.counters) pass.counters.set(c.name, c);
      if (rw.logChains.length > 0) {
        pass.counters.set(SUPPRESSED_COUNTER.name, SUPPRESSED_COUNTER);
        limits = [flowLimit(this.flowLog.opts)];
      }
    }
    regular.sort((a, b) => cmp(a.name, b.name));
    const chains = [...base, ...regular].map((ch) => {
      const old = this.prevChains.get(ch.name);
      return old !== undefined && sameChain(old, ch) ? old : ch;
    });
    // Without attachments (no CNI result cache) nobody knows which bridge port is whose: no bridge
    // table then, rather than one that passes nothing (the agent reports those pods unguarded).
    const bridge =
      globs.length > 0 && snapshot.attachments !== undefined
        ? bridgeRuleset(opts.table, globs, snapshot.attachments, this.prevBridge)
        : undefined;
    const out: Ruleset = {
      family: 'inet',
      table: opts.table,
      counters: [...pass.counters.values()].sort((a, b) => cmp(a.name, b.name)),
      ...(limits !== undefined ? { limits } : {}),
      sets: [...sets.values()].sort((a, b) => cmp(a.name, b.name)),
      chains,
      ...(bridge !== undefined ? { bridge } : {}),
    };
    this.prevBridge = bridge;
    this.prevPods = cur;
    this.prevNs = nsLabels;
    this.prevFamilies = families.join(',');
    this.prevSets = new Map(out.sets.map((s) => [s.name, s]));
    this.prevChains = new Map(chains.map((c) => [c.name, c]));
    return out;
  }

  private makeSet(def: SetDef, elements: NftElement[]): NftSet {
    return {
      name: def.name,
      type: def.kind === 'peer' ? FAM[def.f].addr : `${FAM[def.f].addr} . inet_proto . inet_service`,
      flags: [],
      elements,
      comment: def.comment,
    };
  }

  private scan(def: SetDef, pods: readonly PodAddrs[], nsLabels: ReadonlyMap<string, Labels>): SetState {
    const counts = new Map<string, number>();
    for (const p of pods) {
      for (const e of new Set(contribution(def, p, nsLabels, this.conflicts)))
        counts.set(e, (counts.get(e) ?? 0) + 1);
    }
    const elements = [...counts.keys()].sort(cmp).map((key) => ({ key }));
    return { def, counts, set: this.makeSet(def, elements) };
  }

  /** Applies the pod delta to a kept set; records the element delta as a hint. */
  private update(
    st: SetState,
    removed: readonly PodAddrs[],
    added: readonly PodAddrs[],
    nsLabels: ReadonlyMap<string, Labels>,
  ): void {
    const before = new Map<string, boolean>();
    const touch = (e: string) => {
      if (!before.has(e)) before.set(e, st.counts.has(e));
    };
    for (const p of removed) {
      // Sets that depend on namespace labels are rescanned when any changed, so the current labels
      // are also the ones the removed pod was counted with.
      for (const e of new Set(contribution(st.def, p, nsLabels, this.conflicts))) {
        touch(e);
        const n = (st.counts.get(e) ?? 0) - 1;
        if (n > 0) st.counts.set(e, n);
        else st.counts.delete(e);
      }
    }
    for (const p of added) {
      for (const e of new Set(contribution(st.def, p, nsLabels, this.conflicts))) {
        touch(e);
        st.counts.set(e, (st.counts.get(e) ?? 0) + 1);
      }
    }
    const del: string[] = [];
    const add: string[] = [];
    for (const [e, was] of before) {
      const now = st.counts.has(e);
      if (was && !now) del.push(e);
      else if (!was && now) add.push(e);
    }
    if (del.length === 0 && add.length === 0) return;
    del.sort(cmp);
    const elements = [...st.set.elements];
    for (const k of del) {
      const i = lowerBound(elements, k);
      if (elements[i]?.key === k) elements.splice(i, 1);
    }
    const addEls = add.sort(cmp).map((key) => ({ key }));
    for (const e of addEls) elements.splice(lowerBound(elements, e.key), 0, e);
    const base = st.set;
    st.set = this.makeSet(st.def, elements);
    setDeltaHint(st.set, { base, del, add: addEls });
  }
}

/** Snapshot -> Ruleset (pure: a fresh IncrementalCompiler each time). */
export function compile(snapshot: Snapshot, opts: DataplaneOptions): Ruleset {
  return new IncrementalCompiler(opts).compile(snapshot);
}
