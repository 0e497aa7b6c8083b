import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLegacyCIDR, parseLegacyIP } from './validateNet.js';

// [input, canonical network or undefined when invalid, number of warnings]
const cidrs: [string, string | undefined, number][] = [
  ['10.0.0.0/8', '10.0.0.0/8', 0],
  ['0.0.0.0/0', '0.0.0.0/0', 0],
  ['10.1.2.3/8', '10.0.0.0/8', 1], // host bits: "ambiguous in this context"
  ['010.001.0.0/16', '10.1.0.0/16', 1], // leading zeros: accepted while StrictIPCIDRValidation is off
  ['10.0.0.0/08', '10.0.0.0/8', 1],
  ['::ffff:10.0.0.0/104', '10.0.0.0/8', 1], // IPv4-mapped: IPv4 meaning kept
  ['2001:db8::/32', '2001:db8::/32', 0],
  ['2001:DB8:0:0::/64', '2001:db8::/64', 1], // not RFC 5952
  // Go 1.16 parsing (k8s.io/utils/net), checked against kube-apiserver v1.33: any number of leading
  // zeros in octets, prefix lengths and IPv6 groups, as long as the value fits.
  ['10.0.0.0/0000000000008', '10.0.0.0/8', 1],
  ['0000000000010.0.0.0/8', '10.0.0.0/8', 1],
  ['2001:0db80::/32', '2001:db80::/32', 1],
  ['2001:000000000001::/32', '2001:1::/32', 1],
  ['64:ff9b::10.0.0.0/120', '64:ff9b::a00:0/120', 1],
  ['::1.2.3.4/128', '::102:304/128', 1],
  ['2001:10000::/32', undefined, 0],
  ['1:2:3:4::5:6:7:8/64', undefined, 0],
  ['1:2:3:4:5:1.2.3.4/64', undefined, 0],
  ['0x0a.0.0.0/8', undefined, 0],
  [' 10.0.0.0/8', undefined, 0],
  ['10.0.0.0/33', undefined, 0],
  ['10.0.0.0', undefined, 0],
  ['10.0.0/8', undefined, 0],
  ['256.0.0.0/8', undefined, 0],
  ['fe80::1%eth0/64', undefined, 0],
  ['2001:db8::/129', undefined, 0],
  ['10.0.0.0/-1', undefined, 0],
  ['', undefined, 0],
];

for (const [input, want, warnings] of cidrs) {
  test(`parseLegacyCIDR(${JSON.stringify(input)})`, () => {
    const got = parseLegacyCIDR(input);
    assert.equal(got?.canonical, want);
    if (got) assert.equal(got.warnings.length, warnings, got.warnings.join('; '));
  });
}

const ips: [string, string | undefined][] = [
  ['10.0.0.1', '10.0.0.1'],
  ['010.0.0.1', '10.0.0.1'],
  ['::ffff:1.2.3.4', '1.2.3.4'],
  ['FD00::1', 'fd00::1'],
  ['1.2.3', undefined],
  ['fe80::1%eth0', undefined],
  ['example.com', undefined],
];

for (const [input, want] of ips) {
  test(`parseLegacyIP(${JSON.stringify(input)})`, () => {
    assert.equal(parseLegacyIP(input)?.canonical, want);
  });
}
