// Whether this kernel can run kube-network-policies at all: it sends each new connection to
// userspace with nft `queue`, and without the nft_queue expression its ruleset does not load (it
// stays up and enforces nothing, without saying so). The check loads a rule of the same form in a
// scratch namespace and keeps nft's own error text, so the benchmark records "cannot enforce
// here" instead of a result.
//   node dist/bench/peers/queue-check.js   (prints one JSON line; exit 0 either way)
import { spawnSync } from 'node:child_process';
import { BenchNetns } from '../netns.js';

export interface QueueSupport {
  readonly supported: boolean;
  /** nft's error, first lines, when the rule did not load. */
  readonly error?: string;
}

/** kube-network-policies' form: new connections to a queue, bypassed when no one listens. */
export const QUEUE_RULESET = `table inet moat_queue_check {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state new queue num 100 bypass
  }
}
`;

export function checkQueue(): QueueSupport {
  const ns = new BenchNetns();
  try {
    const n = ns.add('queue');
    const r = spawnSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: QUEUE_RULESET });
    if (r.status === 0) return { supported: true };
    const error = r.stderr.toString().trim().split('\n').slice(0, 3).join(' | ');
    return { supported: false, error: error === '' ? `nft exit ${r.status}` : error };
  } finally {
    // The table goes with its namespace.
    ns.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(`${JSON.stringify(checkQueue())}\n`);
}
