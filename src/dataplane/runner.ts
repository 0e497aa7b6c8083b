// Running external commands (nft, conntrack) without a shell: argv arrays, input on stdin.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code; null when the process died of a signal or could not be started. */
  readonly code: number | null;
}

export interface CommandRunner {
  run(argv: readonly string[], input?: string): Promise<CommandResult>;
}

/** Spawns argv[0] directly (no shell), pipes `input` to stdin. A missing binary is code null. */
export function localRunner(): CommandRunner {
  return {
    run(argv, input) {
      return new Promise((resolve) => {
        const [cmd, ...args] = argv;
        if (cmd === undefined) {
          resolve({ stdout: '', stderr: 'empty command', code: null });
          return;
        }
        const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let settled = false;
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        child.on('error', (e) => {
          if (settled) return;
          settled = true;
          resolve({ stdout: '', stderr: e.message, code: null });
        });
        child.on('close', (code) => {
          if (settled) return;
          settled = true;
          resolve({
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
            code,
          });
        });
        // EPIPE when the child exits early is reported through 'close'; ignore it here.
        child.stdin.on('error', () => undefined);
        child.stdin.end(input ?? '');
      });
    },
  };
}

/** argv run inside a network namespace, ['ip', 'netns', 'exec', netns, ...argv]; as is without one. */
export function inNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : ['ip', 'netns', 'exec', netns, ...argv];
}

/** Runs every command inside a network namespace: ['ip', 'netns', 'exec', netns, ...argv]. */
export function netnsRunner(netns: string, inner: CommandRunner = localRunner()): CommandRunner {
  return {
    run(argv, input) {
      return inner.run(inNetns(netns, argv), input);
    },
  };
}

/**
 * A long-lived child (and its pipes) keeps this process alive only while `on`: while a request
 * to it waits for an answer, not while it idles.
 */
export function holdChild(child: ChildProcess, on: boolean): void {
  const streams = [child.stdin, child.stdout, child.stderr] as unknown as (Socket | null)[];
  if (on) {
    child.ref();
    for (const s of streams) s?.ref();
  } else {
    child.unref();
    for (const s of streams) s?.unref();
  }
}
