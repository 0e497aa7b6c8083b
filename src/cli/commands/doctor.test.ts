import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Check, HostReport } from '../../dataplane/probe.js';
import { doctorResult, formatDoctor } from './doctor.js';

const check = (id: string, ok: boolean, requiredBy?: ('nftables' | 'iptables')[]): Check => ({
  id,
  group: id.startsWith('nft') ? 'nftables' : 'iptables',
  what: id,
  ok,
  detail: ok ? 'loads' : 'Error: Could not process rule: No such file or directory',
  fix: `fix for ${id}`,
  ...(requiredBy !== undefined ? { requiredBy } : {}),
});

const report = (checks: Check[]): HostReport => ({
  kernel: '6.18',
  scratch: { ok: true, detail: 'moat-doctor-1' },
  checks,
});

it('doctor: says what is missing with its fix, which backend it picks, and whether moat can enforce', () => {
  const good = doctorResult(report([check('nft.ct', true, ['nftables']), check('nft.queue', false)]), 'auto');
  assert.equal(good.ok, true);
  assert.equal(good.backend, 'nftables');
  const text = formatDoctor(good);
  assert.match(text, /no {6}nft\.queue \(optional\)/);
  assert.match(text, /backend: nftables\./);
  assert.match(text, /moat can enforce on this host\./);

  // WSL2-like: no nft ct, so iptables + ipset serve.
  const wsl = doctorResult(
    report([check('nft.ct', false, ['nftables']), check('iptables.xt_set', true, ['iptables'])]),
    'auto',
  );
  assert.equal(wsl.verdict.chosen, 'iptables');
  assert.equal(wsl.ok, true);
  const t2 = formatDoctor(wsl);
  assert.match(t2, /MISSING nft\.ct: Error: Could not process rule/);
  assert.match(t2, /fix: fix for nft\.ct/);
  assert.match(t2, /backend: iptables\. nftables lacks nft\.ct/);
  assert.match(t2, /moat can enforce on this host\./);

  const none = doctorResult(
    report([check('nft.ct', false, ['nftables']), check('iptables.xt_set', false, ['iptables'])]),
    'auto',
  );
  assert.equal(none.ok, false);
  assert.match(
    formatDoctor(none),
    /backend: none\. neither backend can enforce here: nftables lacks nft\.ct; iptables lacks iptables\.xt_set/,
  );
});
