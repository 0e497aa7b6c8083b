// `moat flows (-f FILE... | --agent URL) [filters] [-o compact|json|table] [--follow]`: flow records
// from the agent's NDJSON log files or from an agent's /flows endpoint, filtered and printed.
// The filters are src/flowlog/filter.ts's, forwarded to the agent and applied again here.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { get as httpGet, type IncomingMessage } from 'node:http';
import { get as httpsGet } from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { Option, type Command } from 'commander';
import { InputError, MoatError, UsageError } from '../../errors.js';
import { decodeFlowRecord } from '../../flowlog/decode.js';
import {
  filterToParams,
  FLOW_FILTER_KEYS,
  matchesFlow,
  parseFlowFilter,
  type FlowFilter,
} from '../../flowlog/filter.js';
import {
  FLOW_OUTPUTS,
  formatCompact,
  formatJson,
  formatTable,
  type FlowOutput,
} from '../../flowlog/format.js';
import type { FlowRecord } from '../../flowlog/record.js';
import { STDIN_NAME } from '../../model/load.js';
import { collectValues } from '../io.js';

export interface FlowsArgs {
  readonly filename: readonly string[];
  readonly agent?: string;
  readonly output: FlowOutput;
  readonly follow?: boolean;
  readonly verdict?: readonly string[];
  readonly direction?: readonly string[];
  readonly namespace?: readonly string[];
  readonly pod?: readonly string[];
  readonly from?: readonly string[];
  readonly to?: readonly string[];
  readonly port?: readonly string[];
  readonly protocol?: readonly string[];
  readonly policy?: readonly string[];
  readonly node?: readonly string[];
  readonly since?: string;
}

/** What the command reads from and writes to; the CLI passes the process's. */
export interface FlowsIO {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly now: Date;
  /** How often --follow looks for more of a file. */
  readonly pollMs: number;
}

/** One line of input: where it came from (FILE or URL) and its line number, from 1. */
interface Line {
  readonly where: string;
  readonly n: number;
  readonly text: string;
}

export function flowsFilter(a: FlowsArgs, now: Date): FlowFilter {
  const params: Record<string, string | readonly string[]> = {};
  for (const k of FLOW_FILTER_KEYS) {
    const v = a[k];
    if (v !== undefined && (typeof v === 'string' || v.length > 0)) params[k] = v;
  }
  return parseFlowFilter(params, now, { flagPrefix: '--' });
}

/** `http://host:port` (a path prefix is kept): the agent's base URL; /flows is appended. */
export function agentBase(text: string): URL {
  if (!/^https?:\/\//i.test(text)) {
    throw new UsageError(
      `--agent "${text}": expected an http:// or https:// URL, e.g. http://${text.replace(/^[a-z]+:\/\//i, '')}`,
    );
  }
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`--agent "${text}": not a URL; expected e.g. http://10.0.0.5:9809`);
  }
  if (u.search !== '' || u.hash !== '') {
    throw new UsageError(
      `--agent "${text}": give the agent's address only; filters are flags (--verdict ...)`,
    );
  }
  return u;
}

/** The request URL: BASE/flows?FILTERS[&follow=1]. */
export function flowsUrl(base: URL, f: FlowFilter, follow: boolean): URL {
  const u = new URL(base.href.replace(/\/*$/, '/flows'));
  const q = new URLSearchParams(filterToParams(f));
  if (follow) q.set('follow', '1');
  u.search = q.toString();
  return u;
}

export async function runFlows(a: FlowsArgs, io: FlowsIO): Promise<void> {
  const hasFiles = a.filename.length > 0;
  if (hasFiles === (a.agent !== undefined)) {
    throw new UsageError(
      hasFiles
        ? 'flows: give -f FILE or --agent URL, not both'
        : 'flows: give -f FILE (- for stdin) or --agent URL',
    );
  }
  if (a.output === 'table' && a.follow === true) {
    throw new UsageError(
      'flows: -o table prints when the input ends, which --follow never does: use -o compact or json',
    );
  }
  const filter = flowsFilter(a, io.now);
  const out = new Output(io.stdout);
  const table: FlowRecord[] = [];
  const lines =
    a.agent !== undefined
      ? agentLines(flowsUrl(agentBase(a.agent), filter, a.follow === true))
      : fileLines(a.filename, a.follow === true, io);
  for await (const line of lines) {
    if (line.text.trim() === '') continue;
    const r = decodeFlowRecord(line.text);
    if (typeof r === 'string') throw new InputError([], `${line.where}:${line.n}: ${r}`);
    if (!matchesFlow(filter, r)) continue;
    if (a.output === 'table') table.push(r);
    else await out.write(`${a.output === 'json' ? formatJson(r) : formatCompact(r)}\n`);
    if (out.closed) break;
  }
  // Several nodes' files read one after another: the table is in time order (stable; bad times last).
  if (a.output === 'table') {
    const key = (r: FlowRecord): number => {
      const t = Date.parse(r.time);
      return Number.isNaN(t) ? Number.MAX_VALUE : t;
    };
    await out.write(formatTable(table.sort((x, y) => key(x) - key(y))));
  }
  out.check();
}

/** stdout with backpressure; a closed pipe (`| head`) ends the command quietly. */
class Output {
  closed = false;
  private error: Error | undefined;
  constructor(private readonly stream: NodeJS.WritableStream) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      this.closed = true;
      if (e.code !== 'EPIPE') this.error = e;
    });
  }
  async write(s: string): Promise<void> {
    if (this.closed || this.stream.write(s)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        this.stream.off('error', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
      this.stream.on('error', done);
    });
  }
  check(): void {
    if (this.error !== undefined) throw new MoatError(`cannot write the output: ${this.error.message}`);
  }
}

