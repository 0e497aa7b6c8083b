// IPv4 and IPv6 addresses and prefixes as bigints, so containment is exact for both families.
import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  readonly family: Family;
  /** Network address (host bits zeroed). */
  readonly base: bigint;
  readonly prefix: number;
  /** The text as given. */
  readonly text: string;
}

export interface Address {
  readonly family: Family;
  readonly value: bigint;
}

export function parseIP(text: string): Address | undefined {
  const fam = isIP(text);
  if (fam === 4) {
    let v = 0n;
    for (const part of text.split('.')) v = (v << 8n) | BigInt(Number(part));
    return { family: 4, value: v };
  }
  if (fam === 6) return { family: 6, value: parseIPv6(text) };
  return undefined;
}

function parseIPv6(text: string): bigint {
  let s = text;
  // Embedded IPv4 tail (::ffff:1.2.3.4).
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIP(tail);
    if (!v4) throw new Error(`bad IPv6 ${text}`);
    const hi = Number((v4.value >> 16n) & 0xffffn).toString(16);
    const lo = Number(v4.value & 0xffffn).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  const [head = '', rest] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export function bits(f: Family): number {
  return f === 4 ? 32 : 128;
}

function mask(f: Family, prefix: number): bigint {
  const b = bits(f);
  return ((1n << BigInt(b)) - 1n) ^ ((1n << BigInt(b - prefix)) - 1n);
}

/** Parses "a.b.c.d/n" or "x::y/n". Returns an error message when it is not a CIDR. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  if (slash < 0) return `must be a CIDR (address/prefix), got "${text}"`;
  const addr = parseIP(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (!addr) return `"${text.slice(0, slash)}" is not an IP address`;
  if (!/^\d{1,3}$/.test(ptext) || Number(ptext) > bits(addr.family)) {
    return `prefix length "${ptext}" is out of range for IPv${addr.family}`;
  }
  const prefix = Number(ptext);
  return { family: addr.family, base: addr.value & mask(addr.family, prefix), prefix, text };
}

export function mustCidr(text: string): Cidr {
  const c = parseCidr(text);
  if (typeof c === 'string') throw new Error(c);
  return c;
}

export function cidrContains(c: Cidr, a: Address): boolean {
  return c.family === a.family && (a.value & mask(c.family, c.prefix)) === c.base;
}

/** True when `inner` lies inside `outer` (equal counts as inside). */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return (
    inner.family === outer.family &&
    inner.prefix >= outer.prefix &&
    (inner.base & mask(outer.family, outer.prefix)) === outer.base
  );
}

export function formatAddress(a: Address): string {
  if (a.family === 4) {
    const v = a.value;
    return [24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((a.value >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Canonical network text, e.g. "10.0.0.0/8" for "10.1.2.3/8". */
export function formatCidr(c: Cidr): string {
  return `${formatAddress({ family: c.family, value: c.base })}/${c.prefix}`;
}

export function familyOf(ip: string): Family | undefined {
  const f = isIP(ip);
  return f === 4 || f === 6 ? f : undefined;
}
