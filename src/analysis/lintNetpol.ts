// `moat lint`'s NetworkPolicy checks: the classic traps (DNS, selectors that select nothing, the
// YAML dash between AND and OR, named ports, defaulted protocols, hostNetwork pods, ipBlocks over
// pod addresses, implicit policyTypes). Pure. Selection and matching are the evaluator's own
// primitives (match.ts); verdicts (dns-blocked) are the evaluator's. Checks that need pods or
// namespaces to judge run only when the input has them (a policy-only repository is no proof that
// a selector selects nothing).
import { formatAddress, parseIP, type Address } from '../model/cidr.js';
import { formatSelector, isEmptySelector, matchesSelector } from '../model/selector.js';
import type {
  LabelSelector,
  NetworkPolicy,
  Pod,
  PolicyPort,
  PolicyRule,
  Protocol,
  Snapshot,
} from '../model/types.js';
import { podKey } from '../model/types.js';
import {
  evaluate,
  indexOf,
  ipBlockMatches,
  peerMatches,
  portMatches,
  selectorPeerMatches,
  type Direction,
  type Endpoint,
  type SnapshotIndex,
} from '../policy/evaluate.js';
import { describePeer, describePort } from '../policy/trace.js';
import type { Finding, ObjectRef } from './lint.js';
import { serviceSelects, targetPortOn } from './service.js';

const polRef = (p: NetworkPolicy): ObjectRef => ({
  kind: 'NetworkPolicy',
  namespace: p.namespace,
  name: p.name,
});
/** A workload pod is reported as its workload (the object in the user's files). */
const podRef = (p: Pod): ObjectRef =>
  p.workload !== undefined
    ? { kind: p.workload.kind, namespace: p.namespace, name: p.workload.name }
    : { kind: 'Pod', namespace: p.namespace, name: p.name };
const at = (o: { origin?: Finding['origin'] }) => (o.origin !== undefined ? { origin: o.origin } : {});
const some = (pods: readonly Pod[], max = 3): string =>
  pods.length <= max
    ? pods.map(podKey).join(', ')
    : `${pods.slice(0, max).map(podKey).join(', ')} and ${pods.length - max} more`;

/** Label keys people write for "the namespace named X" (the API server sets only the last one). */
const NS_KEYS = new Set([
  'name',
  'namespace',
  'ns',
  'kubernetes.io/namespace',
  'kubernetes.io/metadata.name',
]);

/** Values of a selector that look like a namespace name: under a namespace-ish key, or a known name. */
function namespaceLikeValues(s: LabelSelector, known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(s.matchLabels)) if (NS_KEYS.has(k) || known.has(v)) out.push(v);
  for (const r of s.matchExpressions) {
    if (r.operator === 'In' && (NS_KEYS.has(r.key) || r.values.some((v) => known.has(v))))
      out.push(...r.values);
  }
  return out;
}

function metadataNameHint(values: readonly string[]): string {
  return values.length === 1
    ? `namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ${values[0]!}}} (the API server labels every namespace with its name)`
    : `namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [${values.join(', ')}]}]} (the API server labels every namespace with its name)`;
}

interface Ctx {
  readonly snapshot: Snapshot;
  readonly index: SnapshotIndex;
  /** Every namespace the input names: declared, or holding a pod or policy. */
  readonly namespaces: readonly string[];
  readonly known: ReadonlySet<string>;
}

function context(snapshot: Snapshot): Ctx {
  const names = new Set<string>();
  for (const n of snapshot.namespaces) names.add(n.name);
  for (const p of snapshot.pods) names.add(p.namespace);
  for (const p of snapshot.policies) names.add(p.namespace);
  return { snapshot, index: indexOf(snapshot), namespaces: [...names].sort(), known: names };
}

const addresses = (p: Pod): Address[] =>
  p.ips.map((ip) => parseIP(ip)).filter((a): a is Address => a !== undefined);

