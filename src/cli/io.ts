// Input for commands that read manifests: load, validate, refuse invalid input with the same
// messages as `moat validate`.
import { checkInterfaceGlob } from '../dataplane/model.js';
import { InputError, UsageError } from '../errors.js';
import { loadPaths } from '../model/load.js';
import type { Snapshot } from '../model/types.js';

export async function loadSnapshot(
  paths: readonly string[],
  ignore: readonly string[] = [],
): Promise<Snapshot> {
  const res = await loadPaths(paths, { ignore });
  for (const note of res.notes) process.stderr.write(`moat: ${note}\n`);
  if (res.problems.length > 0) throw new InputError(res.problems);
  return res.snapshot;
}

/** "veth*,cali*": interface names or prefix globs; "" turns the source check off. */
export function parseInterfaces(flag: string, text: string): string[] {
  if (text.trim() === '') return [];
  return text.split(',').map((g) => {
    const bad = checkInterfaceGlob(g.trim());
    if (bad !== undefined) throw new UsageError(`${flag}: ${bad}`);
    return g.trim();
  });
}

export const IGNORE_HELP =
  'skip files and directories matching GLOB (*, ?, **; a name without / matches any path segment); repeatable';

export function collectValues(value: string, previous: string[]): string[] {
  return [...previous, value];
}
