// `moat lint`: the traps a policy set can hold although every object is valid. Pure. Each finding
// names the object and field, says what is wrong and what to write instead. The checks so far are
// the admin tiers' here and the NetworkPolicy traps in lintNetpol.ts; the record format is the one
// `moat lint -o json` prints (issue 13).
import { parseCidr } from '../model/cidr.js';
import { cidrWithin } from '../model/cidr.js';
import { isEmptySelector, selectorKey } from '../model/selector.js';
import type {
  AdminPeer,
  AdminPolicy,
  AdminPort,
  AdminRule,
  LabelSelector,
  Origin,
  Pod,
  Snapshot,
} from '../model/types.js';
import { podKey } from '../model/types.js';
import { compareAdminPolicies, describeAdminPeer, subjectSelects } from '../policy/admin.js';
import { indexOf } from '../policy/match.js';
import { lintNetworkPolicies } from './lintNetpol.js';

export type Severity = 'error' | 'warning' | 'info';

export const SEVERITIES: readonly Severity[] = ['error', 'warning', 'info'];

export interface ObjectRef {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
}

export interface Finding {
  readonly check: string;
  readonly severity: Severity;
  readonly object: ObjectRef;
  readonly related: readonly ObjectRef[];
  /** Field path in the object, e.g. "spec.priority". */
  readonly field: string;
  readonly message: string;
  readonly fix: string;
  readonly origin?: Origin;
}

function ref(p: AdminPolicy): ObjectRef {
  return { kind: p.kind, name: p.name };
}

function label(p: AdminPolicy): string {
  return `${p.kind} ${p.name}`;
}

/**
 * `admin-priority-tie`: "If two (or more) policies in the same tier with the same priority could
 * match a connection, then the implementation can apply any of the matching policies to the
 * connection, and there is no way for the user to reliably determine which one it will choose".
 * moat orders them (ClusterNetworkPolicy before AdminNetworkPolicy,
 * then by name), other implementations may not. With pods in the input, only pairs whose subjects
 * share a pod are reported; without pods, every pair of the same tier and priority.
 */
function priorityTies(snapshot: Snapshot): Finding[] {
  const all = [...(snapshot.adminPolicies ?? [])].sort(compareAdminPolicies);
  const index = indexOf(snapshot);
  const subjects: Pod[] = snapshot.pods.filter((p) => !p.hostNetwork);
  const out: Finding[] = [];
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) {
      const a = all[i]!;
      const b = all[j]!;
      if (a.tier !== b.tier || a.priority !== b.priority) continue;
      let shared: Pod | undefined;
      if (snapshot.pods.length > 0) {
        shared = subjects.find(
          (p) => subjectSelects(index, a.subject, p) && subjectSelects(index, b.subject, p),
        );
        if (shared === undefined) continue;
      }
      const both = shared !== undefined ? `both select ${podKey(shared)}` : 'their subjects may overlap';
      out.push({
        check: 'admin-priority-tie',
        severity: 'warning',
        object: ref(b),
        related: [ref(a)],
        field: 'spec.priority',
        message:
          `${label(a)} and ${label(b)} have priority ${a.priority} in the ${a.tier} tier and ${both}: ` +
          `the API lets an implementation apply either first (moat applies ${label(a)} first: priority, then ` +
          `ClusterNetworkPolicy before AdminNetworkPolicy, then name), other implementations may not`,
        fix: `give ${label(b)} a priority other than ${a.priority}, e.g. ${Math.min(a.priority + 1, 1000)}`,
        ...(b.origin !== undefined ? { origin: b.origin } : {}),
      });
    }
  }
  return out;
}

/** `admin-domain-names`: domainNames peers are not enforced by moat's dataplane. */
function domainNames(snapshot: Snapshot): Finding[] {
  const out: Finding[] = [];
  for (const p of snapshot.adminPolicies ?? []) {
    p.egress.forEach((rule, r) => {
      rule.peers.forEach((peer, i) => {
        if (peer.kind !== 'domainNames') return;
        out.push({
          check: 'admin-domain-names',
          severity: rule.action === 'Accept' ? 'warning' : 'info',
          object: ref(p),
          related: [],
          field: `spec.egress[${r}].to[${i}].domainNames`,
          message:
            `${label(p)} egress rule ${r}${rule.name !== '' ? ` (${rule.name})` : ''}: domainNames ` +
            `(${peer.domainNames.join(', ')}) are not enforced by moat: ` +
            (rule.action === 'Accept'
              ? 'the rule admits no traffic to them'
              : `the ${rule.action} applies to no traffic to them`),
          fix: 'name the destinations by address with a networks peer (CIDRs)',
          ...(p.origin !== undefined ? { origin: p.origin } : {}),
        });
      });
    });
  }
  return out;
}

