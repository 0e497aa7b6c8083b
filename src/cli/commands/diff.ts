// `moat diff --old PATH... --new PATH... [-o text|json|md]` (or one side and `--kubeconfig`, the
// cluster being the other): the connectivity the change from the
// old manifests to the new ones opens and closes, per port and protocol, grouped by pod pair, each
// with the rule that causes it. Exit 1 when something opens (a gate for CI review), 0 otherwise.
// Invalid input on either side is refused as `moat validate` does.
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { diffSnapshots, formatDiffMarkdown, formatDiffText } from '../../analysis/diff.js';
import { addClusterOptions, loadInput } from '../io.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface DiffArgs {
  readonly old: readonly string[];
  readonly new: readonly string[];
  readonly output: string;
  /** The live cluster stands for the side not given (`--new PATH` alone: what applying it would do). */
  readonly kubeconfig?: string;
  readonly context?: string;
}

export async function runDiff(a: DiffArgs): Promise<{ text: string; code: number }> {
  const cluster = {
    ...(a.kubeconfig !== undefined ? { kubeconfig: a.kubeconfig } : {}),
    ...(a.context !== undefined ? { context: a.context } : {}),
  };
  if (a.kubeconfig !== undefined && (a.old.length === 0) === (a.new.length === 0)) {
    throw new UsageError(
      'diff: with --kubeconfig, give one of --old PATH or --new PATH (the cluster is the other)',
    );
  }
  if (a.kubeconfig === undefined && (a.old.length === 0 || a.new.length === 0)) {
    throw new UsageError(
      'diff: --old PATH and --new PATH are both required (or one of them and --kubeconfig)',
    );
  }
  const side = (paths: readonly string[]) =>
    loadInput('diff', paths.length > 0 ? { filename: paths } : { filename: [], ...cluster });
  const d = diffSnapshots(await side(a.old), await side(a.new));
  const code = d.opened.length > 0 ? 1 : 0;
  if (a.output === 'json') return { text: `${JSON.stringify(d, null, 2)}\n`, code };
  return { text: a.output === 'md' ? formatDiffMarkdown(d) : formatDiffText(d), code };
}

export function registerDiff(program: Command): void {
  const cmd = program.command('diff');
  addClusterOptions(cmd);
  cmd
    .description(
      'the connectivity a change opens and closes, with the rule that causes each (exit 1 when something opens)',
    )
    .option(
      '--old <path>',
      'the manifests before: file, directory or -; repeatable (with --kubeconfig and --new alone: the cluster)',
      collect,
      [],
    )
    .option(
      '--new <path>',
      'the manifests after: file, directory or -; repeatable (with --kubeconfig and --old alone: the cluster)',
      collect,
      [],
    )
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'md']).default('text'),
    )
    .action(async (opts: DiffArgs) => {
      const r = await runDiff(opts);
      process.stdout.write(r.text);
      if (r.code !== 0) process.exitCode = r.code;
    });
}
