// A snapshot source that watches the Kubernetes API: Pods, Namespaces, Nodes and NetworkPolicies
// through client-node's ListWatch informers. Objects arrive as the API server's raw JSON and are
// decoded by k8s-decode.ts into ClusterState (cluster-state.ts); the client library's types never
// go further than this file.
import * as http from 'node:http';
import * as https from 'node:https';
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { errorField, silentLog, type Log } from './log.js';
import type { SnapshotSource, SourceSink } from './reconcile.js';
import { ClusterState } from './cluster-state.js';
import {
  decodeApiObject,
  formatApiProblem,
  objectKey,
  RESOURCES,
  type Resource,
  type WatchedKind,
} from './k8s-decode.js';
import type { Snapshot } from '../model/types.js';
import { record } from '../model/json.js';

interface RawList {
  metadata: { resourceVersion?: string; continue?: string };
  items: KubernetesObject[];
}

class HttpStatusError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

async function getJson(kc: KubeConfig, path: string, timeoutMs: number): Promise<unknown> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server + path);
  const opts: https.RequestOptions = {};
  // The client's own authentication: tokens (refreshed from the service account file), client
  // certificates, exec plugins, CA, proxies.
  await kc.applyToHTTPSOptions(opts);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      url,
      { ...opts, method: 'GET', headers: { ...opts.headers, Accept: 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            let detail = text.slice(0, 200);
            try {
              const m = (JSON.parse(text) as { message?: unknown }).message;
              if (typeof m === 'string') detail = m;
            } catch {
              // not a Status object
            }
            reject(
              new HttpStatusError(res.statusCode ?? 0, `GET ${path}: HTTP ${res.statusCode}: ${detail}`),
            );
            return;
          }
          try {
            resolve(JSON.parse(text));
          } catch (e) {
            reject(new Error(`GET ${path}: invalid JSON: ${errorField(e)}`));
          }
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Lists a resource as raw JSON, page by page; an expired continue token restarts the list. */
export async function listRaw(
  kc: KubeConfig,
  path: string,
  pageSize = 500,
  timeoutMs = 60_000,
): Promise<RawList> {
  for (let attempt = 0; ; attempt++) {
    const items: KubernetesObject[] = [];
    let cont = '';
    let rv = '';
    try {
      for (;;) {
        const q = new URLSearchParams({ limit: String(pageSize) });
        if (cont !== '') q.set('continue', cont);
        const page = record(await getJson(kc, `${path}?${q.toString()}`, timeoutMs)) ?? {};
        const md = record(page.metadata) ?? {};
        if (Array.isArray(page.items)) items.push(...(page.items as KubernetesObject[]));
        rv = typeof md.resourceVersion === 'string' ? md.resourceVersion : rv;
        cont = typeof md.continue === 'string' ? md.continue : '';
        if (cont === '') break;
      }
      return { metadata: { resourceVersion: rv }, items };
    } catch (e) {
      // "410 Gone: the continue token is too old": list again from the start.
      if (e instanceof HttpStatusError && e.statusCode === 410 && attempt < 3) continue;
      throw e;
    }
  }
}

/**
 * The client's Watch, paced: a watch that ends soon after it started is not reopened at once, so
 * a server that closes every watch cannot make the agent spin.
 */
class PacedWatch extends Watch {
  private lastStart = 0;
  constructor(
    config: KubeConfig,
    private readonly minIntervalMs: number,
  ) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const wait = this.lastStart + this.minIntervalMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    this.lastStart = Date.now();
    return super.watch(path, queryParams, callback, done);
  }
}

// ---------------------------------------------------------------------------------------------
// The source.

export interface K8sSourceOptions {
  readonly kubeConfig: KubeConfig;
  readonly log?: Log;
  /** First retry delay after a failed list or watch; doubles up to maxRetryMs. Default 500 ms. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
  /** Period of the full resync (the snapshot is rebuilt and handed over again); 0: off. Default 5 min. */
  readonly resyncMs?: number;
  /** Ask for watch bookmarks, so a restarted watch resumes instead of relisting. Default true. */
  readonly bookmarks?: boolean;
  /** Minimum time between two watch starts of one resource. Default 200 ms. */
  readonly minWatchIntervalMs?: number;
  readonly listPageSize?: number;
  /** Called for every watch/list error (metrics). */
  readonly onWatchError?: (kind: WatchedKind, err: unknown) => void;
  /** Called after every list (the initial one and relists). */
  readonly onList?: (kind: WatchedKind, items: number) => void;
}