/** Whether every object `b` selects, `a` selects too: each of a's terms is one of b's. */
function selectorCovers(a: LabelSelector, b: LabelSelector): boolean {
  if (isEmptySelector(a)) return true;
  const terms = (s: LabelSelector) => new Set(selectorKey(s).split(','));
  const tb = terms(b);
  return [...terms(a)].every((t) => tb.has(t));
}

function cidrsCover(outer: readonly string[], inner: readonly string[]): boolean {
  return inner.every((i) => {
    const ci = parseCidr(i);
    return (
      typeof ci !== 'string' &&
      outer.some((o) => {
        const co = parseCidr(o);
        return typeof co !== 'string' && cidrWithin(ci, co);
      })
    );
  });
}

/** Whether peer `p` matches all traffic peer `q` matches (structurally; false when unsure). */
function peerCovers(p: AdminPeer, q: AdminPeer): boolean {
  switch (p.kind) {
    case 'namespaces':
      return (
        (q.kind === 'namespaces' || q.kind === 'pods') &&
        selectorCovers(p.namespaceSelector, q.namespaceSelector)
      );
    case 'pods':
      if (
        !selectorCovers(
          p.namespaceSelector,
          q.kind === 'pods' || q.kind === 'namespaces' ? q.namespaceSelector : p.namespaceSelector,
        )
      )
        return false;
      if (q.kind === 'pods') return selectorCovers(p.podSelector, q.podSelector);
      return q.kind === 'namespaces' && isEmptySelector(p.podSelector);
    case 'nodes':
      return q.kind === 'nodes' && selectorCovers(p.nodeSelector, q.nodeSelector);
    case 'networks':
      return q.kind === 'networks' && cidrsCover(p.networks, q.networks);
    // domainNames are not enforced (admin-domain-names); unknown peers fail closed per action.
    case 'domainNames':
    case 'unknown':
      return false;
  }
}

function portCovers(p: AdminPort, q: AdminPort): boolean {
  if (p.kind === 'named' || q.kind === 'named')
    return p.kind === 'named' && q.kind === 'named' && p.name === q.name;
  if (p.protocol !== q.protocol) return false;
  const [ps, pe] = p.kind === 'number' ? [p.port, p.port] : [p.start, p.end];
  const [qs, qe] = q.kind === 'number' ? [q.port, q.port] : [q.start, q.end];
  return ps <= qs && qe <= pe;
}

function ruleCovers(a: AdminRule, b: AdminRule): boolean {
  if ([...a.peers, ...b.peers].some((p) => p.kind === 'unknown')) return false;
  if (!b.peers.every((q) => a.peers.some((p) => peerCovers(p, q)))) return false;
  // "protocol-specific attributes will not be used to match traffic" when ports is unset.
  if (a.ports === undefined) return true;
  if (b.ports === undefined) return false;
  return b.ports.every((q) => a.ports!.some((p) => portCovers(p, q)));
}

/**
 * `rule-shadowed`: "a rule that appears at the top ... would take the highest precedence", so a
 * rule whose peers and ports all lie within an earlier rule's never decides anything.
 */
function shadowedRules(snapshot: Snapshot): Finding[] {
  const out: Finding[] = [];
  const name = (r: AdminRule, i: number) => `rule ${i}${r.name !== '' ? ` (${r.name})` : ''}`;
  for (const p of snapshot.adminPolicies ?? []) {
    for (const d of ['ingress', 'egress'] as const) {
      const rules = d === 'ingress' ? p.ingress : p.egress;
      rules.forEach((b, j) => {
        const i = rules.findIndex((a, k) => k < j && ruleCovers(a, b));
        if (i < 0) return;
        const a = rules[i]!;
        out.push({
          check: 'rule-shadowed',
          severity: 'warning',
          object: ref(p),
          related: [],
          field: `spec.${d}[${j}]`,
          message:
            `${label(p)} ${d} ${name(b, j)} never matches first: ${name(a, i)} comes before it and matches all ` +
            `its traffic (${a.peers.map(describeAdminPeer).join(', ')}${a.ports === undefined ? ', all ports' : ''}), so ` +
            (a.action === b.action
              ? `the rule is redundant`
              : `its ${b.action} never applies (${a.action} does)`),
          fix:
            a.action === b.action
              ? `delete ${name(b, j)}, or narrow it to traffic ${name(a, i)} does not match`
              : `move ${name(b, j)} above ${name(a, i)} if its ${b.action} must win, or delete it`,
          ...(p.origin !== undefined ? { origin: p.origin } : {}),
        });
      });
    }
  }
  return out;
}

