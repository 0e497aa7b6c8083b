// A Kubernetes API test server (node:http) for the agent: list and watch of Namespaces, Pods,
// Nodes and NetworkPolicies with resourceVersions, bookmarks, paging, bearer-token auth, and
// "410 Gone" for a watch from a compacted resourceVersion; the admin tiers' kinds once their CRD is
// installed (installCrd), with the discovery documents (/apis/GROUP, /apis/GROUP/VERSION) saying
// so. Driven by the real client library through a kubeconfig pointing at it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';

export type Resource =
  | 'namespaces'
  | 'pods'
  | 'nodes'
  | 'networkpolicies'
  | 'clusternetworkpolicies'
  | 'adminnetworkpolicies'
  | 'baselineadminnetworkpolicies';

interface Kind {
  readonly kind: string;
  /** The versions it can be served at (a CRD: when installed with them), first the default. */
  readonly apiVersions: readonly string[];
  readonly namespaced: boolean;
  readonly crd?: boolean;
}

export const CRD_GROUP = 'policy.networking.k8s.io';

const KINDS: Record<Resource, Kind> = {
  namespaces: { kind: 'Namespace', apiVersions: ['v1'], namespaced: false },
  pods: { kind: 'Pod', apiVersions: ['v1'], namespaced: true },
  nodes: { kind: 'Node', apiVersions: ['v1'], namespaced: false },
  networkpolicies: { kind: 'NetworkPolicy', apiVersions: ['networking.k8s.io/v1'], namespaced: true },
  clusternetworkpolicies: {
    kind: 'ClusterNetworkPolicy',
    apiVersions: [`${CRD_GROUP}/v1beta1`, `${CRD_GROUP}/v1alpha2`],
    namespaced: false,
    crd: true,
  },
  adminnetworkpolicies: {
    kind: 'AdminNetworkPolicy',
    apiVersions: [`${CRD_GROUP}/v1alpha1`],
    namespaced: false,
    crd: true,
  },
  baselineadminnetworkpolicies: {
    kind: 'BaselineAdminNetworkPolicy',
    apiVersions: [`${CRD_GROUP}/v1alpha1`],
    namespaced: false,
    crd: true,
  },
};

const RESOURCE_NAMES = Object.keys(KINDS) as Resource[];

export type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };

interface WatchEvent {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}

interface Watcher {
  readonly resource: Resource;
  readonly apiVersion: string;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
}

export interface RequestRecord {
  readonly path: string;
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
  const r = RESOURCE_NAMES.find((k) => KINDS[k].kind === kind);
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
  private readonly objects = new Map<Resource, Map<string, Obj>>(RESOURCE_NAMES.map((r) => [r, new Map()]));
  /** Installed CRDs: the versions each serves. */
  private readonly crds = new Map<Resource, readonly string[]>();
  private events: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly pages = new Map<string, Obj[]>();
  private pageId = 0;
  private server: Server | undefined;
  private bookmarkTimer: NodeJS.Timeout | undefined;
  readonly requests: RequestRecord[] = [];
  /** Paths of the lists asked for, as they arrive (requests records them when answered). */
  readonly listsAsked: string[] = [];
  /** Resources whose requests fail with 503 (a sick API server). */
  readonly failing = new Set<Resource>();
  /** Resources whose watches are refused with 403 (RBAC allows list but not watch). */
  readonly forbiddenWatch = new Set<Resource>();
  /** Extra time before a list of these resources is answered (a slow, large API server). */
  readonly listDelayMs = new Map<Resource, number>();
  /** Discovery requests fail with 503 (a sick API server), or 404 (one starting, CRDs not loaded). */
  discoveryFails: 503 | 404 | undefined;
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
    if (KINDS[resource].crd && !this.crds.has(resource)) {
      throw new Error(`fake apiserver: no CRD for ${String(o.kind)} installed`);
    }
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
        managedFields: [
          { manager: 'kubectl', operation: 'Update', apiVersion: KINDS[resource].apiVersions[0] },
        ],
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

  /** Installs the CRD of a kind, serving these versions (default: all of them). */
  installCrd(resource: Resource, versions: readonly string[] = KINDS[resource].apiVersions): void {
    if (!KINDS[resource].crd) throw new Error(`fake apiserver: ${resource} is built in`);
    this.crds.set(resource, versions);
  }

