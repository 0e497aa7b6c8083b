// ctnetlink over a netlink socket in this process's network namespace: dump the conntrack table,
// delete entries by exact tuple. Only ct-child.ts runs it: netlink@0.3.0 aborts its process when
// a socket's receive buffer overruns (see flowlog/nflog-reader.ts), and Node cannot setns.
import { constants as osConstants } from 'node:os';
import {
  decodeNetlinkAck,
  NETLINK_NETFILTER,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseNetlinkBatch,
  type NetlinkMessage,
  guarded,
} from '../netfilter/netlink.js';
import type { CtEntry } from './conntrack.js';
import { CT_GET_TYPE, CT_NEW_TYPE, decodeCtEntry, encodeCtDelete, encodeCtDump } from './ctnetlink.js';
import { decodeAddr, encodeAddrDump, NETLINK_ROUTE, RTM_NEWADDR } from './rtnl-addr.js';

/** The part of RawNetlinkSocket used here (tests pass a fake). */
export interface CtNetlinkSocket {
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): unknown;
  send(msg: Uint8Array, options?: undefined, callback?: (err?: Error) => void): void;
  close(): void;
}

/**
 * Deletes per datagram: the kernel handles a datagram's messages in one go and queues every
 * answer before the next is read, so this bounds what can pile up in the receive buffer
 * (an error answer carries the request: ~100 bytes, ~1 KiB of buffer each).
 */
export const DELETES_PER_DATAGRAM = 128;
/** The receive buffer of one read: a dump datagram is at most 32 KiB (netlink_dump). */
const RECV_BYTES = 64 << 10;

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

export function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}

