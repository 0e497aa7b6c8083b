// The admin tiers in nftables: one chain per admin policy and direction, jumped to in priority
// order from the chain of the pod's admin signature. Pure; see docs/dataplane.md ("Admin tiers").
import { parseCidr, type Family } from '../model/cidr.js';
import { matchesSelector, selectorKey } from '../model/selector.js';
import type {
  AdminPeer,
  AdminPolicy,
  AdminPort,
  AdminRule,
  LabelSelector,
  Pod,
  Snapshot,
} from '../model/types.js';
import type { NftCounter } from './model.js';
import {
  ACCEPT,
  DROP,
  gotoChain,
  nftRule,
  rule,
  setsOf,
  type Action,
  type Match,
  type Rule,
} from './rule.js';
import {
  canonicalIP,
  cidrText,
  cmp,
  comment,
  FAM,
  nportDef,
  PROTO,
  shortHash,
  selectorPeerDef,
  type SetDef,
} from './compile-common.js';

type Dir = 'ingress' | 'egress';

/** Where a Pass of the Admin tier continues: the NetworkPolicy tier, then the Baseline tier. */
export const NP_TIER_CHAIN: Record<Dir, string> = { ingress: 'ingress_np', egress: 'egress_np' };

/** A set of node addresses (InternalIP and ExternalIP) and of hostNetwork pods on those nodes. */
export interface NodeDef {
  readonly name: string;
  readonly selector: LabelSelector;
  readonly f: Family;
  readonly comment: string;
}

/** One admin policy's chain for one direction, with what it needs (cached per policy object). */
export interface AdminPart {
  readonly name: string;
  readonly body: readonly Rule[];
  readonly comment: string;
  readonly counters: readonly NftCounter[];
  readonly sets: readonly SetDef[];
  readonly nodeSets: readonly NodeDef[];
}

export function adminPolicyId(p: AdminPolicy): string {
  return `${p.tier}/${p.kind}/${p.name}`;
}

/**
 * Subject selection ("host-networked pods are not included"): the pod's namespace labels against
 * the namespaceSelector, and for `pods` its labels against the podSelector.
 */
export function adminSelects(
  subject: AdminPolicy['subject'],
  pod: Pod,
  nsLabels: (ns: string) => Readonly<Record<string, string>>,
): boolean {
  if (pod.hostNetwork) return false;
  if (!matchesSelector(subject.namespaceSelector, nsLabels(pod.namespace))) return false;
  return subject.kind === 'namespaces' || matchesSelector(subject.podSelector, pod.labels);
}

function nodeDef(selector: LabelSelector, f: Family): NodeDef {
  const key = `nodes=${selectorKey(selector)}`;
  return { name: `node_${shortHash(key)}_${FAM[f].sfx}`, selector, f, comment: comment(key) };
}

/** The elements of a node set: the selected nodes' addresses and their hostNetwork pods'. */
export function nodeSetElements(def: NodeDef, snapshot: Snapshot, hostPods: readonly Pod[]): string[] {
  const names = new Set<string>();
  const out = new Set<string>();
  const add = (ip: string) => {
    const c = canonicalIP(ip);
    if (c !== undefined && c.family === def.f) out.add(c.text);
  };
  for (const n of snapshot.nodes) {
    if (!matchesSelector(def.selector, n.labels)) continue;
    names.add(n.name);
    for (const a of [...n.addresses, ...(n.externalAddresses ?? [])]) add(a);
  }
  for (const p of hostPods) if (p.nodeName !== undefined && names.has(p.nodeName)) p.ips.forEach(add);
  return [...out].sort(cmp);
}

/** A peer as alternative match lists for one family (any one matches); [] never matches. */
function peerMatches(
  peer: AdminPeer,
  dir: Dir,
  f: Family,
  sets: Map<string, SetDef>,
  nodeSets: Map<string, NodeDef>,
): Match[][] {
  const field = dir === 'ingress' ? 'saddr' : 'daddr';
  switch (peer.kind) {
    case 'namespaces':
    case 'pods': {
      // The set of a NetworkPolicy peer with this namespaceSelector (and podSelector for pods):
      // non-hostNetwork pods in the selected namespaces, shared across all three APIs.
      const d = selectorPeerDef(
        '',
        peer.namespaceSelector,
        peer.kind === 'pods' ? peer.podSelector : undefined,
        f,
      );
      sets.set(d.name, d);
      return [[{ m: 'addr', family: f, field, set: d.name }]];
    }
    case 'nodes': {
      const d = nodeDef(peer.nodeSelector, f);
      nodeSets.set(d.name, d);
      return [[{ m: 'addr', family: f, field, set: d.name }]];
    }
    case 'networks': {
      // "Networks defines a way to select peers via CIDR blocks": any address, pods included.
      const out = new Map<string, Match[]>();
      for (const text of peer.networks) {
        const c = parseCidr(text);
        if (typeof c === 'string' || c.family !== f) continue;
        const m: Match =
          c.prefix === 0 ? { m: 'family', family: f } : { m: 'cidr', family: f, field, cidr: cidrText(c) };
        out.set(c.prefix === 0 ? '' : cidrText(c), [m]);
      }
      return [...out.values()];
    }
    case 'domainNames':
      // Not enforced (docs/dataplane.md): an Accept on a domain name admits nothing.
      return [];
    case 'unknown':
      return []; // handled by the rule (fail closed)
  }
}

