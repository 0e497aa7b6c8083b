// Security and shape properties every rendering of moat's deployment must have, whoever renders it
// (kustomize overlays, the Helm chart, the flannel sidecar patch). Pure: objects in, results out.
import { isDeepStrictEqual } from 'node:util';
import { WATCHABLE } from '../../src/agent/k8s-decode.js';

export type Obj = Record<string, unknown>;

export interface Result {
  readonly render: string;
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** What a rendering is: the whole agent, the flannel overlay's RBAC, or flannel's patched DaemonSet. */
export type Role = 'agent' | 'rbac' | 'sidecar';

/**
 * The only (apiGroup, resource) pairs the agent may read: exactly the kinds it can watch (the kinds
 * registry), the admin tiers' CRDs included, which it watches while discovery finds them served.
 * Discovery itself needs no rule: system:discovery allows it to every authenticated user.
 */
export const EXPECTED_RESOURCES: readonly string[] = WATCHABLE.map((w) => `${w.group}/${w.resource}`).sort();
export const EXPECTED_VERBS: readonly string[] = ['list', 'watch'];

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks a path of keys; undefined as soon as a step is missing. */
export function at(v: unknown, ...path: string[]): unknown {
  let cur = v;
  for (const key of path) {
    if (!isObj(cur)) return undefined;
    cur = cur[key];
  }
  return cur;
}

function objs(v: unknown): Obj[] {
  return Array.isArray(v) ? v.filter(isObj) : [];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

function ofKind(objects: readonly Obj[], kind: string): Obj[] {
  return objects.filter((o) => o['kind'] === kind);
}

function name(o: Obj): string {
  const n = at(o, 'metadata', 'name');
  return typeof n === 'string' ? n : '?';
}

class Collector {
  readonly results: Result[] = [];
  constructor(private readonly render: string) {}
  expect(check: string, ok: boolean, detail = ''): void {
    this.results.push({ render: this.render, check, ok, detail: ok ? '' : detail });
  }
}

/** The port number in `--flag=:PORT` (or HOST:PORT), if that flag is among args. */
function flagPort(args: readonly string[], flag: string): number | undefined {
  const arg = args.find((a) => a.startsWith(`${flag}=`));
  const m = arg === undefined ? null : /:(\d+)$/.exec(arg);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

function probePort(container: Obj, probe: string): number | undefined {
  const port = at(container, probe, 'httpGet', 'port');
  if (typeof port === 'number') return port;
  const named = objs(container['ports']).find((p) => p['name'] === port);
  const n = named?.['containerPort'];
  return typeof n === 'number' ? n : undefined;
}

function checkClusterRole(c: Collector, role: Obj): void {
  const rules = objs(role['rules']);
  const pairs = new Set<string>();
  for (const [i, rule] of rules.entries()) {
    const verbs = [...strings(rule['verbs'])].sort();
    c.expect(
      `ClusterRole ${name(role)} rules[${i}] verbs are exactly list, watch`,
      isDeepStrictEqual(verbs, EXPECTED_VERBS),
      `verbs: ${JSON.stringify(rule['verbs'])}`,
    );
    c.expect(
      `ClusterRole ${name(role)} rules[${i}] has no resourceNames or nonResourceURLs`,
      rule['resourceNames'] === undefined && rule['nonResourceURLs'] === undefined,
    );
    for (const g of strings(rule['apiGroups'])) {
      for (const r of strings(rule['resources'])) pairs.add(`${g}/${r}`);
    }
  }
  const got = [...pairs].sort();
  c.expect(
    `ClusterRole ${name(role)} covers exactly the resources the agent can watch`,
    isDeepStrictEqual(got, [...EXPECTED_RESOURCES].sort()),
    `got ${JSON.stringify(got)}`,
  );
  c.expect(`ClusterRole ${name(role)} has no aggregationRule`, role['aggregationRule'] === undefined);
}

function checkContainer(c: Collector, ds: Obj, container: Obj): void {
  const where = `DaemonSet ${name(ds)} container ${String(container['name'])}`;
  const sc = at(container, 'securityContext');
  c.expect(`${where} is not privileged`, at(sc, 'privileged') !== true);
  c.expect(`${where} disallows privilege escalation`, at(sc, 'allowPrivilegeEscalation') === false);
  c.expect(`${where} has a read-only root filesystem`, at(sc, 'readOnlyRootFilesystem') === true);
  c.expect(`${where} runs as uid 0 (nft needs root with the capability)`, at(sc, 'runAsUser') === 0);
  const add = strings(at(sc, 'capabilities', 'add'));
  const drop = strings(at(sc, 'capabilities', 'drop'));
  c.expect(`${where} adds NET_ADMIN`, add.includes('NET_ADMIN'), `add: ${JSON.stringify(add)}`);
  c.expect(
    `${where} adds no capability but NET_ADMIN`,
    add.every((cap) => cap === 'NET_ADMIN'),
    `add: ${JSON.stringify(add)}`,
  );
  c.expect(`${where} drops ALL other capabilities`, drop.includes('ALL'), `drop: ${JSON.stringify(drop)}`);

  const args = strings(container['args']);
  c.expect(`${where} runs \`moat agent\``, args[0] === 'agent', `args: ${JSON.stringify(args)}`);
  c.expect(`${where} passes --node-name=$(NODE_NAME)`, args.includes('--node-name=$(NODE_NAME)'));
  const onExit = args.find((a) => a.startsWith('--on-exit='));
  c.expect(
    `${where} sets --on-exit to keep or remove`,
    onExit === '--on-exit=keep' || onExit === '--on-exit=remove',
    `got ${String(onExit)}`,
  );
  const nodeName = objs(container['env']).find((e) => e['name'] === 'NODE_NAME');
  c.expect(
    `${where} gets NODE_NAME from spec.nodeName (downward API)`,
    at(nodeName, 'valueFrom', 'fieldRef', 'fieldPath') === 'spec.nodeName',
  );

  const healthPort = flagPort(args, '--health-addr');
  const metricsPort = flagPort(args, '--metrics-addr');
  const declared = objs(container['ports']).map((p) => p['containerPort']);
  c.expect(
    `${where} declares the --health-addr port`,
    healthPort !== undefined && declared.includes(healthPort),
  );
  c.expect(
    `${where} declares the --metrics-addr port`,
    metricsPort !== undefined && declared.includes(metricsPort),
  );
  for (const [probe, path] of [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
  ] as const) {
    const got = at(container, probe, 'httpGet', 'path');
    c.expect(`${where} ${probe} GETs ${path}`, got === path, `path: ${String(got)}`);
    const port = probePort(container, probe);
    c.expect(
      `${where} ${probe} targets the health port`,
      port !== undefined && port === healthPort,
      `probe port ${String(port)}, --health-addr port ${String(healthPort)}`,
    );
  }
  for (const bound of ['requests', 'limits']) {
    for (const res of ['cpu', 'memory']) {
      c.expect(
        `${where} sets resources.${bound}.${res}`,
        at(container, 'resources', bound, res) !== undefined,
      );
    }
  }
}

function checkPod(c: Collector, ds: Obj, expectServiceAccount: string | undefined): void {
  const where = `DaemonSet ${name(ds)}`;
  const pod = at(ds, 'spec', 'template', 'spec');
  c.expect(`${where} uses the host network`, at(pod, 'hostNetwork') === true);
  c.expect(
    `${where} dnsPolicy is ClusterFirstWithHostNet`,
    at(pod, 'dnsPolicy') === 'ClusterFirstWithHostNet',
  );
  c.expect(
    `${where} priorityClassName is system-node-critical`,
    at(pod, 'priorityClassName') === 'system-node-critical',
  );
  const tolerations = objs(at(pod, 'tolerations'));
  c.expect(
    `${where} tolerates every taint (operator Exists, no key, no effect)`,
    tolerations.some(
      (t) => t['operator'] === 'Exists' && t['key'] === undefined && t['effect'] === undefined,
    ),
    `tolerations: ${JSON.stringify(tolerations)}`,
  );
  if (expectServiceAccount !== undefined) {
    c.expect(
      `${where} runs as ServiceAccount ${expectServiceAccount}`,
      at(pod, 'serviceAccountName') === expectServiceAccount,
    );
  }
  c.expect(
    `${where} shares no host PID or IPC namespace`,
    at(pod, 'hostPID') !== true && at(pod, 'hostIPC') !== true,
  );
  // The only host paths the agent may touch: the iptables lock (iptables backend only), and the CNI
  // result cache, read only (which bridge port is which pod).
  const volumes = objs(at(pod, 'volumes'));
  const hostPaths = volumes.map((v) => at(v, 'hostPath', 'path')).filter((p) => p !== undefined);
  c.expect(
    `${where} mounts no host path but /run/xtables.lock and /var/lib/cni/results`,
    hostPaths.every((p) => p === '/run/xtables.lock' || p === '/var/lib/cni/results'),
    `hostPaths: ${JSON.stringify(hostPaths)}`,
  );
  const cniVolumes = new Set(
    volumes.filter((v) => at(v, 'hostPath', 'path') === '/var/lib/cni/results').map((v) => v['name']),
  );
  const cniMounts = objs(at(pod, 'containers'))
    .flatMap((ct) => objs(ct['volumeMounts']))
    .filter((m) => cniVolumes.has(m['name']));
  c.expect(
    `${where} mounts the CNI result cache read-only`,
    cniMounts.every((m) => m['readOnly'] === true),
    JSON.stringify(cniMounts),
  );
}

function moatContainer(ds: Obj): Obj | undefined {
  return objs(at(ds, 'spec', 'template', 'spec', 'containers')).find((ct) => ct['name'] === 'moat');
}

/** Checks one rendering (all the objects of one `kustomize build` or `helm template`). */
export function checkRender(render: string, role: Role, objects: readonly Obj[]): Result[] {
  const c = new Collector(render);
  const roles = ofKind(objects, 'ClusterRole');
  const bindings = ofKind(objects, 'ClusterRoleBinding');
  const daemonSets = ofKind(objects, 'DaemonSet');

  if (role !== 'sidecar') {
    c.expect('exactly one ClusterRole', roles.length === 1, `found ${roles.length}`);
    c.expect('exactly one ClusterRoleBinding', bindings.length === 1, `found ${bindings.length}`);
    for (const r of roles) checkClusterRole(c, r);
    for (const b of bindings) {
      c.expect(
        `ClusterRoleBinding ${name(b)} binds the rendered ClusterRole`,
        at(b, 'roleRef', 'kind') === 'ClusterRole' && roles.some((r) => name(r) === at(b, 'roleRef', 'name')),
      );
    }
    c.expect(
      'no namespaced Role or RoleBinding',
      ofKind(objects, 'Role').length + ofKind(objects, 'RoleBinding').length === 0,
    );
  }

  if (role === 'agent') {
    const accounts = ofKind(objects, 'ServiceAccount');
    c.expect('exactly one ServiceAccount', accounts.length === 1, `found ${accounts.length}`);
    c.expect('exactly one DaemonSet', daemonSets.length === 1, `found ${daemonSets.length}`);
    const sa = accounts[0];
    const ds = daemonSets[0];
    if (sa !== undefined && ds !== undefined) {
      const ns = at(ds, 'metadata', 'namespace');
      c.expect(
        'DaemonSet and ServiceAccount share a namespace',
        ns !== undefined && at(sa, 'metadata', 'namespace') === ns,
      );
      const subjects = objs(at(bindings[0], 'subjects'));
      c.expect(
        'ClusterRoleBinding subject is the DaemonSet ServiceAccount',
        subjects.length === 1 &&
          subjects[0]?.['kind'] === 'ServiceAccount' &&
          subjects[0]['name'] === name(sa) &&
          subjects[0]['namespace'] === ns,
        `subjects: ${JSON.stringify(subjects)}`,
      );
      // Pod Security admission: hostNetwork and NET_ADMIN are outside "baseline".
      const namespace = ofKind(objects, 'Namespace').find((n) => name(n) === ns);
      if (namespace !== undefined) {
        c.expect(
          `Namespace ${name(namespace)} allows privileged pods (pod-security enforce)`,
          at(namespace, 'metadata', 'labels', 'pod-security.kubernetes.io/enforce') === 'privileged',
        );
      }
      checkPod(c, ds, name(sa));
    }
  }
  if (role === 'rbac') {
    c.expect('no DaemonSet (flannel runs the sidecar)', daemonSets.length === 0);
  }
  if (role === 'sidecar') {
    c.expect('exactly one DaemonSet', daemonSets.length === 1, `found ${daemonSets.length}`);
    const ds = daemonSets[0];
    if (ds !== undefined) {
      const containers = objs(at(ds, 'spec', 'template', 'spec', 'containers'));
      c.expect(
        `DaemonSet ${name(ds)} keeps its other containers`,
        containers.some((ct) => ct['name'] !== 'moat'),
      );
      c.expect(
        `DaemonSet ${name(ds)} uses the host network`,
        at(ds, 'spec', 'template', 'spec', 'hostNetwork') === true,
      );
    }
  }
  for (const ds of daemonSets) {
    const ct = moatContainer(ds);
    c.expect(`DaemonSet ${name(ds)} has a container named moat`, ct !== undefined);
    if (ct !== undefined) checkContainer(c, ds, ct);
  }
  return c.results;
}

/** The DaemonSet and ClusterRole of a rendering with names, labels and selectors taken out. */
export function essence(objects: readonly Obj[]): { daemonSet: unknown; rules: unknown } {
  const ds = structuredClone(ofKind(objects, 'DaemonSet')[0]);
  const spec = at(ds, 'spec');
  if (isObj(spec)) {
    delete spec['selector'];
    const template = spec['template'];
    if (isObj(template)) delete template['metadata'];
  }
  return { daemonSet: spec, rules: ofKind(objects, 'ClusterRole')[0]?.['rules'] };
}

/** Two renderings deploy the same agent (e.g. kustomize's plain overlay and the chart's defaults). */
export function checkSame(
  a: string,
  aObjects: readonly Obj[],
  b: string,
  bObjects: readonly Obj[],
): Result[] {
  const c = new Collector(`${a} = ${b}`);
  const ea = essence(aObjects);
  const eb = essence(bObjects);
  c.expect(
    'same DaemonSet spec (modulo labels and names)',
    isDeepStrictEqual(ea.daemonSet, eb.daemonSet),
    diff(ea.daemonSet, eb.daemonSet),
  );
  c.expect('same ClusterRole rules', isDeepStrictEqual(ea.rules, eb.rules), diff(ea.rules, eb.rules));
  return c.results;
}

/** What a moat container does, whichever pod it sits in (port names and pod-level fields aside). */
export function containerEssence(objects: readonly Obj[]): unknown {
  const ds = ofKind(objects, 'DaemonSet').find((d) => moatContainer(d) !== undefined);
  const ct = ds === undefined ? undefined : moatContainer(ds);
  if (ct === undefined) return undefined;
  const sc = structuredClone(at(ct, 'securityContext'));
  if (isObj(sc)) delete sc['seccompProfile'];
  return {
    image: ct['image'],
    imagePullPolicy: ct['imagePullPolicy'],
    args: ct['args'],
    env: ct['env'],
    resources: ct['resources'],
    securityContext: sc,
    ports: objs(ct['ports']).map((p) => p['containerPort']),
    liveness: [at(ct, 'livenessProbe', 'httpGet', 'path'), probePort(ct, 'livenessProbe')],
    readiness: [at(ct, 'readinessProbe', 'httpGet', 'path'), probePort(ct, 'readinessProbe')],
    mounts: objs(ct['volumeMounts']).map((m) => m['mountPath']),
  };
}

/** Two renderings run the same moat container (e.g. the agent DaemonSet and flannel's sidecar). */
export function checkSameContainer(
  a: string,
  aObjects: readonly Obj[],
  b: string,
  bObjects: readonly Obj[],
): Result[] {
  const c = new Collector(`${a} = ${b}`);
  const ea = containerEssence(aObjects);
  const eb = containerEssence(bObjects);
  c.expect(
    'same moat container (modulo port and volume names)',
    ea !== undefined && isDeepStrictEqual(ea, eb),
    diff(ea, eb),
  );
  return c.results;
}

/** The first differing path of two JSON values, for a failure message. */
export function diff(a: unknown, b: unknown, path = ''): string {
  if (isDeepStrictEqual(a, b)) return '';
  if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = diff(a[k], b[k], `${path}.${k}`);
      if (d !== '') return d;
    }
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    for (const [i, v] of a.entries()) {
      const d = diff(v, b[i], `${path}[${i}]`);
      if (d !== '') return d;
    }
  }
  return `${path === '' ? '(root)' : path}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`;
}
