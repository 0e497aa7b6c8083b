// `moat lint -f PATH... [-o text|json|sarif] [--fail-on error|warning|info]`: the traps a valid policy
// set can hold. Findings on stdout (text: one per line; json: {"findings":[...]}; sarif: SARIF 2.1.0
// for code scanning); exit 1 when one
// is at or above --fail-on (default warning). Invalid input is refused as `moat validate` does.
import { Option, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import { atLeast, formatFinding, lint, SEVERITIES, type Severity } from '../../analysis/lint.js';
import { toSarif } from '../../analysis/sarif.js';
import { addClusterOptions, collectValues, IGNORE_HELP, loadInput, type InputArgs } from '../io.js';
import { VERSION } from '../version.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export interface LintArgs extends InputArgs {
  readonly output: string;
  readonly failOn: string;
}

export async function runLint(a: LintArgs): Promise<{ text: string; code: number }> {
  if (!(SEVERITIES as readonly string[]).includes(a.failOn)) {
    throw new UsageError(`--fail-on ${a.failOn}: must be one of ${SEVERITIES.join(', ')}`);
  }
  const findings = lint(await loadInput('lint', a));
  const code = findings.some((f) => atLeast(f, a.failOn as Severity)) ? 1 : 0;
  if (a.output === 'sarif') return { text: `${JSON.stringify(toSarif(findings, VERSION), null, 2)}\n`, code };
  if (a.output === 'json') {
    // origin is where the object was read, not part of the record.
    const records = findings.map(({ origin: _o, ...f }) => f);
    return { text: `${JSON.stringify({ findings: records }, null, 2)}\n`, code };
  }
  const n = findings.length;
  const text =
    n === 0
      ? 'no findings\n'
      : `${findings.map((f) => formatFinding(f)).join('\n')}\n${n} ${n === 1 ? 'finding' : 'findings'}\n`;
  return { text, code };
}

export function registerLint(program: Command): void {
  const cmd = program.command('lint');
  addClusterOptions(cmd);
  cmd
    .description(
      'find the traps a valid policy set can hold (DNS blocked or open, selectors that select nothing, OR for AND, named ports, protocols, hostNetwork pods, admin priority ties and shadowed rules)',
    )
    .option('-f, --filename <path>', 'file, directory (recursive) or - for stdin; repeatable', collect, [])
    .addOption(
      new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'sarif']).default('text'),
    )
    .addOption(
      new Option('--fail-on <severity>', 'exit 1 when a finding is at or above this severity')
        .choices([...SEVERITIES])
        .default('warning'),
    )
    .option('--ignore <glob>', IGNORE_HELP, collectValues, [])
    .action(async (opts: LintArgs) => {
      const r = await runLint(opts);
      process.stdout.write(r.text);
      if (r.code !== 0) process.exitCode = r.code;
    });
}
