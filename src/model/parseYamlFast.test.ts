import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { parseYamlFast } from './parseYamlFast.js';
import { parseYamlText } from './parseYaml.js';

const same = (text: string) => {
  const fast = parseYamlFast(text);
  // It refuses block scalars with an explicit indentation indicator (`|1-`: js-yaml and the yaml
  // library read one at the top level differently); nothing else the yaml library writes.
  if (fast === undefined && /[|>][-+]?[0-9]/.test(text)) return;
  assert.ok(fast !== undefined, `the fast path refused:\n${text}`);
  const slow = parseYamlText(text);
  assert.deepEqual(slow.errors, [], text);
  // Documents that are only null hold no object (the loader skips them): the fast path leaves
  // them out.
  assert.deepEqual(
    fast,
    slow.docs.filter((d) => d.root.t !== 'null'),
    text,
  );
};

// Scalars the core schema resolves (and near misses), in every style.
const scalar = fc.oneof(
  fc.constantFrom(
    '',
    '~',
    'null',
    'Null',
    'NULL',
    'nULL',
    'true',
    'True',
    'TRUE',
    'tRUE',
    'false',
    'yes',
    'no',
    'on',
    '0',
    '-0',
    '+12',
    '012',
    '0o17',
    '0o8',
    '0x1F',
    '0xG',
    '1_000',
    '1.',
    '.5',
    '-.5e3',
    '1e3',
    '1E-2',
    '.inf',
    '-.Inf',
    '+.INF',
    '.nan',
    '.NaN',
    'NaN',
    '2001-12-14',
    '0b101',
    '1:20',
    '<<',
    '=',
    '8080/TCP',
  ),
  fc.string(),
);

describe('parseYamlFast', () => {
  it('gives the trees and lines of the yaml library for what the yaml library writes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { minLength: 1, maxLength: 3 }),
        fc.record({
          indent: fc.integer({ min: 1, max: 4 }),
          flow: fc.boolean(),
          quote: fc.constantFrom<'PLAIN' | 'QUOTE_DOUBLE' | 'QUOTE_SINGLE' | 'BLOCK_LITERAL'>(
            'PLAIN',
            'QUOTE_DOUBLE',
            'QUOTE_SINGLE',
            'BLOCK_LITERAL',
          ),
          seqIndent: fc.boolean(),
        }),
        (docs, o) => {
          const text = docs
            .map((d) =>
              stringify(d, {
                indent: o.indent,
                collectionStyle: o.flow ? 'flow' : 'any',
                defaultStringType: o.quote,
                indentSeq: o.seqIndent,
              }),
            )
            .join('---\n');
          same(text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('resolves plain scalars as the core schema does, as values and as keys', () => {
    fc.assert(
      fc.property(scalar, scalar, (a, b) => {
        same(stringify({ [a]: b, k: [a, { [b]: a }] }));
        // Written plain, where that is YAML at all.
        const plain = `x: ${a}\ny:\n- ${a}\n`;
        if (parseYamlText(plain).errors.length === 0 && parseYamlFast(plain) !== undefined) same(plain);
      }),
      { numRuns: 300 },
    );
  });

  it('hand-written manifests: comments, anchors, empty values, block scalars, several documents', () => {
    same(
      [
        '# a comment',
        'apiVersion: v1   # trailing',
        'kind: Pod',
        'metadata: &m',
        '  name: a',
        '  labels: {app: web, "tier": \'front\'}',
        'spec:',
        '  containers:',
        '  - name: c',
        '    ports:',
        '    -',
        '      containerPort: 80',
        '    - containerPort: 0x1F',
        '  empty:',
        '  note: |',
        '    line one',
        '    line two',
        '  folded: >-',
        '    a',
        '    b',
        'copy: *m',
        '---',
        '---',
        '# only a comment',
        '---',
        'kind: Service',
        '...',
        '',
      ].join('\n'),
    );
  });

  const refused: [string, string][] = [
    ['a syntax error', 'a: [1, 2\n'],
    ['a duplicate key', 'a: 1\na: 2\n'],
    ['a tag', 'a: !!str 1\n'],
    ['a collection as a key', '? [a]\n: 1\n'],
    ['an unknown alias', 'a: *nope\n'],
    ['an empty list item (no offset for its line)', 'a:\n- \n- b\n'],
  ];
  for (const [what, text] of refused) {
    it(`leaves ${what} to the precise parser`, () => assert.equal(parseYamlFast(text), undefined));
  }
});