/** Every check, by id, with its default severity and what it finds (the SARIF rules). */
export const CHECKS: Readonly<Record<string, { severity: Severity; summary: string }>> = {
  'dns-blocked': { severity: 'error', summary: 'a pod can reach no DNS server on UDP 53' },
  'dns-unrestricted': { severity: 'warning', summary: 'egress on port 53 is allowed to every destination' },
  'namespace-selector-matches-nothing': {
    severity: 'error',
    summary: 'a namespaceSelector peer matches no namespace',
  },
  'pod-selector-matches-nothing': { severity: 'warning', summary: 'a podSelector peer matches no pod' },
  'selects-nothing': { severity: 'warning', summary: "the policy's podSelector selects no pod" },
  'peer-or-maybe-and': {
    severity: 'warning',
    summary: 'a namespaceSelector-only peer next to a podSelector-only peer: OR where AND may be meant',
  },
  'service-port-not-target-port': {
    severity: 'error',
    summary: "a rule's port is a Service port whose targetPort differs, and the pods do not declare it",
  },
  'named-port-undeclared': { severity: 'error', summary: 'no destination pod declares the named port' },
  'port-protocol-defaulted': {
    severity: 'error',
    summary: 'a port without protocol (TCP) that the pods declare only for UDP or SCTP',
  },
  'hostnetwork-selected': {
    severity: 'warning',
    summary: 'the policy selects hostNetwork pods, which it does not restrict',
  },
  'hostnetwork-peer': {
    severity: 'warning',
    summary: 'a pod peer names hostNetwork pods, whose traffic it never matches',
  },
  'ipblock-includes-pods': { severity: 'info', summary: 'an ipBlock contains pod addresses' },
  'policytypes-implicit': { severity: 'info', summary: 'policyTypes is left to its default' },
  'admin-priority-tie': {
    severity: 'warning',
    summary: 'admin policies of one tier and priority share subjects: undefined order',
  },
  'admin-domain-names': { severity: 'warning', summary: 'domainNames peers are not enforced by moat' },
  'rule-shadowed': {
    severity: 'warning',
    summary: 'an earlier rule of the same admin policy always matches first',
  },
};

const RANK: Readonly<Record<Severity, number>> = { error: 0, warning: 1, info: 2 };

/** Every check over the snapshot, most severe first, then by object and field. */
export function lint(snapshot: Snapshot): Finding[] {
  const key = (f: Finding) => `${f.object.kind}/${f.object.namespace ?? ''}/${f.object.name}/${f.field}`;
  return [
    ...lintNetworkPolicies(snapshot),
    ...priorityTies(snapshot),
    ...shadowedRules(snapshot),
    ...domainNames(snapshot),
  ].sort(
    (a, b) =>
      RANK[a.severity] - RANK[b.severity] ||
      (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) ||
      (a.check < b.check ? -1 : a.check > b.check ? 1 : 0),
  );
}

/** Whether a finding is at or above the severity threshold. */
export function atLeast(f: Finding, threshold: Severity): boolean {
  return RANK[f.severity] <= RANK[threshold];
}

/** FILE:LINE: severity check: KIND NAME: FIELD: message (fix: ...). */
export function formatFinding(f: Finding): string {
  const where = f.origin !== undefined ? `${f.origin.file}:${f.origin.line}: ` : '';
  const obj = `${f.object.kind} ${f.object.namespace !== undefined ? `${f.object.namespace}/` : ''}${f.object.name}`;
  return `${where}${f.severity} ${f.check}: ${obj}: ${f.field}: ${f.message} (fix: ${f.fix})`;
}
