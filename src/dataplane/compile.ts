// Snapshot -> Ruleset. Pure and deterministic: the same snapshot and options always give the same,
// sorted Ruleset. The semantics are those of src/policy/evaluate.ts (the oracle); see
// docs/dataplane.md for the layout and the reasons behind it.
import { createHash } from 'node:crypto';
import {
  cidrWithin,
  formatAddress,
  formatCidr,
  parseCidr,
  parseIP,
  type Cidr,
  type Family,
} from '../model/cidr.js';
import { matchesSelector, selectorKey } from '../model/selector.js';
import type {
  Labels,
  NetworkPolicy,
  Peer,
  Pod,
  PolicyPort,
  PolicyRule,
  Protocol,
  Snapshot,
} from '../model/types.js';
import type {
  CounterMeta,
  DataplaneOptions,
  NftChain,
  NftCounter,
  NftElement,
  NftSet,
  Ruleset,
} from './model.js';

type Dir = 'ingress' | 'egress';

/** Priorities: after DNAT (prerouting, -100) and IPVS (LOCAL_IN/OUT), before SNAT (srcnat, 100). */
export const EGRESS_PRIORITY = 94; // srcnat - 6
export const INGRESS_PRIORITY = 95; // srcnat - 5
export const NODE_EGRESS_PRIORITY = 0; // filter, input hook (only with policeNodeEgress)

const FAM = {
  4: { ip: 'ip', addr: 'ipv4_addr', sfx: 'v4', nfproto: 'ipv4' },
  6: { ip: 'ip6', addr: 'ipv6_addr', sfx: 'v6', nfproto: 'ipv6' },
} as const;

const PROTO: Record<Protocol, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function canonicalIP(ip: string): { family: Family; text: string } | undefined {
  const a = parseIP(ip);
  return a ? { family: a.family, text: formatAddress(a) } : undefined;
}

