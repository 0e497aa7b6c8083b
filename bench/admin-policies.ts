// Admin-tier policies for the benches' generated clusters (any generator's): a deterministic, realistic
// mix of ClusterNetworkPolicies (Admin and Baseline), AdminNetworkPolicies and the
// BaselineAdminNetworkPolicy `default`, with subjects by namespace labels and by pod labels and
// priorities spread over 0..1000. Off unless asked for: withAdminPolicies(snap, 0) is snap itself, so
// every existing figure stays reproducible.
//
// To give the policies something to select, namespaces and nodes get labels of keys no
// NetworkPolicy of the generators reads (`tenant`, `role`, `node-role`, `zone`): `plain` is that
// labelled cluster without admin policies, the side-by-side baseline; it compiles and evaluates as
// the unlabelled one does.
import {
  adminRule,
  aport,
  cnp,
  networksPeer,
  nodesPeer,
  nsSubject,
  podSubject,
  sel,
} from '../src/model/build.js';
import type { AdminPolicy, AdminPort, Labels, Snapshot } from '../src/model/types.js';
import { Rng } from '../test/support/rng.js';

export interface AdminCluster {
  /** The labelled cluster without admin policies. */
  readonly plain: Snapshot;
  /** The same cluster with `count` admin policies. */
  readonly admin: Snapshot;
  /** How many of each shape (for the reports). */
  readonly mix: Readonly<Record<string, number>>;
}

const KUBE_SYSTEM = 'kube-system';

/** Labels of one pod-label pair, "key=value". */
function pair(kv: string): Labels {
  const i = kv.indexOf('=');
  return { [kv.slice(0, i)]: kv.slice(i + 1) };
}

