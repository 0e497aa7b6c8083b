// What the agent enforces for a NetworkPolicy the API server stored but moat finds invalid.
import type { Problem } from '../errors.js';
import type { NetworkPolicy, PolicyType } from './types.js';
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
