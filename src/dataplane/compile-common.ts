// What the compiler's parts share: address families, protocol names, naming, set definitions.
import { createHash } from 'node:crypto';
import { formatAddress, formatCidr, parseIP, type Cidr, type Family } from '../model/cidr.js';
import { selectorKey } from '../model/selector.js';
import type { LabelSelector, Labels, Protocol } from '../model/types.js';

export const FAM = {
  4: { ip: 'ip', addr: 'ipv4_addr', sfx: 'v4', nfproto: 'ipv4' },
  6: { ip: 'ip6', addr: 'ipv6_addr', sfx: 'v6', nfproto: 'ipv6' },
} as const;

export const PROTO: Record<Protocol, 'tcp' | 'udp' | 'sctp'> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function canonicalIP(ip: string): { family: Family; text: string } | undefined {
  const a = parseIP(ip);
  return a ? { family: a.family, text: formatAddress(a) } : undefined;
}

export function labelsKey(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k] ?? ''}`)
    .join(',');
}

/** nft comments are at most 128 bytes and must not contain a double quote. */
export function comment(s: string): string {
  const clean = s.replace(/["\\\n]/g, "'");
  return clean.length > 120 ? `${clean.slice(0, 117)}...` : clean;
}

export function policyKey(p: { namespace: string; name: string }): string {
  return `${p.namespace}/${p.name}`;
}

export interface PeerDef {
  readonly kind: 'peer';
  readonly name: string;
  readonly policyNs: string;
  readonly nsSel?: LabelSelector;
  readonly podSel?: LabelSelector;
  readonly f: Family;
  readonly comment: string;
}

export interface NportDef {
  readonly kind: 'nport';
  readonly name: string;
  readonly portName: string;
  readonly f: Family;
  readonly comment: string;
}

export type SetDef = PeerDef | NportDef;

export function nsLabelsOf(m: ReadonlyMap<string, Labels>, ns: string): Labels {
  return m.get(ns) ?? { 'kubernetes.io/metadata.name': ns };
}

export function nportDef(portName: string, f: Family): NportDef {
  const safe = /^[a-z0-9-]{1,15}$/.test(portName) ? portName : shortHash(portName);
  return {
    kind: 'nport',
    name: `nport_${safe}_${FAM[f].sfx}`,
    portName,
    f,
    comment: comment(`named port ${portName}`),
  };
}

export function cidrText(c: Cidr): string {
  return c.prefix === (c.family === 4 ? 32 : 128)
    ? formatAddress({ family: c.family, value: c.base })
    : formatCidr(c);
}

/**
 * A selector peer's set, shared by every policy (of any API) with the same scope and podSelector:
 * the policy's namespace when there is no namespaceSelector, else the selected namespaces.
 */
export function selectorPeerDef(
  policyNs: string,
  nsSel: LabelSelector | undefined,
  podSel: LabelSelector | undefined,
  f: Family,
): PeerDef {
  const scope = nsSel === undefined ? `ns=${policyNs}` : `nssel=${selectorKey(nsSel)}`;
  const key = `${scope}|pod=${podSel === undefined ? '' : selectorKey(podSel)}`;
  return {
    kind: 'peer',
    name: `peer_${shortHash(key)}_${FAM[f].sfx}`,
    policyNs,
    ...(nsSel !== undefined ? { nsSel } : {}),
    ...(podSel !== undefined ? { podSel } : {}),
    f,
    comment: comment(key),
  };
}
