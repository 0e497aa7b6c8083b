// An established connection must not outlive the policy that allowed it: when the allow goes away
// the applier deletes the flow's conntrack entries, so its next packet is judged anew and dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labApplier } from '../../src/lab/enforce.js';
import { Lab } from '../../src/lab/lab.js';
import { netpol, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import { needsRoot, threePods, uniquePrefix } from './lab-util.js';

test(
  'lab: an established TCP connection is cut when its allowing policy is removed',
  { skip: needsRoot },
  async () => {
    const base = threePods();
    const allow = snapshot({
      ...base,
      policies: [
        netpol('a', 'web', {
          podSelector: sel({ app: 'web' }),
          ingress: [rule([podPeer(sel({ app: 'client' }), sel())], [pport(80)])],
        }),
      ],
    });
    const lab = await Lab.create(allow, { prefix: uniquePrefix(), probeTimeoutMs: 700 });
    try {
      const applier = labApplier(lab);
      await applier.apply(lab.snapshot);
      const conn = await lab.connect('b/client', 'a/web', 80);
      assert.ok(conn, 'client -> web:80 allowed: connection opens');
      assert.equal(await conn.send(), true, 'echo over the established connection');

      // Same pods, the allow rule gone: web is isolated and nothing admits client.
      const denied = snapshot({
        ...base,
        policies: [netpol('a', 'web', { podSelector: sel({ app: 'web' }) })],
      });
      const r = await applier.apply((await lab.update(denied)).snapshot);
      assert.deepEqual(r.conntrackErrors, []);
      assert.equal(
        (await lab.probe('b/client', 'a/web', 80, 'TCP')).allowed,
        false,
        'new connections denied',
      );
      assert.equal(await conn.send(1500), false, 'the established connection is cut too');
      await conn.close();
    } finally {
      await lab.destroy();
    }
  },
);
