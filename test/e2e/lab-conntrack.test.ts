// An established connection must not outlive the policy that allowed it: when the allow goes away
// the applier deletes the flow's conntrack entries, so its next packet is judged anew and dropped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labApplier } from '../../src/lab/enforce.js';
import { Lab } from '../../src/lab/lab.js';
import { cport, netpol, podPeer, pport, rule, sel, snapshot } from '../../src/model/build.js';
import { needsRoot, threePods, uniquePrefix } from './lab-util.js';

for (const backend of ['nftables', 'iptables'] as const)
  test(
    `lab: an established TCP connection is cut when its allowing policy is removed (${backend})`,
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
        const applier = labApplier(lab, undefined, 0, backend);
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
        // Cut by exact tuple over ctnetlink, not by the conntrack-tools fallback.
        assert.equal(r.conntrackFallback, undefined);
        assert.match(r.conntrackDeleted.join(), /\(1 flow\)/);
        assert.equal(
          (await lab.probe('b/client', 'a/web', 80, 'TCP')).allowed,
          false,
          'new connections denied',
        );
        assert.equal(await conn.send(1500), false, 'the established connection is cut too');
        await conn.close();
        await applier.close();
      } finally {
        await lab.destroy();
      }
    },
  );

test(
  'lab: a restarted agent cuts established connections that a policy changed meanwhile denies',
  { skip: needsRoot },
  async () => {
    const three = threePods();
    const base = { ...three, pods: three.pods.map((p) => ({ ...p, ports: [...p.ports, cport(81)] })) };
    const lab = await Lab.create(snapshot(base), { prefix: uniquePrefix(), probeTimeoutMs: 700 });
    try {
      // No policy: everything allowed; a connection opens and stays open.
      await labApplier(lab).apply(lab.snapshot);
      const kept = await lab.connect('b/client', 'a/web', 80);
      const cut = await lab.connect('b/client', 'a/web', 81);
      assert.ok(kept && cut, 'connections open');
      assert.equal(await cut.send(), true);

      // While the agent is down, web gets a policy that admits port 80 only. A new agent (a new
      // applier: nothing in memory) starts with a full replace of the table.
      const tightened = snapshot({
        ...base,
        policies: [
          netpol('a', 'web', {
            podSelector: sel({ app: 'web' }),
            ingress: [rule([podPeer(sel({ app: 'client' }), sel())], [pport(80)])],
          }),
        ],
      });
      const applier = labApplier(lab);
      const r = await applier.apply((await lab.update(tightened)).snapshot);
      await applier.close();
      assert.equal(r.mode, 'full');
      assert.deepEqual(r.conntrackErrors, []);
      assert.equal(r.conntrackFallback, undefined);
      assert.equal(await cut.send(1500), false, 'the flow to port 81 is cut');
      assert.equal(await kept.send(), true, 'the flow to port 80, still allowed, survives');
      await kept.close();
      await cut.close();
    } finally {
      await lab.destroy();
    }
  },
);
