// Shared by the lab e2e tests: root detection, unique prefixes, a small 3-pod cluster.
import { cport, ns, pod, snapshot } from '../../src/model/build.js';
import type { Snapshot } from '../../src/model/types.js';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** `skip` option for lab tests: they create network namespaces and nft tables. */
export const needsRoot: string | false = isRoot
  ? false
  : 'skipped: lab e2e tests need root (they create network namespaces and nft tables)';

let n = 0;
/** A prefix no other test (or test run) uses, so labs cannot collide. Starts with moat-lab. */
export function uniquePrefix(): string {
  return `moat-lab-${process.pid.toString(36)}${(n++).toString(36)}`;
}

/** Three pods in two namespaces, each serving 80/TCP and 80/UDP. */
export function threePods(): Snapshot {
  const ports = [cport(80, 'TCP', 'http'), cport(80, 'UDP', 'dns')];
  return snapshot({
    namespaces: [ns('a'), ns('b')],
    pods: [
      pod('a', 'web', { labels: { app: 'web' }, ports }),
      pod('a', 'db', { labels: { app: 'db' }, ports }),
      pod('b', 'client', { labels: { app: 'client' }, ports }),
    ],
  });
}

/** Number of allowed and denied cells between distinct pods. */
export function census(json: {
  pods: string[];
  probes: { allowed: Record<string, Record<string, boolean>> }[];
}): {
  allowed: number;
  denied: number;
} {
  let allowed = 0;
  let denied = 0;
  for (const p of json.probes) {
    for (const from of json.pods) {
      for (const to of json.pods) {
        if (from === to) continue;
        if (p.allowed[from]?.[to] === true) allowed++;
        else denied++;
      }
    }
  }
  return { allowed, denied };
}
