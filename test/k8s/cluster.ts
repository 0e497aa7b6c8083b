// A real etcd + kube-apiserver on 127.0.0.1 for integration tests, wrapping
// test/k8s/up.sh, down.sh, restart-apiserver.sh and compact.sh. The binaries
// are built explicitly by `bash test/k8s/build.sh`; tests call
// clusterSkipReason() first so unit runs never build Go.

import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CommandError } from '../../src/errors.js';

export interface Cluster {
  /** Path of the admin kubeconfig (client cert in group system:masters). */
  readonly kubeconfig: string;
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** The cluster's temp dir: pki/, logs, pid files, env. */
  readonly dir: string;
  /** Everything up.sh wrote to $dir/env (MOAT_K8S_*, KUBECONFIG, ETCD_PID...). */
  readonly env: Readonly<Record<string, string>>;
  /** Kills etcd and kube-apiserver and removes dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Restarts kube-apiserver with the same flags and port; resolves at /readyz. */
  restartApiserver(): Promise<void>;
  /**
   * Compacts etcd at its current revision and resolves to that revision.
   * Requests that reach etcd at an older resourceVersion then get 410 Gone.
   * With the watch cache on (the default), a watch is served from the cache
   * instead, so start the cluster with `{ watchCache: false }` or call
   * restartApiserver() after compact() to make old watches fail with 410.
   */
  compact(): Promise<number>;
  /** Runs kubectl with this cluster's admin kubeconfig. Never rejects. */
  kubectl(args: readonly string[], stdin?: string): Promise<KubectlResult>;
}

export interface KubectlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ClusterOptions {
  /** kube-apiserver --watch-cache (default true, as in a real cluster). */
  readonly watchCache?: boolean;
}

interface Layout {
  readonly scripts: string;
  readonly bin: string;
  readonly k8sVersion: string;
  /** The cache root (~/.cache/moat/k8s or $MOAT_K8S_CACHE). */
  readonly cache: string;
  /** versions.env */
  readonly versions: Readonly<Record<string, string>>;
}

/** Finds test/k8s (the scripts) from this file, whether run from src or dist. */
function layout(): Layout {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const scripts = join(dir, 'test', 'k8s');
    if (existsSync(join(scripts, 'up.sh')) && existsSync(join(scripts, 'versions.env'))) {
      const versions = parseEnv(readFileSync(join(scripts, 'versions.env'), 'utf8'));
      const k8sVersion = versions.K8S_VERSION;
      if (k8sVersion === undefined) throw new Error(`${scripts}/versions.env: no K8S_VERSION`);
      const home = process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
      const cache = process.env.MOAT_K8S_CACHE ?? join(home, 'moat', 'k8s');
      const bin = process.env.MOAT_K8S_BIN ?? join(cache, k8sVersion, 'bin');
      return { scripts, bin, k8sVersion, cache, versions };
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('test/k8s/up.sh not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** KEY=VALUE lines; '#' comments and blank lines ignored. */
export function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Why a real cluster cannot be started here, or undefined when it can. Use as
 * `test(name, { skip: clusterSkipReason() }, ...)`.
 */
export function clusterSkipReason(): string | undefined {
  const { bin, k8sVersion } = layout();
  const missing = ['kube-apiserver', 'etcd'].filter((b) => !isExecutable(join(bin, b)));
  if (missing.length > 0) {
    return (
      `${missing.join(' and ')} ${k8sVersion} not built in ${bin}: ` +
      'run `bash test/k8s/build.sh` first (see docs/k8s-testing.md)'
    );
  }
  const tools = ['kubectl', 'openssl', 'curl'].filter((t) => !onPath(t));
  if (tools.length > 0) return `${tools.join(', ')} not installed`;
  return undefined;
}

/** A network-policy-api release's CRDs, as test/k8s/build.sh copies them from the Go module cache. */
export interface NetpolApiCrds {
  readonly version: string;
  /** Directories holding policy.networking.k8s.io_*.yaml of each channel. */
  readonly standard: string;
  readonly experimental: string;
}

/**
 * The CRDs of the release pinned as `key` in versions.env (NETPOL_API_CNP_VERSION,
 * NETPOL_API_ANP_VERSION), or why they are not there.
 */
export function netpolApiCrds(
  key: 'NETPOL_API_CNP_VERSION' | 'NETPOL_API_ANP_VERSION',
): NetpolApiCrds | string {
  const l = layout();
  const version = l.versions[key];
  if (version === undefined) return `${l.scripts}/versions.env: no ${key}`;
  const dir = join(l.cache, 'crds', 'network-policy-api', version);
  if (!existsSync(join(dir, '.stamp'))) {
    return `network-policy-api ${version} CRDs not in ${dir}: run \`bash test/k8s/build.sh\` first`;
  }
  return { version, standard: join(dir, 'standard'), experimental: join(dir, 'experimental') };
}

function run(
  file: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      [...args],
      { env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.stdin !== undefined) child.stdin?.end(opts.stdin);
    else child.stdin?.end();
  });
}

async function script(
  l: Layout,
  name: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  const cmd = ['bash', join(l.scripts, name), ...args];
  const r = await run('bash', cmd.slice(1), env === undefined ? {} : { env });
  if (r.code !== 0) throw new CommandError(cmd, r.code, r.stderr);
  return r.stdout;
}

/** Starts etcd + kube-apiserver on loopback; call stop() when done. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const l = layout();
  const out = await script(l, 'up.sh', [], {
    ...process.env,
    MOAT_K8S_BIN: l.bin,
    MOAT_K8S_WATCH_CACHE: options.watchCache === false ? 'false' : 'true',
  });
  const env = parseEnv(out);
  const dir = env.MOAT_K8S_DIR;
  const kubeconfig = env.KUBECONFIG;
  const server = env.MOAT_K8S_SERVER;
  if (dir === undefined || kubeconfig === undefined || server === undefined) {
    throw new Error(`test/k8s/up.sh printed no MOAT_K8S_DIR/KUBECONFIG/MOAT_K8S_SERVER:\n${out}`);
  }

  // If the test process dies without stop(), do not leave daemons behind.
  const killAll = (): void => {
    for (const f of ['apiserver.pid', 'etcd.pid']) {
      try {
        process.kill(Number(readFileSync(join(dir, f), 'utf8').trim()), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killAll);

  let stopped = false;
  return {
    kubeconfig,
    server,
    dir,
    env,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', killAll);
      await script(l, 'down.sh', [dir]);
    },
    async restartApiserver() {
      await script(l, 'restart-apiserver.sh', [dir]);
    },
    async compact() {
      const rev = Number((await script(l, 'compact.sh', [dir])).trim());
      if (!Number.isSafeInteger(rev)) throw new Error(`compact.sh printed no revision`);
      return rev;
    },
    kubectl(args, stdin) {
      return run('kubectl', ['--kubeconfig', kubeconfig, ...args], {
        ...(stdin === undefined ? {} : { stdin }),
      });
    },
  };
}
