// Checks on the real test cluster (test/cluster/up.sh, moat deployed): what users see besides the
// upstream suite. Run by test/cluster/run.sh with the cluster's env (MOAT_CLUSTER_NETNS,
// KUBECONFIG, MOAT_CLUSTER_MOAT_NS: where moat's DaemonSet runs, MOAT_CLUSTER_MOAT_DS: its name).
//  - kubelet liveness and readiness probes of pods under default-deny ingress keep passing;
//  - a rolling update of the moat DaemonSet leaves no moment where a denied connection passes;
//  - deleting moat's DaemonSet (its pods exit with --on-exit keep) keeps the rules enforced.
// A prober pod (moat's image: it has node) tries a connection every 100 ms and logs each result,
// so a window of a few hundred milliseconds would show.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';

const NETNS = process.env.MOAT_CLUSTER_NETNS;
const KUBECONFIG = process.env.KUBECONFIG;
const MOAT_NS = process.env.MOAT_CLUSTER_MOAT_NS ?? 'kube-system';
const MOAT_DS = process.env.MOAT_CLUSTER_MOAT_DS ?? 'moat';
/** moat has a DaemonSet of its own (not a sidecar of flannel's): it can be deleted alone. */
const STANDALONE = process.env.MOAT_CLUSTER_MOAT_STANDALONE !== '0';
const skip =
  NETNS === undefined || KUBECONFIG === undefined ? 'needs a running test cluster (run.sh)' : false;
const NS = 'moat-checks';
const AGNHOST = 'registry.k8s.io/e2e-test-images/agnhost:2.53';