interface Watched {
  readonly res: Resource;
  readonly informer: ListWatch<KubernetesObject>;
  synced: boolean;
  backoff: number;
  restart?: NodeJS.Timeout;
  /** Failures since the last list, event, or restart that stayed up (see WATCH_HEALTHY_MS). */
  failures: number;
  lastError?: string;
  healthy?: NodeJS.Timeout;
}

/** A restarted watch that raised no error for this long counts as working again. */
const WATCH_HEALTHY_MS = 10_000;
/** Consecutive failures after which a resource's watch is reported as broken (readiness). */
const WATCH_BROKEN_AFTER = 3;

export class K8sSource implements SnapshotSource {
  readonly state = new ClusterState();
  private readonly watched: Watched[] = [];
  private sink: SourceSink | undefined;
  private stopped = false;
  private emitScheduled = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private dirty = false;
  /** Time of the oldest change not yet handed over (for event -> enforced latency). */
  private dirtySince: number | undefined;
  private readonly eventTimes = new WeakMap<Snapshot, number>();
  private readonly log: Log;
  private emitted = 0;
  private lists = new Map<WatchedKind, number>();

  constructor(private readonly opts: K8sSourceOptions) {
    this.log = opts.log ?? silentLog;
  }

  /** True once every resource has been listed: before that no snapshot is handed over. */
  get synced(): boolean {
    return this.watched.length > 0 && this.watched.every((w) => w.synced);
  }

  /**
   * Resources whose list or watch keeps failing (e.g. 403 Forbidden: a ClusterRole without `watch`).
   * The last state stays enforced, but changes of that kind are not seen: the agent is not ready.
   */
  brokenWatches(): { kind: WatchedKind; error: string }[] {
    return this.watched
      .filter((w) => w.failures >= WATCH_BROKEN_AFTER)
      .map((w) => ({ kind: w.res.kind, error: w.lastError ?? 'unknown error' }));
  }

  /** Snapshots handed over so far. */
  get emittedCount(): number {
    return this.emitted;
  }

  /** Number of lists done per kind (the initial list counts; relists after 410 Gone add up). */
  listCount(kind: WatchedKind): number {
    return this.lists.get(kind) ?? 0;
  }

  /** When the oldest change folded into this snapshot was received (ms since the epoch). */
  eventTime(s: Snapshot): number | undefined {
    return this.eventTimes.get(s);
  }

