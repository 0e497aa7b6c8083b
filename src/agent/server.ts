// The agent's HTTP endpoints (node:http): /metrics, /healthz and /readyz. Metrics and health may
// listen on different addresses; when both are the same address one server answers all three.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../errors.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** "0.0.0.0:9808", "[::]:9808", ":9808" (all addresses), "127.0.0.1:0" (any free port). */
export function parseListenAddress(flag: string, text: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port > 65535) {
    throw new UsageError(`${flag} "${text}": expected HOST:PORT, e.g. 0.0.0.0:9808 or [::]:9808`);
  }
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? '::' : m[2]);
  return { host, port };
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HealthState {
  /** Liveness: the process and its event loop work. */
  live(): { ok: boolean; detail: string };
  /** Readiness: the kernel enforces a recent state. */
  ready(): { ok: boolean; detail: string };
}

export function healthRoutes(h: HealthState): Record<string, Handler> {
  const answer = (res: ServerResponse, r: { ok: boolean; detail: string }) => {
    res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`${r.ok ? 'ok' : 'not ok'}: ${r.detail}\n`);
  };
  return {
    '/healthz': (_req, res) => answer(res, h.live()),
    '/livez': (_req, res) => answer(res, h.live()),
    '/readyz': (_req, res) => answer(res, h.ready()),
  };
}

export function metricsRoutes(text: () => Promise<string>, contentType: string): Record<string, Handler> {
  return {
    '/metrics': async (_req, res) => {
      const body = await text();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    },
  };
}

export interface RunningServer {
  readonly address: ListenAddress;
  close(): Promise<void>;
}

/** Serves GET/HEAD on the given routes; everything else is 404/405. */
export function serve(addr: ListenAddress, routes: Record<string, Handler>): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const h = routes[path];
    if (!h) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found; try ${Object.keys(routes).join(', ')}\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    Promise.resolve(h(req, res)).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    });
  });
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new UsageError(`cannot listen on ${addr.host}:${addr.port}: ${e.code ?? e.message}`)),
    );
    server.listen(addr.port, addr.host, () => {
      const a = server.address() as AddressInfo;
      resolve({
        address: { host: a.address, port: a.port },
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
