import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countSpecs } from './junit.js';

// The shape ginkgo writes: unfocused specs as skipped, failures with a <failure> body.
const XML = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="0" errors="0" failures="1" time="10">
  <testsuite name="Kubernetes e2e suite" tests="5">
    <testcase name="[It] [sig-network] Netpol should support a &#39;default-deny-ingress&#39; policy" status="passed" time="1"></testcase>
    <testcase name="[It] [sig-network] Netpol should enforce egress &amp; ingress" status="failed" time="2">
      <failure message="Had 5 wrong results">wrong</failure>
    </testcase>
    <testcase name="[It] [sig-network] Netpol SCTP should work" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[It] [sig-storage] something else" status="failed" time="0"><failure>x</failure></testcase>
    <testcase name="[It] [sig-network] Netpol panics" status="panicked" time="0"></testcase>
  </testsuite>
</testsuites>`;

test('countSpecs: counts only the matching specs, by status, with their names decoded', () => {
  const c = countSpecs(XML, /Netpol/);
  assert.deepEqual(
    { passed: c.passed, failed: c.failed, skipped: c.skipped },
    { passed: 1, failed: 2, skipped: 1 },
  );
  assert.deepEqual(c.failedNames, [
    '[It] [sig-network] Netpol should enforce egress & ingress',
    '[It] [sig-network] Netpol panics',
  ]);
  assert.equal(countSpecs(XML, /sig-storage/).failed, 1);
  assert.equal(countSpecs(XML, /'default-deny-ingress'/).passed, 1, 'numeric entities decoded');
});
