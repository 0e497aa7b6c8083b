// A Kubernetes API test server (node:http) for the agent: list and watch of Namespaces, Pods,
// Nodes and NetworkPolicies with resourceVersions, bookmarks, paging, bearer-token auth, and
// "410 Gone" for a watch from a compacted resourceVersion. Driven by the real client library
// through a kubeconfig pointing at it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';

export type Resource = 'namespaces' | 'pods' | 'nodes' | 'networkpolicies';

interface Kind {
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
}

const KINDS: Record<Resource, Kind> = {
  namespaces: { kind: 'Namespace', apiVersion: 'v1', namespaced: false },
  pods: { kind: 'Pod', apiVersion: 'v1', namespaced: true },
  nodes: { kind: 'Node', apiVersion: 'v1', namespaced: false },
  networkpolicies: { kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1', namespaced: true },
};

const PATHS: Record<string, Resource> = {
  '/api/v1/namespaces': 'namespaces',
  '/api/v1/pods': 'pods',
  '/api/v1/nodes': 'nodes',
  '/apis/networking.k8s.io/v1/networkpolicies': 'networkpolicies',
};

export type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface WatchEvent {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}

interface Watcher {
  readonly resource: Resource;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
}

export interface RequestRecord {
  readonly resource: Resource | undefined;
  readonly watch: boolean;
  readonly query: Record<string, string>;
  readonly status: number;
}

export interface FakeOptions {
  /** How "too old resourceVersion" is answered on a watch: an ERROR event (as kube-apiserver) or HTTP 410. */
  readonly gone?: 'event' | 'http';
  /** Bookmark period for watches that ask for them; 0: only on bookmark(). Default 0. */
  readonly bookmarkMs?: number;
}

function resourceOf(kind: string): Resource {
  const r = (Object.keys(KINDS) as Resource[]).find((k) => KINDS[k].kind === kind);
  if (!r) throw new Error(`fake apiserver: kind ${kind} not served`);
  return r;
}

function keyOf(o: Obj): string {
  const ns = typeof o.metadata.namespace === 'string' ? o.metadata.namespace : '';
  return `${ns}/${String(o.metadata.name)}`;
}

function status(code: number, reason: string, message: string): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeApiServer {
  readonly token = 'moat-test-token';
  private rv = 100;
  private compactedRV = 0;
  private readonly objects = new Map<Resource, Map<string, Obj>>(
    (Object.keys(KINDS) as Resource[]).map((r) => [r, new Map()]),
  );
  private events: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly pages = new Map<string, Obj[]>();
  private pageId = 0;
  private server: Server | undefined;
  private bookmarkTimer: NodeJS.Timeout | undefined;
  readonly requests: RequestRecord[] = [];
  /** Resources whose requests fail with 503 (a sick API server). */
  readonly failing = new Set<Resource>();
  /** Resources whose watches are refused with 403 (RBAC allows list but not watch). */
  readonly forbiddenWatch = new Set<Resource>();
  /** Extra time before a list of these resources is answered (a slow, large API server). */
  readonly listDelayMs = new Map<Resource, number>();
  port = 0;

  private constructor(private readonly opts: FakeOptions) {}

  static async start(opts: FakeOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await s.listen(0);
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** Writes a kubeconfig for this server (plain http needs insecure-skip-tls-verify). */
  async writeKubeconfig(path: string): Promise<string> {
    await writeFile(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'agent', user: { token: this.token } }],
        contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'agent' } }],
        'current-context': 'fake',
      }),
    );
    return path;
  }

  private listen(port: number): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (sock) => {
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
    });
    this.server = server;
    if ((this.opts.bookmarkMs ?? 0) > 0) {
      this.bookmarkTimer = setInterval(() => this.bookmark(), this.opts.bookmarkMs);
      this.bookmarkTimer.unref();
    }
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        this.port = (server.address() as { port: number }).port;
        resolve();
      });
    });
  }

  /** The API server goes away: listener closed, every connection (watches too) reset. */
  async stop(): Promise<void> {
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    const s = this.server;
    this.server = undefined;
    this.watchers.clear();
    for (const sock of this.sockets) sock.destroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  /** Comes back on the same port, with the same objects. */
  async restart(): Promise<void> {
    await this.listen(this.port);
  }

  // ---- object changes (as kubectl would make them) ----

  /** Creates or replaces an object (by kind, namespace, name); returns its new resourceVersion. */
  put(o: Obj): number {
    const resource = resourceOf(String(o.kind));
    const m = this.objects.get(resource)!;
    const key = keyOf(o);
    const old = m.get(key);
    this.rv++;
    const stored: Obj = {
      ...o,
      metadata: {
        uid: old?.metadata.uid ?? `uid-${this.rv}`,
        creationTimestamp: old?.metadata.creationTimestamp ?? new Date().toISOString(),
        ...o.metadata,
        resourceVersion: String(this.rv),
        // Present on every real object; moat must not trip over fields it does not read.
        managedFields: [{ manager: 'kubectl', operation: 'Update', apiVersion: KINDS[resource].apiVersion }],
      },
    };
    m.set(key, stored);
    this.publish({ rv: this.rv, resource, type: old ? 'MODIFIED' : 'ADDED', object: stored });
    return this.rv;
  }

  delete(kind: string, namespace: string, name: string): boolean {
    const resource = resourceOf(kind);
    const m = this.objects.get(resource)!;
    const key = `${namespace}/${name}`;
    const old = m.get(key);
    if (!old) return false;
    m.delete(key);
    this.rv++;
    this.publish({
      rv: this.rv,
      resource,
      type: 'DELETED',
      object: { ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } },
    });
    return true;
  }

  get(kind: string, namespace: string, name: string): Obj | undefined {
    return this.objects.get(resourceOf(kind))!.get(`${namespace}/${name}`);
  }

  /** Every stored object, with kind and apiVersion. */
  all(): Obj[] {
    return [...this.objects.entries()].flatMap(([r, m]) => [...m.values()].map((o) => this.withKind(r, o)));
  }

  /** Forgets the event history: a watch from an older resourceVersion gets "410 Gone". */
  compact(): void {
    this.compactedRV = this.rv;
    this.events = [];
  }

  /** Sends a bookmark (the current resourceVersion) to every watch that asked for bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const k = KINDS[w.resource];
      this.send(w, {
        type: 'BOOKMARK',
        object: { kind: k.kind, apiVersion: k.apiVersion, metadata: { resourceVersion: String(this.rv) } },
      });
    }
  }

  /** Ends every watch normally (as the server's watch timeout does). */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  private publish(e: WatchEvent): void {
    this.events.push(e);
    for (const w of this.watchers) {
      if (w.resource === e.resource)
        this.send(w, { type: e.type, object: this.withKind(e.resource, e.object) });
    }
  }

  private withKind(resource: Resource, o: Obj): Obj {
    return { kind: KINDS[resource].kind, apiVersion: KINDS[resource].apiVersion, ...o };
  }

  private send(w: Watcher, event: unknown): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(event)}\n`);
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams.entries());
    const resource = PATHS[url.pathname];
    const watch = query.watch === 'true' || query.watch === '1';
    const reply = (code: number, body: unknown): void => {
      this.requests.push({ resource, watch, query, status: code });
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      reply(401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (req.method !== 'GET' || resource === undefined) {
      reply(404, status(404, 'NotFound', `the server could not find the requested resource`));
      return;
    }
    if (this.failing.has(resource)) {
      reply(503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
      return;
    }
    if (watch && this.forbiddenWatch.has(resource)) {
      reply(403, status(403, 'Forbidden', `cannot watch resource "${resource}"`));
      return;
    }
    if (watch) this.watch(resource, query, res);
    else {
      const delay = this.listDelayMs.get(resource) ?? 0;
      if (delay > 0) setTimeout(() => this.list(resource, query, reply), delay);
      else this.list(resource, query, reply);
    }
  }

  private list(
    resource: Resource,
    query: Record<string, string>,
    reply: (c: number, b: unknown) => void,
  ): void {
    const k = KINDS[resource];
    let items: Obj[];
    let offset = 0;
    if (query.continue) {
      const [id, off] = query.continue.split(':');
      const stored = this.pages.get(id ?? '');
      if (!stored) {
        reply(
          410,
          status(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result.',
          ),
        );
        return;
      }
      items = stored;
      offset = Number(off);
    } else {
      // List items carry no kind/apiVersion: the list does.
      items = [...this.objects.get(resource)!.values()].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    }
    const limit = Number(query.limit ?? 0);
    const metadata: Record<string, string> = { resourceVersion: String(this.rv) };
    let page = items.slice(offset);
    if (limit > 0 && page.length > limit) {
      page = page.slice(0, limit);
      const id = query.continue?.split(':')[0] ?? String(++this.pageId);
      this.pages.set(id, items);
      metadata.continue = `${id}:${offset + limit}`;
    }
    reply(200, { kind: `${k.kind}List`, apiVersion: k.apiVersion, metadata, items: page });
  }

  private watch(resource: Resource, query: Record<string, string>, res: ServerResponse): void {
    const rvText = query.resourceVersion ?? '';
    const from = rvText === '' || rvText === '0' ? undefined : Number(rvText);
    const record = (code: number) => this.requests.push({ resource, watch: true, query, status: code });
    if (from !== undefined && from < this.compactedRV) {
      const gone = status(410, 'Expired', `too old resource version: ${from} (${this.compactedRV})`);
      record(410);
      if (this.opts.gone === 'http') {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify(gone));
      } else {
        // kube-apiserver: 200, one ERROR event carrying the Status, then the end of the stream.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      }
      return;
    }
    record(200);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource, res, bookmarks: query.allowWatchBookmarks === 'true' };
    if (from === undefined) {
      // "Start at any": synthetic ADDED events for everything there is.
      for (const o of this.objects.get(resource)!.values()) {
        this.send(w, { type: 'ADDED', object: this.withKind(resource, o) });
      }
    } else {
      for (const e of this.events) {
        if (e.resource === resource && e.rv > from) {
          this.send(w, { type: e.type, object: this.withKind(resource, e.object) });
        }
      }
    }
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

// ---- objects as the API server returns them ----

export interface PodSpecOpts {
  labels?: Record<string, string>;
  ip?: string;
  nodeName?: string;
  ports?: { containerPort: number; protocol?: string; name?: string }[];
  hostNetwork?: boolean;
}

export function podObj(namespace: string, name: string, o: PodSpecOpts = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, ...(o.labels ? { labels: o.labels } : {}) },
    spec: {
      ...(o.nodeName !== undefined ? { nodeName: o.nodeName } : {}),
      ...(o.hostNetwork ? { hostNetwork: true } : {}),
      containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10', ports: o.ports ?? [] }],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
    },
    status:
      o.ip !== undefined
        ? {
            phase: 'Running',
            podIP: o.ip,
            podIPs: [{ ip: o.ip }],
            conditions: [{ type: 'Ready', status: 'True' }],
          }
        : { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
  };
}

export function nsObj(name: string, labels: Record<string, string> = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export function nodeObj(name: string, addresses: string[], podCIDRs: string[] = []): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    spec: { ...(podCIDRs[0] !== undefined ? { podCIDR: podCIDRs[0] } : {}), podCIDRs },
    status: {
      addresses: [
        ...addresses.map((address) => ({ type: 'InternalIP', address })),
        { type: 'Hostname', address: name },
      ],
    },
  };
}

export function policyObj(namespace: string, name: string, spec: Record<string, unknown>): Obj {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}
