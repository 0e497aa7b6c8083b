// The process that runs inside a lab pod's network namespace (`ip netns exec NS node podproc.js`):
// it serves TCP (echo) and UDP (echo) on the pod's ports and runs probe jobs that arrive as JSON
// lines on stdin, answering on stdout. One long-lived process per pod keeps probes cheap.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIPv6, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

export interface PodProcConfig {
  /** Ports served on both TCP and UDP. */
  readonly ports: readonly number[];
  /** Also listen on IPv6. */
  readonly ipv6: boolean;
  /** Listen on these addresses only (a UDP server answers from the address it was asked on). */
  readonly addresses?: readonly string[];
}

export type Job =
  | {
      id: number;
      op: 'probe';
      protocol: 'TCP' | 'UDP';
      ip: string;
      port: number;
      timeoutMs: number;
      /** Local address to send from (a node process choosing one of the node's addresses). */
      source?: string;
    }
  | { id: number; op: 'open'; ip: string; port: number; timeoutMs: number }
  | { id: number; op: 'send'; conn: number; timeoutMs: number }
  | { id: number; op: 'close'; conn: number }
  /** The server speaks first: writes a line to every connection accepted on the port. */
  | { id: number; op: 'push'; port: number };

/** `detail` says what was observed: connected, echo, refused, timeout, or an error code. */
export interface JobResult {
  id: number;
  ok: boolean;
  detail: string;
  conn?: number;
  /** 'open': the local port of the connection. */
  localPort?: number;
}

function errCode(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === 'ECONNREFUSED') return 'refused';
  return typeof code === 'string' ? code : String(e);
}

function tcpConnect(
  ip: string,
  port: number,
  timeoutMs: number,
  source?: string,
): Promise<{ sock?: Socket; detail: string }> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port, ...(source !== undefined ? { localAddress: source } : {}) });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ detail: 'timeout' });
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      resolve({ sock, detail: 'connected' });
    });
    sock.once('error', (e) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ detail: errCode(e) });
    });
  });
}

function udpProbe(
  ip: string,
  port: number,
  timeoutMs: number,
  source?: string,
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(ip) ? 'udp6' : 'udp4');
    if (source !== undefined) sock.bind({ address: source, port: 0 });
    const token = Buffer.from(`moat-probe ${process.pid} ${Math.random()}`);
    let done = false;
    const finish = (ok: boolean, detail: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(resend);
      sock.close();
      resolve({ ok, detail });
    };
    const send = (): void => {
      if (!done) sock.send(token, (e) => e && finish(false, errCode(e)));
    };
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    // One retry halfway, so a single lost datagram is not read as "denied".
    const resend = setTimeout(send, timeoutMs / 2);
    sock.on('message', (msg) => {
      if (msg.equals(token)) finish(true, 'echo');
    });
    sock.on('error', (e) => finish(false, errCode(e)));
    sock.connect(port, ip, send);
  });
}

/** Sends a token on an open connection and waits for the echo. */
function tcpEcho(sock: Socket, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const token = `moat-echo ${Math.random()}\n`;
    let got = '';
    const cleanup = (): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onErr);
      sock.off('close', onClose);
    };
    const onData = (d: Buffer): void => {
      got += d.toString();
      if (got.includes(token)) {
        cleanup();
        resolve({ ok: true, detail: 'echo' });
      }
    };
    const onErr = (e: Error): void => {
      cleanup();
      resolve({ ok: false, detail: errCode(e) });
    };
    const onClose = (): void => {
      cleanup();
      resolve({ ok: false, detail: 'closed' });
    };
    const timer = setTimeout(() => {
      cleanup();
      resolve({ ok: false, detail: 'timeout' });
    }, timeoutMs);
    sock.on('data', onData);
    sock.on('error', onErr);
    sock.on('close', onClose);
    sock.write(token);
  });
}

/** Connections accepted, per listening port (for 'push'). */
const accepted = new Map<number, Set<Socket>>();

async function listenAll(cfg: PodProcConfig): Promise<void> {
  const hosts = cfg.addresses ?? (cfg.ipv6 ? ['0.0.0.0', '::'] : ['0.0.0.0']);
  const waits: Promise<void>[] = [];
  for (const port of cfg.ports) {
    for (const host of hosts) {
      const v6 = host.includes(':');
      const srv = createServer((s) => {
        let set = accepted.get(port);
        if (!set) accepted.set(port, (set = new Set()));
        set.add(s);
        s.on('close', () => set.delete(s));
        s.on('error', () => s.destroy());
        s.pipe(s);
      });
      waits.push(
        new Promise((resolve, reject) => {
          srv.once('error', reject);
          srv.listen({ host, port, ipv6Only: v6 }, () => resolve());
        }),
      );
      const udp: UdpSocket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
      udp.on('message', (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
      waits.push(
        new Promise((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ port, address: host }, () => resolve());
        }),
      );
    }
  }
  await Promise.all(waits);
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as PodProcConfig;
  const out = (r: object): void => {
    process.stdout.write(JSON.stringify(r) + '\n');
  };
  try {
    await listenAll(cfg);
  } catch (e) {
    out({ fatal: `listen: ${e instanceof Error ? e.message : String(e)}` });
    process.exit(1);
  }
  const conns = new Map<number, Socket>();
  let nextConn = 1;
  const handle = async (job: Job): Promise<JobResult> => {
    switch (job.op) {
      case 'probe': {
        if (job.protocol === 'UDP')
          return { id: job.id, ...(await udpProbe(job.ip, job.port, job.timeoutMs, job.source)) };
        const r = await tcpConnect(job.ip, job.port, job.timeoutMs, job.source);
        r.sock?.destroy();
        return { id: job.id, ok: r.sock !== undefined, detail: r.detail };
      }
      case 'open': {
        const r = await tcpConnect(job.ip, job.port, job.timeoutMs);
        if (!r.sock) return { id: job.id, ok: false, detail: r.detail };
        const conn = nextConn++;
        r.sock.on('error', () => undefined);
        conns.set(conn, r.sock);
        return {
          id: job.id,
          ok: true,
          detail: r.detail,
          conn,
          ...(r.sock.localPort !== undefined ? { localPort: r.sock.localPort } : {}),
        };
      }
      case 'send': {
        const sock = conns.get(job.conn);
        if (!sock) return { id: job.id, ok: false, detail: 'no such connection' };
        return { id: job.id, ...(await tcpEcho(sock, job.timeoutMs)) };
      }
      case 'close': {
        conns.get(job.conn)?.destroy();
        conns.delete(job.conn);
        return { id: job.id, ok: true, detail: 'closed' };
      }
      case 'push': {
        const socks = [...(accepted.get(job.port) ?? [])];
        for (const s of socks) s.write('moat-push\n');
        return { id: job.id, ok: socks.length > 0, detail: `pushed to ${socks.length} connection(s)` };
      }
    }
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === '') return;
    const job = JSON.parse(line) as Job;
    handle(job).then(out, (e: unknown) => out({ id: job.id, ok: false, detail: String(e) }));
  });
  // The parent went away (or closed our stdin to stop us): exit, so no server outlives the lab.
  rl.on('close', () => process.exit(0));
  out({ ready: true });
}

void main();