/** Whether a rule's peer list admits a pod at one of its addresses (the evaluator's peerMatches). */
function ruleAdmitsPod(ctx: Ctx, policy: NetworkPolicy, rule: PolicyRule, pod: Pod): boolean {
  if (rule.peers === undefined) return true;
  const e: Endpoint = { kind: 'pod', pod };
  const addrs: (Address | undefined)[] = addresses(pod);
  if (addrs.length === 0) addrs.push(undefined);
  return rule.peers.some((pe) => addrs.some((a) => peerMatches(ctx.index, policy.namespace, pe, e, a)));
}

/** The pods a policy selects (hostNetwork ones included: policiesFor does not skip them). */
function selected(ctx: Ctx, i: number): Pod[] {
  return ctx.snapshot.pods.filter((pod) => {
    const s = ctx.index.policiesFor(pod);
    return s.ingress.includes(i) || s.egress.includes(i);
  });
}

/** The destination pods of a rule: the policy's subjects (ingress) or the pods its peers admit (egress). */
function destinations(
  ctx: Ctx,
  policy: NetworkPolicy,
  subjects: readonly Pod[],
  d: Direction,
  rule: PolicyRule,
) {
  if (d === 'ingress') return subjects.filter((p) => !p.hostNetwork);
  return ctx.snapshot.pods.filter((p) => ruleAdmitsPod(ctx, policy, rule, p));
}

// ---------------------------------------------------------------------------------------------

function selectsNothing(ctx: Ctx, policy: NetworkPolicy, subjects: readonly Pod[]): Finding[] {
  if (!ctx.snapshot.pods.some((p) => p.namespace === policy.namespace)) return [];
  if (subjects.length === 0) {
    return [
      {
        check: 'selects-nothing',
        severity: 'warning',
        object: polRef(policy),
        related: [],
        field: 'spec.podSelector',
        message: `podSelector ${formatSelector(policy.podSelector)} selects no pod of namespace ${policy.namespace} in the input, so the policy restricts nothing`,
        fix: 'write the labels the pods to protect carry (kubectl get pods --show-labels), or delete the policy',
        ...at(policy),
      },
    ];
  }
  const host = subjects.filter((p) => p.hostNetwork);
  if (host.length === 0) return [];
  return [
    {
      check: 'hostnetwork-selected',
      severity: 'warning',
      object: polRef(policy),
      related: host.map(podRef),
      field: 'spec.podSelector',
      message: `the policy selects hostNetwork pod${host.length > 1 ? 's' : ''} ${some(host)}: "hostNetwork pods ... are not selected by NetworkPolicy", the policy does not restrict them`,
      fix: 'protect hostNetwork pods with host firewall rules (or an admin-tier nodes peer), or run them on the pod network; narrow the podSelector to the pods it can protect',
      ...at(policy),
    },
  ];
}