export class CtError extends Error {
  override readonly name = 'CtError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

interface Pending {
  onMessage(msg: NetlinkMessage): void;
  fail(e: Error): void;
}

/** One netlink socket: requests one at a time, answers fed to the request that waits. */
class Channel {
  private seq = 1;
  private pending: Pending | undefined;
  /** One request at a time: answers are told apart by seq, but a dump must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  closed = false;

  constructor(
    private readonly sock: CtNetlinkSocket,
    private readonly timeoutMs: number,
    private readonly what: string,
  ) {
    sock.on(
      'message',
      guarded((buf: Buffer) => {
        for (const m of parseNetlinkBatch(buf)) this.pending?.onMessage(m);
      }),
    );
    sock.on(
      'error',
      guarded((err: Error & { code?: string }) =>
        this.pending?.fail(new CtError(`${this.what}: ${err.message}`, err.code)),
      ),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending?.fail(new CtError(`${this.what}: socket closed`));
    this.sock.close();
  }

  nextSeq(n: number): number {
    if (this.seq + n > 0x7fffffff) this.seq = 1;
    const s = this.seq;
    this.seq += n;
    return s;
  }

  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Sends `msg` and feeds every message received to `on` until it calls done. */
  exchange(
    msg: Buffer,
    on: (m: NetlinkMessage, done: (err: Error | undefined) => void) => void,
  ): Promise<void> {
    if (this.closed) return Promise.reject(new CtError(`${this.what}: socket closed`));
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending = undefined;
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () => finish(new CtError(`${this.what}: no answer from the kernel in ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      this.pending = { onMessage: (m) => on(m, finish), fail: finish };
      this.sock.send(msg, undefined, (err) => {
        if (err) finish(new CtError(`${this.what}: send: ${err.message}`));
      });
    });
  }
}

export type SocketFactory = (protocol: number) => CtNetlinkSocket;

export class CtSocket {
  private readonly ct: Channel;
  private route: Channel | undefined;

  private constructor(
    private readonly make: SocketFactory,
    private readonly timeoutMs: number,
  ) {
    this.ct = new Channel(make(NETLINK_NETFILTER), timeoutMs, 'ctnetlink');
  }

  static async open(
    opts: { timeoutMs?: number; recvBuffer?: number } = {},
    socket?: SocketFactory,
  ): Promise<CtSocket> {
    let make = socket;
    if (make === undefined) {
      // Loaded on first use: importing this module does not load the native addon.
      const { RawNetlinkSocket } = await import('netlink');
      make = (protocol) =>
        new RawNetlinkSocket(protocol, {
          recvBufferSize: opts.recvBuffer ?? 4 << 20,
          sendBufferSize: 1 << 20,
          // One read per datagram into a buffer of this size (no peek first); the kernel sizes
          // a dump's datagrams by the reader's buffer: 32 KiB of entries per read, not 4 KiB.
          messagePeeking: false,
          msgBufferSize: RECV_BYTES,
        });
    }
    return new CtSocket(make, opts.timeoutMs ?? 10_000);
  }

  close(): void {
    this.ct.close();
    this.route?.close();
  }

  /**
   * Every entry of this netns, both families, in one dump (one walk of the hash table); with
   * `addresses`, only those whose original or reply source is one of them (what the cleanup
   * judges), so the rest is never sent on.
   */
  list(addresses?: readonly string[]): Promise<CtEntry[]> {
    const ch = this.ct;
    const only = addresses === undefined ? undefined : new Set(addresses);
    return ch.serial(() => {
      const seq = ch.nextSeq(1);
      const out: CtEntry[] = [];
      return ch
        .exchange(encodeCtDump(seq), (m, done) => {
          if (m.seq !== seq) return;
          if (m.type === CT_NEW_TYPE || m.type === CT_GET_TYPE) {
            const e = decodeCtEntry(m);
            if (e !== undefined && (only === undefined || only.has(e.orig.src) || only.has(e.reply.src)))
              out.push(e);
            // else: another family (bridge entries are not ours) or malformed: not judged
          } else if (m.type === NLMSG_DONE) {
            done(undefined);
          } else if (m.type === NLMSG_ERROR) {
            const errno = decodeNetlinkAck(m)?.errno ?? 0;
            done(new CtError(`ctnetlink dump: ${errnoName(errno)}`, errnoName(errno)));
          }
        })
        .then(() => out);
    });
  }

  /**
   * Deletes each entry by its original tuple (and id, zone); resolves with an errno per entry:
   * 0 deleted, ENOENT already gone (or another entry holds the tuple now), else why not.
   */
  delete(entries: readonly CtEntry[]): Promise<number[]> {
    const ch = this.ct;
    return ch.serial(async () => {
      const errnos = new Array<number>(entries.length).fill(0);
      for (let start = 0; start < entries.length; start += DELETES_PER_DATAGRAM) {
        const chunk = entries.slice(start, start + DELETES_PER_DATAGRAM);
        const base = ch.nextSeq(chunk.length);
        const last = base + chunk.length - 1;
        // Only the last asks for an ack: the kernel answers the others only when they fail, and
        // answers in order, so the last one's answer closes the datagram.
        const msg = Buffer.concat(chunk.map((e, i) => encodeCtDelete(e, base + i, i === chunk.length - 1)));
        await ch.exchange(msg, (m, done) => {
          if (m.type !== NLMSG_ERROR) return;
          const ack = decodeNetlinkAck(m);
          if (ack === undefined || ack.seq < base || ack.seq > last) return;
          errnos[start + ack.seq - base] = ack.errno;
          if (ack.seq === last) done(undefined);
        });
      }
      return errnos;
    });
  }

  /** The addresses of this netns's links (rtnetlink), as `ip -j address` shows them. */
  addresses(): Promise<string[]> {
    const ch = (this.route ??= new Channel(this.make(NETLINK_ROUTE), this.timeoutMs, 'rtnetlink'));
    return ch.serial(() => {
      const seq = ch.nextSeq(1);
      const out: string[] = [];
      return ch
        .exchange(encodeAddrDump(seq), (m, done) => {
          if (m.seq !== seq) return;
          if (m.type === RTM_NEWADDR) {
            const a = decodeAddr(m);
            if (a !== undefined) out.push(a);
          } else if (m.type === NLMSG_DONE) {
            done(undefined);
          } else if (m.type === NLMSG_ERROR) {
            const errno = decodeNetlinkAck(m)?.errno ?? 0;
            done(new CtError(`rtnetlink address dump: ${errnoName(errno)}`, errnoName(errno)));
          }
        })
        .then(() => out);
    });
  }
}
