// Reads one NFLOG group over a netlink socket in this process's network namespace: binds the
// group, sets the copy range, and emits each logged packet decoded.
//
// netlink@0.3.0 aborts the process (SIGABRT, "Error in native callback") when the socket's
// receive buffer overruns: libuv reports the pending ENOBUFS as a poll error and the addon throws
// from native code while building that error. A callback that throws into it aborts it the same
// way, so nothing here lets an exception reach it. Where losing the process matters, read in a
// child (nflog-netns.ts), where the abort is an 'error' event.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { MoatError } from '../errors.js';
import {
  decodeIpPacket,
  decodeNetlinkAck,
  decodeNflogPacket,
  encodeNflogConfig,
  NETLINK_NETFILTER,
  NFLOG_PACKET_TYPE,
  NFULNL_CFG_F_SEQ,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  parseNetlinkBatch,
  type NetlinkMessage,
  type NflogConfigItem,
  type NflogPacket,
  type PacketInfo,
  type ParseErrors,
} from './nflog.js';
import { guarded } from '../netfilter/netlink.js';

/** A logged packet: the NFLOG attributes, and its headers when they could be decoded. */
export interface LoggedPacket extends NflogPacket {
  readonly ip: PacketInfo | undefined;
}

export interface NflogStats {
  /** NFLOG packet messages from the kernel. */
  readonly received: number;
  /** Received, with NFLOG attributes and IP header decoded. */
  readonly decoded: number;
  /**
   * Received, not decoded: emitted with `ip` undefined when only the IP header failed, dropped
   * when the NFLOG attributes did. received = decoded + undecodable.
   */
  readonly undecodable: number;
  /**
   * Receive-buffer overruns the socket reported (ENOBUFS). One overrun is one or more batches
   * the kernel dropped: it does not tell how many records; lostRecords does.
   */
  readonly lost: number;
  /**
   * Records the kernel numbered (NFULA_SEQ) that never arrived: gaps in the sequence. A child
   * reader (nflog-netns.ts) adds the records it dropped while its parent did not read.
   */
  readonly lostRecords: number;
  /** Datagrams that could not be framed, and messages of a type NFLOG does not send. */
  readonly malformed: number;
}

export interface NflogEvents {
  packet: [LoggedPacket];
  error: [Error];
  close: [];
}

/** What NflogReader and NetnsNflogReader share. */
export interface NflogSource extends EventEmitter<NflogEvents> {
  readonly group: number;
  stats(): NflogStats;
  close(): Promise<void>;
}

export interface NflogReaderOptions {
  readonly group: number;
  /** Bytes of each packet copied, from its IP header on (default 128: IPv6, options, TCP). */
  readonly copyRange?: number;
  /** SO_RCVBUF asked for (default 8 MiB); the kernel caps it at net.core.rmem_max, doubled. */
  readonly recvBuffer?: number;
  /** How long the kernel may hold a batch (default 100 ms; its own default is 1 s). */
  readonly flushTimeoutMs?: number;
  /** Send a batch at this many packets (the kernel's default: 100). */
  readonly queueThreshold?: number;
  /** A batch's buffer size, 4096..131072 (the kernel's default: 4096). */
  readonly batchBytes?: number;
  /** How long to wait for the kernel's answer to a config request (default 2 s). */
  readonly requestTimeoutMs?: number;
}

/** The part of RawNetlinkSocket the reader uses (tests pass a fake). */
export interface NetlinkSocket {
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): unknown;
  send(msg: Uint8Array, options?: undefined, callback?: (err?: Error) => void): void;
  close(): void;
  getRecvBufferSize(): number;
}

export interface NflogReaderDeps {
  readonly socket?: (opts: { recvBuffer: number }) => NetlinkSocket | Promise<NetlinkSocket>;
  /** Whether this process has CAP_NET_ADMIN, to tell the two causes of EPERM apart. */
  readonly hasNetAdmin?: () => boolean | undefined;
}

/** NFLOG could not be read: the group is taken, a setting was refused, the socket failed. */
export class NflogError extends MoatError {
  override readonly name = 'NflogError';
  constructor(
    message: string,
    /** The errno name (EPERM, ...) when the kernel refused a request. */
    readonly code?: string,
  ) {
    super(message);
  }
}

