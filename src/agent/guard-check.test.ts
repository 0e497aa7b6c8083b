import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pod, snapshot } from '../model/build.js';
import { matchesGlob, parseIpRoutes, unguardedPods } from './guard-check.js';

const ROUTES_V4 = JSON.stringify([
  { dst: 'default', gateway: '172.18.0.1', dev: 'eth0' },
  { dst: '10.244.0.5', dev: 'veth1234', scope: 'host' },
  { dst: '10.244.0.6', dev: 'cali99', scope: 'link' },
  { dst: '10.244.1.0/24', dev: 'cni0', protocol: 'kernel', scope: 'link' },
  { type: 'blackhole', dst: '10.244.2.0/24', flags: [] },
]);
const ROUTES_V6 = JSON.stringify([
  { dst: 'fd00:10:244::5', dev: 'veth1234' },
  { dst: 'fe80::/64', dev: 'veth1234' },
]);

test('parseIpRoutes keeps unicast routes with a device', () => {
  assert.deepEqual(
    parseIpRoutes(ROUTES_V4).map((r) => `${r.dst} ${r.dev}`),
    ['default eth0', '10.244.0.5 veth1234', '10.244.0.6 cali99', '10.244.1.0/24 cni0'],
  );
  assert.deepEqual(parseIpRoutes('not json'), []);
});

test('matchesGlob: names and prefix globs', () => {
  assert.equal(matchesGlob('veth1a', 'veth*'), true);
  assert.equal(matchesGlob('cali1', 'veth*'), false);
  assert.equal(matchesGlob('eth0', 'eth0'), true);
  assert.equal(matchesGlob('eth01', 'eth0'), false);
});

test('unguardedPods: routed pods behind a matching interface, bridged pods with a matching port', () => {
  const routes = [...parseIpRoutes(ROUTES_V4), ...parseIpRoutes(ROUTES_V6)];
  const s = {
    ...snapshot({
      pods: [
        pod('a', 'routed', { ips: ['10.244.0.5', 'fd00:10:244::5'], nodeName: 'n1' }),
        pod('a', 'calico', { ips: ['10.244.0.6'], nodeName: 'n1' }),
        pod('a', 'bridged', { ips: ['10.244.1.7'], nodeName: 'n1' }),
        pod('a', 'no-cache', { ips: ['10.244.1.8'], nodeName: 'n1' }),
        pod('a', 'elsewhere', { ips: ['10.244.3.9'], nodeName: 'n2' }),
        pod('a', 'host', { ips: ['172.18.0.2'], nodeName: 'n1', hostNetwork: true }),
      ],
    }),
    attachments: [{ interfaces: ['cni0', 'veth77'], ips: ['10.244.1.7'] }],
  };
  assert.deepEqual(
    unguardedPods(s, 'n1', routes, ['veth*']).map((u) => `${u.pod} ${u.ip} ${u.dev}`),
    ['a/calico 10.244.0.6 cali99', 'a/no-cache 10.244.1.8 cni0'],
  );
  assert.deepEqual(
    unguardedPods(s, 'n1', routes, ['veth*', 'cali*']).map((u) => u.pod),
    ['a/no-cache'],
  );
});