/** A port as matches; [] matches every port and protocol. */
function portMatch(port: AdminPort | undefined, f: Family, sets: Map<string, SetDef>): Match[] {
  if (port === undefined) return [];
  switch (port.kind) {
    case 'number':
      return [{ m: 'port', proto: PROTO[port.protocol], from: port.port }];
    case 'range':
      return [{ m: 'port', proto: PROTO[port.protocol], from: port.start, to: port.end }];
    case 'named': {
      // The destination pod's container port of that name, whatever its protocol (the set's key
      // carries the protocol); the destination is the packet's daddr on either side.
      const d = nportDef(port.name, f);
      sets.set(d.name, d);
      return [{ m: 'namedPort', family: f, set: d.name }];
    }
  }
}

function verdictOf(r: AdminRule, policy: AdminPolicy, dir: Dir): Action {
  switch (r.action) {
    case 'Accept':
      return ACCEPT;
    case 'Deny':
      return DROP;
    case 'Pass':
      // Admin: "Pass: Skips all further ANP rules and delegates to the NetworkPolicy tier".
      // Baseline: nothing follows the Baseline tier but the default allow.
      return policy.tier === 'Admin' ? gotoChain(NP_TIER_CHAIN[dir]) : ACCEPT;
  }
}

/**
 * The chain of one admin policy for one direction: its rules in order ("a rule that appears at the
 * top ... would take the highest precedence"), each ending in its action, so the first rule that
 * matches decides. Undefined when the policy has no rules for the direction.
 */
export function buildAdminPart(
  policy: AdminPolicy,
  dir: Dir,
  families: readonly Family[],
  /** Audit mode: a Deny accepts (and the flow log says `audit`). */
  audit = false,
): AdminPart | undefined {
  const list = dir === 'ingress' ? policy.ingress : policy.egress;
  if (list.length === 0) return undefined;
  const ph = shortHash(adminPolicyId(policy));
  const name = `${dir === 'ingress' ? 'ai' : 'ae'}_${ph}`;
  const rules: Rule[] = [];
  const counters: NftCounter[] = [];
  const sets = new Map<string, SetDef>();
  const nodeSets = new Map<string, NodeDef>();
  for (let ri = 0; ri < list.length; ri++) {
    const r = list[ri]!;
    const counter = `r_${ph}_${dir === 'ingress' ? 'i' : 'e'}${ri}`;
    const meta = (action: AdminRule['action']): NftCounter => ({
      name: counter,
      meta: {
        kind: action === 'Accept' ? 'accept' : action === 'Deny' ? 'drop' : 'pass',
        direction: dir,
        ...(audit && action === 'Deny' ? { audit: true as const } : {}),
        admin: {
          kind: policy.kind,
          name: policy.name,
          tier: policy.tier,
          rule: ri,
          ruleName: r.name,
          action,
        },
      },
    });
    if (r.peers.some((p) => p.kind === 'unknown')) {
      // "For Accept rules ... treat the rule as matching no traffic. For Deny and Pass rules ...
      // treat the rule as a 'Deny all' rule": nothing after it is reachable.
      if (r.action === 'Accept') continue;
      counters.push(meta('Deny'));
      rules.push(rule([], audit ? ACCEPT : DROP, counter));
      break;
    }
    const verdict = audit && r.action === 'Deny' ? ACCEPT : verdictOf(r, policy, dir);
    const lines: Rule[] = [];
    for (const f of families) {
      for (const peer of r.peers) {
        for (const pm of peerMatches(peer, dir, f, sets, nodeSets)) {
          for (const port of r.ports ?? [undefined]) {
            lines.push(rule([...pm, ...portMatch(port, f, sets)], verdict, counter));
          }
        }
      }
    }
    if (lines.length === 0) continue;
    counters.push(meta(r.action));
    const seen = new Set<string>();
    for (const l of lines) if (!seen.has(nftRule(l)) && seen.add(nftRule(l))) rules.push(l);
  }
  if (rules.length === 0) return undefined;
  const used = new Set(rules.flatMap(setsOf));
  return {
    name,
    body: rules,
    comment: comment(`${policy.tier} tier: ${adminPolicyId(policy)} ${dir}`),
    counters,
    sets: [...sets.values()].filter((s) => used.has(s.name)),
    nodeSets: [...nodeSets.values()].filter((s) => used.has(s.name)),
  };
}