/** Lines of a stream, the last one even without a newline; `\r\n` is a newline too. */
async function* streamLines(stream: AsyncIterable<string | Buffer>, where: string): AsyncGenerator<Line> {
  const dec = new StringDecoder('utf8');
  let partial = '';
  let n = 0;
  for await (const chunk of stream) {
    const parts = (partial + (typeof chunk === 'string' ? chunk : dec.write(chunk))).split('\n');
    partial = parts.pop() ?? '';
    for (const text of parts) yield { where, n: ++n, text: text.replace(/\r$/, '') };
  }
  partial += dec.end();
  if (partial !== '') yield { where, n: ++n, text: partial.replace(/\r$/, '') };
}

async function* fileLines(paths: readonly string[], follow: boolean, io: FlowsIO): AsyncGenerator<Line> {
  if (!follow) {
    for (const p of paths) {
      if (p === '-') yield* streamLines(io.stdin as AsyncIterable<Buffer>, STDIN_NAME);
      else yield* streamLines(await readable(p), p);
    }
    return;
  }
  // tail -f: stdin to its end first, then every file to its end, then whatever is appended to them.
  if (paths.includes('-')) yield* streamLines(io.stdin as AsyncIterable<Buffer>, STDIN_NAME);
  const followers = await Promise.all(paths.filter((p) => p !== '-').map((p) => Follower.open(p, io.stderr)));
  try {
    for (;;) {
      let any = false;
      for (const f of followers) {
        for (const line of await f.read()) {
          any = true;
          yield line;
        }
      }
      if (!any && followers.length === 0) return;
      if (!any) await sleep(io.pollMs);
    }
  } finally {
    await Promise.all(followers.map((f) => f.close()));
  }
}

async function readable(path: string): Promise<AsyncIterable<Buffer>> {
  try {
    if ((await stat(path)).isDirectory()) throw new InputError([], `cannot read ${path}: a directory`);
  } catch (e) {
    if (e instanceof MoatError) throw e;
    throw new InputError([], `cannot read ${path}: ${errText(e)}`);
  }
  return createReadStream(path);
}

/** A growing file, followed by name: truncated or replaced (rotated), it is read from the start. */
class Follower {
  private pos = 0;
  private n = 0;
  private partial = '';
  private dec = new StringDecoder('utf8');
  private readonly buf = Buffer.alloc(64 * 1024);

  private constructor(
    private readonly path: string,
    private fh: FileHandle,
    private ino: number,
    private readonly stderr: NodeJS.WritableStream,
  ) {}

  static async open(path: string, stderr: NodeJS.WritableStream): Promise<Follower> {
    try {
      const fh = await open(path, 'r');
      const st = await fh.stat();
      if (st.isDirectory()) {
        await fh.close();
        throw new InputError([], `cannot read ${path}: a directory`);
      }
      return new Follower(path, fh, st.ino, stderr);
    } catch (e) {
      if (e instanceof MoatError) throw e;
      throw new InputError([], `cannot read ${path}: ${errText(e)}`);
    }
  }

