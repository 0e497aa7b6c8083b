// Is every local pod behind an interface the source check covers? A --pod-interfaces glob that
// does not match the CNI's interfaces would leave that pod free to send with any source address,
// silently. So the agent looks: a routed pod's host route (kindnet, ptp, Calico) must point at a
// matching interface; a bridged pod (its route is the bridge's subnet) needs an attachment with a
// matching port. Pure; the agent feeds it `ip -j route` output.
import { cidrContains, formatAddress, parseCidr, parseIP } from '../model/cidr.js';
import type { Snapshot } from '../model/types.js';
import { podKey } from '../model/types.js';

export interface Route {
  /** "default", an address, or a CIDR. */
  readonly dst: string;
  readonly dev: string;
}

/** `ip -j route show` (either family); unreadable output is no routes. */
export function parseIpRoutes(text: string): Route[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(doc)) return [];
  const out: Route[] = [];
  for (const r of doc as { dst?: unknown; dev?: unknown; type?: unknown }[]) {
    if (typeof r.dst !== 'string' || typeof r.dev !== 'string') continue;
    if (r.type !== undefined && r.type !== 'unicast') continue;
    out.push({ dst: r.dst, dev: r.dev });
  }
  return out;
}

/** An interface name against a glob: a name, or a prefix ending in "*". */
export function matchesGlob(name: string, glob: string): boolean {
  return glob.endsWith('*') ? name.startsWith(glob.slice(0, -1)) : name === glob;
}

/** The interface the kernel would route an address to (longest prefix; no default route). */
function routeDev(routes: readonly Route[], ip: string): string | undefined {
  const a = parseIP(ip);
  if (a === undefined) return undefined;
  let best: { len: number; dev: string } | undefined;
  for (const r of routes) {
    if (r.dst === 'default') continue;
    const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/${a.family === 4 ? 32 : 128}`);
    if (typeof c === 'string' || c.family !== a.family || !cidrContains(c, a)) continue;
    if (best === undefined || c.prefix > best.len) best = { len: c.prefix, dev: r.dev };
  }
  return best?.dev;
}

export interface Unguarded {
  readonly pod: string;
  readonly ip: string;
  /** Where its traffic comes from, as far as the routes tell. */
  readonly dev: string;
}

/** This node's pods whose source address no check covers. */
export function unguardedPods(
  s: Snapshot,
  nodeName: string,
  routes: readonly Route[],
  globs: readonly string[],
): Unguarded[] {
  const match = (dev: string) => globs.some((g) => matchesGlob(dev, g));
  const ports = new Map<string, string[]>();
  for (const a of s.attachments ?? []) for (const ip of a.ips) ports.set(ip, [...a.interfaces]);
  const out: Unguarded[] = [];
  for (const p of s.pods) {
    if (p.hostNetwork || p.nodeName !== nodeName) continue;
    for (const ip of p.ips) {
      const a = parseIP(ip);
      if (a === undefined) continue;
      const text = formatAddress(a);
      const dev = routeDev(routes, text) ?? 'no route';
      if (match(dev)) continue; // routed: the fib check on that interface
      if ((ports.get(text) ?? []).some(match)) continue; // bridged: the port's binding
      out.push({ pod: podKey(p), ip: text, dev });
    }
  }
  return out;
}