  /**
   * Removes a CRD as kube-apiserver does: its objects are deleted first (watchers see DELETED),
   * then its watches end and its paths and discovery documents are gone.
   */
  removeCrd(resource: Resource): void {
    for (const o of [...this.objects.get(resource)!.values()]) {
      const ns = typeof o.metadata.namespace === 'string' ? o.metadata.namespace : '';
      this.delete(KINDS[resource].kind, ns, String(o.metadata.name));
    }
    this.crds.delete(resource);
    for (const w of [...this.watchers]) {
      if (w.resource !== resource) continue;
      w.res.end();
      this.watchers.delete(w);
    }
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
      this.send(w, {
        type: 'BOOKMARK',
        object: {
          kind: KINDS[w.resource].kind,
          apiVersion: w.apiVersion,
          metadata: { resourceVersion: String(this.rv) },
        },
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
        this.send(w, { type: e.type, object: this.withKind(e.resource, e.object, w.apiVersion) });
    }
  }

  private withKind(resource: Resource, o: Obj, apiVersion = KINDS[resource].apiVersions[0]!): Obj {
    return { kind: KINDS[resource].kind, ...o, apiVersion };
  }

  /** The versions a resource is served at now (a CRD not installed: none). */
  private servedVersions(resource: Resource): readonly string[] {
    return KINDS[resource].crd ? (this.crds.get(resource) ?? []) : KINDS[resource].apiVersions;
  }

  /** `/api[s]/VERSION/RESOURCE` of a served resource. */
  private route(pathname: string): { resource: Resource; apiVersion: string } | undefined {
    for (const resource of RESOURCE_NAMES) {
      for (const apiVersion of this.servedVersions(resource)) {
        const root = apiVersion.includes('/') ? '/apis' : '/api';
        if (pathname === `${root}/${apiVersion}/${resource}`) return { resource, apiVersion };
      }
    }
    return undefined;
  }

  /** The discovery documents of the CRD group: APIGroup and APIResourceList. */
  private discovery(pathname: string): Obj | undefined {
    const crds = RESOURCE_NAMES.filter((r) => KINDS[r].crd && this.crds.has(r));
    const versions = [...new Set(crds.flatMap((r) => this.servedVersions(r)))].sort();
    if (pathname === `/apis/${CRD_GROUP}` && versions.length > 0) {
      const list = versions.map((groupVersion) => ({ groupVersion, version: groupVersion.split('/')[1] }));
      return {
        kind: 'APIGroup',
        apiVersion: 'v1',
        name: CRD_GROUP,
        versions: list,
        preferredVersion: list[0],
        metadata: {},
      };
    }
    const gv = versions.find((v) => pathname === `/apis/${v}`);
    if (gv === undefined) return undefined;
    const resources = crds
      .filter((r) => this.servedVersions(r).includes(gv))
      .flatMap((r) => [
        {
          name: r,
          singularName: '',
          namespaced: false,
          kind: KINDS[r].kind,
          verbs: ['delete', 'deletecollection', 'get', 'list', 'patch', 'create', 'update', 'watch'],
        },
        {
          name: `${r}/status`,
          singularName: '',
          namespaced: false,
          kind: KINDS[r].kind,
          verbs: ['get', 'patch', 'update'],
        },
      ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources, metadata: {} };
  }

  private send(w: Watcher, event: unknown): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(event)}\n`);
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams.entries());
    const route = this.route(url.pathname);
    const resource = route?.resource;
    const watch = query.watch === 'true' || query.watch === '1';
    const reply = (code: number, body: unknown): void => {
      this.requests.push({ path: url.pathname, resource, watch, query, status: code });
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      reply(401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (req.method === 'GET' && url.pathname.startsWith(`/apis/${CRD_GROUP}`) && route === undefined) {
      if (this.discoveryFails === 503) {
        reply(503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
        return;
      }
      const doc = this.discoveryFails === 404 ? undefined : this.discovery(url.pathname);
      if (doc) {
        reply(200, doc);
        return;
      }
    }
    if (req.method !== 'GET' || route === undefined || resource === undefined) {
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
    const apiVersion = route.apiVersion;
    if (!watch) this.listsAsked.push(url.pathname);
    if (watch) this.watch(resource, apiVersion, query, res, url.pathname);
    else {
      const delay = this.listDelayMs.get(resource) ?? 0;
      if (delay > 0) setTimeout(() => this.list(resource, apiVersion, query, reply), delay);
      else this.list(resource, apiVersion, query, reply);
    }
  }

  private list(
    resource: Resource,
    apiVersion: string,
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
    reply(200, { kind: `${k.kind}List`, apiVersion, metadata, items: page });
  }

  private watch(
    resource: Resource,
    apiVersion: string,
    query: Record<string, string>,
    res: ServerResponse,
    path: string,
  ): void {
    const rvText = query.resourceVersion ?? '';
    const from = rvText === '' || rvText === '0' ? undefined : Number(rvText);
    const record = (code: number) => this.requests.push({ path, resource, watch: true, query, status: code });
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
    const w: Watcher = { resource, apiVersion, res, bookmarks: query.allowWatchBookmarks === 'true' };
    if (from === undefined) {
      // "Start at any": synthetic ADDED events for everything there is.
      for (const o of this.objects.get(resource)!.values()) {
        this.send(w, { type: 'ADDED', object: this.withKind(resource, o, apiVersion) });
      }
    } else {
      for (const e of this.events) {
        if (e.resource === resource && e.rv > from) {
          this.send(w, { type: e.type, object: this.withKind(resource, e.object, apiVersion) });
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

/** A ClusterNetworkPolicy (v1beta1): `spec` as given, `tier` and `priority` defaulted to Admin, 10. */
export function cnpObj(name: string, spec: Record<string, unknown>): Obj {
  return {
    apiVersion: `${CRD_GROUP}/v1beta1`,
    kind: 'ClusterNetworkPolicy',
    metadata: { name },
    spec: { tier: 'Admin', priority: 10, ...spec },
  };
}
