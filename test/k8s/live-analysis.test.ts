// The analysis commands on a live cluster (--kubeconfig, list only) against the same objects read
// from files: the real kube-apiserver stores test/fixtures/live (workloads, Services,
// NetworkPolicies; no controllers run, so no Pods: the workloads' templates are the pods, as in
// files), and matrix, lint, explain, validate and diff must say what they say of the files.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { moat } from '../support/cli.js';
import { clusterSkipReason, startCluster } from './cluster.js';

const FIXTURE = 'test/fixtures/live';

test(
  'analysis of a live cluster equals the analysis of its files',
  { skip: clusterSkipReason() },
  async (t) => {
    const c = await startCluster();
    const dir = mkdtempSync(join(tmpdir(), 'moat-live-'));
    try {
      // The Namespace first (kubectl takes a directory's files in name order).
      for (const f of ['shop.yaml', 'policies.yaml']) {
        const applied = await c.kubectl(['apply', '-f', join(FIXTURE, f)]);
        assert.equal(applied.code, 0, applied.stderr);
      }
      const live = ['--kubeconfig', c.kubeconfig];

      await t.test('matrix: the same cells, every output', () => {
        for (const o of ['json', 'table', 'csv', 'dot']) {
          const files = moat(['matrix', '-f', FIXTURE, '-o', o]);
          const cluster = moat(['matrix', ...live, '-o', o]);
          assert.equal(files.code, 0, files.stderr);
          assert.equal(cluster.code, 0, cluster.stderr);
          assert.equal(cluster.stdout, files.stdout, `-o ${o}`);
        }
        const svc = moat(['matrix', ...live, '--to', 'shop/svc/web']);
        assert.equal(svc.stdout, moat(['matrix', '-f', FIXTURE, '--to', 'shop/svc/web']).stdout);
      });

      await t.test('lint: the same findings (named, not located), but what defaulting erased', () => {
        const strip = (out: string) =>
          (JSON.parse(out) as { findings: unknown[] }).findings.map((f) => JSON.stringify(f)).sort();
        const files = moat(['lint', '-f', FIXTURE, '-o', 'json', '--fail-on', 'error']);
        const cluster = moat(['lint', ...live, '-o', 'json', '--fail-on', 'error']);
        assert.equal(cluster.code, files.code, cluster.stderr);
        // Except policytypes-implicit: the API server writes the defaulted policyTypes into the
        // stored object, so a live cluster no longer shows that it was left out.
        const implicit = (f: string) => f.includes('"check":"policytypes-implicit"');
        assert.ok(strip(files.stdout).some(implicit), 'the files have the finding');
        assert.deepEqual(
          strip(cluster.stdout),
          strip(files.stdout).filter((f) => !implicit(f)),
        );
      });

      await t.test('explain: the same verdict and reasons', () => {
        const args = ['--from', 'shop/sts/db-1', '--to', 'shop/svc/web', '--port', 'http', '--exit-code'];
        const files = moat(['explain', '-f', FIXTURE, ...args]);
        const cluster = moat(['explain', ...live, ...args]);
        assert.equal(files.code, 1, files.stderr);
        assert.equal(cluster.code, 1, cluster.stderr);
        assert.equal(cluster.stdout, files.stdout);
      });

      await t.test('validate: the stored objects are valid, and the cluster has its own too', () => {
        const r = moat(['validate', ...live]);
        assert.equal(r.code, 0, r.stderr);
        const n = Number(/^(\d+) objects valid$/m.exec(r.stdout)?.[1]);
        const files = Number(/^(\d+) objects valid$/m.exec(moat(['validate', '-f', FIXTURE]).stdout)?.[1]);
        // default, kube-system, kube-public, kube-node-lease and the kubernetes Service besides.
        assert.ok(n > files, `${n} objects in the cluster, ${files} in the files`);
      });

      await t.test('diff --new PATH: what applying it would change, as between the files', () => {
        const changed = join(dir, 'changed');
        cpSync(FIXTURE, changed, { recursive: true });
        rmSync(join(changed, 'policies.yaml'));
        const files = moat(['diff', '--old', FIXTURE, '--new', changed, '-o', 'json']);
        const cluster = moat(['diff', ...live, '--new', changed, '-o', 'json']);
        assert.equal(files.code, 1, 'removing the policies opens flows');
        assert.equal(cluster.code, 1, cluster.stderr);
        assert.deepEqual(JSON.parse(cluster.stdout), JSON.parse(files.stdout));
      });

      await t.test('usage: a context it does not have, both inputs, --context alone', () => {
        const cases: [string[], RegExp][] = [
          [['matrix', ...live, '--context', 'nope'], /--context nope: not in .* \(it has: /],
          [['matrix', ...live, '-f', FIXTURE], /give -f PATH or --kubeconfig, not both/],
          [['lint', '--context', 'x'], /--context needs --kubeconfig/],
          [['diff', ...live], /give one of --old PATH or --new PATH/],
        ];
        for (const [args, re] of cases) {
          const r = moat(args);
          assert.equal(r.code, 2, args.join(' '));
          assert.match(r.stderr, re);
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await c.stop();
    }
  },
);
