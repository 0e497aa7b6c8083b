// One long-lived `nft -i` for incremental transactions. Why not a `nft -f` per change: when a
// transaction deletes anything (a `flush chain`, an element), the kernel frees it after an RCU
// grace period, and closing the nfnetlink socket waits for that (nft_rcv_nl_event flushes the
// destroy work on NETLINK_URELEASE): 10-20 ms per `nft -f` process on this machine, on top of its
// start. A socket that stays open never waits. Each input line of `nft -i` is one
// nft_run_cmd_from_buffer call: one atomic transaction, so a script's commands go on one line,
// joined by `;` (the grammar's other statement separator).
//
// After each line a sentinel (`moat_sync_N`, a syntax error that never reaches the kernel) marks
// where the answer ends: nft prints nothing on success and errors only, and stderr is merged
// into stdout so the order holds. nft -i keeps every line in its editline history (memory, and
// `$HOME/.nft.history` on exit: HOME is /dev/null, so that write fails); the process is replaced
// after `maxBytes` of input. Editline reads a line about 1 us per byte, slower than `nft -f` above
// ~20 KiB: the applier sends larger scripts to `nft -f`.
import { spawn, type ChildProcess } from 'node:child_process';
import { holdChild, inNetns, type CommandResult } from './runner.js';

/** What DataplaneApplier needs of a session (tests pass a fake). */
export interface NftBatcher {
  /**
   * Runs the script as one transaction: code 0 when nft accepted it, 1 with nft's errors in
   * stderr. Rejects (NftSessionError) when the session itself failed; the transaction may or may
   * not have been committed then.
   */
  apply(script: string): Promise<CommandResult>;
  /** Gets ready for the first transaction in the background (optional). */
  warm?(): void;
  close(): Promise<void>;
}

export interface NftSessionOptions {
  /** An `ip netns` name; absent: this process's namespace. */
  readonly netns?: string;
  /** How long one transaction may take, process start included (default 10 s); then it is killed. */
  readonly timeoutMs?: number;
  /** Input after which the process is replaced (editline keeps every line), default 8 MiB. */
  readonly maxBytes?: number;
  /** The command, default ['nft', '-i'] (tests). */
  readonly nft?: readonly string[];
}

export class NftSessionError extends Error {
  override readonly name = 'NftSessionError';
}

const SENTINEL = 'moat_sync_';

export class NftSession implements NftBatcher {
  private child: ChildProcess | undefined;
  private out = '';
  private wake: (() => void) | undefined;
  private written = 0;
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Set when nft cannot run a session at all (e.g. built without its CLI): no more tries. */
  private unusable: string | undefined;
  /** Processes started so far (1 + restarts). */
  starts = 0;
  private readonly where: string;

  constructor(private readonly opts: NftSessionOptions = {}) {
    this.where = `nft session${opts.netns === undefined ? '' : ` in netns ${opts.netns}`}`;
  }

