// IP and CIDR values as the API server parses "legacy" fields (k8s.io/utils/net ParseIPSloppy and
// ParseCIDRSloppy). Upstream keeps the StrictIPCIDRValidation feature gate alpha and off by default
// (1.33 onwards), so IPv4 octets with leading zeros, IPv4-mapped IPv6 and CIDRs with host bits set are
// accepted, with warnings. moat follows that: it accepts them, warns, and uses the canonical network
// (as the API server's consumers do with the parsed *net.IPNet).
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

// Ports of the pre-Go-1.17 parsers that k8s.io/utils/net ParseIPSloppy and ParseCIDRSloppy keep:
// decimal octets (dtoi) and hex groups (xtoi) may have any number of leading zeros, as long as the
// value fits ("0000000000010.0.0.0" and "2001:0db80::" are accepted by the API server).

/** dtoi over a whole string: digits only, at least one; the value (Infinity when huge). */
function decimal(s: string): number | undefined {
  return /^\d+$/.test(s) ? Number(s) : undefined;
}

function parseV4(s: string): { value: bigint; leadingZeros: boolean } | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  let leadingZeros = false;
  for (const p of parts) {
    const n = decimal(p);
    if (n === undefined || n > 255) return undefined;
    if (p.length > 1 && p.startsWith('0')) leadingZeros = true;
    v = (v << 8n) | BigInt(n);
  }
  return { value: v, leadingZeros };
}

/**
 * parseIPv6 of Go 1.16 (kept in k8s.io/utils/net): hex groups of any length up to 0xFFFF, one
 * "::", an IPv4 tail in the last 32 bits (or anywhere after a "::" with room for it). No zones.
 */
function parseV6(text: string): { value: bigint; leadingZeros: boolean } | undefined {
  const groups: number[] = []; // 16-bit values in order, the IPv4 tail as two groups
  let ellipsis = -1; // index into groups where "::" stood
  let leadingZeros = false;
  let s = text;
  if (s.startsWith('::')) {
    ellipsis = 0;
    s = s.slice(2);
    if (s === '') return { value: 0n, leadingZeros };
  }
  while (groups.length < 8) {
    const m = /^[0-9A-Fa-f]+/.exec(s);
    if (!m) return undefined;
    const hex = m[0];
    const n = parseInt(hex, 16);
    if (n > 0xffff) return undefined;
    const rest = s.slice(hex.length);
    if (rest.startsWith('.')) {
      // "If followed by dot, might be in trailing IPv4."
      if (ellipsis < 0 && groups.length !== 6) return undefined;
      if (groups.length + 2 > 8) return undefined;
      const v4 = parseV4(s);
      if (!v4) return undefined;
      leadingZeros ||= v4.leadingZeros;
      groups.push(Number(v4.value >> 16n), Number(v4.value & 0xffffn));
      s = '';
      break;
    }
    groups.push(n);
    s = rest;
    if (s === '') break;
    if (!s.startsWith(':') || s.length === 1) return undefined;
    s = s.slice(1);
    if (s.startsWith(':')) {
      if (ellipsis >= 0) return undefined;
      ellipsis = groups.length;
      s = s.slice(1);
      if (s === '') break;
    }
  }
  if (s !== '') return undefined;
  if (groups.length < 8) {
    if (ellipsis < 0) return undefined;
    groups.splice(ellipsis, 0, ...Array<number>(8 - groups.length).fill(0));
  } else if (ellipsis >= 0) {
    // "Ellipsis must represent at least one 0 group."
    return undefined;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return { value: v, leadingZeros };
}

const MAPPED_PREFIX = 0xffffn << 32n;

function parseSloppy(text: string): SloppyIP | undefined {
  // ParseIPSloppy tries IPv4 first, then IPv6.
  const v4 = parseV4(text);
  if (v4)
    return { addr: { family: 4, value: v4.value }, syntax: 4, leadingZeros: v4.leadingZeros, mapped: false };
  const v6 = parseV6(text);
  if (!v6) return undefined;
  const { value, leadingZeros } = v6;
  if (value >> 32n === MAPPED_PREFIX >> 32n) {
    return { addr: { family: 4, value: value & 0xffffffffn }, syntax: 6, leadingZeros, mapped: true };
  }
  return { addr: { family: 6, value }, syntax: 6, leadingZeros, mapped: false };
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
  /**
   * The prefix length as written, in bits of the written family (104 for "::ffff:10.0.0.0/104",
   * whose `cidr` is 10.0.0.0/8): ValidateIPBlock compares these (net.IPMask.Size()).
   */
  readonly writtenPrefix: number;
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
  const written = decimal(ptext);
  if (!ip || written === undefined || written > bits(ip.syntax)) return undefined;
  let prefix = written;
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
  return { canonical, cidr, warnings, writtenPrefix: written };
}