function kubectl(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'nsenter',
      [`--net=/run/netns/${NETNS ?? ''}`, 'kubectl', '--kubeconfig', KUBECONFIG ?? '', ...args],
      { maxBuffer: 32 << 20 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

const SERVER = `
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ${NS}, labels: {app: server}}
spec:
  containers:
  - name: c
    image: ${AGNHOST}
    imagePullPolicy: Never
    command: [/agnhost, netexec, --http-port=8080]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2, failureThreshold: 1}
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2, failureThreshold: 1}
`;

/** Logs "open" or "closed <reason>" with a timestamp for each attempt, every 100 ms. */
const PROBER_JS = `
const net = require('node:net');
const [ip, port] = [process.env.TARGET, Number(process.env.PORT)];
setInterval(() => {
  const s = net.connect({ host: ip, port });
  const t = setTimeout(() => { s.destroy(); console.log(Date.now() + ' closed timeout'); }, 300);
  s.on('connect', () => { clearTimeout(t); s.destroy(); console.log(Date.now() + ' open'); });
  s.on('error', (e) => { clearTimeout(t); console.log(Date.now() + ' closed ' + e.code); });
}, 100);
`;

const prober = (ip: string) => `
apiVersion: v1
kind: Pod
metadata: {name: prober, namespace: ${NS}, labels: {app: prober}}
spec:
  containers:
  - name: c
    image: moat:0.1.0
    imagePullPolicy: Never
    command: [node, -e, ${JSON.stringify(PROBER_JS)}]
    env: [{name: TARGET, value: "${ip}"}, {name: PORT, value: "8080"}]
`;

const DENY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: ${NS}}
spec: {podSelector: {}, policyTypes: [Ingress]}
`;

interface Attempt {
  readonly at: number;
  readonly open: boolean;
}

async function attempts(since: number): Promise<Attempt[]> {
  const out = await kubectl(['-n', NS, 'logs', 'prober', '--tail=-1']);
  return out
    .split('\n')
    .map((l) => /^(\d+) (open|closed)/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ at: Number(m[1]), open: m[2] === 'open' }))
    .filter((a) => a.at >= since);
}

async function ready(pod: string): Promise<{ ready: boolean; restarts: number }> {
  const j = JSON.parse(await kubectl(['-n', NS, 'get', 'pod', pod, '-o', 'json'])) as {
    status: { containerStatuses?: { ready: boolean; restartCount: number }[] };
  };
  const c = j.status.containerStatuses?.[0];
  return { ready: c?.ready === true, restarts: c?.restartCount ?? -1 };
}

async function moatReady(): Promise<void> {
  await kubectl(['-n', MOAT_NS, 'rollout', 'status', `ds/${MOAT_DS}`, '--timeout=180s']);
}

describe('the real cluster, beyond the upstream suite', { skip }, () => {
  let serverIP = '';
  before(async () => {
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['apply', '-f', '-'], SERVER);
    await until('server ready', async () => (await ready('server')).ready);
    const srv = JSON.parse(await kubectl(['-n', NS, 'get', 'pod', 'server', '-o', 'json'])) as {
      status: { podIP: string };
    };
    serverIP = srv.status.podIP;
    await kubectl(['apply', '-f', '-'], prober(serverIP));
    await until('prober running', async () => (await attempts(0)).length > 0);
  });
  after(async () => {
    await kubectl(['delete', 'namespace', NS, '--wait=false']).catch(() => undefined);
  });

  it('the prober sees the server open before any policy (the harness can see a pass)', async () => {
    const t0 = Date.now();
    await until('an open attempt', async () => (await attempts(t0)).some((a) => a.open), 30_000);
  });

  it('kubelet probes keep passing under default-deny ingress; the prober is denied', async () => {
    await kubectl(['apply', '-f', '-'], DENY);
    await until('the prober denied', async () => {
      const recent = await attempts(Date.now() - 1500);
      return recent.length > 3 && recent.every((a) => !a.open);
    });
    const before = await ready('server');
    await sleep(20_000); // ten probe periods
    const after = await ready('server');
    assert.equal(after.ready, true, 'the server stays ready');
    assert.equal(after.restarts, before.restarts, 'and is never restarted by its liveness probe');
  });

  it("a rolling update of moat's DaemonSet leaves no moment where the denied connection passes", async () => {
    const t0 = Date.now();
    await kubectl(['-n', MOAT_NS, 'rollout', 'restart', `ds/${MOAT_DS}`]);
    await moatReady();
    await sleep(3000);
    const seen = await attempts(t0);
    assert.ok(seen.length > 50, `the prober kept probing (${seen.length} attempts)`);
    assert.deepEqual(
      seen.filter((a) => a.open).map((a) => new Date(a.at).toISOString()),
      [],
      'connections that passed during the update',
    );
  });

  it(
    'deleting moat (its pods exit with --on-exit keep) leaves the rules enforced',
    { skip: !STANDALONE },
    async () => {
      const ds = await kubectl(['-n', MOAT_NS, 'get', 'ds', MOAT_DS, '-o', 'json']);
      const onExit = /--on-exit=(\w+)/.exec(ds)?.[1] ?? 'keep';
      assert.equal(onExit, 'keep', 'the DaemonSet keeps the table on exit');
      const t0 = Date.now();
      await kubectl(['-n', MOAT_NS, 'delete', 'ds', MOAT_DS, '--wait=true', '--timeout=120s']);
      await until('moat pods gone', async () =>
        (await kubectl(['-n', MOAT_NS, 'get', 'pods', '-o', 'name']))
          .split('\n')
          .every((l) => !l.includes(MOAT_DS)),
      );
      await sleep(3000);
      const seen = await attempts(t0);
      assert.ok(seen.length > 20, `the prober kept probing (${seen.length} attempts)`);
      assert.deepEqual(
        seen.filter((a) => a.open).length,
        0,
        'connections that passed after moat was deleted',
      );
      // Put it back as it was (without its server-side fields).
      const obj = JSON.parse(ds) as { metadata: Record<string, unknown>; status?: unknown };
      delete obj.status;
      obj.metadata = {
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        labels: obj.metadata.labels,
      };
      await kubectl(['apply', '-f', '-'], JSON.stringify(obj));
      await moatReady();
    },
  );
});
