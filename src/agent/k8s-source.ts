// A snapshot source that watches the Kubernetes API: Pods, Namespaces, Nodes and NetworkPolicies
// always, and the admin tiers' kinds (CRDs) while API discovery (discovery.ts) finds them served,
// through client-node's ListWatch informers. Objects arrive as the API server's raw JSON and are
// decoded by k8s-decode.ts into ClusterState (cluster-state.ts); the client library's types never
// go further than this file.
import * as http from 'node:http';
import * as https from 'node:https';
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { errorField, silentLog, type Log } from './log.js';
import type { SnapshotSource, SourceSink } from './reconcile.js';
import { ClusterState } from './cluster-state.js';
import { discover, type Served } from './discovery.js';
import {
  decodeApiObject,
  formatApiProblem,
  objectKey,
  resourceAt,
  RESOURCES,
  WATCHABLE,
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

export async function getJson(kc: KubeConfig, path: string, timeoutMs: number): Promise<unknown> {
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
 * a server that closes every watch cannot make the agent spin. A watch of a resource that is no
 * longer watched (stopped meanwhile) is not started at all.
 */
class PacedWatch extends Watch {
  private lastStart = 0;
  constructor(
    config: KubeConfig,
    private readonly minIntervalMs: number,
    private readonly cancelled: () => boolean,
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
    if (this.cancelled()) return new AbortController();
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
  /**
   * Period of API discovery of the kinds CRDs serve (the admin tiers): a CRD installed later is
   * watched from the next discovery on. 0: discovery only at start. Default 30 s.
   */
  readonly discoveryIntervalMs?: number;
  /**
   * A watched kind that discovery no longer finds is dropped only when a discovery at least this
   * much later agrees: an API server that is starting may answer 404 for a CRD's group for a
   * moment, and dropping the admin policies then would open doors. Default 5 s.
   */
  readonly discoveryConfirmMs?: number;
  /** Called for every watch/list error (metrics). */
  readonly onWatchError?: (kind: WatchedKind, err: unknown) => void;
  /** Called after every list (the initial one and relists). */
  readonly onList?: (kind: WatchedKind, items: number) => void;
}

interface Watched {
  readonly res: Resource;
  readonly informer: ListWatch<KubernetesObject>;
  /** Served by a CRD: watched while discovery finds it. */
  readonly discovered: boolean;
  synced: boolean;
  /** No longer watched (kind gone, or replaced by another version): events are ignored. */
  stopped: boolean;
  backoff: number;
  restart?: NodeJS.Timeout;
  /** Failures since the last list, event, or restart that stayed up (see WATCH_HEALTHY_MS). */
  failures: number;
  lastError?: string;
  healthy?: NodeJS.Timeout;
}

/** What /readyz says of one kind. */
export type KindState =
  /** Listed and watched: its objects are in every snapshot handed over. */
  | 'enforced'
  /** Watched, first list not done yet. */
  | 'listing'
  /** Its CRD is not installed (discovery): nothing of it exists to enforce. */
  | 'not served'
  /** Discovery has not answered yet. */
  | 'unknown';

export interface KindStatus {
  readonly kind: WatchedKind;
  readonly state: KindState;
  /** The version watched (enforced, listing). */
  readonly apiVersion?: string;
  /** Served by a CRD, found by discovery. */
  readonly discovered: boolean;
}

/** A restarted watch that raised no error for this long counts as working again. */
const WATCH_HEALTHY_MS = 10_000;
/** Consecutive failures after which a resource's watch is reported as broken (readiness). */
const WATCH_BROKEN_AFTER = 3;

const DISCOVERED = WATCHABLE.filter((w) => w.discovered);

export class K8sSource implements SnapshotSource {
  readonly state = new ClusterState();
  private readonly watched = new Map<WatchedKind, Watched>();
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
  /** Set once discovery has answered and every kind watched then has been listed; stays set. */
  private initialSync = false;
  /** The last answer of discovery; undefined until the first. */
  private served: Served | undefined;
  /** Watched kinds discovery no longer found, since when (dropped once confirmed). */
  private readonly gone = new Map<WatchedKind, number>();
  private discoveryTimer: NodeJS.Timeout | undefined;
  private discoveryDue = Infinity;
  private discovering = false;
  private discoveryBackoff: number;
  private discoveryFailure: { since: number; error: string } | undefined;

  constructor(private readonly opts: K8sSourceOptions) {
    this.log = opts.log ?? silentLog;
    this.discoveryBackoff = opts.retryMs ?? 500;
  }

  /**
   * True once discovery has answered and every kind it found, and every built-in kind, has been
   * listed: before that no snapshot is handed over, so the first apply after a restart never lacks
   * the admin policies the previous agent enforced. A kind found later joins the snapshots once it
   * is listed (before, it had no objects: its CRD was not there).
   */
  get synced(): boolean {
    return this.initialSync;
  }

  /**
   * Resources whose list or watch keeps failing (e.g. 403 Forbidden: a ClusterRole without `watch`).
   * The last state stays enforced, but changes of that kind are not seen: the agent is not ready.
   */
  brokenWatches(): { kind: WatchedKind; error: string }[] {
    return [...this.watched.values()]
      .filter((w) => w.failures >= WATCH_BROKEN_AFTER)
      .map((w) => ({ kind: w.res.kind, error: w.lastError ?? 'unknown error' }));
  }

  /** Every kind of the registry: enforced, being listed, not served, or not known yet. */
  kinds(): KindStatus[] {
    return WATCHABLE.map((k): KindStatus => {
      const w = this.watched.get(k.kind);
      if (w) {
        return {
          kind: k.kind,
          state: w.synced ? 'enforced' : 'listing',
          apiVersion: w.res.apiVersion,
          discovered: k.discovered,
        };
      }
      return { kind: k.kind, state: this.served ? 'not served' : 'unknown', discovered: k.discovered };
    });
  }

  /** Discovery's current failure (it keeps failing since `since`), or undefined when it works. */
  get discoveryError(): { since: number; error: string } | undefined {
    return this.discoveryFailure;
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
    for (const res of RESOURCES) this.watch(res, false);
    this.discover();
    const every = this.opts.resyncMs ?? 300_000;
    if (every > 0) {
      this.resyncTimer = setInterval(() => this.resync(), every);
      this.resyncTimer.unref();
    }
    return Promise.resolve();
  }

  /** Starts an informer for one resource. */
  private watch(res: Resource, discovered: boolean): void {
    const kc = this.opts.kubeConfig;
    const cancelled = () => this.stopped || w.stopped;
    const listFn = async () => {
      const list = await listRaw(kc, res.path, this.opts.listPageSize ?? 500);
      // Dropped while listing: end this informer here (failed() ignores it).
      if (cancelled()) throw new Error(`${res.kind} ${res.apiVersion}: no longer watched`);
      // The informer stores the items right after this promise resolves (same microtask run);
      // the resource counts as listed from the next macrotask on.
      setImmediate(() => this.listed(w, list.items));
      return list;
    };
    const watchPath = this.opts.bookmarks === false ? res.path : `${res.path}?allowWatchBookmarks=true`;
    const informer = new ListWatch<KubernetesObject>(
      watchPath,
      new PacedWatch(kc, this.opts.minWatchIntervalMs ?? 200, cancelled),
      listFn,
      false,
    );
    const w: Watched = {
      res,
      informer,
      discovered,
      synced: false,
      stopped: false,
      backoff: this.opts.retryMs ?? 500,
      failures: 0,
    };
    informer.on('add', (o) => this.upsert(w, o));
    informer.on('update', (o) => this.upsert(w, o));
    informer.on('delete', (o) => this.remove(w, o));
    informer.on('error', (err) => this.failed(w, err));
    this.watched.set(res.kind, w);
    this.startInformer(w);
  }

  /** Stops one informer; its objects stay in the state (see drop). */
  private unwatch(w: Watched): void {
    w.stopped = true;
    if (w.restart) clearTimeout(w.restart);
    clearTimeout(w.healthy);
    if (this.watched.get(w.res.kind) === w) this.watched.delete(w.res.kind);
    w.informer.stop().catch(() => undefined);
  }

  private startInformer(w: Watched): void {
    if (this.stopped || w.stopped) return;
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

  private listed(w: Watched, items: readonly KubernetesObject[]): void {
    if (this.stopped || w.stopped) return;
    const kind = w.res.kind;
    this.lists.set(kind, (this.lists.get(kind) ?? 0) + 1);
    this.opts.onList?.(kind, items.length);
    w.backoff = this.opts.retryMs ?? 500;
    this.working(w);
    const first = !w.synced;
    w.synced = true;
    if (first) {
      // The informer's first list is the whole truth of its kind. Objects still held from another
      // version's informer (a version switch) stayed enforced until now; those not listed go.
      const keys = new Set(items.map((o) => objectKey(kind, o)));
      for (const key of this.state.keys(kind)) if (!keys.has(key)) this.state.delete(kind, key);
    }
    this.log.info(first ? 'listed' : 'relisted', {
      kind,
      objects: items.length,
      ...(w.discovered ? { apiVersion: w.res.apiVersion } : {}),
    });
    this.checkInitialSync();
    // A relist may have changed nothing: the snapshot comparison downstream makes that cheap.
    this.touch();
  }

  private checkInitialSync(): void {
    if (this.initialSync || this.served === undefined) return;
    if ([...this.watched.values()].every((w) => w.synced)) this.initialSync = true;
  }

  private failed(w: Watched, err: unknown): void {
    if (this.stopped || w.stopped) return;
    this.opts.onWatchError?.(w.res.kind, err);
    this.sink?.error(err);
    clearTimeout(w.healthy);
    w.failures++;
    w.lastError = errorField(err);
    // A CRD's resource not found: it may have been deleted; ask discovery now, not in 30 s.
    if (w.discovered && (err as { statusCode?: unknown }).statusCode === 404) this.scheduleDiscovery(0);
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

  // ---- discovery ----

  private scheduleDiscovery(delayMs: number): void {
    if (this.stopped || !Number.isFinite(delayMs)) return;
    const due = Date.now() + delayMs;
    if (this.discovering || due >= this.discoveryDue) {
      // Running now (it schedules the next round when done), or due sooner anyway.
      if (this.discovering) this.discoveryDue = Math.min(this.discoveryDue, due);
      return;
    }
    clearTimeout(this.discoveryTimer);
    this.discoveryDue = due;
    this.discoveryTimer = setTimeout(() => this.discover(), delayMs);
    this.discoveryTimer.unref();
  }

  private discover(): void {
    if (this.stopped) return;
    clearTimeout(this.discoveryTimer);
    this.discoveryDue = Infinity;
    this.discovering = true;
    const kc = this.opts.kubeConfig;
    discover((path) => getJson(kc, path, 30_000), DISCOVERED)
      .then(
        (served) => this.discovered(served),
        (e: unknown) => this.discoveryFailed(e),
      )
      .finally(() => {
        this.discovering = false;
        const retry = this.nextDiscoveryMs();
        if (this.served === undefined) {
          this.discoveryBackoff = Math.min(this.discoveryBackoff * 2, this.opts.maxRetryMs ?? 30_000);
        }
        const wanted = this.discoveryDue; // a round asked for while this one ran
        this.discoveryDue = Infinity;
        this.scheduleDiscovery(Math.max(0, Math.min(wanted - Date.now(), retry)));
      });
  }

  private nextDiscoveryMs(): number {
    if (this.served === undefined) return this.discoveryBackoff; // no answer yet: retry soon
    const confirm = this.opts.discoveryConfirmMs ?? 5000;
    const every = this.opts.discoveryIntervalMs ?? 30_000;
    if (this.gone.size > 0) return every > 0 ? Math.min(confirm, every) : confirm;
    return every > 0 ? every : Infinity;
  }

  private discovered(served: Served): void {
    if (this.stopped) return;
    const first = this.served === undefined;
    this.served = served;
    this.discoveryBackoff = this.opts.retryMs ?? 500;
    if (this.discoveryFailure) {
      this.log.info('API discovery works again', { failedForMs: Date.now() - this.discoveryFailure.since });
      this.discoveryFailure = undefined;
    }
    const confirm = this.opts.discoveryConfirmMs ?? 5000;
    for (const k of DISCOVERED) {
      const apiVersion = served.get(k.kind);
      const w = this.watched.get(k.kind);
      const resource = `${k.resource}.${k.group}`;
      if (apiVersion !== undefined) {
        this.gone.delete(k.kind);
        if (w === undefined) {
          this.log.info(first ? `${k.kind} served: watching` : `${k.kind} now served: watching`, {
            kind: k.kind,
            apiVersion,
          });
          this.watch(resourceAt(k.kind, apiVersion), true);
        } else if (w.res.apiVersion !== apiVersion) {
          // Its objects stay enforced until the new informer's first list replaces them.
          this.log.info(`${k.kind}: watching ${apiVersion} instead of ${w.res.apiVersion}`, {
            kind: k.kind,
            apiVersion,
            was: w.res.apiVersion,
          });
          this.unwatch(w);
          this.watch(resourceAt(k.kind, apiVersion), true);
        }
        continue;
      }
      if (w === undefined) {
        if (first) {
          this.log.info(`${k.kind} not served by the API server (CRD not installed): not enforced`, {
            kind: k.kind,
            resource,
          });
        }
        continue;
      }
      const since = this.gone.get(k.kind);
      if (since === undefined) {
        this.gone.set(k.kind, Date.now());
        this.log.debug(`${k.kind} not found by discovery; checking again`, {
          kind: k.kind,
          confirmMs: confirm,
        });
      } else if (Date.now() - since >= confirm) {
        this.gone.delete(k.kind);
        const objects = this.state.count(k.kind);
        this.log.warn(
          `${k.kind} no longer served (CRD removed): not enforced, its objects leave the snapshot`,
          {
            kind: k.kind,
            apiVersion: w.res.apiVersion,
            objects,
          },
        );
        this.unwatch(w);
        if (this.state.deleteKind(k.kind)) this.touch();
      }
    }
    const wasSynced = this.initialSync;
    this.checkInitialSync();
    // Nothing left to list (no CRD served, or the last one just went): the first sync is due.
    if (!wasSynced && this.initialSync) this.touch();
  }

  private discoveryFailed(e: unknown): void {
    if (this.stopped) return;
    const error = errorField(e);
    const delay = this.nextDiscoveryMs();
    if (this.discoveryFailure === undefined) {
      this.discoveryFailure = { since: Date.now(), error };
      this.log.warn(
        this.served === undefined
          ? 'API discovery failed: waiting for it before the first apply (the previous table stays)'
          : 'API discovery failed: the kinds found so far stay watched; retrying',
        { error, retryMs: delay },
      );
    } else this.discoveryFailure = { since: this.discoveryFailure.since, error };
    this.sink?.error(e);
  }

  // ---- objects ----

  private upsert(w: Watched, raw: KubernetesObject): void {
    if (this.stopped || w.stopped) return;
    w.backoff = this.opts.retryMs ?? 500;
    this.working(w);
    const d = decodeApiObject(w.res.kind, raw, w.res.apiVersion);
    const before = this.state.invalid.get(`${d.kind}/${d.key}`);
    if (d.problems.length > 0) {
      const text = d.problems.map(formatApiProblem);
      if (before === undefined || before.map(formatApiProblem).join('\n') !== text.join('\n')) {
        this.log.warn(
          d.standIn
            ? `invalid ${d.kind}: enforced fail-closed (${standInNote(d.kind)}) until fixed`
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
    if (this.stopped || w.stopped) return;
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
    clearTimeout(this.discoveryTimer);
    for (const w of [...this.watched.values()]) {
      w.stopped = true;
      if (w.restart) clearTimeout(w.restart);
      clearTimeout(w.healthy);
      await w.informer.stop();
    }
  }
}

/** What an invalid object of a kind is enforced as (KindSpec.failClosed), for the log line. */
function standInNote(kind: WatchedKind): string {
  return kind === 'NetworkPolicy'
    ? 'deny-only for the pods it selects'
    : 'Deny all from its first invalid rule on, for its subject';
}
