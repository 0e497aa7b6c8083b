// The moat DaemonSet's RBAC on a real API server (test/k8s cluster): render deploy/overlays/plain,
// apply its Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, mint a token for the
// ServiceAccount (TokenRequest API) and write a kubeconfig that holds only that token. Also a
// small raw HTTPS client (admin client certificate) for requests kubectl does not expose well.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import * as https from 'node:https';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { Cluster } from './cluster.js';

export type Obj = Record<string, unknown> & {
  kind: string;
  metadata: Record<string, unknown> & { name: string };
};

/** The repository root (this file runs from test/k8s or dist/test/k8s). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      readFileSync(join(dir, 'deploy', 'base', 'kustomization.yaml'));
      return dir;
    } catch {
      const up = dirname(dir);
      if (up === dir) throw new Error('deploy/base not found above ' + fileURLToPath(import.meta.url));
      dir = up;
    }
  }
}

function exec(file: string, args: readonly string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(stdin ?? '');
  });
}

/** kubectl with the cluster's admin kubeconfig; rejects with stderr on failure. */
export async function kubectl(c: Cluster, args: readonly string[], stdin?: string): Promise<string> {
  const r = await c.kubectl(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `kubectl kustomize deploy/overlays/plain`, as objects. */
export async function renderPlainOverlay(): Promise<Obj[]> {
  const text = await exec('kubectl', ['kustomize', join(repoRoot(), 'deploy', 'overlays', 'plain')]);
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const RBAC_KINDS = ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding'];

export interface Rbac {
  /** The ServiceAccount's namespace and name. */
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The objects applied (after `edit`). */
  readonly objects: readonly Obj[];
}

export interface RbacOptions {
  /**
   * Appended to the names of the ServiceAccount, ClusterRole and ClusterRoleBinding (and their
   * references), so that a test can install a modified copy beside the real one.
   */
  readonly suffix?: string;
  /** Changes the rendered ClusterRole (negative tests: take a permission away). */
  readonly editRole?: (role: Obj) => Obj;
}

/** Applies the overlay's RBAC objects (not the DaemonSet: nothing here would run it). */
export async function installRbac(c: Cluster, opts: RbacOptions = {}): Promise<Rbac> {
  const suffix = opts.suffix ?? '';
  const rendered = (await renderPlainOverlay()).filter((o) => RBAC_KINDS.includes(o.kind));
  const ns = rendered.find((o) => o.kind === 'Namespace');
  const sa = rendered.find((o) => o.kind === 'ServiceAccount');
  if (!ns || !sa) throw new Error('deploy/overlays/plain renders no Namespace or ServiceAccount');
  const objects = rendered.map((o): Obj => {
    if (o.kind === 'Namespace') return o;
    const renamed = { ...o, metadata: { ...o.metadata, name: o.metadata.name + suffix } };
    if (o.kind === 'ClusterRole') return opts.editRole ? opts.editRole(renamed) : renamed;
    if (o.kind === 'ClusterRoleBinding') {
      const b = renamed as Obj & { roleRef: { name: string }; subjects: { name: string }[] };
      return {
        ...b,
        roleRef: { ...b.roleRef, name: b.roleRef.name + suffix },
        subjects: b.subjects.map((s) => ({ ...s, name: s.name + suffix })),
      };
    }
    return renamed;
  });
  await kubectl(c, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  return {
    namespace: ns.metadata.name,
    serviceAccount: sa.metadata.name + suffix,
    objects,
  };
}

/**
 * A token for the ServiceAccount from the TokenRequest API (`kubectl create token`), and a
 * kubeconfig that authenticates with it alone (no client certificate).
 */
export async function serviceAccountKubeconfig(
  c: Cluster,
  rbac: Rbac,
): Promise<{ path: string; token: string }> {
  const token = (
    await kubectl(c, ['create', 'token', rbac.serviceAccount, '-n', rbac.namespace, '--duration=2h'])
  ).trim();
  const ca = c.env.MOAT_K8S_CA;
  if (ca === undefined) throw new Error('cluster env has no MOAT_K8S_CA');
  const path = join(c.dir, `${rbac.serviceAccount}.kubeconfig`);
  const kc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'moat-test', cluster: { server: c.server, 'certificate-authority': ca } }],
    users: [{ name: rbac.serviceAccount, user: { token } }],
    contexts: [{ name: 'sa', context: { cluster: 'moat-test', user: rbac.serviceAccount } }],
    'current-context': 'sa',
  };
  await writeFile(path, JSON.stringify(kc, null, 2), { mode: 0o600 });
  return { path, token };
}

/** Runs kubectl with another kubeconfig (e.g. the ServiceAccount's). Never rejects. */
export function kubectlAs(
  kubeconfig: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, ...args], (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  /** The API server's `Warning:` headers (299 "..."), message text only. */
  readonly warnings: readonly string[];
}

/** One request to the API server as admin (client certificate), JSON in and out. */
export function apiRequest(c: Cluster, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const env = c.env;
  const file = (k: string): Buffer => {
    const p = env[k];
    if (p === undefined) throw new Error(`cluster env has no ${k}`);
    return readFileSync(p);
  };
  const url = new URL(c.server + path);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: file('MOAT_K8S_CA'),
        cert: file('MOAT_K8S_ADMIN_CERT'),
        key: file('MOAT_K8S_ADMIN_KEY'),
        headers: {
          Accept: 'application/json',
          ...(payload !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const raw: string | string[] | undefined = res.headers.warning;
          const list: string[] = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          // Each header is `299 - "text"`; one header may join several with ", ".
          const warnings = list.flatMap((h: string) =>
            [...h.matchAll(/299 - "((?:[^"\\]|\\.)*)"/g)].map((m) => (m[1] ?? '').replace(/\\(.)/g, '$1')),
          );
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, warnings });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
