// The agent's flow-log service: an NFLOG reader (in this namespace or, in labs, another one) feeds
// the FlowLogger; records go to the sinks (the agent's log, a rotating file) and to /flows
// subscribers. Readers are injected: this file opens no socket itself.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Ruleset } from '../dataplane/model.js';
import type { Snapshot } from '../model/types.js';
import type { PacketEnds } from './attribute.js';
import { FLOWS_CONTROL_PARAMS, FlowFilterError, matchesFlow, parseFlowFilter } from './filter.js';
import { FlowLogger } from './logger.js';
import type { PacketInfo } from './nflog.js';
import type { LoggedPacket, NflogSource, NflogStats } from './nflog-reader.js';
import type { FlowRecord } from './record.js';

export type ReaderStats = NflogStats;

/** Opens the NFLOG reader (NetnsNflogReader: in a child, where an addon crash cannot reach us). */
export type OpenReader = () => Promise<NflogSource>;

export type FlowSink = (r: FlowRecord) => void;

export interface FlowServiceOptions {
  readonly node: string;
  readonly sinks: readonly FlowSink[];
  /** Reader errors (a child that died, an overrun); the service opens a new reader after reopenMs. */
  readonly onError?: (e: Error) => void;
  /** Delay before a failed reader is opened again. Default 1 s. */
  readonly reopenMs?: number;
  readonly recent?: number;
}

/** The packet's ends as a record needs them. */
export function packetEnds(p: PacketInfo): PacketEnds {
  return {
    family: p.family,
    protocol: p.protocolName,
    src: p.src,
    dst: p.dst,
    ...(p.srcPort !== undefined ? { srcPort: p.srcPort } : {}),
    ...(p.dstPort !== undefined ? { dstPort: p.dstPort } : {}),
    ...(p.icmp !== undefined ? { icmp: p.icmp } : {}),
    ...(p.tcpFlags !== undefined ? { tcpFlags: p.tcpFlags } : {}),
  };
}

const ZERO: NflogStats = { received: 0, decoded: 0, undecodable: 0, lost: 0, lostRecords: 0, malformed: 0 };

function add(a: NflogStats, b: NflogStats): NflogStats {
  return {
    received: a.received + b.received,
    decoded: a.decoded + b.decoded,
    undecodable: a.undecodable + b.undecodable,
    lost: a.lost + b.lost,
    lostRecords: a.lostRecords + b.lostRecords,
    malformed: a.malformed + b.malformed,
  };
}

export class FlowService {
  readonly logger: FlowLogger;
  private reader: NflogSource | undefined;
  /** Counters of the readers before this one (a reader that failed was replaced). */
  private past: NflogStats = ZERO;
  private undecoded = 0;
  private open: OpenReader | undefined;
  private closed = false;
  private reopenTimer: NodeJS.Timeout | undefined;
  /** The next reopen's delay: doubles while opening fails (up to a minute), reset by a success. */
  private backoff = 0;

  constructor(readonly opts: FlowServiceOptions) {
    this.logger = new FlowLogger({
      node: opts.node,
      ...(opts.recent !== undefined ? { recent: opts.recent } : {}),
    });
    for (const s of opts.sinks) this.logger.subscribe(s);
  }

  /** Opens the reader; when it fails later (an overrun kills its child), a new one is opened. */
  async start(open: OpenReader): Promise<void> {
    this.open = open;
    this.use(await open());
  }

  private use(reader: NflogSource): void {
    this.reader = reader;
    let gone = false;
    const lost = (e?: Error) => {
      if (gone) return;
      gone = true;
      if (e !== undefined) this.opts.onError?.(e);
      if (this.reader === reader) {
        this.past = add(this.past, reader.stats());
        this.reader = undefined;
      }
      if (!this.closed) this.scheduleReopen();
    };
    reader.on('packet', (p) => this.packet(p));
    reader.on('error', (e) => lost(e));
    reader.on('close', () => lost());
  }

  private scheduleReopen(): void {
    const open = this.open;
    if (open === undefined || this.reopenTimer !== undefined) return;
    this.reopenTimer = setTimeout(
      () => {
        this.reopenTimer = undefined;
        if (this.closed) return;
        open().then(
          (r) => {
            this.backoff = 0;
            if (this.closed) void r.close();
            else this.use(r);
          },
          (e: unknown) => {
            this.opts.onError?.(e instanceof Error ? e : new Error(String(e)));
            this.backoff = Math.min(Math.max(this.backoff * 2, (this.opts.reopenMs ?? 1000) * 2), 60_000);
            this.scheduleReopen();
          },
        );
      },
      this.backoff || (this.opts.reopenMs ?? 1000),
    );
    this.reopenTimer.unref();
  }

  /** Feeds one logged packet (the reader's event; tests call it directly). */
  packet(p: LoggedPacket): void {
    if (p.ip === undefined) {
      this.undecoded++;
      return;
    }
    this.logger.ingest({
      prefix: p.prefix,
      packet: packetEnds(p.ip),
      key: p.payload.toString('base64'),
      time: p.timestamp ?? new Date(),
    });
  }

  setGeneration(rs: Ruleset, s: Snapshot): void {
    this.logger.setGeneration(rs, s);
  }

  /** Every reader's counters so far; undefined before one was opened. */
  readerStats(): ReaderStats | undefined {
    if (this.open === undefined) return undefined;
    return this.reader !== undefined ? add(this.past, this.reader.stats()) : this.past;
  }

  /** Logged packets whose payload was not an IP packet this service could read. */
  get undecodedPayloads(): number {
    return this.undecoded;
  }

  /**
   * GET /flows?verdict=denied&namespace=x[&follow=true]: the recent records that match, as NDJSON;
   * with follow, the response stays open and streams every new match until the client leaves.
   */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/flows', 'http://agent');
    const params: Record<string, string[]> = {};
    for (const [k, v] of url.searchParams) (params[k] ??= []).push(...v.split(','));
    let filter;
    try {
      filter = parseFlowFilter(params, new Date(), { ignore: FLOWS_CONTROL_PARAMS });
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${e instanceof FlowFilterError || e instanceof Error ? e.message : 'bad filter'}\n`);
      return;
    }
    const follow = ['true', '1', ''].includes(url.searchParams.get('follow') ?? 'false');
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const r of this.logger.recent()) if (matchesFlow(filter, r)) res.write(`${JSON.stringify(r)}\n`);
    if (!follow || req.method === 'HEAD') {
      res.end();
      return;
    }
    const off = this.logger.subscribe((r) => {
      if (matchesFlow(filter, r)) res.write(`${JSON.stringify(r)}\n`);
    });
    res.on('close', off);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reopenTimer !== undefined) clearTimeout(this.reopenTimer);
    this.logger.flush();
    const r = this.reader;
    this.reader = undefined;
    if (r !== undefined) {
      this.past = add(this.past, r.stats());
      await r.close();
    }
  }
}
