// Entry script: a ctnetlink client (ct-socket.ts) where it runs, for NetlinkConntrack
// (ct-client.ts). Node cannot change its network namespace, so the parent runs
//   ip netns exec NS node dist/src/dataplane/ct-child.js
// JSON lines on stdin, one answer line each on stdout, in order:
//   {"id":1,"op":"list"}                 -> {"id":1,"entries":[CtEntry...]}
//   {"id":1,"op":"list","addresses":[]}  -> only entries whose orig or reply source is one of them
//   {"id":2,"op":"delete","entries":[]}  -> {"id":2,"errnos":[0,2,...]}  (0 deleted, 2 ENOENT)
//   {"id":3,"op":"addresses"}            -> {"id":3,"addresses":["10.0.0.1",...]}  (rtnetlink)
//   a request that failed                -> {"id":N,"error":"...","code":"ENOBUFS"?}
// It exits when stdin ends (the parent is gone), and on SIGTERM.
import { createInterface } from 'node:readline';
import type { CtEntry } from './conntrack.js';
import { CtSocket, type CtError } from './ct-socket.js';

export type CtRequest =
  | { readonly id: number; readonly op: 'list'; readonly addresses?: readonly string[] }
  | { readonly id: number; readonly op: 'addresses' }
  | { readonly id: number; readonly op: 'delete'; readonly entries: readonly CtEntry[] };

export type CtAnswer =
  | { readonly id: number; readonly entries: CtEntry[] }
  | { readonly id: number; readonly errnos: number[] }
  | { readonly id: number; readonly addresses: string[] }
  | { readonly id: number; readonly error: string; readonly code?: string };

let sock: Promise<CtSocket> | undefined;

async function answer(req: CtRequest): Promise<CtAnswer> {
  try {
    sock ??= CtSocket.open();
    const s = await sock;
    if (req.op === 'list') return { id: req.id, entries: await s.list(req.addresses) };
    if (req.op === 'delete') return { id: req.id, errnos: await s.delete(req.entries) };
    if (req.op === 'addresses') return { id: req.id, addresses: await s.addresses() };
    return { id: (req as { id: number }).id, error: `ct-child: unknown op ${JSON.stringify(req)}` };
  } catch (e) {
    const err = e as CtError;
    if (sock !== undefined && err.code !== undefined) {
      // A socket that reported an error (an overrun, ...) is not reused.
      const old = sock;
      sock = undefined;
      void old.then(
        (s) => s.close(),
        () => undefined,
      );
    } else if (!(err instanceof Error && err.name === 'CtError')) {
      sock = undefined; // the socket could not be made
    }
    return { id: req.id, error: err.message, ...(err.code !== undefined ? { code: err.code } : {}) };
  }
}

const lines = createInterface({ input: process.stdin });
let chain: Promise<void> = Promise.resolve();
lines.on('line', (text) => {
  let req: CtRequest;
  try {
    req = JSON.parse(text) as CtRequest;
  } catch {
    process.stdout.write(`${JSON.stringify({ id: -1, error: 'ct-child: a request is not JSON' })}\n`);
    return;
  }
  chain = chain.then(async () => {
    process.stdout.write(`${JSON.stringify(await answer(req))}\n`);
  });
});
const stop = (): void => {
  void chain.then(() => process.exit(0));
};
lines.on('close', stop);
process.on('SIGTERM', () => process.exit(0));
