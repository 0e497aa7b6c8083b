// The agent's flow-log service: an NFLOG reader (in this namespace or, in labs, another one) feeds
// the FlowLogger; records go to the sinks (the agent's log, a rotating file) and to /flows
// subscribers. Readers are injected: this file opens no socket itself.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Ruleset } from '../dataplane/model.js';
import type { Snapshot } from '../model/types.js';
import type { PacketEnds } from './attribute.js';
import { FLOWS_CONTROL_PARAMS, FlowFilterError, matchesFlow, parseFlowFilter } from './filter.js';
import { FlowLogger } from './logger.js';
import { decodeIpPacket, type NflogPacket } from './nflog.js';
import type { FlowRecord } from './record.js';

export interface ReaderStats {
  /** NFLOG packet messages received. */
  readonly received: number;
  readonly decoded: number;
  readonly undecodable: number;
  /** Socket overruns (ENOBUFS): records the kernel could not deliver; each counts one event. */
  readonly lost: number;
}

/** What the service needs of an NFLOG reader (NflogReader, NetnsNflogReader). */
export interface PacketReader {
  on(event: 'packet', listener: (p: NflogPacket) => void): unknown;
  on(event: 'error', listener: (e: Error) => void): unknown;
  stats(): ReaderStats;
  close(): unknown;
}

export type FlowSink = (r: FlowRecord) => void;

export interface FlowServiceOptions {
  readonly node: string;
  readonly sinks: readonly FlowSink[];
  /** Reader errors (a child that died, a socket error); the service keeps going without records. */
  readonly onError?: (e: Error) => void;
  readonly recent?: number;
}

/** The packet's ends as a record needs them; undefined when the payload is not an IP packet. */
export function packetEnds(payload: Buffer): PacketEnds | undefined {
  const p = decodeIpPacket(payload);
  if (p === undefined) return undefined;
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

export class FlowService {
  readonly logger: FlowLogger;
  private reader: PacketReader | undefined;
  private undecoded = 0;

  constructor(readonly opts: FlowServiceOptions) {
    this.logger = new FlowLogger({ node: opts.node, ...(opts.recent !== undefined ? { recent: opts.recent } : {}) });
    for (const s of opts.sinks) this.logger.subscribe(s);
  }

  attach(reader: PacketReader): void {
    this.reader = reader;
    reader.on('packet', (p) => this.packet(p));
    reader.on('error', (e) => this.opts.onError?.(e));
  }

  /** Feeds one logged packet (the reader's event; tests call it directly). */
  packet(p: NflogPacket): void {
    const ends = packetEnds(p.payload);
    if (ends === undefined) {
      this.undecoded++;
      return;
    }
    this.logger.ingest({
      prefix: p.prefix,
      packet: ends,
      key: p.payload.toString('base64'),
      time: p.timestamp ?? new Date(),
    });
  }

  setGeneration(rs: Ruleset, s: Snapshot): void {
    this.logger.setGeneration(rs, s);
  }

  readerStats(): ReaderStats | undefined {
    return this.reader?.stats();
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
    this.logger.flush();
    await this.reader?.close();
    this.reader = undefined;
  }
}
