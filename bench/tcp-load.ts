// Tiny TCP load tool for the traffic benchmarks, run inside a namespace by dataplane-traffic.ts:
//   node dist/bench/tcp-load.js serve PORT              accept, send one byte, until killed
//   node dist/bench/tcp-load.js rate HOST PORT MS PAR   connect+greeting+RST loops on PAR sockets for MS
//                                                       milliseconds; prints {"connections":N,"errors":E}
//   node dist/bench/tcp-load.js latency HOST PORT N     N sequential connects; prints the connect
//                                                       times in microseconds as a JSON array
// Bounded in time and count; talks only to the address it is given.
import { createServer, Socket } from 'node:net';

/**
 * Connects, waits for the server's one-byte greeting, and resets; resolves with the connect time
 * (SYN -> SYN/ACK as the client sees it). Waiting for the greeting ties the client to the server
 * process: otherwise the kernel completes handshakes faster than a briefly descheduled server
 * accepts them, reset connections pile up in the accept queue until it overflows, and every
 * overflow is a SYN retransmission (a 1 s stall).
 */
function connectOnce(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let us = 0;
    const s = new Socket();
    s.setNoDelay(true);
    s.once('error', reject);
    s.connect({ host, port }, () => {
      us = Number(process.hrtime.bigint() - t0) / 1000;
    });
    s.once('data', () => {
      // RST instead of FIN: no TIME_WAIT, so the ephemeral ports never run out.
      s.resetAndDestroy();
      resolve(us);
    });
  });
}

async function rate(host: string, port: number, ms: number, par: number): Promise<void> {
  const end = Date.now() + ms;
  let connections = 0;
  let errors = 0;
  const loop = async () => {
    while (Date.now() < end) {
      try {
        await connectOnce(host, port);
        connections++;
      } catch {
        errors++;
        if (errors > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: par }, loop));
  process.stdout.write(`${JSON.stringify({ connections, errors, ms })}\n`);
}

async function latency(host: string, port: number, n: number): Promise<void> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await connectOnce(host, port));
  process.stdout.write(`${JSON.stringify(out.map((x) => Math.round(x)))}\n`);
}

const BACKLOG = 4096;

function serve(port: number): void {
  const srv = createServer((s) => {
    s.on('error', () => undefined);
    // The client resets every connection once it has the greeting; the server must not close
    // first: its FIN would leave its side in TIME_WAIT, and a client port reused within 60 s then
    // meets that socket, gets an ACK instead of a SYN/ACK and retransmits its SYN after 1 s.
    s.write('x');
    s.setTimeout(5000, () => s.resetAndDestroy());
  });
  // A deep accept queue (the caller raises net.core.somaxconn in this netns): with a short one, a
  // server starved of CPU for a moment drops SYNs and the client stalls 1 s in a retransmission.
  srv.listen({ port, host: '0.0.0.0', backlog: BACKLOG }, () => process.stdout.write('listening\n'));
  // Never outlive the benchmark by much.
  setTimeout(() => process.exit(0), 15 * 60_000).unref();
}

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'serve') serve(Number(a));
else if (mode === 'rate') await rate(a!, Number(b), Math.min(Number(c), 60_000), Math.min(Number(d), 256));
else if (mode === 'latency') await latency(a!, Number(b), Math.min(Number(c), 100_000));
else {
  process.stderr.write('usage: tcp-load serve PORT | rate HOST PORT MS PAR | latency HOST PORT N\n');
  process.exit(2);
}
