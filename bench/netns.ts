// Throwaway namespaces for the benchmarks: every name starts with moat-bench-, everything is
// removed by name in cleanup(), which also runs on SIGINT/SIGTERM and on failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface Sh {
  (argv: readonly string[], input?: string): string;
}

/** Runs argv synchronously; throws with stderr on failure. */
export const sh: Sh = (argv, input) => {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: input ?? '', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(
      `${argv.join(' ').slice(0, 200)}: exit ${r.status}: ${r.stderr.toString().slice(0, 500)}`,
    );
  }
  return r.stdout.toString();
};

export class BenchNetns {
  readonly id = randomBytes(3).toString('hex');
  private readonly netns: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly onSignal = () => {
    this.cleanup();
    process.exit(130);
  };

  constructor() {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  name(role: string): string {
    return `moat-bench-${this.id}-${role}`;
  }

  add(role: string): string {
    const n = this.name(role);
    sh(['ip', 'netns', 'add', n]);
    this.netns.push(n);
    sh(['ip', 'netns', 'exec', n, 'ip', 'link', 'set', 'lo', 'up']);
    return n;
  }

  /** A background process inside a namespace, killed by cleanup(). */
  spawnIn(netns: string, argv: readonly string[]): ChildProcess {
    const c = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(c);
    return c;
  }

  cleanup(): void {
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGKILL');
    // Deleting a namespace removes its veth ends (and so their peers).
    for (const n of this.netns.splice(0)) spawnSync('ip', ['netns', 'delete', n]);
    process.removeListener('SIGINT', this.onSignal);
    process.removeListener('SIGTERM', this.onSignal);
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