const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));
const EPERM = osConstants.errno.EPERM;
const EBUSY = osConstants.errno.EBUSY;
const CAP_NET_ADMIN = 12n;

function errnoName(n: number): string {
  return ERRNO_NAMES.get(n) ?? `errno ${n}`;
}

/** CAP_NET_ADMIN in this process's effective set; undefined when /proc does not say. */
export function hasNetAdmin(): boolean | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n : undefined;
  } catch {
    return undefined;
  }
}

function describe(item: NflogConfigItem): string {
  switch (item.kind) {
    case 'bind':
    case 'unbind':
      return item.kind;
    case 'mode':
      return `copy range ${item.copyRange}`;
    case 'flags':
      return `flags ${item.flags}`;
    case 'timeout':
      return `flush timeout ${item.ms} ms`;
    case 'qthresh':
      return `queue threshold ${item.packets}`;
    case 'nlbufsiz':
      return `batch size ${item.bytes}`;
  }
}

interface Pending {
  readonly resolve: (errno: number) => void;
  readonly timer: NodeJS.Timeout;
}

export class NflogReader extends EventEmitter<NflogEvents> implements NflogSource {
  private readonly counts = {
    received: 0,
    decoded: 0,
    undecodable: 0,
    lost: 0,
    lostRecords: 0,
    malformed: 0,
  };
  private readonly parseErrors: ParseErrors = { count: 0 };
  private readonly pending = new Map<number, Pending>();
  private nextRequestSeq = 1;
  /** The next NFULA_SEQ expected: the kernel numbers a new instance's records from 0. */
  private nextRecordSeq = 0;
  private closed = false;

  private constructor(
    readonly group: number,
    private readonly sock: NetlinkSocket,
    private readonly requestTimeoutMs: number,
  ) {
    super();
    sock.on(
      'message',
      guarded((buf: Buffer) => this.onDatagram(buf)),
    );
    sock.on(
      'error',
      guarded((err: Error & { code?: string }) => this.onSocketError(err)),
    );
  }

  /** Binds the group and configures it; rejects with an NflogError that says why not. */
  static async open(opts: NflogReaderOptions, deps: NflogReaderDeps = {}): Promise<NflogReader> {
    const recvBuffer = opts.recvBuffer ?? 8 << 20;
    let sock: NetlinkSocket;
    try {
      sock = await (deps.socket ?? defaultSocket)({ recvBuffer });
    } catch (e) {
      throw new NflogError(`NFLOG group ${opts.group}: no netlink socket: ${(e as Error).message}`);
    }
    const r = new NflogReader(opts.group, sock, opts.requestTimeoutMs ?? 2000);
    const settings: NflogConfigItem[] = [
      { kind: 'mode', copyRange: opts.copyRange ?? 128 },
      // Numbered records: a gap is records lost to an overrun, counted exactly.
      { kind: 'flags', flags: NFULNL_CFG_F_SEQ },
      { kind: 'timeout', ms: opts.flushTimeoutMs ?? 100 },
      ...(opts.queueThreshold === undefined
        ? []
        : [{ kind: 'qthresh', packets: opts.queueThreshold } as const]),
      ...(opts.batchBytes === undefined ? [] : [{ kind: 'nlbufsiz', bytes: opts.batchBytes } as const]),
    ];
    try {
      const errno = await r.request([{ kind: 'bind' }]);
      if (errno === EPERM || errno === EBUSY) {
        // EPERM: another socket holds the group (EBUSY: this one did), or we lack CAP_NET_ADMIN.
        const netAdmin = errno === EBUSY ? true : (deps.hasNetAdmin ?? hasNetAdmin)();
        throw new NflogError(
          netAdmin === false
            ? `NFLOG group ${opts.group}: binding needs CAP_NET_ADMIN`
            : `NFLOG group ${opts.group} is already bound by another process` +
                (netAdmin === undefined ? ' (or this process lacks CAP_NET_ADMIN)' : ''),
          errnoName(errno),
        );
      }
      if (errno !== 0)
        throw new NflogError(`NFLOG group ${opts.group}: bind: ${errnoName(errno)}`, errnoName(errno));
      for (const item of settings) {
        const e = await r.request([item]);
        if (e !== 0)
          throw new NflogError(`NFLOG group ${opts.group}: ${describe(item)}: ${errnoName(e)}`, errnoName(e));
      }
    } catch (e) {
      r.shut();
      throw e instanceof NflogError
        ? e
        : new NflogError(`NFLOG group ${opts.group}: ${(e as Error).message}`);
    }
    return r;
  }

