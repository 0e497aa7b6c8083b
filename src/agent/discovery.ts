// API discovery of the kinds a CustomResourceDefinition serves (the admin tiers): which of them the
// API server serves, and at which version. Uses the legacy discovery documents (GET /apis/GROUP and
// /apis/GROUP/VERSION), which every authenticated user may read ("system:discovery" is bound to
// system:authenticated), so discovery needs no RBAC of its own.
import { record } from '../model/json.js';
import type { Watchable, WatchedKind } from './k8s-decode.js';

/** A failed GET; statusCode 0 when no HTTP answer came (connection refused, timeout). */
export interface HttpError {
  readonly statusCode?: number;
}

export type GetJson = (path: string) => Promise<unknown>;

/** kind -> the apiVersion to watch it at; a kind that is not served has no entry. */
export type Served = ReadonlyMap<WatchedKind, string>;

function notFound(e: unknown): boolean {
  return (e as HttpError | undefined)?.statusCode === 404;
}

/** groupVersions an APIGroup document lists ("policy.networking.k8s.io/v1beta1", ...). */
export function groupVersions(doc: unknown): Set<string> {
  const out = new Set<string>();
  const versions = record(doc)?.versions;
  if (!Array.isArray(versions)) return out;
  for (const v of versions) {
    const gv = record(v)?.groupVersion;
    if (typeof gv === 'string') out.add(gv);
  }
  return out;
}

/**
 * Resources an APIResourceList document lists that can be listed and watched (subresources such
 * as "clusternetworkpolicies/status" are not resources of their own).
 */
export function listableResources(doc: unknown): Set<string> {
  const out = new Set<string>();
  const resources = record(doc)?.resources;
  if (!Array.isArray(resources)) return out;
  for (const r of resources) {
    const m = record(r);
    const name = m?.name;
    if (typeof name !== 'string' || name.includes('/')) continue;
    const verbs = Array.isArray(m?.verbs) ? m.verbs : undefined;
    if (verbs !== undefined && !(verbs.includes('list') && verbs.includes('watch'))) continue;
    out.add(name);
  }
  return out;
}

/**
 * Asks the API server which of the kinds it serves. A group or version that is not found (404) is
 * not served; any other failure rejects, so that a sick API server is never taken to mean "no CRD".
 * Each kind is watched at the first of its apiVersions that is served.
 */
export async function discover(get: GetJson, kinds: readonly Watchable[]): Promise<Served> {
  const groups = new Map<string, Set<string>>();
  for (const k of kinds) {
    for (const av of k.apiVersions) {
      const [group] = av.split('/');
      if (group === undefined || !av.includes('/')) continue;
      let s = groups.get(group);
      if (!s) groups.set(group, (s = new Set<string>()));
      s.add(av);
    }
  }
  const resourcesAt = new Map<string, Set<string>>();
  for (const [group, wanted] of groups) {
    let listed: Set<string>;
    try {
      listed = groupVersions(await get(`/apis/${group}`));
    } catch (e) {
      if (notFound(e)) continue;
      throw e;
    }
    for (const av of wanted) {
      if (!listed.has(av)) continue;
      try {
        resourcesAt.set(av, listableResources(await get(`/apis/${av}`)));
      } catch (e) {
        // Listed by the group but gone a moment later (a CRD being changed): not served now.
        if (!notFound(e)) throw e;
      }
    }
  }
  const served = new Map<WatchedKind, string>();
  for (const k of kinds) {
    const av = k.apiVersions.find((v) => resourcesAt.get(v)?.has(k.resource) === true);
    if (av !== undefined) served.set(k.kind, av);
  }
  return served;
}