function labelsKey(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k] ?? ''}`)
    .join(',');
}

/** nft comments are at most 128 bytes and must not contain a double quote. */
function comment(s: string): string {
  const clean = s.replace(/["\\\n]/g, "'");
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

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

/** Builder state shared by the helpers below. */
class Compiler {
  readonly sets = new Map<string, NftSet>();
  readonly counters = new Map<string, NftCounter>();
  readonly chains = new Map<string, NftChain>();
  readonly families: Family[];
  private readonly nsLabels = new Map<string, Labels>();
  /** Non-hostNetwork pods with addresses, by namespace: the pods selector peers can match. */
  private readonly peerPods = new Map<string, PodAddrs[]>();
  private readonly allPods: PodAddrs[];
  private readonly policiesByNs = new Map<string, number[]>();

  constructor(
    readonly snapshot: Snapshot,
    readonly opts: DataplaneOptions,
  ) {
    for (const n of snapshot.namespaces) this.nsLabels.set(n.name, n.labels);
    this.allPods = snapshot.pods.map(addrsOf).filter((p) => p.v4.length + p.v6.length > 0);
    for (const p of this.allPods) {
      if (p.pod.hostNetwork) continue;
      let list = this.peerPods.get(p.pod.namespace);
      if (!list) this.peerPods.set(p.pod.namespace, (list = []));
      list.push(p);
    }
    snapshot.policies.forEach((p, i) => {
      let list = this.policiesByNs.get(p.namespace);
      if (!list) this.policiesByNs.set(p.namespace, (list = []));
      list.push(i);
    });
    // IPv6 rules and sets only exist when the cluster has IPv6 addresses: a v4-only cluster pays
    // nothing for them (the first IPv6 address is a structural change: a full replace).
    const hasV6 =
      this.allPods.some((p) => p.v6.length > 0) ||
      snapshot.nodes.some((n) => n.addresses.some((a) => canonicalIP(a)?.family === 6));
    this.families = hasV6 ? [4, 6] : [4];
  }

  namespaceLabels(ns: string): Labels {
    return this.nsLabels.get(ns) ?? { 'kubernetes.io/metadata.name': ns };
  }

  isLocal(pod: Pod): boolean {
    return this.opts.nodeName === undefined || pod.nodeName === this.opts.nodeName;
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

  addSet(s: NftSet): void {
    if (!this.sets.has(s.name)) this.sets.set(s.name, s);
  }

  addCounter(name: string, meta: CounterMeta): void {
    if (!this.counters.has(name)) this.counters.set(name, { name, meta });
  }

  /**
   * The shared set of a selector peer's pod addresses, keyed by namespace scope + selectors so every
   * policy with the same peer uses one set. Returns its name.
   */
  peerSet(policyNs: string, peer: Peer & { kind: 'selector' }, f: Family): string {
    const scope =
      peer.namespaceSelector === undefined
        ? `ns=${policyNs}`
        : `nssel=${selectorKey(peer.namespaceSelector)}`;
    const podSel = peer.podSelector === undefined ? '' : selectorKey(peer.podSelector);
    const key = `${scope}|pod=${podSel}`;
    const name = `peer_${shortHash(key)}_${FAM[f].sfx}`;
    if (this.sets.has(name)) return name;
    const elems = new Set<string>();
    // "podSelector only: Pods in the same namespace as the NetworkPolicy"; "namespaceSelector:
    // namespaces for which all Pods should be allowed"; both: pods within those namespaces.
    const namespaces =
      peer.namespaceSelector === undefined
        ? [policyNs]
        : [...this.peerPods.keys()].filter((ns) =>
            matchesSelector(peer.namespaceSelector!, this.namespaceLabels(ns)),
          );
    for (const ns of namespaces) {
      for (const p of this.peerPods.get(ns) ?? []) {
        if (peer.podSelector !== undefined && !matchesSelector(peer.podSelector, p.pod.labels)) continue;
        for (const a of famAddrs(p, f)) elems.add(a);
      }
    }
    this.addSet({
      name,
      type: FAM[f].addr,
      flags: [],
      elements: [...elems].sort(cmp).map((key) => ({ key })),
      comment: comment(key),
    });
    return name;
  }

  /** Addresses with a container port of this name: "resolved against the destination pod's container ports". */
  namedPortSet(portName: string, f: Family): string {
    const safe = /^[a-z0-9-]{1,15}$/.test(portName) ? portName : shortHash(portName);
    const name = `nport_${safe}_${FAM[f].sfx}`;
    if (this.sets.has(name)) return name;
    const elems = new Set<string>();
    for (const p of this.allPods) {
      for (const cp of p.pod.ports) {
        if (cp.name !== portName) continue;
        for (const a of famAddrs(p, f)) elems.add(`${a} . ${PROTO[cp.protocol]} . ${cp.containerPort}`);
      }
    }
    this.addSet({
      name,
      type: `${FAM[f].addr} . inet_proto . inet_service`,
      flags: [],
      elements: [...elems].sort(cmp).map((key) => ({ key })),
      comment: comment(`named port ${portName}`),
    });
    return name;
  }

  /** A peer as a match fragment for one family: '' matches all, null never matches. */
  peerMatch(policyNs: string, peer: Peer | undefined, dir: Dir, f: Family): string | null {
    if (peer === undefined) return '';
    const field = `${FAM[f].ip} ${dir === 'ingress' ? 'saddr' : 'daddr'}`;
    if (peer.kind === 'selector') return `${field} @${this.peerSet(policyNs, peer, f)}`;
    const c = parseCidr(peer.ipBlock.cidr);
    if (typeof c === 'string' || c.family !== f) return null;
    const parts = [c.prefix === 0 ? `meta nfproto ${FAM[f].nfproto}` : `${field} ${cidrText(c)}`];
    const excepts = new Set<string>();
    for (const ex of peer.ipBlock.except) {
      const e = parseCidr(ex);
      if (typeof e === 'string' || e.family !== f) continue;
      if (cidrWithin(c, e)) return null; // the except covers the whole block
      excepts.add(cidrText(e));
    }
    for (const e of [...excepts].sort(cmp)) parts.push(`${field} != ${e}`);
    return parts.join(' ');
  }

  /** A port as a match fragment: '' matches all, null never matches; family-neutral unless named. */
  portMatch(port: PolicyPort | undefined, f: Family): string | null {
    if (port === undefined) return '';
    const proto = PROTO[port.protocol];
    if (port.port === undefined) return `meta l4proto ${proto}`;
    if (typeof port.port === 'number') {
      if (port.endPort === undefined || port.endPort === port.port) return `${proto} dport ${port.port}`;
      if (port.endPort < port.port) return null;
      return `${proto} dport ${port.port}-${port.endPort}`;
    }
    // The destination is the subject (ingress) or the peer (egress): always the daddr.
    const set = this.namedPortSet(port.port, f);
    return `meta l4proto ${proto} ${FAM[f].ip} daddr . meta l4proto . th dport @${set}`;
  }

  /** The chain of one policy for one direction: accept when any of its rules admits the packet. */
  policyChain(policy: NetworkPolicy, dir: Dir): string | undefined {
    const ph = shortHash(policyKey(policy));
    const name = `${dir === 'ingress' ? 'pi' : 'pe'}_${ph}`;
    if (this.chains.has(name)) return this.chains.get(name)!.rules.length > 0 ? name : undefined;
    const rules: string[] = [];
    const list: readonly PolicyRule[] = dir === 'ingress' ? policy.ingress : policy.egress;
    list.forEach((r, ri) => {
      const counter = `a_${ph}_${dir === 'ingress' ? 'i' : 'e'}${ri}`;
      const peers: readonly (Peer | undefined)[] = r.peers ?? [undefined];
      const ports: readonly (PolicyPort | undefined)[] = r.ports ?? [undefined];
      const lines: string[] = [];
      for (const peer of peers) {
        for (const port of ports) {
          // Family-neutral when neither side needs an address family.
          const neutral = peer === undefined && (port === undefined || typeof port.port !== 'string');
          for (const f of neutral ? [4 as Family] : this.families) {
            const pm = this.peerMatch(policy.namespace, peer, dir, f);
            const qm = this.portMatch(port, f);
            if (pm === null || qm === null) continue;
            lines.push([pm, qm, `counter name ${counter}`, 'accept'].filter((s) => s !== '').join(' '));
          }
        }
      }
      if (lines.length === 0) return;
      this.addCounter(counter, {
        kind: 'accept',
        direction: dir,
        policy: { namespace: policy.namespace, name: policy.name },
        rule: ri,
      });
      const seen = new Set<string>();
      for (const l of lines) if (!seen.has(l) && seen.add(l)) rules.push(l);
    });
    this.chains.set(name, {
      name,
      rules,
      comment: comment(`NetworkPolicy ${policyKey(policy)} ${dir}`),
    });
    return rules.length > 0 ? name : undefined;
  }

  /** The isolation chain of one policy signature: jump to each policy, then count and drop. */
  signatureChain(idxs: readonly number[], dir: Dir): string {
    const keys = idxs.map((i) => policyKey(this.snapshot.policies[i]!)).sort(cmp);
    const sh = shortHash(`${dir}\n${keys.join('\n')}`);
    const name = `${dir === 'ingress' ? 'in' : 'out'}_${sh}`;
    if (this.chains.has(name)) return name;
    const sorted = [...idxs].sort((a, b) =>
      cmp(policyKey(this.snapshot.policies[a]!), policyKey(this.snapshot.policies[b]!)),
    );
    const rules: string[] = [];
    for (const i of sorted) {
      const pc = this.policyChain(this.snapshot.policies[i]!, dir);
      if (pc !== undefined) rules.push(`jump ${pc}`);
    }
    const counter = `d_${sh}_${dir === 'ingress' ? 'i' : 'e'}`;
    this.addCounter(counter, {
      kind: 'drop',
      direction: dir,
      policies: sorted.map((i) => {
        const p = this.snapshot.policies[i]!;
        return { namespace: p.namespace, name: p.name };
      }),
    });
    rules.push(`counter name ${counter} drop`);
    this.chains.set(name, { name, rules, comment: comment(`isolated for ${dir} by ${keys.join(', ')}`) });
    return name;
  }
}

function cidrText(c: Cidr): string {
  return c.prefix === (c.family === 4 ? 32 : 128)
    ? formatAddress({ family: c.family, value: c.base })
    : formatCidr(c);
}

/** The base-chain preamble: conntrack fast path and IPv6 neighbour discovery. */
function preamble(): string[] {
  return [
    'ct state established,related accept',
    // ND is never "established"; without it IPv6 neighbours cannot resolve each other.
    'meta l4proto ipv6-icmp icmpv6 type 133-137 accept',
    'ct state invalid drop',
  ];
}

export function compile(snapshot: Snapshot, opts: DataplaneOptions): Ruleset {
  const c = new Compiler(snapshot, opts);
  const police = opts.policeNodeEgress === true;
  const cache = new Map<string, { ingress: number[]; egress: number[] }>();
  const vmaps: Record<Dir, Record<Family, NftElement[]>> = {
    ingress: { 4: [], 6: [] },
    egress: { 4: [], 6: [] },
  };
  const selfPairs: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  const nodePairs: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };

  // Own-node addresses, per node: the node's addresses and its hostNetwork pods' addresses.
  const nodeAddrs = new Map<string, Record<Family, Set<string>>>();
  const nodeEntry = (n: string) => {
    let e = nodeAddrs.get(n);
    if (!e) nodeAddrs.set(n, (e = { 4: new Set(), 6: new Set() }));
    return e;
  };
  for (const n of snapshot.nodes) {
    for (const a of n.addresses) {
      const ca = canonicalIP(a);
      if (ca) nodeEntry(n.name)[ca.family].add(ca.text);
    }
  }
  for (const p of snapshot.pods) {
    if (!p.hostNetwork || p.nodeName === undefined) continue;
    for (const a of p.ips) {
      const ca = canonicalIP(a);
      if (ca) nodeEntry(p.nodeName)[ca.family].add(ca.text);
    }
  }

  for (const pod of snapshot.pods) {
    // "hostNetwork pods are not selected by NetworkPolicy"; subjects are this node's pods.
    if (pod.hostNetwork || !c.isLocal(pod)) continue;
    const pa = addrsOf(pod);
    if (pa.v4.length + pa.v6.length === 0) continue;
    const pol = c.policiesFor(pod, cache);
    const sig: Record<Dir, string | undefined> = {
      ingress: pol.ingress.length > 0 ? c.signatureChain(pol.ingress, 'ingress') : undefined,
      egress: pol.egress.length > 0 ? c.signatureChain(pol.egress, 'egress') : undefined,
    };
    for (const f of c.families) {
      const own = pod.nodeName !== undefined ? nodeAddrs.get(pod.nodeName)?.[f] : undefined;
      for (const a of famAddrs(pa, f)) {
        selfPairs[f].add(`${a} . ${a}`);
        for (const n of own ?? []) nodePairs[f].add(`${a} . ${n}`);
        for (const d of ['ingress', 'egress'] as const) {
          const chain = sig[d];
          if (chain !== undefined) vmaps[d][f].push({ key: a, value: `goto ${chain}` });
        }
      }
    }
  }

  const ingress: string[] = preamble();
  const egress: string[] = preamble();
  const nodeEgress: string[] = preamble();
  for (const f of c.families) {
    const { ip, addr, sfx } = FAM[f];
    const sort = (s: Set<string>) => [...s].sort(cmp).map((key) => ({ key }));
    c.addSet({
      name: `self_${sfx}`,
      type: `${addr} . ${addr}`,
      flags: [],
      elements: sort(selfPairs[f]),
      comment: 'pod address . pod address: a pod reaching itself',
    });
    c.addSet({
      name: `node_${sfx}`,
      type: `${addr} . ${addr}`,
      flags: [],
      elements: sort(nodePairs[f]),
      comment: 'pod address . own node address',
    });
    for (const d of ['ingress', 'egress'] as const) {
      c.addSet({
        name: `${d}_${sfx}`,
        type: addr,
        valueType: 'verdict',
        flags: [],
        elements: vmaps[d][f].sort((x, y) => cmp(x.key, y.key)),
        comment: `pod address -> ${d} isolation chain`,
      });
    }
    // "A pod reaching itself is always allowed" (hairpin through a service).
    ingress.push(`${ip} daddr . ${ip} saddr @self_${sfx} accept`);
    egress.push(`${ip} saddr . ${ip} daddr @self_${sfx} accept`);
    // "Traffic to and from the node where a Pod is running is always allowed".
    ingress.push(`${ip} daddr . ${ip} saddr @node_${sfx} accept`);
    if (!police) egress.push(`${ip} saddr . ${ip} daddr @node_${sfx} accept`);
    ingress.push(`${ip} daddr vmap @ingress_${sfx}`);
    egress.push(`${ip} saddr vmap @egress_${sfx}`);
    // Pod -> own node is delivered locally (input), never through postrouting.
    if (police) nodeEgress.push(`${ip} saddr . ${ip} daddr @node_${sfx} ${ip} saddr vmap @egress_${sfx}`);
  }

  const base: NftChain[] = [
    {
      name: 'egress',
      base: { hook: 'postrouting', priority: EGRESS_PRIORITY },
      rules: egress,
      comment: 'egress of local pods',
    },
    {
      name: 'ingress',
      base: { hook: 'postrouting', priority: INGRESS_PRIORITY },
      rules: ingress,
      comment: 'ingress of local pods',
    },
  ];
  if (police) {
    base.push({
      name: 'egress_node',
      base: { hook: 'input', priority: NODE_EGRESS_PRIORITY },
      rules: nodeEgress,
      comment: 'egress of local pods to their own node',
    });
  }
  const regular = [...c.chains.values()]
    .filter((ch) => ch.rules.length > 0)
    .sort((a, b) => cmp(a.name, b.name));
  return {
    family: 'inet',
    table: opts.table,
    counters: [...c.counters.values()].sort((a, b) => cmp(a.name, b.name)),
    sets: [...c.sets.values()].sort((a, b) => cmp(a.name, b.name)),
    chains: [...base, ...regular],
  };
}