  start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    const kc = this.opts.kubeConfig;
    for (const res of RESOURCES) {
      const listFn = async () => {
        const list = await listRaw(kc, res.path, this.opts.listPageSize ?? 500);
        // The informer stores the items right after this promise resolves (same microtask run);
        // the resource counts as listed from the next macrotask on.
        setImmediate(() => this.listed(w, list.items.length));
        return list;
      };
      const watchPath = this.opts.bookmarks === false ? res.path : `${res.path}?allowWatchBookmarks=true`;
      const informer = new ListWatch<KubernetesObject>(
        watchPath,
        new PacedWatch(kc, this.opts.minWatchIntervalMs ?? 200),
        listFn,
        false,
      );
      const w: Watched = { res, informer, synced: false, backoff: this.opts.retryMs ?? 500, failures: 0 };
      informer.on('add', (o) => this.upsert(w, o));
      informer.on('update', (o) => this.upsert(w, o));
      informer.on('delete', (o) => this.remove(w, o));
      informer.on('error', (err) => this.failed(w, err));
      this.watched.push(w);
    }
    for (const w of this.watched) this.startInformer(w);
    const every = this.opts.resyncMs ?? 300_000;
    if (every > 0) {
      this.resyncTimer = setInterval(() => this.resync(), every);
      this.resyncTimer.unref();
    }
    return Promise.resolve();
  }

  private startInformer(w: Watched): void {
    if (this.stopped) return;
    w.informer.start().catch((e: unknown) => this.failed(w, e));
    clearTimeout(w.healthy);
    w.healthy = setTimeout(() => this.working(w), WATCH_HEALTHY_MS);
    w.healthy.unref();
  }

  private working(w: Watched): void {
    clearTimeout(w.healthy);
    w.failures = 0;
    delete w.lastError;
  }

  private listed(w: Watched, n: number): void {
    if (this.stopped) return;
    this.lists.set(w.res.kind, (this.lists.get(w.res.kind) ?? 0) + 1);
    this.opts.onList?.(w.res.kind, n);
    w.backoff = this.opts.retryMs ?? 500;
    this.working(w);
    const first = !w.synced;
    w.synced = true;
    this.log.info(first ? 'listed' : 'relisted', { kind: w.res.kind, objects: n });
    // A relist may have changed nothing: the snapshot comparison downstream makes that cheap.
    this.touch();
  }

  private failed(w: Watched, err: unknown): void {
    if (this.stopped) return;
    this.opts.onWatchError?.(w.res.kind, err);
    this.sink?.error(err);
    clearTimeout(w.healthy);
    w.failures++;
    w.lastError = errorField(err);
    if (w.restart !== undefined) return;
    const delay = w.backoff;
    w.backoff = Math.min(w.backoff * 2, this.opts.maxRetryMs ?? 30_000);
    this.log.warn('watch failed; enforcing the last state, retrying', {
      kind: w.res.kind,
      error: errorField(err),
      retryMs: delay,
    });
    w.restart = setTimeout(() => {
      delete w.restart;
      // Resumes from the last resourceVersion; "410 Gone" there makes the informer relist.
      this.startInformer(w);
    }, delay);
  }

  private upsert(w: Watched, raw: KubernetesObject): void {
    if (this.stopped) return;
    w.backoff = this.opts.retryMs ?? 500;
    this.working(w);
    const d = decodeApiObject(w.res.kind, raw);
    const before = this.state.invalid.get(`${d.kind}/${d.key}`);
    if (d.problems.length > 0) {
      const text = d.problems.map(formatApiProblem);
      if (before === undefined || before.map(formatApiProblem).join('\n') !== text.join('\n')) {
        this.log.warn(
          d.standIn
            ? 'invalid NetworkPolicy: enforced as deny-only for the pods it selects until fixed'
            : `invalid ${d.kind}: enforced as far as it could be decoded`,
          { kind: d.kind, object: d.key, problems: text },
        );
      }
    } else if (before !== undefined) {
      this.log.info(`${d.kind} is valid again`, { kind: d.kind, object: d.key });
    }
    for (const warning of d.warnings) this.log.debug(warning, { kind: d.kind, object: d.key });
    if (this.state.set(d)) this.touch();
  }

  private remove(w: Watched, raw: KubernetesObject): void {
    if (this.stopped) return;
    if (this.state.delete(w.res.kind, objectKey(w.res.kind, raw))) this.touch();
  }

  /** Marks the state changed and hands over a snapshot once this burst of events is in. */
  private touch(): void {
    this.dirtySince ??= Date.now();
    this.dirty = true;
    if (this.emitScheduled) return;
    this.emitScheduled = true;
    setImmediate(() => {
      this.emitScheduled = false;
      this.emit();
    });
  }

  private emit(): void {
    if (this.stopped || !this.sink || !this.synced || !this.dirty) return;
    const s = this.state.snapshot();
    if (this.dirtySince !== undefined) this.eventTimes.set(s, this.dirtySince);
    this.dirty = false;
    this.dirtySince = undefined;
    this.emitted++;
    this.sink.snapshot(s);
  }

  /** Hands over the current snapshot again (periodic full resync). */
  resync(): void {
    if (this.stopped || !this.synced) return;
    this.log.debug('resync');
    this.dirty = true;
    this.emit();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const w of this.watched) {
      if (w.restart) clearTimeout(w.restart);
      clearTimeout(w.healthy);
      await w.informer.stop();
    }
  }
}