function peerChecks(ctx: Ctx, policy: NetworkPolicy, d: Direction, rule: PolicyRule, r: number): Finding[] {
  const out: Finding[] = [];
  const word = d === 'ingress' ? 'from' : 'to';
  const peers = rule.peers ?? [];
  peers.forEach((pe, j) => {
    const field = `spec.${d}[${r}].${word}[${j}]`;
    if (pe.kind === 'ipBlock') {
      const inside = ctx.snapshot.pods.filter(
        (p) => !p.hostNetwork && addresses(p).some((a) => ipBlockMatches(ctx.index, pe, a)),
      );
      if (inside.length > 0) {
        out.push({
          check: 'ipblock-includes-pods',
          severity: 'info',
          object: polRef(policy),
          related: inside.map(podRef),
          field: `${field}.ipBlock`,
          message: `${describePeer(pe)} contains the addresses of ${inside.length} pod${inside.length > 1 ? 's' : ''} (${some(inside)}): it admits them whatever their labels (and pod addresses change)`,
          fix: 'select pods with podSelector/namespaceSelector, and add the pod CIDR to ipBlock.except',
          ...at(policy),
        });
      }
      return;
    }
    // Namespaces the peer selects: its namespaceSelector's, or the policy's own.
    let nss: string[] = [policy.namespace];
    if (pe.namespaceSelector !== undefined) {
      const nsSel = pe.namespaceSelector;
      nss = ctx.namespaces.filter((n) => matchesSelector(nsSel, ctx.index.namespaceLabels(n)));
      if (nss.length === 0 && ctx.snapshot.namespaces.length > 0) {
        const hint = namespaceLikeValues(nsSel, ctx.known);
        out.push({
          check: 'namespace-selector-matches-nothing',
          severity: 'error',
          object: polRef(policy),
          related: [],
          field: `${field}.namespaceSelector`,
          message: `namespaceSelector ${formatSelector(nsSel)} matches no namespace of the input, so ${word}[${j}] admits nothing`,
          fix:
            hint.length > 0
              ? `select namespaces by name: ${metadataNameHint(hint)}`
              : 'use labels the namespaces carry (kubectl get ns --show-labels), e.g. kubernetes.io/metadata.name',
          ...at(policy),
        });
        return;
      }
    }
    const podSel = pe.podSelector;
    if (podSel === undefined || isEmptySelector(podSel)) return;
    const candidates = ctx.snapshot.pods.filter((p) => nss.includes(p.namespace));
    if (candidates.length === 0) return;
    const e = (pod: Pod): Endpoint => ({ kind: 'pod', pod });
    const matched = candidates.filter((p) =>
      selectorPeerMatches(ctx.index, policy.namespace, podSel, pe.namespaceSelector, e(p)),
    );
    // hostNetwork pods the peer would select if they were on the pod network.
    const host = candidates.filter(
      (p) =>
        p.hostNetwork &&
        selectorPeerMatches(
          ctx.index,
          policy.namespace,
          podSel,
          pe.namespaceSelector,
          e({ ...p, hostNetwork: false }),
        ),
    );
    if (host.length > 0) {
      out.push({
        check: 'hostnetwork-peer',
        severity: 'warning',
        object: polRef(policy),
        related: host.map(podRef),
        field: `${field}.podSelector`,
        message: `podSelector ${formatSelector(podSel)} names hostNetwork pod${host.length > 1 ? 's' : ''} ${some(host)}, but their traffic comes from the node's address: a pod peer never matches it`,
        fix: "admit the nodes' addresses with an ipBlock peer (or an admin-tier nodes peer)",
        ...at(policy),
      });
    } else if (matched.length === 0) {
      const hint = namespaceLikeValues(podSel, ctx.known);
      const where =
        pe.namespaceSelector === undefined ? `namespace ${policy.namespace}` : `namespaces ${nss.join(', ')}`;
      out.push({
        check: 'pod-selector-matches-nothing',
        severity: 'warning',
        object: polRef(policy),
        related: [],
        field: `${field}.podSelector`,
        message: `podSelector ${formatSelector(podSel)} matches no pod of ${where} in the input, so ${word}[${j}] admits nothing${pe.namespaceSelector === undefined ? " (without namespaceSelector a podSelector selects pods of the policy's own namespace only)" : ''}`,
        fix:
          hint.length > 0
            ? `a podSelector does not select namespaces: write ${metadataNameHint(hint)}`
            : 'use labels the pods carry (kubectl get pods --show-labels)',
        ...at(policy),
      });
    }
  });
  // The YAML dash: `- namespaceSelector: ...` and `- podSelector: ...` are two peers (OR), where
  // one peer with both selectors (AND) is usually meant.
  const nsOnly = peers.findIndex((p) => p.kind === 'selector' && p.podSelector === undefined);
  const podOnly = peers.findIndex((p) => p.kind === 'selector' && p.namespaceSelector === undefined);
  if (nsOnly >= 0 && podOnly >= 0) {
    const a = peers[nsOnly]!;
    const b = peers[podOnly]!;
    out.push({
      check: 'peer-or-maybe-and',
      severity: 'warning',
      object: polRef(policy),
      related: [],
      field: `spec.${d}[${r}].${word}`,
      message: `${word}[${nsOnly}] (${describePeer(a)}) and ${word}[${podOnly}] (${describePeer(b)}) are two peers: the rule admits every pod of those namespaces OR those pods of namespace ${policy.namespace}, not the pods of those namespaces with those labels`,
      fix: `if both must hold, write one peer: remove the "-" before podSelector so that namespaceSelector and podSelector are in the same ${word} entry`,
      ...at(policy),
    });
  }
  return out;
}

