// The conntrack table through ctnetlink, from a child process kept alive between applies:
// `ip netns exec NS node ct-child.js` for another namespace (Node cannot setns), `node
// ct-child.js` for this one. The child, not this process, holds the netlink socket: netlink@0.3.0
// aborts its process on a receive-buffer overrun (flowlog/nflog-reader.ts). A child that died is
// started again on the next request; the applier falls back to conntrack-tools when one fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { CtEntry } from './conntrack.js';
import type { CtAnswer, CtRequest } from './ct-child.js';
import { holdChild, inNetns } from './runner.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./ct-child.js', import.meta.url));

/** What DataplaneApplier needs of a conntrack client (tests pass a fake). */
export interface ConntrackClient {
  /**
   * Every entry of the namespace, both families; with `addresses`, only those whose original or
   * reply source is one of them (the entries the cleanup judges; the rest is not worth sending).
   */
  list(addresses?: readonly string[]): Promise<CtEntry[]>;
  /** Deletes the entries by exact tuple: an errno per entry (0 deleted, 2 ENOENT already gone). */
  delete(entries: readonly CtEntry[]): Promise<number[]>;
  /** The namespace's own addresses, as `ip -j address` lists them (optional: else `ip` runs). */
  addresses?(): Promise<string[]>;
  close(): Promise<void>;
}

export interface NetlinkConntrackOptions {
  /** An `ip netns` name; absent: this process's namespace (still in a child). */
  readonly netns?: string;
  /** How long one request may take, child start included (default 10 s); then the child is killed. */
  readonly timeoutMs?: number;
  /** The command that starts the child, before the script (tests); default [node]. */
  readonly node?: readonly string[];
}

export class ConntrackClientError extends Error {
  override readonly name = 'ConntrackClientError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Waiting {
  readonly resolve: (a: CtAnswer) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NetlinkConntrack implements ConntrackClient {
  private child: ChildProcess | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private stderr = '';
  private closed = false;
  /** Children started so far (1 + restarts). */
  starts = 0;
  private readonly where: string;

  constructor(private readonly opts: NetlinkConntrackOptions = {}) {
    this.where = `conntrack netlink client${opts.netns === undefined ? '' : ` in netns ${opts.netns}`}`;
  }

  /** The running child's pid (with `ip netns exec` it is node's: ip execs it). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  async list(addresses?: readonly string[]): Promise<CtEntry[]> {
    const a = await this.request(addresses === undefined ? { op: 'list' } : { op: 'list', addresses });
    if (!('entries' in a)) throw new ConntrackClientError(`${this.where}: list: bad answer`);
    return a.entries;
  }

  async delete(entries: readonly CtEntry[]): Promise<number[]> {
    if (entries.length === 0) return [];
    const a = await this.request({ op: 'delete', entries });
    if (!('errnos' in a) || a.errnos.length !== entries.length)
      throw new ConntrackClientError(`${this.where}: delete: bad answer`);
    return a.errnos;
  }

  async addresses(): Promise<string[]> {
    const a = await this.request({ op: 'addresses' });
    if (!('addresses' in a)) throw new ConntrackClientError(`${this.where}: addresses: bad answer`);
    return a.addresses;
  }

  /** Ends the child (it exits when its stdin ends); a later request starts none. */
  close(graceMs = 2000): Promise<void> {
    this.closed = true;
    const c = this.child;
    if (c === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
      c.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      c.stdin?.end();
    });
  }

  private request(req: DistributiveOmit<CtRequest, 'id'>): Promise<CtAnswer> {
    if (this.closed) return Promise.reject(new ConntrackClientError(`${this.where}: closed`));
    const child = this.child ?? this.start();
    const id = this.nextId++;
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    return new Promise<CtAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new ConntrackClientError(`${this.where}: no answer in ${timeoutMs} ms`));
        child.kill('SIGKILL'); // answers may be out of step now: the next request starts afresh
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      holdChild(child, true);
      child.stdin!.write(`${JSON.stringify({ ...req, id })}\n`);
    }).then((a) => {
      if ('error' in a) throw new ConntrackClientError(`${this.where}: ${a.error}`, a.code);
      return a;
    });
  }

  private start(): ChildProcess {
    const node = this.opts.node ?? [process.execPath];
    const argv = inNetns(this.opts.netns, [...node, CHILD_SCRIPT]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    this.stderr = '';
    child.stdin.on('error', () => undefined); // EPIPE once it exits: reported by 'close'
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    createInterface({ input: child.stdout }).on('line', (text) => {
      let a: CtAnswer;
      try {
        a = JSON.parse(text) as CtAnswer;
      } catch {
        return;
      }
      const w = this.waiting.get(a.id);
      if (w === undefined) return;
      this.waiting.delete(a.id);
      clearTimeout(w.timer);
      if (this.waiting.size === 0) holdChild(child, false);
      w.resolve(a);
    });
    const gone = (why: string): void => {
      if (this.child === child) this.child = undefined;
      const tail = this.stderr.trim();
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer);
        w.reject(new ConntrackClientError(`${this.where}: the child ${why}${tail ? `: ${tail}` : ''}`));
      }
      this.waiting.clear();
    };
    child.on('error', (e) => gone(`could not start (${e.message})`));
    child.on('close', (code, signal) => gone(`exited (${signal ?? `exit ${code}`})`));
    return child;
  }
}