  /** The complete lines appended since the last call (a line is complete at its newline). */
  async read(): Promise<Line[]> {
    const out: Line[] = [];
    for (;;) {
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.pos);
      if (bytesRead === 0) break;
      this.pos += bytesRead;
      const parts = (this.partial + this.dec.write(this.buf.subarray(0, bytesRead))).split('\n');
      this.partial = parts.pop() ?? '';
      for (const text of parts) out.push({ where: this.path, n: ++this.n, text: text.replace(/\r$/, '') });
    }
    if (out.length === 0) await this.checkRotated();
    return out;
  }

  private async checkRotated(): Promise<void> {
    let st;
    try {
      st = await stat(this.path);
    } catch {
      return; // Removed: a rotation in progress; the old file is kept until the new one appears.
    }
    const replaced = st.ino !== this.ino;
    if (!replaced && st.size >= this.pos) return;
    this.stderr.write(
      `moat: ${this.path}: ${replaced ? 'replaced' : 'truncated'}; reading it from the start\n`,
    );
    if (replaced) {
      await this.fh.close();
      this.fh = await open(this.path, 'r');
      this.ino = (await this.fh.stat()).ino;
    }
    this.pos = 0;
    this.n = 0;
    this.partial = '';
    this.dec = new StringDecoder('utf8');
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** GET the agent's /flows and yield its NDJSON lines as they arrive. */
async function* agentLines(url: URL): AsyncGenerator<Line> {
  const where = `${url.origin}${url.pathname}`;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsGet : httpGet)(
      url,
      { headers: { accept: 'application/x-ndjson' } },
      resolve,
    );
    req.on('error', (e) => reject(new MoatError(`--agent: cannot get ${where}: ${errText(e)}`)));
  });
  try {
    if (res.statusCode !== 200) {
      let body = '';
      for await (const chunk of res as AsyncIterable<Buffer>) {
        body += chunk.toString('utf8');
        if (body.length > 4096) break;
      }
      const first = body.trim().split('\n')[0] ?? '';
      throw new MoatError(
        `--agent: ${where}: HTTP ${res.statusCode ?? '?'}${first !== '' ? `: ${first}` : ''}`,
      );
    }
    try {
      yield* streamLines(res as AsyncIterable<Buffer>, where);
    } catch (e) {
      if (e instanceof MoatError) throw e;
      throw new MoatError(`--agent: ${where}: the response broke off: ${errText(e)}`);
    }
  } finally {
    res.destroy();
  }
}

function errText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

export function registerFlows(program: Command): void {
  const list = (flag: string, what: string): [string, string, typeof collectValues, string[]] => [
    flag,
    `${what}; repeatable or comma-separated (any of)`,
    collectValues,
    [],
  ];
  program
    .command('flows')
    .description("flow records (allowed, denied, audit) from the agent's NDJSON logs or its /flows endpoint")
    .option('-f, --filename <file>', 'an NDJSON flow log, or - for stdin; repeatable', collectValues, [])
    .option('--agent <url>', "an agent's address, e.g. http://10.0.0.5:9809: GET URL/flows?FILTERS")
    .option(...list('--verdict <verdict>', 'allowed, denied or audit'))
    .option(...list('--direction <dir>', 'ingress or egress'))
    .option(...list('-n, --namespace <ns>', "either end's namespace"))
    .option(...list('--pod <pod>', 'either end: NAME or NS/NAME, a trailing * is a prefix (web-*)'))
    .option(...list('--from <end>', 'the source: NS/POD, NS/ (the whole namespace), an IP or a CIDR'))
    .option(...list('--to <end>', 'the destination: as --from'))
    .option(...list('--port <port>', "either end's port"))
    .option(...list('--protocol <proto>', 'tcp, udp, sctp, icmp or icmpv6 (any case)'))
    .option(
      ...list(
        '--policy <policy>',
        'a policy that took part: NAME, NS/NAME, KIND/NAME (AdminNetworkPolicy/x, anp/x)',
      ),
    )
    .option(...list('--node <node>', 'the node that logged the record'))
    .option('--since <when>', 'records from now minus a duration (5m, 500ms, 2h) or from an RFC 3339 time')
    .addOption(new Option('-o, --output <format>', 'output format').choices(FLOW_OUTPUTS).default('compact'))
    .option('--follow', 'keep reading: files as they grow (tail -f); the agent keeps the response open')
    .addHelpText(
      'after',
      '\nExactly one of -f and --agent. Different filters must all match; a filter given several values\n' +
        'matches any of them. Files are read one after another (in the order given); bad lines are errors\n' +
        'with FILE:LINE, blank lines are skipped. --agent forwards the filters as query parameters\n' +
        '(--since as the absolute time it means now; --follow as follow=1) and filters again here.\n' +
        '-o compact and json print each record as it arrives; -o table waits for the end of the input\n' +
        '(the files, or the agent closing the response), sorts by time, and cannot be used with --follow.\n' +
        'See docs/flows.md.',
    )
    .action(async (opts: FlowsArgs) => {
      await runFlows(opts, {
        stdin: process.stdin,
        stdout: process.stdout,
        stderr: process.stderr,
        now: new Date(),
        pollMs: 200,
      });
    });
}
