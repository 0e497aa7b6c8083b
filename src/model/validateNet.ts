// IP and CIDR values as the API server parses "legacy" fields (k8s.io/utils/net ParseIPSloppy and
// ParseCIDRSloppy). Upstream keeps the StrictIPCIDRValidation feature gate alpha and off by default
// (1.33 onwards), so IPv4 octets with leading zeros, IPv4-mapped IPv6 and CIDRs with host bits set are
// accepted, with warnings. moat follows that: it accepts them, warns, and uses the canonical network
// (as the API server's consumers do with the parsed *net.IPNet).
import { isIP } from 'node:net';
import { bits, formatAddress, formatCidr, type Address, type Cidr, type Family } from './cidr.js';

export const invalidIPMessage = 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)';
export const invalidCIDRMessage = 'must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)';

interface SloppyIP {
  readonly addr: Address;
  /** Syntax family: an IPv4-mapped IPv6 address is family 6 here, 4 in `addr`. */
  readonly syntax: Family;
  /** netip.ParseAddr would reject it (leading zeros). */
  readonly leadingZeros: boolean;
  /** ::ffff:a.b.c.d */
  readonly mapped: boolean;
}

function parseV4(s: string): { value: bigint; leadingZeros: boolean } | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  let leadingZeros = false;
  for (const p of parts) {
    // Pre-Go-1.17 parsing: decimal digits, leading zeros ignored, at most 255.
    if (!/^\d{1,10}$/.test(p) || Number(p) > 255) return undefined;
    if (p.length > 1 && p.startsWith('0')) leadingZeros = true;
    v = (v << 8n) | BigInt(Number(p));
  }
  return { value: v, leadingZeros };
}

const MAPPED_PREFIX = 0xffffn << 32n;

function parseSloppy(text: string): SloppyIP | undefined {
  if (!text.includes(':')) {
    const v4 = parseV4(text);
    if (!v4) return undefined;
    return { addr: { family: 4, value: v4.value }, syntax: 4, leadingZeros: v4.leadingZeros, mapped: false };
  }
  // Go's parser knows no zones ("fe80::1%eth0").
  if (text.includes('%')) return undefined;
  let s = text;
  let leadingZeros = false;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    if (!v4) return undefined;
    leadingZeros = v4.leadingZeros;
    const hi = ((v4.value >> 16n) & 0xffffn).toString(16);
    const lo = (v4.value & 0xffffn).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  if (isIP(s) !== 6) return undefined;
  const value = parseV6(s);
  if (value >> 32n === MAPPED_PREFIX >> 32n) {
    return { addr: { family: 4, value: value & 0xffffffffn }, syntax: 6, leadingZeros, mapped: true };
  }
  return { addr: { family: 6, value }, syntax: 6, leadingZeros, mapped: false };
}

function parseV6(s: string): bigint {
  const [head = '', rest] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = rest === undefined || rest === '' ? [] : rest.split(':');
  const fill = rest === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export interface ParsedIP {
  /** Canonical text ("10.0.0.1", "fd00::1"); IPv4-mapped IPv6 becomes IPv4, as Go's String() does. */
  readonly canonical: string;
  readonly address: Address;
  readonly warnings: readonly string[];
}

/** IsValidIPForLegacyField(strict=false). Undefined when the value is not an IP address. */
export function parseLegacyIP(text: string): ParsedIP | undefined {
  const ip = parseSloppy(text);
  if (!ip) return undefined;
  const canonical = formatAddress(ip.addr);
  const warnings: string[] = [];
  if (ip.leadingZeros || ip.mapped) {
    warnings.push(
      `non-standard IP address "${text}" will be considered invalid in a future Kubernetes release: use "${canonical}"`,
    );
  } else if (ip.syntax === 6 && canonical !== text) {
    warnings.push(`IPv6 address "${text}" should be in RFC 5952 canonical format ("${canonical}")`);
  }
  return { canonical, address: ip.addr, warnings };
}

export interface ParsedCIDR {
  /** The network ParseCIDRSloppy returns, in canonical text ("10.0.0.0/8" for "10.1.2.3/8"). */
  readonly canonical: string;
  readonly cidr: Cidr;
  /** GetWarningsForCIDR's messages (without the field path). */
  readonly warnings: readonly string[];
}

function mask(f: Family, prefix: number): bigint {
  const b = bits(f);
  return ((1n << BigInt(b)) - 1n) ^ ((1n << BigInt(b - prefix)) - 1n);
}

/** IsValidCIDRForLegacyField(strict=false). Undefined when the value is not a CIDR. */
export function parseLegacyCIDR(text: string): ParsedCIDR | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = parseSloppy(text.slice(0, slash));
  const ptext = text.slice(slash + 1);
  if (!ip || !/^\d{1,10}$/.test(ptext)) return undefined;
  let prefix = Number(ptext);
  if (prefix > bits(ip.syntax)) return undefined;
  let family: Family = ip.addr.family;
  let value = ip.addr.value;
  if (ip.mapped) {
    // A mapped address keeps its IPv4 meaning only while the prefix keeps the ::ffff: part (Go's
    // IPNet.Contains takes the last 4 bytes of the mask); shorter prefixes mask it away into IPv6.
    if (prefix >= 96) prefix -= 96;
    else {
      family = 6;
      value = MAPPED_PREFIX | ip.addr.value;
    }
  }
  const base = value & mask(family, prefix);
  const canonical = formatCidr({ family, base, prefix, text });
  const cidr: Cidr = { family, base, prefix, text: canonical };
  const warnings: string[] = [];
  if (base !== value) {
    const single = `${formatAddress({ family, value })}/${bits(family)}`;
    warnings.push(
      `CIDR value "${text}" is ambiguous in this context (should be "${canonical}" or "${single}"?)`,
    );
  }
  const prefixZeros = ptext.length > 1 && ptext.startsWith('0');
  if (ip.leadingZeros || prefixZeros || ip.mapped) {
    warnings.push(
      `non-standard CIDR value "${text}" will be considered invalid in a future Kubernetes release: use "${canonical}"`,
    );
  }
  if (warnings.length === 0 && family === 6 && canonical !== text) {
    warnings.push(`IPv6 CIDR value "${text}" should be in RFC 5952 canonical format ("${canonical}")`);
  }
  return { canonical, cidr, warnings };
}
