// Input for commands that read manifests: load, validate, refuse invalid input with the same
// messages as `moat validate`.
import { InputError } from '../errors.js';
import { loadPaths } from '../model/load.js';
import type { Snapshot } from '../model/types.js';

export async function loadSnapshot(paths: readonly string[]): Promise<Snapshot> {
  const res = await loadPaths(paths);
  for (const note of res.notes) process.stderr.write(`moat: ${note}\n`);
  if (res.problems.length > 0) throw new InputError(res.problems);
  return res.snapshot;
}