function portChecks(
  ctx: Ctx,
  policy: NetworkPolicy,
  subjects: readonly Pod[],
  d: Direction,
  rule: PolicyRule,
  r: number,
): Finding[] {
  const out: Finding[] = [];
  const ports = rule.ports ?? [];
  if (ports.length === 0) return out;
  const dsts = destinations(ctx, policy, subjects, d, rule);
  if (dsts.length === 0) return out;
  const defaulted = new Set(policy.implicit?.protocols ?? []);
  const whose = d === 'ingress' ? 'the pods the policy selects' : 'the destination pods';
  ports.forEach((pp: PolicyPort, k) => {
    const field = `spec.${d}[${r}].ports[${k}]`;
    const isDefault = defaulted.has(field);
    if (pp.port === undefined || pp.endPort !== undefined) return;
    const declares = (p: Pod, proto?: Protocol) =>
      p.ports.some(
        (cp) =>
          (typeof pp.port === 'string' ? cp.name === pp.port : cp.containerPort === pp.port) &&
          (proto === undefined || cp.protocol === proto),
      );
    if (dsts.some((p) => declares(p, pp.protocol))) return;
    const other = [
      ...new Set(
        dsts.flatMap((p) =>
          p.ports
            .filter((cp) =>
              typeof pp.port === 'string' ? cp.name === pp.port : cp.containerPort === pp.port,
            )
            .map((cp) => cp.protocol),
        ),
      ),
    ];
    if (isDefault && other.length > 0) {
      out.push({
        check: 'port-protocol-defaulted',
        severity: 'error',
        object: polRef(policy),
        related: dsts.filter((p) => declares(p)).map(podRef),
        field: `${field}.protocol`,
        message: `port ${pp.port} has no protocol, so it is TCP ("defaults to TCP"), but ${whose} declare it only for ${other.join(', ')}: the rule admits none of that traffic`,
        fix: `write protocol: ${other[0]!}${other.length > 1 ? ` (one ports entry per protocol)` : ''}`,
        ...at(policy),
      });
    } else if (typeof pp.port === 'string') {
      out.push({
        check: 'named-port-undeclared',
        severity: 'error',
        object: polRef(policy),
        related: [],
        field: `${field}.port`,
        message: `named port ${describePort(pp)}: ${other.length > 0 ? `${whose} declare ${pp.port} only for ${other.join(', ')}` : `no pod among ${whose} (${some(dsts)}) declares a containerPort named ${pp.port}`}; a named port resolves against the destination pod's containerPorts, so the rule admits nothing there`,
        fix:
          other.length > 0
            ? `write protocol: ${other[0]!}`
            : `use a port number, or name the containerPort ${pp.port} in the pods`,
        ...at(policy),
      });
    }
  });
  return out;
}

/**
 * `service-port-not-target-port`: a rule's port is a Service's `port` whose `targetPort` differs,
 * for a Service selecting the pods the rule guards, and none of them declares that port. Policies
 * match the packet as it reaches the pod, after kube-proxy turned the Service port into targetPort.
 */
