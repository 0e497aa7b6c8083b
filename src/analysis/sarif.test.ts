import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { netpol, ns, pod, snapshot } from '../model/build.js';
import { CHECKS, lint, type Finding } from './lint.js';
import { sarifLevel, toSarif } from './sarif.js';

/**
 * The properties SARIF 2.1.0 requires (sarif-schema-2.1.0.json, checked by hand: no network here)
 * and the ones code scanning needs: log.version and runs; run.tool.driver.name; each rule an id;
 * each result a message.text, a ruleId of the driver's rules, a level of error|warning|note|none,
 * and, to be placed, physicalLocation.artifactLocation.uri and region.startLine >= 1.
 */
function checkSarif(log: unknown): string[] {
  const bad: string[] = [];
  const o = log as Record<string, unknown>;
  if (o.version !== '2.1.0') bad.push('version');
  if (!Array.isArray(o.runs) || o.runs.length === 0) return [...bad, 'runs'];
  for (const run of o.runs as Record<string, unknown>[]) {
    const driver = (run.tool as { driver?: Record<string, unknown> } | undefined)?.driver;
    if (typeof driver?.name !== 'string') bad.push('tool.driver.name');
    const rules = (driver?.rules ?? []) as { id?: unknown; defaultConfiguration?: { level?: unknown } }[];
    const ids = rules.map((r) => r.id);
    if (ids.some((id) => typeof id !== 'string')) bad.push('rules[].id');
    if (new Set(ids).size !== ids.length) bad.push('rules[].id unique');
    for (const r of rules) {
      if (!['error', 'warning', 'note', 'none'].includes(String(r.defaultConfiguration?.level))) {
        bad.push(`rule ${String(r.id)} defaultConfiguration.level`);
      }
    }
    if (!Array.isArray(run.results)) bad.push('results');
    for (const [i, res] of ((run.results ?? []) as Record<string, unknown>[]).entries()) {
      if (typeof (res.message as { text?: unknown } | undefined)?.text !== 'string')
        bad.push(`results[${i}].message.text`);
      if (!ids.includes(res.ruleId)) bad.push(`results[${i}].ruleId`);
      if (typeof res.ruleIndex === 'number' && ids[res.ruleIndex] !== res.ruleId)
        bad.push(`results[${i}].ruleIndex`);
      if (!['error', 'warning', 'note', 'none'].includes(String(res.level))) bad.push(`results[${i}].level`);
      const locs = res.locations as {
        physicalLocation?: { artifactLocation?: { uri?: unknown }; region?: { startLine?: unknown } };
      }[];
      if (!Array.isArray(locs) || locs.length === 0) bad.push(`results[${i}].locations`);
      for (const l of locs ?? []) {
        if (l.physicalLocation === undefined) continue;
        if (typeof l.physicalLocation.artifactLocation?.uri !== 'string') bad.push(`results[${i}] uri`);
        const line = l.physicalLocation.region?.startLine;
        if (typeof line !== 'number' || !Number.isInteger(line) || line < 1)
          bad.push(`results[${i}] startLine`);
      }
    }
  }
  return bad;
}

describe('lint -o sarif', () => {
  const located = (f: Finding, file: string, line: number): Finding => ({ ...f, origin: { file, line } });
  const s = snapshot({
    namespaces: [ns('a')],
    pods: [pod('a', 'x', { ips: ['10.0.0.1'] })],
    policies: [netpol('a', 'deny', { policyTypes: ['Egress'] })],
  });
  const findings = lint(s);

  it('has the required SARIF 2.1.0 structure, every check a rule with its default level', () => {
    const log = toSarif(findings, '0.1.0');
    assert.deepEqual(checkSarif(JSON.parse(JSON.stringify(log))), []);
    const rules = log.runs[0]!.tool.driver.rules;
    assert.deepEqual(rules.map((r) => r.id).sort(), Object.keys(CHECKS).sort());
    assert.equal(rules.find((r) => r.id === 'dns-blocked')?.defaultConfiguration.level, 'error');
    assert.equal(rules.find((r) => r.id === 'policytypes-implicit')?.defaultConfiguration.level, 'note');
  });

  it('the checker rejects what code scanning would', () => {
    const log = JSON.parse(JSON.stringify(toSarif([located(findings[0]!, 'p.yaml', 3)], '0.1.0'))) as {
      runs: { results: Record<string, unknown>[] }[];
    };
    log.runs[0]!.results[0]!.ruleId = 'nope';
    assert.deepEqual(checkSarif(log), ['results[0].ruleId', 'results[0].ruleIndex']);
    assert.deepEqual(checkSarif({ version: '2.0.0', runs: [] }), ['version', 'runs']);
  });

  it('results carry ruleId, level, message and the file and line of the object', () => {
    const f = located(
      findings.find((x) => x.check === 'dns-blocked')!,
      'dir/my pods.yaml',
      7,
    );
    const r = toSarif([f], '0.1.0').runs[0]!.results[0]!;
    assert.equal(r.ruleId, 'dns-blocked');
    assert.equal(r.level, sarifLevel(f.severity));
    assert.deepEqual(r.locations[0]?.physicalLocation, {
      artifactLocation: { uri: 'dir/my%20pods.yaml' },
      region: { startLine: 7 },
    });
    assert.deepEqual(r.locations[0]?.logicalLocations, [{ fullyQualifiedName: 'Pod/a/x', kind: 'object' }]);
    assert.match(r.message.text, /cannot reach any DNS server/);
  });

  it('an object read from stdin or without origin has a logical location only', () => {
    const noOrigin = { ...findings[0]! };
    delete (noOrigin as { origin?: unknown }).origin;
    for (const f of [noOrigin, located(findings[0]!, '<stdin>', 2)]) {
      const r = toSarif([f], '0.1.0').runs[0]!.results[0]!;
      assert.equal(r.locations[0]?.physicalLocation, undefined);
      assert.equal(r.locations[0]?.logicalLocations.length, 1);
    }
  });
});
