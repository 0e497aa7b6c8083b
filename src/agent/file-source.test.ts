import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile as write, mkdir, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Problem } from '../errors.js';
import { InputError } from '../errors.js';
import type { LoadResult } from '../model/load.js';
import { pod, snapshot } from '../model/build.js';
import type { Snapshot } from '../model/types.js';
import { FileSource, fingerprint } from './file-source.js';

/** Writes atomically (as editors and kubectl-style tools do), so no reload sees a half-written file. */
async function writeFile(path: string, text: string): Promise<void> {
  await write(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

/** A stand-in loader: one pod per line of every file, named by the line; "bad" is a problem. */
async function fakeLoad(paths: readonly string[]): Promise<LoadResult> {
  const { readFile, readdir } = await import('node:fs/promises');
  const pods = [];
  const problems: Problem[] = [];
  for (const dir of paths) {
    for (const f of (await readdir(dir, { recursive: true })).sort()) {
      if (!f.endsWith('.yaml')) continue;
      for (const line of (await readFile(join(dir, f), 'utf8')).split('\n').filter(Boolean)) {
        if (line === 'bad')
          problems.push({ file: f, line: 1, kind: 'Pod', object: 'x', field: '', message: 'bad' });
        else pods.push(pod('a', line));
      }
    }
  }
  return { snapshot: snapshot({ pods }), problems, notes: [] };
}

function collector(): { snaps: Snapshot[]; errors: unknown[]; next: (n: number) => Promise<void> } {
  const snaps: Snapshot[] = [];
  const errors: unknown[] = [];
  const next = async (n: number): Promise<void> => {
    for (let i = 0; i < 200 && snaps.length + errors.length < n; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { snaps, errors, next };
}

test('FileSource loads, reloads on change (also in subdirectories), ignores no-op changes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'moat-fs-'));
  const src = new FileSource([dir], { load: fakeLoad, pollMs: 50, settleMs: 10 });
  const c = collector();
  try {
    await writeFile(join(dir, 'a.yaml'), 'one\n');
    await src.start({ snapshot: (s) => c.snaps.push(s), error: (e) => c.errors.push(e) });
    assert.deepEqual(
      c.snaps.map((s) => s.pods.map((p) => p.name)),
      [['one']],
    );

    await mkdir(join(dir, 'sub'));
    await writeFile(join(dir, 'sub', 'b.yaml'), 'two\n');
    await c.next(2);
    assert.deepEqual(
      c.snaps[1]?.pods.map((p) => p.name),
      ['one', 'two'],
    );

    // Same content rewritten: no new snapshot.
    await writeFile(join(dir, 'a.yaml'), 'one\n');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.snaps.length, 2);

    // Invalid input: an error, and no snapshot (the last good one stays enforced).
    await writeFile(join(dir, 'a.yaml'), 'bad\n');
    await c.next(3);
    assert.equal(c.snaps.length, 2);
    assert.ok(c.errors[0] instanceof InputError);
  } finally {
    await src.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('fingerprint sees manifests only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'moat-fp-'));
  try {
    await writeFile(join(dir, 'a.yaml'), 'x');
    const before = await fingerprint([dir]);
    await writeFile(join(dir, 'notes.txt'), 'x');
    assert.equal(await fingerprint([dir]), before);
    await writeFile(join(dir, 'b.json'), '{}');
    assert.notEqual(await fingerprint([dir]), before);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
