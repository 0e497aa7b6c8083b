// `moat doctor` on this host, for real: it judges the host, and leaves nothing behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import type { DoctorResult } from '../../src/cli/commands/doctor.js';
import { moat } from '../support/cli.js';
import { needsRoot } from './lab-util.js';

const state = () => ({
  netns: execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }),
  tables: execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }),
  sets: execFileSync('ipset', ['list', '-n'], { encoding: 'utf8' }),
  iptables: execFileSync('iptables-save', { encoding: 'utf8' }).replace(/^#.*$/gm, ''),
});

test(
  'moat doctor: nftables here; every probe in a scratch namespace that is gone after',
  { skip: needsRoot },
  () => {
    const before = state();
    const r = moat(['doctor', '-o', 'json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const d = JSON.parse(r.stdout) as DoctorResult;
    assert.equal(d.backend, 'nftables', d.verdict.why);
    assert.equal(d.report.scratch.ok, true);
    for (const c of d.report.checks.filter((x) => x.requiredBy?.includes('nftables') === true))
      assert.equal(c.ok, true, `${c.id}: ${c.detail}`);
    // This host's iptables and ipset answer too (the iptables backend's needs are judged).
    assert.ok(d.report.checks.some((c) => c.id === 'ipset.hash_ip_port' && c.ok));
    assert.ok(d.report.iptablesMode !== undefined);
    assert.deepEqual(state(), before);
    const text = moat(['doctor', '--backend', 'nftables']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /backend: nftables\./);
  },
);
