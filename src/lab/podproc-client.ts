// The parent's side of a pod process: spawn it in the pod's namespace, send jobs, match answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Job, JobResult, PodProcConfig } from './podproc.js';

const SCRIPT = fileURLToPath(new URL('./podproc.js', import.meta.url));

type JobBody = Job extends infer J ? (J extends { id: number } ? Omit<J, 'id'> : never) : never;

export class PodProcess {
  private nextId = 1;
  private readonly pending = new Map<number, (r: JobResult) => void>();
  private exited = false;
  private stderr = '';

  private constructor(
    readonly netns: string,
    private readonly child: ChildProcess,
  ) {}

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Starts the process and waits until every port listens. */
  static start(netns: string, cfg: PodProcConfig, startTimeoutMs = 15000): Promise<PodProcess> {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, SCRIPT, JSON.stringify(cfg)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const proc = new PodProcess(netns, child);
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        fail(`did not start within ${startTimeoutMs} ms`);
      }, startTimeoutMs);
      const fail = (why: string): void => {
        if (ready) return;
        ready = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new Error(`lab pod process in ${netns}: ${why}${proc.stderr ? `: ${proc.stderr.trim()}` : ''}`),
        );
      };
      // Writing a job to a process that just died is EPIPE on stdin: answered via 'exit', not thrown.
      child.stdin?.on('error', () => undefined);
      child.stderr?.on('data', (d: Buffer) => {
        proc.stderr = (proc.stderr + d.toString()).slice(-4000);
      });
      child.on('error', (e) => fail(e.message));
      child.on('exit', (code, sig) => {
        proc.exited = true;
        for (const cb of proc.pending.values()) cb({ id: 0, ok: false, detail: 'pod process exited' });
        proc.pending.clear();
        fail(`exited (${code ?? sig})`);
      });
      const rl = createInterface({ input: child.stdout });
      rl.on('line', (line) => {
        let msg: JobResult & { ready?: boolean; fatal?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.fatal !== undefined) return fail(msg.fatal);
        if (msg.ready === true) {
          ready = true;
          clearTimeout(timer);
          resolve(proc);
          return;
        }
        const cb = proc.pending.get(msg.id);
        proc.pending.delete(msg.id);
        cb?.(msg);
      });
    });
  }

  request(job: JobBody): Promise<JobResult> {
    if (this.exited) return Promise.resolve({ id: 0, ok: false, detail: 'pod process exited' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.stdin!.write(JSON.stringify({ ...job, id }) + '\n');
    });
  }

  /** Closes stdin (the process exits on EOF); kills it if it lingers. */
  stop(graceMs = 2000): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.stdin!.end();
    });
  }
}