function servicePorts(
  ctx: Ctx,
  policy: NetworkPolicy,
  subjects: readonly Pod[],
  d: Direction,
  rule: PolicyRule,
  r: number,
): Finding[] {
  const services = ctx.snapshot.services ?? [];
  if (services.length === 0) return [];
  const dsts = destinations(ctx, policy, subjects, d, rule);
  const out: Finding[] = [];
  (rule.ports ?? []).forEach((pp, k) => {
    if (typeof pp.port !== 'number' || pp.endPort !== undefined) return;
    const port = pp.port;
    for (const svc of services) {
      const backs = dsts.filter((p) => serviceSelects(svc, p));
      if (backs.length === 0) continue;
      const sp = svc.ports.find(
        (x) => x.port === port && x.protocol === pp.protocol && x.targetPort !== port,
      );
      if (sp === undefined) continue;
      if (backs.some((p) => p.ports.some((cp) => cp.containerPort === port && cp.protocol === pp.protocol)))
        continue;
      // The pods' port behind the Service port: the number, or the named containerPort's.
      const target = String(
        backs.map((p) => targetPortOn(sp, p)).find((t) => t !== undefined) ?? sp.targetPort,
      );
      out.push({
        check: 'service-port-not-target-port',
        severity: 'error',
        object: polRef(policy),
        related: [{ kind: 'Service', namespace: svc.namespace, name: svc.name }, ...backs.map(podRef)],
        field: `spec.${d}[${r}].ports[${k}].port`,
        message: `port ${port} is Service ${svc.namespace}/${svc.name}'s port, whose targetPort is ${String(sp.targetPort)}${target !== String(sp.targetPort) ? ` (${target})` : ''}; policies see the pod's port after the Service's translation, and no pod behind it (${some(backs)}) declares ${pp.protocol}/${port}: the rule admits none of the Service's traffic`,
        fix: `write port: ${typeof sp.targetPort === 'string' ? `${sp.targetPort} (or ${target})` : target}`,
        ...at(policy),
      });
    }
  });
  return out;
}

const DNS = 53;

function dnsUnrestricted(ctx: Ctx, policy: NetworkPolicy): Finding[] {
  const out: Finding[] = [];
  const anywhere: Endpoint = { kind: 'ip', ip: '8.8.8.8' };
  policy.egress.forEach((rule, r) => {
    const ports = rule.ports ?? [];
    // An all-ports rule is "allow all egress", not a DNS rule.
    const k = ports.findIndex(
      (p) =>
        p.port !== undefined && (['UDP', 'TCP'] as const).some((pr) => portMatches(p, pr, DNS, anywhere)),
    );
    if (k < 0) return;
    const open =
      rule.peers === undefined
        ? -1
        : rule.peers.findIndex(
            (pe) =>
              pe.kind === 'ipBlock' &&
              (() => {
                const c = ctx.index.cidr(pe.ipBlock.cidr);
                return typeof c !== 'string' && c.prefix === 0;
              })(),
          );
    if (rule.peers !== undefined && open < 0) return;
    out.push({
      check: 'dns-unrestricted',
      severity: 'warning',
      object: polRef(policy),
      related: [],
      field: rule.peers === undefined ? `spec.egress[${r}]` : `spec.egress[${r}].to[${open}]`,
      message: `egress rule ${r} allows port ${DNS} (${describePort(ports[k]!)}) to every destination: the pods may query any DNS server, also outside the cluster (a path for exfiltration and for lookups that bypass the cluster DNS)`,
      fix: 'restrict to the cluster DNS: to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]',
      ...at(policy),
    });
  });
  return out;
}

function policyTypesImplicit(policy: NetworkPolicy): Finding[] {
  if (policy.implicit?.policyTypes !== true) return [];
  const egress = policy.policyTypes.includes('Egress');
  return [
    {
      check: 'policytypes-implicit',
      severity: 'info',
      object: polRef(policy),
      related: [],
      field: 'spec.policyTypes',
      message: `policyTypes is not written; it defaults to [${policy.policyTypes.join(', ')}] because the policy has ${egress ? '' : 'no '}egress rules${egress ? '' : ', so egress of the selected pods stays unrestricted'}, and it changes when egress rules are added or removed`,
      fix: `write policyTypes: [${policy.policyTypes.join(', ')}]${egress ? '' : ' (or [Ingress, Egress] to isolate egress too)'}`,
      ...at(policy),
    },
  ];
}

/**
 * `dns-blocked`: a pod that can reach no DNS server on UDP 53, by the evaluator's verdict: the
 * cluster DNS pods (`k8s-app: kube-dns`) when the input has them, else any address (a few public
 * and cluster-typical ones, an address of every egress ipBlock, every pod).
 */
