import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  isDNS1123Label,
  isDNS1123Subdomain,
  isQualifiedName,
  isValidLabelValue,
  isValidPortName,
  isValidPortNum,
} from './labels.js';

// [function, input, valid?]
const cases: [string, (v: string) => string[], string, boolean][] = [
  ['label', isDNS1123Label, 'my-name', true],
  ['label', isDNS1123Label, '123-abc', true],
  ['label', isDNS1123Label, 'a.b', false],
  ['label', isDNS1123Label, 'A', false],
  ['label', isDNS1123Label, '-a', false],
  ['label', isDNS1123Label, 'a'.repeat(63), true],
  ['label', isDNS1123Label, 'a'.repeat(64), false],
  ['subdomain', isDNS1123Subdomain, 'example.com', true],
  ['subdomain', isDNS1123Subdomain, 'a..b', false],
  ['subdomain', isDNS1123Subdomain, 'a_b', false],
  [
    'subdomain',
    isDNS1123Subdomain,
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`,
    true,
  ],
  [
    'subdomain',
    isDNS1123Subdomain,
    `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(62)}`,
    false,
  ],
  ['key', isQualifiedName, 'app', true],
  ['key', isQualifiedName, 'App.Name_1', true],
  ['key', isQualifiedName, 'example.com/app', true],
  ['key', isQualifiedName, 'Example.com/app', false],
  ['key', isQualifiedName, '/app', false],
  ['key', isQualifiedName, 'example.com/', false],
  ['key', isQualifiedName, 'a/b/c', false],
  ['key', isQualifiedName, '', false],
  ['key', isQualifiedName, '_app', false],
  ['key', isQualifiedName, 'a'.repeat(64), false],
  ['value', isValidLabelValue, '', true],
  ['value', isValidLabelValue, 'v1.2_x-y', true],
  ['value', isValidLabelValue, 'a b', false],
  ['value', isValidLabelValue, 'x.', false],
  ['value', isValidLabelValue, 'v'.repeat(64), false],
  ['port name', isValidPortName, 'http', true],
  ['port name', isValidPortName, 'h2c-8080', true],
  ['port name', isValidPortName, '8080', false],
  ['port name', isValidPortName, 'http-', false],
  ['port name', isValidPortName, 'a--b', false],
  ['port name', isValidPortName, 'Http', false],
  ['port name', isValidPortName, 'abcdefghijklmno', true],
  ['port name', isValidPortName, 'abcdefghijklmnop', false],
  ['port name', isValidPortName, '', false],
];

for (const [what, fn, input, valid] of cases) {
  test(`${what} ${JSON.stringify(input.length > 20 ? `${input.slice(0, 20)}...(${input.length})` : input)} is ${valid ? 'valid' : 'invalid'}`, () => {
    assert.equal(fn(input).length === 0, valid, fn(input).join('; '));
  });
}

test('port numbers 1..65535', () => {
  assert.deepEqual(
    [0, 1, 65535, 65536, 1.5].map((p) => isValidPortNum(p).length === 0),
    [false, true, true, false, false],
  );
});
