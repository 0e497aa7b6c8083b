// The iptables + ipset backend in a lab node: it judges after a Service's DNAT (a kube-proxy-style
// nat rule in the node namespace), leaves rules and chains it did not create alone, repairs drift,
// and removes exactly its own chains, hooks and sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../src/lab/exec.js';
import { labApplier, labSnapshot } from '../../src/lab/enforce.js';
import { Lab } from '../../src/lab/lab.js';
import { netpol, podPeer, pport, rule, sel } from '../../src/model/build.js';
import type { Snapshot } from '../../src/model/types.js';
import { needsRoot, threePods, uniquePrefix } from './lab-util.js';

const SERVICE = '10.96.0.10';

async function inNode(lab: Lab, ...argv: string[]): Promise<string> {
  return (await run(['ip', 'netns', 'exec', lab.nodeNetns, ...argv])).stdout;
}

// kube-proxy's rules in iptables-nft (the plain binaries here) or in iptables-legacy: moat finds the
// flavour they are in, as kube-proxy's wrapper does, and puts its own chains beside them.
for (const flavour of ['nft', 'legacy'] as const)
  test(
    `iptables backend (host on iptables-${flavour}): after DNAT, next to foreign rules, drift repaired, removal exact`,
    { skip: needsRoot },
    async () => {
      const ipt = flavour === 'nft' ? 'iptables' : 'iptables-legacy';
      const ip6t = flavour === 'nft' ? 'ip6tables' : 'ip6tables-legacy';
      const otherFlavour = flavour === 'nft' ? 'iptables-legacy' : 'iptables-nft';
      const lab = await Lab.create(threePods(), { prefix: uniquePrefix(), probeTimeoutMs: 1000 });
      const applier = labApplier(lab, undefined, 0, 'iptables');
      try {
        const pods = lab.snapshot.pods;
        const [a, b] = [pods[0]!, pods[1]!];
        const key = (p: typeof a) => `${p.namespace}/${p.name}`;
        const bIP = b.ips.find((ip) => ip.includes('.'))!;
        // kube-proxy's part: a Service address DNATed to pod b, and a foreign chain and rule in mangle.
        await inNode(
          lab,
          ipt,
          '-w',
          '-t',
          'nat',
          '-A',
          'PREROUTING',
          '-d',
          SERVICE,
          '-p',
          'tcp',
          '--dport',
          '80',
          '-j',
          'DNAT',
          '--to-destination',
          `${bIP}:80`,
        );
        await inNode(lab, ipt, '-w', '-t', 'mangle', '-N', 'OTHER-CHAIN');
        await inNode(
          lab,
          ipt,
          '-w',
          '-t',
          'mangle',
          '-A',
          'FORWARD',
          '-m',
          'comment',
          '--comment',
          'not-moat',
          '-j',
          'OTHER-CHAIN',
        );
        const foreign = async () =>
          (await inNode(lab, `${ipt}-save`, '-t', 'mangle'))
            .split('\n')
            .filter((l) => /OTHER-CHAIN|not-moat/.test(l));
        const foreignBefore = await foreign();

        // b admits only a's app label on 80; c is denied.
        const policy = netpol(b.namespace, 'only-a', {
          podSelector: sel(b.labels),
          ingress: [rule([podPeer(sel(a.labels), sel())], [pport(80)])],
        });
        const snap: Snapshot = { ...labSnapshot(lab), policies: [policy] };
        const r = await applier.apply(snap);
        assert.equal(r.mode, 'full');
        const other = pods.find(
          (p) => p !== a && p !== b && !Object.entries(a.labels).every(([k, v]) => p.labels[k] === v),
        )!;
        // Through the Service: the destination the policy sees is pod b (after DNAT).
        const viaA = await lab.probeAddress(key(a), SERVICE, 80, 'TCP');
        const viaOther = await lab.probeAddress(key(other), SERVICE, 80, 'TCP');
        assert.equal(viaA.allowed, true, `a -> service -> b: ${viaA.detail}`);
        assert.equal(viaOther.allowed, false, `${key(other)} -> service -> b: ${viaOther.detail}`);
        // The foreign rules run too: moat's accept does not end FORWARD for them (its jump is first,
        // and it returns).
        const fwd = (await inNode(lab, `${ipt}-save`, '-t', 'mangle'))
          .split('\n')
          .filter((l) => l.startsWith('-A FORWARD'));
        assert.match(fwd[0]!, /-j MOAT-FORWARD$/);
        assert.deepEqual(await foreign(), foreignBefore);
        // The other flavour's tables hold nothing of moat's.
        assert.doesNotMatch(await inNode(lab, `${otherFlavour}-save`), /MOAT-/, `${otherFlavour}-save`);
        const counted = await inNode(lab, ipt, '-w', '-t', 'mangle', '-L', 'FORWARD', '-v', '-x', '-n');
        const otherPkts = Number(/^\s*(\d+).*OTHER-CHAIN/m.exec(counted)?.[1] ?? '0');
        assert.ok(otherPkts > 0, `the foreign FORWARD rule saw the allowed packets:\n${counted}`);

        // Drift: a flushed chain and a removed hook are found and repaired.
        await inNode(lab, ipt, '-w', '-t', 'mangle', '-F', 'MOAT-ingress');
        await inNode(lab, ip6t, '-w', '-t', 'mangle', '-D', 'POSTROUTING', '-j', 'MOAT-POSTROUTING');
        const d = await applier.checkDrift();
        assert.equal(d.drifted, true);
        assert.ok(
          d.differences.some((x) => /MOAT-ingress: 0 rule\(s\)/.test(x)),
          d.differences.join('\n'),
        );
        assert.ok(
          d.differences.some((x) => /ipv6: mangle POSTROUTING does not jump/.test(x)),
          d.differences.join('\n'),
        );
        assert.deepEqual((await applier.checkDrift()).differences, []);
        assert.equal((await lab.probeAddress(key(other), SERVICE, 80, 'TCP')).allowed, false);

        // Removal: moat's chains, hooks and sets are gone; the foreign ones stay.
        await applier.remove();
        for (const save of [`${ipt}-save`, `${ip6t}-save`])
          assert.doesNotMatch(await inNode(lab, save), /MOAT-/, `${save} after remove`);
        assert.equal((await inNode(lab, 'ipset', 'list', '-n')).trim(), '');
        assert.deepEqual(await foreign(), foreignBefore);
        assert.equal(
          (await lab.probeAddress(key(other), SERVICE, 80, 'TCP')).allowed,
          true,
          'no policy once removed',
        );
      } finally {
        await applier.close();
        await lab.destroy();
      }
    },
  );

test(
  'iptables backend on a bridged pod network: refused with a clear error, nothing applied',
  { skip: needsRoot },
  async () => {
    const lab = await Lab.create(threePods(), {
      prefix: uniquePrefix(),
      probeTimeoutMs: 700,
      network: 'bridge',
    });
    const applier = labApplier(lab, undefined, 0, 'iptables');
    try {
      await assert.rejects(
        applier.apply(labSnapshot(lab)),
        /bridged pod ports need the bridge-family source check/,
      );
      assert.doesNotMatch(await inNode(lab, 'iptables-save'), /MOAT-/);
      assert.equal((await inNode(lab, 'ipset', 'list', '-n')).trim(), '');
    } finally {
      await applier.close();
      await lab.destroy();
    }
  },
);
