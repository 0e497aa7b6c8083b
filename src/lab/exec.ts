// Running `ip` and friends for the lab. Every command names its namespace explicitly (`ip -n NS`,
// `ip netns exec NS`): the lab never changes the host's own namespace.
import { execFile } from 'node:child_process';
import { CommandError } from '../errors.js';

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; throws CommandError when it fails. `input` is written to stdin. */
export function run(argv: readonly string[], input?: string): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('run: empty command'));
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const code = typeof err.code === 'number' ? err.code : null;
        reject(new CommandError(argv, code, stderr || err.message));
        return;
      }
      resolve({ stdout, stderr });
    });
    // A command that fails early closes its stdin (EPIPE): the failure is reported by its exit.
    child.stdin?.on('error', () => undefined);
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like run, but reports failure as a value (for best-effort teardown). */
export async function tryRun(argv: readonly string[]): Promise<boolean> {
  try {
    await run(argv);
    return true;
  } catch {
    return false;
  }
}

/** Runs `ip -n NS -batch -` with the given lines; one process for many changes. */
export function ipBatch(netns: string, lines: readonly string[]): Promise<ExecResult> {
  return run(['ip', '-n', netns, '-batch', '-'], lines.join('\n') + '\n');
}

/** Maps over items with at most `limit` promises in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
