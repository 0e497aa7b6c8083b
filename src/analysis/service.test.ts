import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cport, ns, pod, snapshot } from '../model/build.js';
import type { Service, Snapshot } from '../model/types.js';
import { resolveService, serviceEndpoints, servicePort, targetPortOn } from './service.js';

const svc = (namespace: string, name: string, o: Partial<Service> = {}): Service => ({
  namespace,
  name,
  selector: { app: 'web' },
  ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }],
  ...o,
});
const unselected = (namespace: string, name: string): Service => ({ namespace, name, ports: [] });

const snap: Snapshot = {
  ...snapshot({
    namespaces: [ns('a'), ns('b')],
    pods: [
      pod('a', 'web-1', { labels: { app: 'web' }, ips: ['10.0.0.1'], ports: [cport(8080, 'TCP', 'http')] }),
      pod('a', 'web-2', { labels: { app: 'web' }, ips: ['10.0.0.2'], ports: [cport(9090, 'TCP', 'http')] }),
      pod('a', 'old', { labels: { app: 'web' }, ips: ['10.0.0.3'] }),
      pod('b', 'web-3', { labels: { app: 'web' }, ips: ['10.0.1.1'] }),
    ],
  }),
  services: [
    svc('a', 'web'),
    svc('b', 'web'),
    svc('a', 'only', { ports: [{ port: 53, targetPort: 5353, protocol: 'UDP' }] }),
    unselected('a', 'external'),
  ],
};

describe('Services as destinations', () => {
  it('resolves NS/svc/NAME, service/NAME when unique, and says when it is not', () => {
    assert.equal(resolveService(snap, 'a/svc/web', '--to')?.namespace, 'a');
    assert.equal(resolveService(snap, 'svc/only', '--to')?.name, 'only');
    assert.equal(resolveService(snap, 'a/web-1', '--to'), undefined, 'a pod, not a Service');
    assert.equal(resolveService(snap, 'a/deploy/web', '--to'), undefined);
    assert.throws(() => resolveService(snap, 'svc/web', '--to'), /exists in a, b: write NAMESPACE\/svc\/web/);
    assert.throws(() => resolveService(snap, 'a/svc/nope', '--to'), /unknown Service a\/svc\/nope/);
  });

  it('endpoints: the selected pods of its namespace; none without a selector', () => {
    assert.deepEqual(
      serviceEndpoints(snap, svc('a', 'web')).map((p) => p.name),
      ['web-1', 'web-2', 'old'],
    );
    assert.deepEqual(serviceEndpoints(snap, unselected('a', 'external')), []);
  });

  it('ports: by number or name; a named targetPort per pod, absent where the pod lacks it', () => {
    const s = svc('a', 'web');
    const sp = servicePort(s, 'http', undefined);
    assert.equal(servicePort(s, '80', 'TCP'), sp);
    assert.throws(() => servicePort(s, '80', 'UDP'), /has no UDP port 80 \(it has: http TCP\/80\)/);
    const [p1, p2, old] = serviceEndpoints(snap, s);
    assert.deepEqual(
      [targetPortOn(sp, p1!), targetPortOn(sp, p2!), targetPortOn(sp, old!)],
      [8080, 9090, undefined],
    );
    assert.equal(targetPortOn({ port: 53, targetPort: 5353, protocol: 'UDP' }, old!), 5353);
  });
});
