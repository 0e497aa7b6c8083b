// Entry script: reads one NFLOG group where it runs and writes JSON lines to stdout, for
// NetnsNflogReader (nflog-netns.ts). Node cannot change its network namespace, so the parent runs
//   ip netns exec NS node dist/src/flowlog/nflog-child.js --group G
// Lines, each one JSON object with `type`:
//   ready   {group, recvBuffer}                once the group is bound and configured
//   fatal   {message, code?}                   the group could not be bound (exit 1), bad
//                                              arguments (exit 2)
//   packet  LoggedPacket, with timestamp as epoch ms and payload as base64
//   stats   NflogStats                         every --stats-interval ms, and last on exit;
//                                              lostRecords includes lines dropped here while
//                                              the parent did not read (over 32 MiB queued)
//   error   {message, code?}                   a socket error; reading goes on
// It exits on SIGTERM or SIGINT, and when stdin ends (the parent is gone): an orphan would keep
// the group bound and the next reader out.
import { fstatSync } from 'node:fs';
import { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { NflogReader, type LoggedPacket, type NflogReaderOptions } from './nflog-reader.js';

/** A packet line as written: what JSON cannot carry, as text and numbers. */
export type PacketLine = Omit<LoggedPacket, 'timestamp' | 'payload'> & {
  readonly type: 'packet';
  readonly timestamp?: number;
  readonly payload: string;
};

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`--${name}: "${v}" is not a non-negative integer`);
  return Number(v);
}

/** At most this much output waits for the parent; packet lines past it are dropped, counted. */
const MAX_QUEUED = 32 << 20;

/**
 * Non-blocking stdout when it is a pipe (Node's own blocks on Linux): a parent that reads slowly
 * must not stop this process reading netlink, which would overrun the socket (and abort it).
 */
function openSink(): NodeJS.WritableStream & { writableLength: number } {
  const st = fstatSync(1);
  return st.isFIFO() || st.isSocket()
    ? new Socket({ fd: 1, readable: false, writable: true })
    : process.stdout;
}

async function main(): Promise<void> {
  const sink = openSink();
  sink.on('error', () => process.exit(1)); // EPIPE: the parent is gone
  const out: string[] = [];
  let flushing = false;
  let dropped = 0;
  // One write per burst: a batch of packets arrives in one datagram, in one tick.
  const write = (o: object, droppable = false): void => {
    if (droppable && sink.writableLength > MAX_QUEUED) {
      dropped++;
      return;
    }
    out.push(JSON.stringify(o) + '\n');
    if (flushing) return;
    flushing = true;
    setImmediate(() => {
      flushing = false;
      if (out.length > 0) sink.write(out.splice(0).join(''));
    });
  };
  const exit = (code: number): void => {
    sink.end(out.splice(0).join(''), () => process.exit(code));
  };

  let opts: NflogReaderOptions & { statsIntervalMs: number };
  try {
    const { values } = parseArgs({
      options: {
        group: { type: 'string' },
        'copy-range': { type: 'string' },
        'recv-buffer': { type: 'string' },
        'flush-timeout': { type: 'string' },
        'queue-threshold': { type: 'string' },
        'batch-bytes': { type: 'string' },
        'stats-interval': { type: 'string' },
      },
      strict: true,
    });
    const group = int('group', values.group);
    if (group === undefined) throw new Error('--group is required');
    const optional = {
      copyRange: int('copy-range', values['copy-range']),
      recvBuffer: int('recv-buffer', values['recv-buffer']),
      flushTimeoutMs: int('flush-timeout', values['flush-timeout']),
      queueThreshold: int('queue-threshold', values['queue-threshold']),
      batchBytes: int('batch-bytes', values['batch-bytes']),
    };
    opts = {
      group,
      statsIntervalMs: int('stats-interval', values['stats-interval']) ?? 1000,
      ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
    };
  } catch (e) {
    write({ type: 'fatal', message: `nflog-child: ${(e as Error).message}` });
    exit(2);
    return;
  }

  let reader: NflogReader;
  try {
    reader = await NflogReader.open(opts);
  } catch (e) {
    const err = e as Error & { code?: string };
    write({ type: 'fatal', message: err.message, ...(err.code === undefined ? {} : { code: err.code }) });
    exit(1);
    return;
  }

  reader.on('packet', (p) => {
    const { timestamp, payload, ...rest } = p;
    const line: PacketLine = {
      type: 'packet',
      ...rest,
      ...(timestamp === undefined ? {} : { timestamp: timestamp.getTime() }),
      payload: payload.toString('base64'),
    };
    write(line, true);
  });
  reader.on('error', (e: Error & { code?: string }) =>
    write({ type: 'error', message: e.message, ...(e.code === undefined ? {} : { code: e.code }) }),
  );
  const stats = (): object => {
    const s = reader.stats();
    return { type: 'stats', ...s, lostRecords: s.lostRecords + dropped };
  };
  const timer = setInterval(() => write(stats()), opts.statsIntervalMs);

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    await reader.close();
    write(stats());
    exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.stdin.on('end', () => void stop());
  process.stdin.on('error', () => void stop());
  process.stdin.resume();

  write({ type: 'ready', group: reader.group, recvBuffer: reader.recvBuffer });
}

await main();