export function adminCluster(snap: Snapshot, count: number, seed = 42): AdminCluster {
  const rng = new Rng(seed);
  // Tenants: groups of about 10 namespaces (at least 2 tenants); the last namespace other than
  // kube-system is the monitoring namespace (the first, ns-0, holds the pods the benches change).
  const user = snap.namespaces.map((n) => n.name).filter((n) => n !== KUBE_SYSTEM);
  const monitoring = user[user.length - 1];
  const tenantNs = user.slice(0, -1);
  const numTenants = Math.max(2, Math.min(10, Math.round(tenantNs.length / 10)));
  const tenantOf = new Map(tenantNs.map((n, i) => [n, `tenant-${i % numTenants}`]));
  const namespaces = snap.namespaces.map((n) => {
    const t = tenantOf.get(n.name);
    const extra: Labels = n.name === monitoring ? { role: 'monitoring' } : t ? { tenant: t } : {};
    return { ...n, labels: { ...n.labels, ...extra } };
  });
  const nodes = snap.nodes.map((n, i) => ({
    ...n,
    labels: {
      ...n.labels,
      'kubernetes.io/hostname': n.name,
      'node-role': i % 10 === 0 ? 'infra' : 'worker',
      zone: `z${i % 3}`,
    },
  }));
  const plain: Snapshot = { ...snap, namespaces, nodes };
  if (count <= 0) return { plain, admin: plain, mix: {} };

  // Pod labels and container port names the policies can name (hostNetwork pods are never subjects).
  // Cluster admins select by coarse labels (a tier, a role, a system app), not one app among many:
  // only keys with at most 10 values.
  const values = new Map<string, Set<string>>();
  const portNames = new Set<string>();
  for (const p of snap.pods) {
    if (p.hostNetwork) continue;
    for (const [k, v] of Object.entries(p.labels)) {
      let vs = values.get(k);
      if (vs === undefined) values.set(k, (vs = new Set()));
      vs.add(v);
    }
    for (const cp of p.ports) if (cp.name !== undefined) portNames.add(cp.name);
  }
  const pairs = [...values]
    .filter(([, vs]) => vs.size <= 10)
    .flatMap(([k, vs]) => [...vs].map((v) => `${k}=${v}`))
    .sort();
  const names = [...portNames].sort();
  const podLabels = (): Labels => (pairs.length > 0 ? pair(rng.pick(pairs)) : {});
  const named = (): AdminPort[] => (names.length > 0 ? [{ kind: 'named', name: rng.pick(names) }] : []);
  const tenant = (k: number) => sel({ tenant: `tenant-${k % numTenants}` });
  const monitoringNs = sel({ role: 'monitoring' });
  const allNs = sel();

  const out: AdminPolicy[] = [];
  const mix: Record<string, number> = {};
  const push = (shape: string, p: AdminPolicy) => {
    out.push(p);
    mix[shape] = (mix[shape] ?? 0) + 1;
  };
  for (let k = 0; k < count; k++) {
    const priority = rng.range(0, 1000);
    const t = tenant(k);
    if (k === count - 1 && count >= 2) {
      // The singleton BaselineAdminNetworkPolicy: ingress default deny (upstream's example).
      push(
        'BANP default (ingress default deny)',
        cnp('default', {
          kind: 'BaselineAdminNetworkPolicy',
          subject: nsSubject(allNs),
          ingress: [adminRule('Deny', [nsSubject(allNs)], undefined, 'default-deny')],
        }),
      );
      continue;
    }
    switch (k % 10) {
      case 0:
      case 1:
      case 2: {
        // Tenant isolation: monitoring in, same tenant delegated to the namespace owners (Pass),
        // other tenants denied; in three variants (both directions, ingress only, egress only).
        const variant = Math.floor(k / 10) % 3;
        const ingress = [
          adminRule('Accept', [nsSubject(monitoringNs)], undefined, 'allow-monitoring'),
          adminRule('Pass', [nsSubject(t)], undefined, 'same-tenant'),
          adminRule('Deny', [nsSubject(allNs)], undefined, 'other-tenants'),
        ];
        const egress = [
          adminRule('Pass', [nsSubject(t)], undefined, 'same-tenant'),
          adminRule('Deny', [nsSubject(allNs)], undefined, 'other-tenants'),
        ];
        push(
          'CNP Admin tenant isolation (namespaces peers; Pass same tenant, Deny others)',
          cnp(`tenant-isolation-${k}`, {
            priority,
            subject: nsSubject(t),
            ingress: variant === 2 ? [] : ingress,
            egress: variant === 1 ? [] : egress,
          }),
        );
        break;
      }
      case 3:
        push(
          'CNP Admin accept monitoring (pods peer, named + numbered ports)',
          cnp(`allow-monitoring-${k}`, {
            priority,
            subject: nsSubject(t),
            ingress: [
              adminRule(
                'Accept',
                [podSubject(sel(podLabels()), monitoringNs)],
                [...named(), aport(9090), aport(9100)],
                'scrape',
              ),
            ],
          }),
        );
        break;
      case 4:
        push(
          'CNP Admin deny networks (pod subject; egress CIDRs)',
          cnp(`deny-networks-${k}`, {
            priority,
            subject: podSubject(sel(podLabels()), t),
            egress: [
              adminRule('Deny', [networksPeer('169.254.169.254/32')], undefined, 'metadata'),
              adminRule(
                'Accept',
                [networksPeer('203.0.113.0/24', `198.51.${k % 256}.0/24`)],
                [aport(443)],
                'partners',
              ),
              adminRule('Deny', [networksPeer(`192.0.2.0/24`, `10.${k % 256}.0.0/16`)], undefined, 'blocked'),
            ],
          }),
        );
        break;
      case 5:
      case 6:
        push(
          'ANP nodes peers + named ports (pod subject)',
          cnp(`nodes-${k}`, {
            kind: 'AdminNetworkPolicy',
            priority,
            subject: podSubject(sel(podLabels()), k % 2 === 0 ? t : allNs),
            ingress: [adminRule('Accept', [podSubject(sel(), monitoringNs)], named(), 'scrape')],
            egress: [
              adminRule(
                'Accept',
                [nodesPeer(sel({ 'node-role': 'infra' }))],
                [aport(6443), aport(10250)],
                'control-plane',
              ),
              adminRule('Deny', [nodesPeer(sel({ zone: `z${k % 3}` }))], undefined, 'other-nodes'),
              adminRule('Accept', [podSubject(sel(podLabels()), t)], named(), 'app'),
            ],
          }),
        );
        break;
      case 7:
        push(
          'ANP Pass/Deny by pods (pod subject, port range)',
          cnp(`pass-${k}`, {
            kind: 'AdminNetworkPolicy',
            priority,
            subject: podSubject(sel(podLabels()), allNs),
            ingress: [
              adminRule('Pass', [nsSubject(t)], [aport(8000, 'TCP', 9000)], 'tenant-range'),
              adminRule('Deny', [podSubject(sel(podLabels()), allNs)], undefined, 'deny-app'),
            ],
          }),
        );
        break;
      default:
        // Baseline: default deny per tenant, egress within the tenant allowed (k % 10 === 8), and
        // DNS too (9).
        push(
          k % 10 === 8
            ? 'CNP Baseline default deny, egress within the tenant allowed (namespace subject)'
            : 'CNP Baseline default deny, egress DNS and within the tenant allowed (pod subject)',
          cnp(`baseline-${k}`, {
            tier: 'Baseline',
            priority,
            subject: k % 10 === 8 ? nsSubject(t) : podSubject(sel(podLabels()), t),
            ingress: [adminRule('Deny', [nsSubject(allNs)], undefined, 'default-deny')],
            egress: [
              ...(k % 10 === 9
                ? [
                    adminRule(
                      'Accept',
                      [nsSubject(sel({ 'kubernetes.io/metadata.name': KUBE_SYSTEM }))],
                      [aport(53, 'UDP')],
                      'dns',
                    ),
                  ]
                : []),
              adminRule('Accept', [nsSubject(t)], undefined, 'same-tenant'),
              adminRule('Deny', [nsSubject(allNs), networksPeer('0.0.0.0/0')], undefined, 'default-deny'),
            ],
          }),
        );
    }
  }
  return { plain, admin: { ...plain, adminPolicies: out }, mix };
}

/** "10000:1000:100" -> [10000, 1000, 100]; missing fields take the defaults. */
export function parseSize(s: string, defaults: readonly [number, number, number]): [number, number, number] {
  const f = s.split(':').map(Number);
  const v = (i: number) => {
    const x = f[i];
    return x === undefined || Number.isNaN(x) ? defaults[i]! : x;
  };
  return [v(0), v(1), v(2)];
}
