// NflogReader in a child process, for a group in another network namespace (Node cannot setns:
// the child is `ip netns exec NS node nflog-child.js`), or in this one where a crash of the
// netlink addon must not take the caller down (see nflog-reader.ts). Same events and stats.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { inNetns } from '../dataplane/runner.js';
import type { PacketLine } from './nflog-child.js';
import {
  NflogError,
  type LoggedPacket,
  type NflogEvents,
  type NflogReaderOptions,
  type NflogSource,
  type NflogStats,
} from './nflog-reader.js';

const CHILD_SCRIPT = fileURLToPath(new URL('./nflog-child.js', import.meta.url));

export interface NetnsNflogReaderOptions extends NflogReaderOptions {
  /** An `ip netns` name; absent: this process's namespace, still read in a child. */
  readonly netns?: string;
  /** How often the child reports its counters (default 1 s). */
  readonly statsIntervalMs?: number;
  /** How long the child may take to bind the group (default 10 s). */
  readonly startTimeoutMs?: number;
}

const ZERO: NflogStats = { received: 0, decoded: 0, undecodable: 0, lost: 0, lostRecords: 0, malformed: 0 };

type Line =
  | PacketLine
  | ({ type: 'stats' } & NflogStats)
  | { type: 'ready'; group: number; recvBuffer: number }
  | { type: 'fatal' | 'error'; message: string; code?: string };

export class NetnsNflogReader extends EventEmitter<NflogEvents> implements NflogSource {
  /** The child's counters as of its last stats line. */
  private base: NflogStats = ZERO;
  /** Packet lines since that stats line. */
  private since = { received: 0, decoded: 0, undecodable: 0 };
  /** Lines from the child that are not JSON. */
  private badLines = 0;
  private stderr = '';
  private recvBufferBytes = 0;
  private closing = false;
  private exited = false;
  private readonly where: string;

  private constructor(
    readonly group: number,
    readonly netns: string | undefined,
    private readonly child: ChildProcess,
  ) {
    super();
    this.where = `NFLOG group ${group}${netns === undefined ? '' : ` in netns ${netns}`}`;
  }

  /** Starts the child and waits until it has bound the group; rejects with its reason. */
  static open(opts: NetnsNflogReaderOptions): Promise<NetnsNflogReader> {
    const args = [CHILD_SCRIPT, '--group', String(opts.group)];
    const flag = (name: string, v: number | undefined): void => {
      if (v !== undefined) args.push(`--${name}`, String(v));
    };
    flag('copy-range', opts.copyRange);
    flag('recv-buffer', opts.recvBuffer);
    flag('flush-timeout', opts.flushTimeoutMs);
    flag('queue-threshold', opts.queueThreshold);
    flag('batch-bytes', opts.batchBytes);
    flag('stats-interval', opts.statsIntervalMs);
    const argv = inNetns(opts.netns, [process.execPath, ...args]);
    // stdin is a pipe the child watches: when this process dies, the child sees EOF and exits.
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const r = new NetnsNflogReader(opts.group, opts.netns, child);
    return r.start(opts.startTimeoutMs ?? 10_000);
  }

  /** The child's pid (with `ip netns exec` it is node's: ip execs it). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The receive buffer the kernel granted the child, in bytes. */
  get recvBuffer(): number {
    return this.recvBufferBytes;
  }

  stats(): NflogStats {
    const b = this.base;
    const s = this.since;
    return {
      ...b,
      received: b.received + s.received,
      decoded: b.decoded + s.decoded,
      undecodable: b.undecodable + s.undecodable,
      malformed: b.malformed + this.badLines,
    };
  }

  /** Stops the child (it unbinds the group and reports its last counters). */
  close(graceMs = 3000): Promise<void> {
    if (this.exited) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      this.child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.kill('SIGTERM');
    });
  }

  private start(timeoutMs: number): Promise<NetnsNflogReader> {
    const child = this.child;
    return new Promise((resolve, reject) => {
      let started = false;
      const timer = setTimeout(
        () => fail(new NflogError(`${this.where}: the reader did not start in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const fail = (e: NflogError): void => {
        if (started) return;
        started = true;
        clearTimeout(timer);
        this.closing = true;
        child.kill('SIGKILL');
        reject(e);
      };
      child.stdin?.on('error', () => undefined); // EPIPE once it exits: reported by 'close'
      child.stderr?.on('data', (d: Buffer) => {
        this.stderr = (this.stderr + d.toString()).slice(-4000);
      });
      child.on('error', (e) => fail(new NflogError(`${this.where}: ${e.message}`)));
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (text) => {
        let line: Line;
        try {
          line = JSON.parse(text) as Line;
        } catch {
          this.badLines++;
          return;
        }
        switch (line.type) {
          case 'ready':
            this.recvBufferBytes = line.recvBuffer;
            started = true;
            clearTimeout(timer);
            resolve(this);
            return;
          case 'fatal':
            // The child's message already names the group (and says why).
            return fail(
              new NflogError(
                this.netns === undefined ? line.message : `${line.message} (netns ${this.netns})`,
                line.code,
              ),
            );
          case 'packet':
            return this.onPacket(line);
          case 'stats': {
            const { type: _, ...stats } = line;
            this.base = stats;
            this.since = { received: 0, decoded: 0, undecodable: 0 };
            return;
          }
          case 'error':
            this.emit(
              'error',
              new NflogError(
                `${line.message}${this.netns === undefined ? '' : ` (netns ${this.netns})`}`,
                line.code,
              ),
            );
            return;
        }
      });
      // 'close': the child has exited and its stdout is read to the end (the last stats line).
      child.on('close', (code, signal) => {
        this.exited = true;
        const why = signal ? `signal ${signal}` : `exit ${code}`;
        const tail = this.stderr.trim();
        if (!started) {
          fail(
            new NflogError(
              `${this.where}: the reader exited before binding (${why})${tail ? `: ${tail}` : ''}`,
            ),
          );
          return;
        }
        if (!this.closing) {
          const overrun = signal === 'SIGABRT' && tail.includes('Error in native callback');
          if (overrun) this.base = { ...this.base, lost: this.base.lost + 1 };
          const hint = overrun
            ? ': a receive-buffer overrun (ENOBUFS) aborts netlink@0.3.0; the kernel dropped records'
            : tail
              ? `: ${tail}`
              : '';
          this.emit(
            'error',
            new NflogError(`${this.where}: the reader died (${why})${hint}`, overrun ? 'ENOBUFS' : undefined),
          );
        }
        this.emit('close');
      });
    });
  }

  private onPacket(line: PacketLine): void {
    const { type: _, timestamp, payload, ip, ...rest } = line;
    const p: LoggedPacket = {
      ...rest,
      ip, // JSON drops an undefined one
      ...(timestamp === undefined ? {} : { timestamp: new Date(timestamp) }),
      payload: Buffer.from(payload, 'base64'),
    };
    this.since.received++;
    if (p.ip) this.since.decoded++;
    else this.since.undecodable++;
    this.emit('packet', p);
  }
}