  /** The receive buffer the kernel granted, in bytes. */
  get recvBuffer(): number {
    return this.sock.getRecvBufferSize();
  }

  stats(): NflogStats {
    return { ...this.counts };
  }

  /** Unbinds the group and closes the socket. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.request([{ kind: 'unbind' }]);
    } catch {
      // Closing the socket releases the group anyway.
    }
    this.shut();
  }

  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.resolve(-1);
    }
    this.pending.clear();
    this.sock.close();
    this.emit('close');
  }

  /** Sends one config request; resolves with the kernel's errno (0: done). */
  private request(items: readonly NflogConfigItem[]): Promise<number> {
    if (this.closed) return Promise.reject(new NflogError(`NFLOG group ${this.group}: the reader is closed`));
    const seq = this.nextRequestSeq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(
          new NflogError(
            `NFLOG group ${this.group}: no answer from the kernel in ${this.requestTimeoutMs} ms`,
          ),
        );
      }, this.requestTimeoutMs);
      this.pending.set(seq, { resolve, timer });
      this.sock.send(encodeNflogConfig(this.group, items, seq), undefined, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.pending.delete(seq);
        reject(new NflogError(`NFLOG group ${this.group}: send: ${err.message}`));
      });
    });
  }

  private onDatagram(buf: Buffer): void {
    const before = this.parseErrors.count;
    for (const msg of parseNetlinkBatch(buf, this.parseErrors)) {
      if (msg.type === NFLOG_PACKET_TYPE) this.onPacket(msg);
      else if (msg.type === NLMSG_ERROR) this.onAck(msg);
      else if (msg.type !== NLMSG_DONE && msg.type !== NLMSG_NOOP) this.counts.malformed++;
    }
    this.counts.malformed += this.parseErrors.count - before;
  }

  private onAck(msg: NetlinkMessage): void {
    const ack = decodeNetlinkAck(msg);
    const p = ack && this.pending.get(ack.seq);
    if (!ack || !p) {
      this.counts.malformed++;
      return;
    }
    this.pending.delete(ack.seq);
    clearTimeout(p.timer);
    p.resolve(ack.errno);
  }

  private onPacket(msg: NetlinkMessage): void {
    if (this.closed) return;
    this.counts.received++;
    const p = decodeNflogPacket(msg);
    if (!p) {
      this.counts.undecodable++;
      return;
    }
    if (p.seq !== undefined) {
      // Netlink keeps order: a forward jump is records dropped (a backward one cannot be).
      const gap = (p.seq - this.nextRecordSeq) >>> 0;
      if (gap < 0x80000000) this.counts.lostRecords += gap;
      this.nextRecordSeq = (p.seq + 1) >>> 0;
    }
    const ip = decodeIpPacket(p.payload);
    if (ip) this.counts.decoded++;
    else this.counts.undecodable++;
    // A copy: the view would keep the whole datagram alive as long as the packet.
    this.emit('packet', { ...p, payload: Buffer.from(p.payload), ip });
  }

  private onSocketError(err: Error & { code?: string }): void {
    if (this.closed) return;
    if (err.code === 'ENOBUFS') {
      this.counts.lost++;
      return;
    }
    this.emit('error', new NflogError(`NFLOG group ${this.group}: ${err.message}`, err.code));
  }
}

/** Loaded on first use: importing this module (or its types) does not load the native addon. */
async function defaultSocket(opts: { recvBuffer: number }): Promise<NetlinkSocket> {
  const { RawNetlinkSocket } = await import('netlink');
  return new RawNetlinkSocket(NETLINK_NETFILTER, {
    recvBufferSize: opts.recvBuffer,
    sendBufferSize: 1 << 16,
  });
}
