// Two live pods with one address. The kernel sees addresses, not pods: it cannot tell which pod a
// packet from (or to) a shared address belongs to, so applying either pod's policies to it would
// apply one pod's rules to the other's traffic. Such an address is enforced fail-closed (see
// docs/security.md) and reported. Pure.
import { formatAddress, parseIP } from './cidr.js';
import type { Pod, Snapshot } from './types.js';
import { podKey } from './types.js';

export interface AddressConflict {
  /** Canonical address. */
  readonly address: string;
  /** The live pods ("ns/name", sorted) that all claim it. */
  readonly pods: readonly string[];
}

function canonical(ip: string): string | undefined {
  const a = parseIP(ip);
  return a ? formatAddress(a) : undefined;
}

/**
 * Addresses claimed by more than one live pod. hostNetwork pods share their node's addresses by
 * design and never count.
 */
export function addressConflicts(pods: readonly Pod[]): AddressConflict[] {
  const owners = new Map<string, Set<string>>();
  for (const p of pods) {
    if (p.hostNetwork) continue;
    for (const ip of p.ips) {
      const a = canonical(ip);
      if (a === undefined) continue;
      let s = owners.get(a);
      if (!s) owners.set(a, (s = new Set()));
      s.add(podKey(p));
    }
  }
  const out: AddressConflict[] = [];
  for (const [address, s] of owners) {
    if (s.size > 1) out.push({ address, pods: [...s].sort() });
  }
  return out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}

const cache = new WeakMap<Snapshot, ReadonlySet<string>>();

/** The conflicting addresses of a snapshot (cached per snapshot object). */
export function conflictedAddresses(s: Snapshot): ReadonlySet<string> {
  let set = cache.get(s);
  if (set === undefined) {
    set = new Set(addressConflicts(s.pods).map((c) => c.address));
    cache.set(s, set);
  }
  return set;
}
