// `moat lint`: the traps a policy set can hold although every object is valid. Pure. Each finding
// names the object and field, says what is wrong and what to write instead. The checks so far are
// the admin tiers' (issue 10); the record format is the one `moat lint -o json` prints.
import type { AdminPolicy, Origin, Pod, Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';
import { compareAdminPolicies, subjectSelects } from '../policy/admin.js';
import { indexOf } from '../policy/match.js';

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

const RANK: Readonly<Record<Severity, number>> = { error: 0, warning: 1, info: 2 };

/** Every check over the snapshot, most severe first, then by object and field. */
export function lint(snapshot: Snapshot): Finding[] {
  const key = (f: Finding) => `${f.object.kind}/${f.object.namespace ?? ''}/${f.object.name}/${f.field}`;
  return [...priorityTies(snapshot), ...domainNames(snapshot)].sort(
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
