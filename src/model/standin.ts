// What the agent enforces for a NetworkPolicy or an admin-tier policy the API server stored but moat
// finds invalid: never an open door.
import type { Problem } from '../errors.js';
import type { AdminKind, AdminPolicy, AdminRule, AdminTier, NetworkPolicy, PolicyType } from './types.js';
import { record } from './json.js';

const ALL_PODS = { matchLabels: {}, matchExpressions: [] };

/**
 * What an invalid NetworkPolicy is enforced as. Dropping it would open a door: the pods it selects
 * would lose their isolation. Enforcing what decoded would too: a rule whose every peer failed
 * decodes as "from: []", which "matches all sources". So the policy is replaced by one with the
 * same namespace and name, no rules at all, that isolates at least the pods it was meant to, in at
 * least the directions it was meant to. Policies only add allowances, so a policy without rules
 * can never allow anything: the selected pods fail closed until the policy is fixed.
 *  - podSelector: the decoded one, or, when it was itself invalid, every pod in the namespace;
 *  - policyTypes: the decoded ones when given explicitly and valid; otherwise Ingress, plus Egress
 *    when the spec has an egress field or the policyTypes were invalid.
 */
export function denyStandIn(
  decoded: NetworkPolicy,
  rawSpec: unknown,
  problems: readonly Problem[],
): NetworkPolicy {
  const at = (prefix: string) => problems.some((p) => p.field === prefix || p.field.startsWith(`${prefix}.`));
  const specBroken = problems.some((p) => p.field === 'spec' || p.field === '');
  const podSelector = specBroken || at('spec.podSelector') ? ALL_PODS : decoded.podSelector;
  const spec = record(rawSpec);
  const explicit = Array.isArray(spec?.policyTypes) && spec.policyTypes.length > 0;
  const typesBroken = specBroken || problems.some((p) => p.field.startsWith('spec.policyTypes'));
  let policyTypes: PolicyType[];
  if (explicit && !typesBroken) policyTypes = [...decoded.policyTypes];
  else if (typesBroken || (spec?.egress !== undefined && spec.egress !== null)) {
    policyTypes = ['Ingress', 'Egress'];
  } else policyTypes = ['Ingress'];
  return {
    namespace: decoded.namespace,
    name: decoded.name,
    podSelector,
    policyTypes,
    ingress: [],
    egress: [],
    ...(decoded.origin ? { origin: decoded.origin } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The admin tiers.

/** How each kind spells the action that admits ("Allow" in the v1alpha1 kinds). */
const ACCEPT: Readonly<Record<AdminKind, string>> = {
  ClusterNetworkPolicy: 'Accept',
  AdminNetworkPolicy: 'Allow',
  BaselineAdminNetworkPolicy: 'Allow',
};

/** Every namespace, so every pod (hostNetwork pods are never subjects). */
const ALL_NAMESPACES = { kind: 'namespaces', namespaceSelector: ALL_PODS } as const;

const KNOWN_SPEC = ['spec.subject', 'spec.priority', 'spec.tier', 'spec.ingress', 'spec.egress'];

/**
 * What an invalid ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy is
 * enforced as: never wider than the stored object, whatever it meant. Within a tier, rules are
 * consulted in order and the first match decides; Deny is the narrowest outcome there is (Accept
 * admits, Pass hands over to the NetworkPolicy tier, no match goes on to later policies). So:
 *  - rules before the first broken one of a direction are kept as decoded: for the traffic they
 *    match they decide exactly as stored;
 *  - the first broken rule becomes "Deny all", which shadows itself and every later rule: whatever
 *    those decided, Deny is not wider. It is the API's own fail-closed rule for a peer an
 *    implementation cannot read: "For Deny and Pass rules ... treat the rule as a 'Deny all'
 *    rule" (an `unknown` peer, which the tiers already enforce so);
 *  - except when it is the only broken rule and its action is Accept (Allow): "For Accept rules
 *    ... treat the rule as matching no traffic". Dropping it cannot widen anything (no outcome is
 *    wider than Accept), and the rules after it are kept;
 *  - subject, priority or tier unreadable, a spec field moat does not know, or no readable spec:
 *    the policy's reach is unknown, so each direction it has rules for becomes one "Deny all":
 *      subject: every pod. Only the whole cluster is sure to hold the pods it meant; fewer would
 *        leave its Deny rules open on the others. The outage is loud (a warning, the
 *        moat_invalid_objects metric) and lasts until the object is fixed;
 *      priority: 0, before every policy it could have come after (ties go by kind and name, as
 *        the stored object's would at any priority);
 *      tier (ClusterNetworkPolicy): both, as two policies: Admin alone would miss traffic that an
 *        earlier Admin policy Passes to the NetworkPolicy tier, which a Baseline policy still sees.
 *    Kept Accept rules would be wider in each of these cases, so none is kept.
 */
export function adminStandIn(
  decoded: AdminPolicy,
  rawSpec: unknown,
  problems: readonly Problem[],
): AdminPolicy[] {
  const at = (prefix: string) => problems.some((p) => under(p.field, prefix));
  const spec = record(rawSpec);
  const specBroken = spec === undefined || problems.some((p) => p.field === 'spec' || p.field === '');
  const unknownField = problems.some(
    (p) => p.field.startsWith('spec.') && !KNOWN_SPEC.some((k) => under(p.field, k)),
  );
  const subjectBroken = specBroken || at('spec.subject');
  const priorityBroken = specBroken || at('spec.priority');
  const tierBroken = decoded.kind === 'ClusterNetworkPolicy' && (specBroken || at('spec.tier'));
  const whole = subjectBroken || priorityBroken || tierBroken || unknownField;

  const denyAll = (dir: 'ingress' | 'egress', i?: number): AdminRule => {
    const prefix = i === undefined ? `spec.${dir}` : `spec.${dir}[${i}]`;
    const name = i === undefined ? undefined : record(rawList(spec, dir)?.[i])?.name;
    const fields = problems.filter((p) => under(p.field, prefix)).map((p) => p.field);
    return {
      name: typeof name === 'string' ? name : '',
      action: 'Deny',
      peers: [{ kind: 'unknown', fields: fields.length > 0 ? fields : problems.map((p) => p.field) }],
    };
  };

  const rules = (dir: 'ingress' | 'egress'): AdminRule[] => {
    const raw = spec?.[dir];
    const present = raw !== undefined && raw !== null && !(Array.isArray(raw) && raw.length === 0);
    if (whole) return present || specBroken || unknownField ? [denyAll(dir)] : [];
    const list = rawList(spec, dir);
    if (list === undefined || problems.some((p) => p.field === `spec.${dir}`)) {
      return present ? [denyAll(dir)] : [];
    }
    const broken = list.map((_, i) => at(`spec.${dir}[${i}]`));
    const k = broken.indexOf(true);
    const got = decoded[dir];
    if (k < 0) return [...got];
    // Every rule before k had no problem, so it decoded: the first k decoded rules are they.
    const prefix = got.slice(0, k);
    // With one broken rule, the rules after it are the last `tail` decoded ones (the broken rule
    // itself may or may not have decoded: got has k + tail or k + tail + 1 rules).
    const tail = list.length - 1 - k;
    const extra = got.length - k - tail;
    const only = broken.filter(Boolean).length === 1;
    if (only && record(list[k])?.action === ACCEPT[decoded.kind] && (extra === 0 || extra === 1)) {
      return [...prefix, ...got.slice(got.length - tail)];
    }
    return [...prefix, denyAll(dir, k)];
  };

  const base = {
    kind: decoded.kind,
    name: decoded.name,
    priority: priorityBroken ? 0 : decoded.priority,
    subject: subjectBroken ? ALL_NAMESPACES : decoded.subject,
    ingress: rules('ingress'),
    egress: rules('egress'),
    ...(decoded.origin ? { origin: decoded.origin } : {}),
  };
  const tiers: AdminTier[] = tierBroken ? ['Admin', 'Baseline'] : [decoded.tier];
  return tiers.map((tier) => ({ ...base, tier }));
}

/** `field` is `prefix` or a field inside it ("spec.ingress[1]" is not inside "spec.ingress[10]"). */
function under(field: string, prefix: string): boolean {
  return field === prefix || field.startsWith(`${prefix}.`) || field.startsWith(`${prefix}[`);
}

/** A direction's rules as stored: [] when absent, undefined when not a list. */
function rawList(
  spec: Record<string, unknown> | undefined,
  dir: 'ingress' | 'egress',
): unknown[] | undefined {
  const v = spec?.[dir];
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : undefined;
}
