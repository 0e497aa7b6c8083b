// Pod attachments of this node, read from the container runtime's CNI result cache. libcni (used
// by containerd and CRI-O) writes one file per attachment, `<cacheDir>/results/<network>-<container
// ID>-<ifname>` (kind "cniCacheV1"), before the pod's containers start, and removes it on DEL. It
// names the host-side interfaces (the veth, and the bridge it joined) and the pod's addresses, so
// it is the binding of a bridge port to a pod: the one fact a bridged pod network (flannel's cni0)
// gives no other way. The files are written by the runtime as root, never by a pod.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatAddress, parseIP } from '../model/cidr.js';
import type { Attachment, Snapshot } from '../model/types.js';
import type { SnapshotSource, SourceSink } from './reconcile.js';
import { record } from '../model/json.js';

export const DEFAULT_CNI_RESULTS_DIR = '/var/lib/cni/results';

/**
 * One cached CNI result as an attachment, or a reason it is not one. Host-side interfaces are the
 * result's interfaces without a `sandbox`; addresses are every `ips[].address` (prefix dropped).
 */
export function parseCniResult(text: string, source: string): Attachment | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `${source}: not JSON: ${e instanceof Error ? e.message : String(e)}`;
  }
  const top = record(doc);
  if (top === undefined || top.kind !== 'cniCacheV1') return `${source}: not a cniCacheV1 record`;
  const result = record(top.result);
  if (result === undefined) return `${source}: no result`;
  const interfaces: string[] = [];
  let mac: string | undefined;
  for (const i of Array.isArray(result.interfaces) ? (result.interfaces as unknown[]) : []) {
    const r = record(i);
    if (r === undefined || typeof r.name !== 'string' || r.name === '') continue;
    if (typeof r.sandbox === 'string' && r.sandbox !== '') {
      // The pod's side: its MAC is what the pod's frames must carry.
      if (mac === undefined && typeof r.mac === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(r.mac)) {
        mac = r.mac.toLowerCase();
      }
      continue;
    }
    if (!interfaces.includes(r.name)) interfaces.push(r.name);
  }
  const ips: string[] = [];
  for (const i of Array.isArray(result.ips) ? (result.ips as unknown[]) : []) {
    const addr = record(i)?.address;
    if (typeof addr !== 'string') continue;
    const a = parseIP(addr.split('/')[0] ?? '');
    if (a === undefined) return `${source}: ips: invalid address ${JSON.stringify(addr)}`;
    const text = formatAddress(a);
    if (!ips.includes(text)) ips.push(text);
  }
  if (interfaces.length === 0) return `${source}: no host-side interface`;
  if (ips.length === 0) return `${source}: no address`;
  const args = new Map<string, string>();
  for (const kv of Array.isArray(top.cniArgs) ? (top.cniArgs as unknown[]) : []) {
    if (Array.isArray(kv) && typeof kv[0] === 'string' && typeof kv[1] === 'string') args.set(kv[0], kv[1]);
  }
  const ns = args.get('K8S_POD_NAMESPACE');
  const name = args.get('K8S_POD_NAME');
  return {
    interfaces,
    ips,
    ...(mac !== undefined ? { mac } : {}),
    ...(ns !== undefined && name !== undefined ? { pod: `${ns}/${name}` } : {}),
    source,
  };
}

export interface AttachmentSourceOptions {
  /** Rescan period (the safety net under fs.watch). Default 10 s; 0 turns it off. */
  readonly pollMs?: number;
  /** Delay after a watch event, so that a burst of files is one read. Default 5 ms. */
  readonly settleMs?: number;
  /** Files that are not attachments, once per file and content. */
  readonly onProblem?: (problem: string) => void;
  /** The directory does not exist (each time it goes missing). */
  readonly onMissing?: (dir: string) => void;
}

/**
 * Watches a CNI results directory and reports every change to the set of attachments. A missing
 * directory is an empty set (it appears with the first pod); reading never throws.
 */
export class CniAttachments {
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private key = '';
  private list: readonly Attachment[] | undefined;
  private readonly reported = new Set<string>();
  private onChange: ((a: readonly Attachment[] | undefined) => void) | undefined;

  constructor(
    readonly dir: string,
    private readonly opts: AttachmentSourceOptions = {},
  ) {}

  /**
   * The attachments as last read; undefined while the directory does not exist (no CNI result
   * cache on this node, or not mounted): then nobody knows which bridge port is whose.
   */
  get current(): readonly Attachment[] | undefined {
    return this.list;
  }

  /** Reads the directory once, then watches it; onChange gets every later change. */
  async start(onChange: (a: readonly Attachment[] | undefined) => void): Promise<void> {
    await this.read();
    this.onChange = onChange;
    this.watchDir();
    const every = this.opts.pollMs ?? 10_000;
    if (every > 0) {
      this.poll = setInterval(() => {
        if (this.watcher === undefined) this.watchDir();
        void this.rescan();
      }, every);
      this.poll.unref();
    }
  }

  private watchDir(): void {
    try {
      const w = watch(this.dir, () => this.poke());
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch {
      // Missing: the rescan watches it once it exists.
    }
  }

  private poke(): void {
    if (this.stopped) return;
    if (this.settle) clearTimeout(this.settle);
    this.settle = setTimeout(() => void this.rescan(), this.opts.settleMs ?? 5);
  }

  /** Reads again now (one read at a time); resolves when done. */
  rescan(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.read().finally(() => {
      this.reading = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.rescan();
      }
    });
    return this.reading;
  }

  private async read(): Promise<void> {
    let names: string[] | undefined;
    try {
      names = (await readdir(this.dir)).filter((n) => !n.startsWith('.')).sort();
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') names = [];
    }
    if (names === undefined) {
      if (this.key === 'missing' || this.stopped) return;
      this.key = 'missing';
      this.list = undefined;
      this.opts.onMissing?.(this.dir);
      this.onChange?.(undefined);
      return;
    }
    const out: Attachment[] = [];
    for (const n of names) {
      const path = join(this.dir, n);
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch {
        continue; // removed meanwhile (CNI DEL)
      }
      const a = parseCniResult(text, path);
      if (typeof a === 'string') {
        // Half-written files are read again at the next event; report each problem once.
        if (!this.reported.has(a)) {
          this.reported.add(a);
          this.opts.onProblem?.(a);
        }
        continue;
      }
      out.push(a);
    }
    const key = JSON.stringify(out.map((a) => [a.interfaces, a.ips, a.mac ?? '', a.pod ?? '']));
    if (key === this.key || this.stopped) return;
    this.key = key;
    this.list = out;
    this.onChange?.(out);
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poll) clearInterval(this.poll);
    if (this.settle) clearTimeout(this.settle);
    return this.reading ?? Promise.resolve();
  }
}

/**
 * A source whose snapshots carry this node's attachments: the inner source's newest snapshot is
 * passed on with the attachments as last read, and again whenever they change.
 */
export function withAttachments(inner: SnapshotSource, attachments: CniAttachments): SnapshotSource {
  let last: Snapshot | undefined;
  let sink: SourceSink | undefined;
  const emit = (): void => {
    if (last === undefined || sink === undefined) return;
    const a = attachments.current;
    sink.snapshot(a === undefined ? last : { ...last, attachments: a });
  };
  return {
    async start(s) {
      sink = s;
      await attachments.start(() => emit());
      await inner.start({
        snapshot: (snap) => {
          last = snap;
          emit();
        },
        error: (e) => s.error(e),
      });
    },
    async stop() {
      await inner.stop();
      await attachments.stop();
    },
  };
}
