// `moat validate -f PATH [-f PATH...]`: load manifests and check them as the API server would.
// Output: problems, one per line (FILE:LINE: KIND NS/NAME: FIELD: message), on stdout, exit 1;
// when all is valid, "N objects valid" on stdout, exit 0. Notes and warnings go to stderr.
import type { Command } from 'commander';
import { formatProblem } from '../../errors.js';
import { addClusterOptions, collectValues, IGNORE_HELP, loadInputResult } from '../io.js';
import type { Snapshot } from '../../model/types.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * Objects read from the input: everything in the snapshot that has an origin (not synthesized),
 * counted by origin (a StatefulSet's replicas are one object).
 */
export function countObjects(s: Snapshot): number {
  const seen = new Set<string>();
  for (const [kind, list] of Object.entries(s) as [string, unknown][]) {
    if (!Array.isArray(list)) continue;
    for (const o of list as { origin?: { file: string; line: number }; name?: string }[]) {
      if (o.origin !== undefined)
        seen.add(`${kind}\u0000${o.origin.file}\u0000${o.origin.line}\u0000${o.name ?? ''}`);
    }
  }
  return seen.size;
}

export async function runValidate(
  paths: readonly string[],
  ignore: readonly string[] = [],
  cluster: { kubeconfig?: string; context?: string } = {},
): Promise<number> {
  const res = await loadInputResult('validate', { filename: paths, ignore, ...cluster });
  for (const note of res.notes) process.stderr.write(`moat: ${note}\n`);
  if (res.problems.length > 0) {
    process.stdout.write(res.problems.map((p) => `${formatProblem(p)}\n`).join(''));
    const n = res.problems.length;
    process.stderr.write(`moat: ${n} ${n === 1 ? 'problem' : 'problems'} found\n`);
    return 1;
  }
  const n = countObjects(res.snapshot);
  process.stdout.write(`${n} ${n === 1 ? 'object' : 'objects'} valid\n`);
  return 0;
}

export function registerValidate(program: Command): void {
  const cmd = program.command('validate');
  addClusterOptions(cmd);
  cmd
    .description('validate Namespaces, Pods, Nodes and NetworkPolicies as the API server does')
    .option('-f, --filename <path>', 'file, directory (recursive) or - for stdin; repeatable', collect, [])
    .option('--ignore <glob>', IGNORE_HELP, collectValues, [])
    .action(async (opts: { filename: string[]; ignore: string[]; kubeconfig?: string; context?: string }) => {
      const code = await runValidate(opts.filename, opts.ignore, {
        ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
        ...(opts.context !== undefined ? { context: opts.context } : {}),
      });
      if (code !== 0) process.exitCode = code;
    });
}
