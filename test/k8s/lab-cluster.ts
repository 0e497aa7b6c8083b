// Shared by the real-apiserver lab tests (integration.test.ts, admin-integration.test.ts): the
// `moat agent` CLI as a child process enforcing a lab node, the cluster seeded as a kubelet would
// leave it (namespaces, the lab's Node, its pods with the lab's addresses), the snapshot rebuilt
// from what the API server holds (the admin kinds too, while their CRDs are served), and the check
// run after each change: the kernel's table is the compilation of that snapshot, and every probed
// cell is the reference evaluator's verdict on it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { TestContext } from 'node:test';

import { ClusterState } from '../../src/agent/cluster-state.js';
import {
  decodeApiObject,
  formatApiProblem,
  WATCHABLE,
  type WatchedKind,
} from '../../src/agent/k8s-decode.js';
import type { Lab } from '../../src/lab/lab.js';
import type { ContainerPort, Snapshot } from '../../src/model/types.js';
import { labAgentArgs } from '../support/agent.js';
import { kernelDiff } from '../support/kernel.js';
import {
  cellLabel,
  evaluateCell,
  flushConntrack,
  probeCells,
  type Cell,
  type Observation,
} from '../e2e/probe-util.js';
import { kubectl } from './access.js';
import type { Cluster } from './cluster.js';

// ---- the agent, as a child process

export interface AgentProc {
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  metricsPort(): Promise<number>;
}

/** `moat agent` on the lab's node with `--on-exit remove` and the given extra flags. */
export function startAgent(kubeconfig: string, lab: Lab, extra: readonly string[] = []): AgentProc {
  const proc = spawn(process.execPath, labAgentArgs(kubeconfig, lab, ['--on-exit', 'remove', ...extra]), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let resolvePort: (p: number) => void = () => undefined;
  const port = new Promise<number>((r) => (resolvePort = r));
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    try {
      const o = JSON.parse(line) as { msg?: string; metrics?: { port?: number } };
      if (o.msg === 'starting' && typeof o.metrics?.port === 'number') resolvePort(o.metrics.port);
    } catch {
      // not JSON
    }
  });
  createInterface({ input: proc.stderr }).on('line', (line) => lines.push(`stderr: ${line}`));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  return { proc, lines, exited, metricsPort: () => port };
}

/** Kills the agent if it still runs (SIGCONT first: it may be frozen). */
export async function killAgent(a: AgentProc | undefined): Promise<void> {
  if (a && a.proc.exitCode === null && a.proc.signalCode === null) {
    a.proc.kill('SIGCONT');
    a.proc.kill('SIGKILL');
    await a.exited;
  }
}

export async function metrics(a: AgentProc): Promise<string> {
  return (await fetch(`http://127.0.0.1:${await a.metricsPort()}/metrics`)).text();
}

