// Tiny TCP load tool for the traffic benchmarks, run inside a namespace by dataplane-traffic.ts:
//   node dist/bench/tcp-load.js serve PORT              accept and close, until killed
//   node dist/bench/tcp-load.js rate HOST PORT MS PAR   connect+close loops on PAR sockets for MS
//                                                       milliseconds; prints {"connections":N,"errors":E}
//   node dist/bench/tcp-load.js latency HOST PORT N     N sequential connects; prints the connect
//                                                       times in microseconds as a JSON array
// Bounded in time and count; talks only to the address it is given.
import { createServer, Socket } from 'node:net';

function connectOnce(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = new Socket();
    s.setNoDelay(true);
    s.once('error', reject);
    s.connect({ host, port }, () => {
      const us = Number(process.hrtime.bigint() - t0) / 1000;
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

function serve(port: number): void {
  const srv = createServer((s) => {
    s.on('error', () => undefined);
    s.destroy();
  });
  srv.listen(port, '0.0.0.0', () => process.stdout.write('listening\n'));
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
