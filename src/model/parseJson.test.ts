import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseJsonTree, streamJson } from './parseJson.js';
import type { Tree } from './parseYaml.js';
import { parseText, parseYamlText } from './parseYaml.js';

describe('parseJsonTree', () => {
  it('gives the trees and lines the YAML path gives, for any JSON in any layout', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(0, 1, 2, '\t'), (v, indent) => {
        const text = JSON.stringify(v, null, indent);
        if (!text.startsWith('{') && !text.startsWith('[')) return;
        const fast = parseJsonTree(text);
        assert.ok(fast !== undefined, text);
        const slow = parseYamlText(text);
        assert.deepEqual(slow.errors, []);
        assert.deepEqual(fast, slow.docs[0]!.root);
      }),
      { numRuns: 300 },
    );
  });

  it('streamJson: the items of a List, read one at a time, are the trees and lines of the whole', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue(), { maxLength: 5 }),
        fc.constantFrom('List', 'PodList', 'Pod'),
        fc.constantFrom(0, 1, 2),
        (items, kind, indent) => {
          const text = JSON.stringify({ apiVersion: 'v1', items, kind }, null, indent);
          const whole = parseJsonTree(text);
          const d = streamJson(text);
          assert.ok(whole?.t === 'map' && d?.root.t === 'map', text);
          const got: Tree[] = [];
          if (d.items !== undefined) {
            assert.ok(kind.endsWith('List'));
            assert.deepEqual(d.root.entries.get('items'), { ...whole.entries.get('items'), items: [] });
            d.items((t) => got.push(t));
            assert.deepEqual(got, (whole.entries.get('items') as Extract<Tree, { t: 'seq' }>).items, text);
          } else {
            assert.ok(!kind.endsWith('List') || items.length === 0, text);
            assert.deepEqual(d.root, whole, text);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lines: a mapping value at its key, a list item at itself', () => {
    const t = parseJsonTree('{\n  "a": {\n    "b": [\n      1,\n      "x"\n    ]\n  }\n}\n');
    assert.equal(t?.t, 'map');
    const a = t.entries.get('a')!;
    assert.equal(a.line, 2);
    assert.ok(a.t === 'map');
    const b = a.entries.get('b')!;
    assert.ok(b.t === 'seq');
    assert.deepEqual(
      b.items.map((x) => x.line),
      [4, 5],
    );
  });

  const refused: [string, string][] = [
    ['a syntax error', '{"a": 1,}'],
    ['a duplicate key', '{"a": 1, "a": 2}'],
    ['YAML that starts with a brace', '{a: 1}'],
    ['two documents', '{"a": 1}\n{"b": 2}'],
    ['a raw newline in a string', '{"a": "x\ny"}'],
    ['a bad escape', '{"a": "\\q"}'],
  ];
  for (const [name, text] of refused) {
    it(`leaves ${name} to the YAML path`, () => {
      assert.equal(parseJsonTree(text), undefined);
      // parseText still answers: the YAML parser's tree or its error.
      const r = parseText(text);
      assert.ok(r.docs.length + r.errors.length > 0);
    });
  }

  it('escapes and unicode', () => {
    const t = parseJsonTree('["a\\"b\\u00e9\\n", "ü"]');
    assert.ok(t?.t === 'seq');
    assert.deepEqual(
      t.items.map((x) => (x.t === 'str' ? x.v : undefined)),
      ['a"bé\n', 'ü'],
    );
  });
});
