// `npx moat` runs dist/src/cli/bin.js directly: tsc writes it without the executable bit, so the
// build sets it; without it the README's first command fails with "Permission denied".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../test/support/cli.js';

test('the bin is executable after the build', () => {
  const mode = statSync(join(repoRoot(), 'dist/src/cli/bin.js')).mode;
  assert.equal(mode & 0o111, 0o111, `mode ${mode.toString(8)}`);
});