/** moat_lists_total per kind (initial lists and relists). */
export async function listCounts(
  a: AgentProc,
  kinds: readonly WatchedKind[],
): Promise<Record<string, number>> {
  const text = await metrics(a);
  return Object.fromEntries(
    kinds.map((k) => [
      k,
      Number(new RegExp(`^moat_lists_total\\{kind="${k}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0),
    ]),
  );
}

// ---- the cluster as a kubelet and controllers would leave it

export interface LabPod {
  readonly ns: string;
  readonly name: string;
  readonly labels: Record<string, string>;
}

/**
 * Creates the namespaces (with `nsLabels`), the lab's Node (InternalIP: the lab node's addresses)
 * and the pods on it, their status written as the kubelet would (status subresource): Running, with
 * the addresses the lab pods really have.
 */
export async function seedCluster(
  c: Cluster,
  lab: Lab,
  pods: readonly LabPod[],
  ports: readonly ContainerPort[],
  nsLabels: Readonly<Record<string, Record<string, string>>> = {},
): Promise<void> {
  const k = (args: string[], stdin?: string) => kubectl(c, args, stdin);
  for (const name of [...new Set(pods.map((p) => p.ns))]) {
    await k(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: nsLabels[name] ?? {} },
      }),
    );
  }
  const node = lab.plan.node;
  await k(
    ['create', '-f', '-'],
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: node.name },
      spec: { podCIDR: node.podCIDRs[0], podCIDRs: node.podCIDRs },
    }),
  );
  await k([
    'patch',
    'node',
    node.name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({
      status: { addresses: node.addresses.map((address) => ({ type: 'InternalIP', address })) },
    }),
  ]);
  for (const p of pods) {
    const ips = lab.snapshot.pods.find((x) => x.namespace === p.ns && x.name === p.name)?.ips ?? [];
    assert.ok(ips.length > 0, `lab pod ${p.ns}/${p.name} has an address`);
    await k(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: p.name, namespace: p.ns, labels: p.labels },
        spec: {
          nodeName: lab.nodeName,
          containers: [
            {
              name: 'c',
              image: 'moat-test',
              ports: ports.map((x) => ({
                name: x.name,
                containerPort: x.containerPort,
                protocol: x.protocol,
              })),
            },
          ],
        },
      }),
    );
    await k([
      'patch',
      'pod',
      '-n',
      p.ns,
      p.name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } }),
    ]);
  }
}

// ---- what the API server holds, and what the kernel holds

interface CrdList {
  items: {
    metadata: { name: string };
    status?: { conditions?: { type: string; status: string }[] };
  }[];
}

/** `<resource>.<group>` of every kind the agent can watch that the API server serves now. */
async function servedResources(c: Cluster): Promise<{ kind: WatchedKind; resource: string }[]> {
  const crds = JSON.parse(await kubectl(c, ['get', 'crd', '-o', 'json'])) as CrdList;
  const established = new Set(
    crds.items
      .filter((x) => x.status?.conditions?.some((k) => k.type === 'Established' && k.status === 'True'))
      .map((x) => x.metadata.name),
  );
  return WATCHABLE.map((w) => ({
    kind: w.kind,
    resource: w.group === '' ? w.resource : `${w.resource}.${w.group}`,
  })).filter((r, i) => !WATCHABLE[i]!.discovered || established.has(r.resource));
}

export interface ApiSnapshotOptions {
  /**
   * Keys ("Kind key") of objects expected to be invalid, enforced as their kind's fail-closed
   * stand-in; every other object must decode cleanly.
   */
  readonly standIns?: readonly string[];
}

/**
 * The snapshot moat builds from everything the API server holds right now (read as admin): the
 * built-in kinds, and the admin kinds whose CRDs are established, each decoded at the version
 * the API server returned it in.
 */
export async function apiSnapshot(c: Cluster, opts: ApiSnapshotOptions = {}): Promise<Snapshot> {
  const state = new ClusterState();
  const standIns: string[] = [];
  for (const r of await servedResources(c)) {
    const list = JSON.parse(await kubectl(c, ['get', r.resource, '-A', '-o', 'json'])) as {
      items: { apiVersion?: string }[];
    };
    for (const item of list.items) {
      const d = decodeApiObject(r.kind, item, item.apiVersion);
      const id = `${r.kind} ${d.key}`;
      if (d.standIn === true) standIns.push(id);
      else assert.deepEqual(d.problems.map(formatApiProblem), [], `${id} decodes cleanly`);
      state.set(d);
    }
  }
  assert.deepEqual(standIns.sort(), [...(opts.standIns ?? [])].sort(), 'the invalid objects, as stand-ins');
  return state.snapshot();
}

// ---- the check after each change

export interface CheckResult {
  /** The snapshot the API server's objects make. */
  readonly want: Snapshot;
  /** Every cell, as the packets saw it (equal to the evaluator's verdict, or check() failed). */
  readonly seen: readonly Observation[];
}

export interface Checker {
  /** Waits for the kernel to hold what the API holds, then probes every cell against the evaluator. */
  check(st: TestContext, what: string, opts?: ApiSnapshotOptions): Promise<CheckResult>;
  /** How many checks passed. */
  readonly count: number;
}

export function checker(cluster: Cluster, lab: Lab, agent: AgentProc, cells: readonly Cell[]): Checker {
  let count = 0;
  return {
    get count() {
      return count;
    },
    async check(st, what, opts = {}) {
      const t1 = Date.now();
      const want = await apiSnapshot(cluster, opts);
      let diffs: string[] = [];
      for (let i = 0; i < 200; i++) {
        diffs = await kernelDiff(lab, want);
        if (diffs.length === 0) break;
        if (agent.proc.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(
        diffs,
        [],
        `${what}: the kernel's table is the compilation of the API's snapshot\n${agent.lines.slice(-20).join('\n')}`,
      );
      const converged = Date.now() - t1;
      await flushConntrack(lab);
      const expect = (x: Cell) => evaluateCell(want, x);
      const seen = await probeCells(lab, cells, { shouldPass: expect, concurrency: 24 });
      const wrong = seen
        .filter((o) => o.allowed !== expect(o.cell))
        .map(
          (o) =>
            `${cellLabel(o.cell)}: evaluator ${expect(o.cell) ? 'allows' : 'denies'}, packets ${o.detail}`,
        );
      const flipped = seen.filter((o) => o.flipped).map((o) => cellLabel(o.cell));
      assert.deepEqual(wrong, [], `${what}: probes vs the evaluator\nsnapshot: ${JSON.stringify(want)}`);
      const allowed = seen.filter((o) => o.allowed).length;
      count++;
      st.diagnostic(
        `${what}: converged in ${converged} ms; ${seen.length} cells probed, ${allowed} allowed${flipped.length > 0 ? `, passed only on retry: ${flipped.join(', ')}` : ''}`,
      );
      return { want, seen };
    },
  };
}

// ---- CRDs

/** Server-side applies CRD objects (YAML or JSON text) and waits until each is Established. */
export async function installCrds(
  c: Cluster,
  texts: readonly string[],
  names: readonly string[],
): Promise<void> {
  for (const text of texts) await kubectl(c, ['apply', '--server-side', '-f', '-'], text);
  for (const name of names) {
    await kubectl(c, ['wait', '--for=condition=Established', '--timeout=60s', `crd/${name}`]);
  }
}