  apply(script: string): Promise<CommandResult> {
    const line = toLine(script);
    const run = this.chain.then(() => this.exchange(line));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Starts the process now (in the background), so that the first transaction does not wait. */
  warm(): void {
    if (this.child === undefined && this.unusable === undefined && !this.closed) {
      this.apply('').catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    await this.stop(this.child);
  }

  private async exchange(line: string): Promise<CommandResult> {
    if (this.closed) throw new NftSessionError(`${this.where}: closed`);
    if (this.unusable !== undefined) throw new NftSessionError(`${this.where}: ${this.unusable}`);
    if (this.child !== undefined && this.written > (this.opts.maxBytes ?? 8 << 20)) {
      void this.stop(this.child);
      this.child = undefined;
    }
    let child = this.child;
    if (child === undefined) {
      child = this.start();
      // A sentinel alone first: proves this nft answers as expected before a transaction goes in.
      const hello = await this.roundTrip(child, '', true);
      if (hello !== '') throw this.fail(child, `unexpected output at start: ${hello.slice(0, 200)}`);
    }
    if (line === '') return { stdout: '', stderr: '', code: 0 };
    const text = await this.roundTrip(child, line, false);
    return text === ''
      ? { stdout: '', stderr: '', code: 0 }
      : { stdout: '', stderr: readable(text), code: 1 };
  }

  private roundTrip(child: ChildProcess, line: string, starting: boolean): Promise<string> {
    const token = `${SENTINEL}${++this.seq}`;
    // The sentinel's own error: "Error: syntax error, ...\nmoat_sync_N\n<carets>\n".
    const end = new RegExp(`(?:^|\\n)Error:[^\\n]*\\n${token}\\n[^\\n]*\\n`);
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    const input = `${line === '' ? '' : `${line}\n`}${token}\n`;
    this.written += input.length;
    holdChild(child, true);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        reject(this.fail(child, `no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        const m = end.exec(this.out);
        if (m !== null) {
          const text = this.out.slice(0, m.index + (m[0].startsWith('\n') ? 1 : 0));
          this.out = this.out.slice(m.index + m[0].length);
          this.wake = undefined;
          clearTimeout(timer);
          holdChild(child, false);
          resolve(text);
        } else if (this.child !== child) {
          this.wake = undefined;
          clearTimeout(timer);
          const why = `exited before it answered${this.out.trim() !== '' ? `: ${this.out.trim().slice(0, 300)}` : ''}`;
          if (starting) this.unusable = `nft -i ${why}`;
          reject(new NftSessionError(`${this.where}: ${why}`));
        }
      };
      this.wake = check;
      child.stdin!.write(input);
      check();
    });
  }

  private fail(child: ChildProcess, why: string): NftSessionError {
    child.kill('SIGKILL'); // its answers may be out of step now: the next transaction starts afresh
    if (this.child === child) this.child = undefined;
    return new NftSessionError(`${this.where}: ${why}`);
  }

  private start(): ChildProcess {
    const nft = this.opts.nft ?? ['nft', '-i'];
    const argv = inNetns(this.opts.netns, nft);
    // stderr into stdout, so that errors and sentinels arrive in the order nft wrote them.
    const child = spawn('sh', ['-c', 'exec "$@" 2>&1', 'sh', ...argv], {
      stdio: ['pipe', 'pipe', 'ignore'],
      env: { ...process.env, HOME: '/dev/null' },
    });
    this.child = child;
    this.starts++;
    this.written = 0;
    this.out = '';
    child.stdin.on('error', () => undefined); // EPIPE once it exits: reported by 'close'
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (this.child !== child) return;
      this.out += d;
      this.wake?.();
    });
    const gone = (): void => {
      if (this.child === child) this.child = undefined;
      this.wake?.();
    };
    child.on('error', gone);
    child.on('close', gone);
    holdChild(child, false);
    return child;
  }

  private stop(child: ChildProcess | undefined): Promise<void> {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin?.end();
    });
  }
}

/**
 * The script's commands on one line, `; `-separated. Only flat commands qualify (what the diff
 * writes: one command per line); a line that is a comment, or that opens a block it does not close
 * on the same line, is refused (RangeError) rather than guessed at.
 */
export function toLine(script: string): string {
  const cmds: string[] = [];
  for (const raw of script.split('\n')) {
    const l = raw.trim();
    if (l === '') continue;
    if (l.startsWith('#')) throw new RangeError(`nft session: a comment line is not sent: ${l.slice(0, 80)}`);
    if (!balanced(l)) throw new RangeError(`nft session: not a one-line command: ${l.slice(0, 80)}`);
    cmds.push(l);
  }
  return cmds.join('; ');
}

function balanced(l: string): boolean {
  let depth = 0;
  let quoted = false;
  for (const c of l) {
    if (c === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (c === '{') depth++;
    else if (c === '}' && --depth < 0) return false;
  }
  return depth === 0 && !quoted;
}

/**
 * nft's errors with the echoed input cut down: nft echoes the whole (long) line under each error,
 * with carets under the failing part; keep the message and the command the carets point into.
 */
export function readable(text: string): string {
  const lines = text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const echo = lines[i + 1];
    const carets = lines[i + 2];
    if (l.startsWith('Error:') && echo !== undefined && carets !== undefined && /^\s*\^+\s*$/.test(carets)) {
      const at = carets.indexOf('^');
      const start = echo.lastIndexOf('; ', at) + 1;
      const stop = echo.indexOf('; ', at);
      const cmd = echo.slice(start === 0 ? 0 : start + 1, stop === -1 ? undefined : stop).trim();
      out.push(`${l}: ${cmd.length > 300 ? `${cmd.slice(0, 300)}...` : cmd}`);
      i += 2;
    } else {
      out.push(l);
    }
  }
  return `${out.join('\n')}\n`;
}
