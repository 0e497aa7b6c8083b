// examples/lab-admin as `moat lab probe` runs it: its Nodes become the lab's two nodes (with their
// labels), the hostNetwork node-exporter serves from node-b's namespace, one agent per node enforces
// the admin tiers through the production reconcile loop (LabAgents), and every cell agrees with the
// evaluator. A few cells are pinned to what the example's comments promise, so that an admin tier
// that silently went missing (on the agents' side and the evaluator's alike) cannot pass.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { computeMatrix, matrixToJson } from '../../src/analysis/matrix.js';
import { compareMatrices, formatDisagreement } from '../../src/lab/compare.js';
import { LabAgents, staticSource } from '../../src/lab/enforce.js';
import { Lab } from '../../src/lab/lab.js';
import { LAB_NETWORKS } from '../../src/lab/plan.js';
import { loadPaths } from '../../src/model/load.js';
import { needsRoot, uniquePrefix } from './lab-util.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/lab-admin', import.meta.url));

for (const network of LAB_NETWORKS) {
  describe(`examples/lab-admin in the lab (${network} pod network)`, { skip: needsRoot }, () => {
    it('every cell agrees with the evaluator, and the guardrails hold', async () => {
      const loaded = await loadPaths([EXAMPLE]);
      assert.deepEqual(loaded.problems, []);
      const snap = loaded.snapshot;
      assert.equal(snap.adminPolicies?.length, 5);
      const lab = await Lab.create(snap, {
        prefix: uniquePrefix(),
        nodeNames: snap.nodes.map((n) => n.name),
        network,
        probeTimeoutMs: 1000,
      });
      const errors: unknown[] = [];
      const agents = new LabAgents(lab, { coalesceMs: 0, onError: (_n, e) => errors.push(e) });
      try {
        assert.deepEqual(
          lab.plan.nodes.map((n) => [n.name, Object.keys(n.labels).sort()]),
          [
            ['node-a', ['kubernetes.io/hostname', 'node-role.kubernetes.io/worker']],
            ['node-b', ['kubernetes.io/hostname', 'node-role.kubernetes.io/infra']],
          ],
        );
        await agents.start(staticSource(snap));
        await agents.idle();
        assert.deepEqual(errors, []);
        for (const a of agents.agents) {
          const d = await a.applier.checkDrift();
          assert.deepEqual(d.differences, [], `${a.node}: no drift`);
        }
        const observed = await lab.probeMatrix();
        const expected = matrixToJson(computeMatrix(lab.snapshot));
        const cmp = compareMatrices(observed.json, expected);
        assert.deepEqual(cmp.disagreements.map(formatDisagreement), []);
        assert.deepEqual(cmp.missing, []);
        assert.equal(cmp.cells, 7 * 7 * 6);
        const cell = (port: number, from: string, to: string, protocol = 'TCP') =>
          observed.json.probes.find((p) => p.port === port && p.protocol === protocol)?.allowed[from]?.[to];
        const PROM = 'monitoring/prometheus';
        const EXPORTER = 'kube-system/node-exporter';
        // ANP monitoring-egress: nodes peer (infra) Allow on 9100, networks peer Deny on 80-8080.
        assert.equal(cell(9100, PROM, EXPORTER), true);
        assert.equal(cell(80, PROM, EXPORTER), false);
        assert.equal(cell(80, PROM, 'tenant-b/web'), false);
        // CNP tenant-guardrails: Accept on the named port "metrics", over the NetworkPolicy.
        assert.equal(cell(9090, PROM, 'tenant-a/web'), true);
        assert.equal(cell(80, PROM, 'tenant-a/web'), false);
        // CNP tenant-a / tenant-b: Pass within a tenant, Deny across tenants.
        assert.equal(cell(80, 'tenant-a/api', 'tenant-a/web'), true);
        assert.equal(cell(80, 'tenant-b/batch', 'tenant-b/web'), true);
        assert.equal(cell(80, 'tenant-b/batch', 'tenant-a/web'), false);
        assert.equal(cell(53, 'tenant-a/web', 'kube-system/coredns', 'UDP'), true);
      } finally {
        await agents.stop();
        await agents.remove().catch(() => undefined);
        await lab.destroy();
      }
    });
  });
}