function dnsBlocked(ctx: Ctx): Finding[] {
  const { snapshot } = ctx;
  const servers = snapshot.pods.filter((p) => p.labels['k8s-app'] === 'kube-dns');
  const ipCandidates = (): Endpoint[] => {
    const ips = new Set(['8.8.8.8', '10.96.0.10', '2001:4860:4860::8888']);
    for (const pol of snapshot.policies) {
      for (const rule of pol.egress) {
        for (const pe of rule.peers ?? []) {
          if (pe.kind !== 'ipBlock') continue;
          const c = ctx.index.cidr(pe.ipBlock.cidr);
          if (typeof c === 'string') continue;
          // The block's first address, and the first after each except.
          const size = (prefix: number) => 1n << BigInt((c.family === 4 ? 32 : 128) - prefix);
          const firsts = [c.base, c.base + 1n];
          for (const ex of pe.ipBlock.except) {
            const x = ctx.index.cidr(ex);
            if (typeof x !== 'string') firsts.push(x.base + size(x.prefix));
          }
          for (const v of firsts) {
            const a = { family: c.family, value: v };
            if (ipBlockMatches(ctx.index, pe, a)) ips.add(formatAddress(a));
          }
        }
      }
    }
    return [...ips].map((ip) => ({ kind: 'ip', ip }));
  };
  const targets: Endpoint[] =
    servers.length > 0
      ? servers.map((pod) => ({ kind: 'pod', pod }))
      : [...ipCandidates(), ...snapshot.pods.map((pod): Endpoint => ({ kind: 'pod', pod }))];
  const out: Finding[] = [];
  for (const pod of snapshot.pods) {
    if (pod.hostNetwork || servers.includes(pod)) continue;
    const src: Endpoint = { kind: 'pod', pod };
    const flows = targets
      .filter((t) => t.kind !== 'pod' || t.pod !== pod)
      .map((dst) => ({ src, dst, protocol: 'UDP' as const, port: DNS }));
    const traced = flows.map((f) => evaluate(snapshot, f));
    if (traced.length === 0 || traced.some((v) => v.allowed)) continue;
    // Who blocks it: the isolating policies of each side that denied, and the admin rules.
    const related = new Map<string, ObjectRef>();
    for (const t of traced) {
      for (const side of [t.egress, t.ingress]) {
        if (side.allowed) continue;
        for (const p of side.isolatedBy) {
          related.set(`NetworkPolicy/${p.namespace}/${p.name}`, {
            kind: 'NetworkPolicy',
            namespace: p.namespace,
            name: p.name,
          });
        }
        for (const o of side.tiers) {
          if (o.admin !== undefined && o.answer === 'Deny')
            related.set(`${o.admin.kind}/${o.admin.name}`, { kind: o.admin.kind, name: o.admin.name });
        }
      }
    }
    const first = traced[0]!;
    const side = !first.egress.allowed ? first.egress : first.ingress;
    const where =
      servers.length > 0
        ? `the cluster DNS (${some(servers)})`
        : 'any DNS server (the input has no k8s-app: kube-dns pods, so every address was tried)';
    out.push({
      check: 'dns-blocked',
      severity: 'error',
      object: podRef(pod),
      related: [...related.values()],
      field: 'metadata.labels',
      message: `pod ${podKey(pod)} cannot reach ${where} on UDP/${DNS}: ${side.tiers.at(-1)?.detail ?? side.reason}; name lookups fail`,
      fix: `add an egress rule for namespace ${pod.namespace}: to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]`,
      ...at(pod),
    });
  }
  return out;
}

/** Every NetworkPolicy check. */
export function lintNetworkPolicies(snapshot: Snapshot): Finding[] {
  const ctx = context(snapshot);
  const out: Finding[] = [];
  snapshot.policies.forEach((policy, i) => {
    const subjects = selected(ctx, i);
    out.push(
      ...selectsNothing(ctx, policy, subjects),
      ...policyTypesImplicit(policy),
      ...dnsUnrestricted(ctx, policy),
    );
    for (const d of ['ingress', 'egress'] as const) {
      (d === 'ingress' ? policy.ingress : policy.egress).forEach((rule, r) => {
        out.push(
          ...peerChecks(ctx, policy, d, rule, r),
          ...portChecks(ctx, policy, subjects, d, rule, r),
          ...servicePorts(ctx, policy, subjects, d, rule, r),
        );
      });
    }
  });
  out.push(...dnsBlocked(ctx));
  return out;
}
