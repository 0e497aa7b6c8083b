import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discover, type GetJson } from './discovery.js';
import { WATCHABLE } from './k8s-decode.js';

const G = 'policy.networking.k8s.io';
const CRDS = WATCHABLE.filter((w) => w.discovered);

/** An API server whose discovery documents serve these resources at these versions. */
function server(served: Record<string, string[]>, fail: Record<string, number> = {}): GetJson {
  return (path) => {
    const code = fail[path];
    if (code !== undefined)
      return Promise.reject(Object.assign(new Error(`HTTP ${code}`), { statusCode: code }));
    const versions = Object.keys(served);
    if (path === `/apis/${G}` && versions.length > 0) {
      return Promise.resolve({
        kind: 'APIGroup',
        versions: versions.map((v) => ({ groupVersion: `${G}/${v}` })),
      });
    }
    const v = versions.find((x) => path === `/apis/${G}/${x}`);
    if (v === undefined) return Promise.reject(Object.assign(new Error('HTTP 404'), { statusCode: 404 }));
    const resources = (served[v] ?? []).flatMap((name) => [
      { name, verbs: ['get', 'list', 'watch'] },
      { name: `${name}/status`, verbs: ['get', 'patch'] },
    ]);
    return Promise.resolve({ kind: 'APIResourceList', groupVersion: `${G}/${v}`, resources });
  };
}

const cases: { name: string; served: Record<string, string[]>; want: Record<string, string> }[] = [
  { name: 'no CRD: the group is not found', served: {}, want: {} },
  {
    name: 'both CNP versions: v1beta1 is watched',
    served: { v1beta1: ['clusternetworkpolicies'], v1alpha2: ['clusternetworkpolicies'] },
    want: { ClusterNetworkPolicy: `${G}/v1beta1` },
  },
  {
    name: 'only v1alpha2',
    served: { v1alpha2: ['clusternetworkpolicies'] },
    want: { ClusterNetworkPolicy: `${G}/v1alpha2` },
  },
  {
    name: 'the v1alpha1 kinds, one by one',
    served: { v1alpha1: ['adminnetworkpolicies', 'baselineadminnetworkpolicies'] },
    want: { AdminNetworkPolicy: `${G}/v1alpha1`, BaselineAdminNetworkPolicy: `${G}/v1alpha1` },
  },
  {
    name: 'a version moat does not know serves nothing moat watches',
    served: { v1: ['clusternetworkpolicies'], v1alpha1: ['baselineadminnetworkpolicies'] },
    want: { BaselineAdminNetworkPolicy: `${G}/v1alpha1` },
  },
  {
    name: 'a subresource is not the resource',
    served: { v1beta1: [] },
    want: {},
  },
];

for (const c of cases) {
  test(`discover: ${c.name}`, async () => {
    const got = await discover(server(c.served), CRDS);
    assert.deepEqual(Object.fromEntries(got), c.want);
  });
}

test('discover: a version listed by the group but not found (a CRD changing) is not served', async () => {
  const get = server(
    { v1beta1: ['clusternetworkpolicies'], v1alpha1: ['adminnetworkpolicies'] },
    { [`/apis/${G}/v1beta1`]: 404 },
  );
  assert.deepEqual(Object.fromEntries(await discover(get, CRDS)), { AdminNetworkPolicy: `${G}/v1alpha1` });
});

test('discover: any failure but 404 rejects (a sick API server is not "no CRD")', async () => {
  for (const path of [`/apis/${G}`, `/apis/${G}/v1beta1`]) {
    for (const code of [403, 500, 503, 0]) {
      const get = server({ v1beta1: ['clusternetworkpolicies'] }, { [path]: code });
      await assert.rejects(discover(get, CRDS), new RegExp(`HTTP ${code}`), `${path} ${code}`);
    }
  }
});

test('discover: a resource without list and watch is not watchable', async () => {
  const get: GetJson = (path) =>
    Promise.resolve(
      path === `/apis/${G}`
        ? { versions: [{ groupVersion: `${G}/v1beta1` }] }
        : { resources: [{ name: 'clusternetworkpolicies', verbs: ['get', 'create'] }] },
    );
  assert.deepEqual(Object.fromEntries(await discover(get, CRDS)), {});
});
